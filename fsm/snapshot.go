package fsm

import (
	"bytes"
	"crypto/ed25519"
	"crypto/sha256"
	"fmt"
	"hash"
	"io"
	"slices"

	"github.com/scraft/scraft/protocol"
)

// Snapshot format: one version byte, the body, then the SHA-256 of the
// version byte and the body. The body is canonical (fixed-width integers,
// ULEB128 lengths, every map sorted by key), so two members with the same
// state write byte-identical snapshots.
//
//	channel [16] · contract string
//	height u64 · digest [32] · epoch u64 · leader [16] · timestamp_ms u64
//	tick u64 · tick_ms u64 · highest_join_seq u64
//	settled u64 · settled_digest [32] · closing u64 · settled_state [32]
//	members: n, n × (address [16] · public key [32] · join_seq u64 · leave_height u64), by address
//	nonces: n, n × (address [16] · nonce u64), by address
//	state: protocol.State encoding
//	journal: n = height − settled, n × (digest [32] · state_hash [32] · size u32 · change set)
//
// The state hashes (StateHash) are those of the settled height and of each
// journal height. The lattice hash behind them is derived: Restore
// recomputes it from the sets and checks it against the last state hash.
const (
	// SnapshotVersion is the format version this package writes. It reads
	// version 2, without the state hashes (they are then unknown: a member
	// restored from one abstains on settlements up to a height it did not
	// apply itself), and version 1, which had no closing height and no
	// leave heights either.
	SnapshotVersion = 3
	// MaxSnapshotBytes bounds what Restore reads.
	MaxSnapshotBytes = 1 << 32

	maxJournal = 1 << 28
)

// Snapshot is an immutable capture of the machine's state. Its methods may
// run on any goroutine, concurrently with the Machine.
type Snapshot struct {
	st      *state
	channel protocol.ChannelID
	name    string
}

// Snapshot captures the state in O(1): the machine stops changing the
// captured state in place and clones it before its next change (so the first
// Apply after a snapshot pays one copy of the maps). Encoding happens in
// WriteTo, which may run elsewhere while Apply goes on. Batches proposed but
// not applied are not part of a snapshot.
func (m *Machine) Snapshot() *Snapshot {
	m.frozen = true
	return &Snapshot{st: m.st, channel: m.cfg.Channel, name: m.cfg.Contract}
}

// Height returns the applied height the snapshot was taken at.
func (s *Snapshot) Height() uint64 { return s.st.height }

// Digest returns D(Height()).
func (s *Snapshot) Digest() protocol.Hash { return s.st.digest }

// Bytes returns the encoded snapshot.
func (s *Snapshot) Bytes() []byte {
	var buf bytes.Buffer
	s.WriteTo(&buf) // a bytes.Buffer does not fail
	return buf.Bytes()
}

// WriteTo writes the encoded snapshot to w. It encodes in chunks of about
// 64 KiB, so a large state is never held twice in memory.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	st := s.st
	cw := &chunkWriter{w: w, sum: sha256.New()}
	e := cw.next()
	e.U8(SnapshotVersion)
	e.Fixed(s.channel[:])
	e.String(s.name)
	e.U64(st.height)
	e.Fixed(st.digest[:])
	e.U64(st.epoch)
	e.Fixed(st.leader[:])
	e.U64(st.timestampMs)
	e.U64(st.tick)
	e.U64(st.tickMs)
	e.U64(st.joinSeq)
	e.U64(st.settled)
	e.Fixed(st.settledDigest[:])
	e.U64(st.closing)
	e.Fixed(st.settledState[:])

	ms := sortedMembers(st.members)
	e.Uleb(uint64(len(ms)))
	for _, m := range ms {
		encodeMember(e, m)
		e.U64(m.LeaveHeight)
		e = cw.maybeFlush(e)
	}
	senders := make([]protocol.Address, 0, len(st.nonces))
	for a := range st.nonces {
		senders = append(senders, a)
	}
	slices.SortFunc(senders, protocol.Address.Compare)
	e.Uleb(uint64(len(senders)))
	for _, a := range senders {
		e.Fixed(a[:])
		e.U64(st.nonces[a])
		e = cw.maybeFlush(e)
	}
	// The encoding of protocol.State, written key by key.
	keys := st.res.Keys()
	e.Uleb(uint64(len(keys)))
	for _, k := range keys {
		e.Fixed(k.Account[:])
		e.String(k.Type)
		e.Bytes(st.res[k])
		e = cw.maybeFlush(e)
	}
	e.Uleb(uint64(len(st.journal)))
	for _, je := range st.journal {
		e.Fixed(je.digest[:])
		e.Fixed(je.state[:])
		e.U32(je.size)
		je.cs.Encode(e)
		e = cw.maybeFlush(e)
	}
	cw.flush(e)
	if cw.err == nil {
		n, err := w.Write(cw.sum.Sum(nil))
		cw.n += int64(n)
		cw.err = err
	}
	return cw.n, cw.err
}

const chunkSize = 64 << 10

// chunkWriter writes encoded chunks to w and hashes them. The first error
// sticks.
type chunkWriter struct {
	w   io.Writer
	sum hash.Hash
	n   int64
	err error
}

func (c *chunkWriter) next() *protocol.Encoder { return protocol.NewEncoder(chunkSize + 1024) }

func (c *chunkWriter) maybeFlush(e *protocol.Encoder) *protocol.Encoder {
	if e.Len() < chunkSize {
		return e
	}
	c.flush(e)
	return c.next()
}

func (c *chunkWriter) flush(e *protocol.Encoder) {
	if c.err != nil {
		return
	}
	c.sum.Write(e.Out())
	n, err := c.w.Write(e.Out())
	c.n += int64(n)
	c.err = err
}

// Restore replaces the machine's state with a snapshot read from r. It
// verifies the version, checksum and every invariant first, and on any
// error leaves the machine unchanged. Proposed batches not yet applied are
// dropped; evidence is kept.
func (m *Machine) Restore(r io.Reader) error {
	buf, err := io.ReadAll(io.LimitReader(r, MaxSnapshotBytes+1))
	if err != nil {
		return fmt.Errorf("%w: read: %v", ErrSnapshot, err)
	}
	st, err := m.decodeSnapshot(buf)
	if err != nil {
		return err
	}
	m.dropPending()
	m.st, m.frozen = st, false
	m.logger.Info("restored snapshot", "height", st.height, "settled", st.settled, "resources", len(st.res))
	return nil
}

func (m *Machine) decodeSnapshot(buf []byte) (*state, error) {
	switch {
	case len(buf) > MaxSnapshotBytes:
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrSnapshot, MaxSnapshotBytes)
	case len(buf) < 1+sha256.Size:
		return nil, fmt.Errorf("%w: truncated (%d bytes)", ErrSnapshot, len(buf))
	case buf[0] != SnapshotVersion && buf[0] != 2 && buf[0] != 1:
		return nil, fmt.Errorf("%w: version %d, want %d", ErrSnapshot, buf[0], SnapshotVersion)
	}
	v1 := buf[0] == 1
	v3 := buf[0] == 3
	body, sum := buf[:len(buf)-sha256.Size], buf[len(buf)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(sum, want[:]) {
		return nil, fmt.Errorf("%w: checksum mismatch (corrupt or truncated)", ErrSnapshot)
	}
	d := protocol.NewDecoder(body[1:])
	var ch protocol.ChannelID
	d.FixedInto(ch[:])
	name := d.String(protocol.MaxNameLen)
	st := &state{}
	st.height = d.U64()
	d.FixedInto(st.digest[:])
	st.epoch = d.U64()
	d.FixedInto(st.leader[:])
	st.timestampMs = d.U64()
	st.tick = d.U64()
	st.tickMs = d.U64()
	st.joinSeq = d.U64()
	st.settled = d.U64()
	d.FixedInto(st.settledDigest[:])
	if !v1 {
		st.closing = d.U64()
	}
	if v3 {
		d.FixedInto(st.settledState[:])
	}
	if d.Err() == nil && st.closing > st.height {
		d.Fail(fmt.Errorf("closing height %d above the height %d", st.closing, st.height))
	}
	if d.Err() == nil && (ch != m.cfg.Channel || name != m.cfg.Contract) {
		return nil, fmt.Errorf("%w: of channel %s contract %q, want %s contract %q", ErrSnapshot, ch, name, m.cfg.Channel, m.cfg.Contract)
	}

	n := d.Length(protocol.MaxVecLen)
	st.members = make(map[protocol.Address]Member, min(n, 1024))
	var prev protocol.Address
	for i := 0; i < n && d.Err() == nil; i++ {
		var mem Member
		d.FixedInto(mem.Address[:])
		mem.PublicKey = d.Fixed(ed25519.PublicKeySize)
		mem.JoinSeq = d.U64()
		if !v1 {
			mem.LeaveHeight = d.U64()
		}
		switch {
		case d.Err() != nil:
		case i > 0 && prev.Compare(mem.Address) >= 0:
			d.Fail(fmt.Errorf("%w: members unsorted or repeated", protocol.ErrNonCanonical))
		case protocol.AddressOf(mem.PublicKey) != mem.Address:
			d.Fail(fmt.Errorf("member %s: %w", mem.Address, protocol.ErrKeyMismatch))
		case mem.JoinSeq > st.joinSeq:
			d.Fail(fmt.Errorf("member %s: join seq %d above the highest %d", mem.Address, mem.JoinSeq, st.joinSeq))
		case mem.LeaveHeight > st.height:
			d.Fail(fmt.Errorf("member %s: leave height %d above the height %d", mem.Address, mem.LeaveHeight, st.height))
		}
		st.members[mem.Address] = mem
		prev = mem.Address
	}

	n = d.Length(protocol.MaxVecLen)
	st.nonces = make(map[protocol.Address]uint64, min(n, 1024))
	for i := 0; i < n && d.Err() == nil; i++ {
		var a protocol.Address
		d.FixedInto(a[:])
		nonce := d.U64()
		switch {
		case d.Err() != nil:
		case i > 0 && prev.Compare(a) >= 0:
			d.Fail(fmt.Errorf("%w: nonces unsorted or repeated", protocol.ErrNonCanonical))
		case nonce == 0:
			d.Fail(fmt.Errorf("nonce of %s is 0", a))
		}
		st.nonces[a] = nonce
		prev = a
	}

	st.res = protocol.DecodeState(d)
	st.resources = len(st.res)

	n = d.Length(maxJournal)
	if d.Err() == nil && (st.settled > st.height || uint64(n) != st.height-st.settled) {
		d.Fail(fmt.Errorf("journal of %d heights between settled %d and height %d", n, st.settled, st.height))
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		var je journalEntry
		d.FixedInto(je.digest[:])
		if v3 {
			d.FixedInto(je.state[:])
			je.size = d.U32()
		}
		je.cs.Decode(d)
		st.journalBytes += uint64(je.size)
		st.journal = append(st.journal, je)
	}
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	last := st.settledDigest
	if len(st.journal) > 0 {
		last = st.journal[len(st.journal)-1].digest
	}
	if last != st.digest {
		return nil, fmt.Errorf("%w: journal does not end at the digest of height %d", ErrSnapshot, st.height)
	}
	st.acc = recomputeAcc(st)
	if v3 {
		lastState := st.settledState
		if len(st.journal) > 0 {
			lastState = st.journal[len(st.journal)-1].state
		}
		if lastState != st.stateHash() {
			return nil, fmt.Errorf("%w: state hash of height %d does not match the state", ErrSnapshot, st.height)
		}
	}
	return st, nil
}
