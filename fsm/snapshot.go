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
// history write byte-identical snapshots. Version 4:
//
//	channel [16] · contract string
//	height u64 · digest [32] · settled u64   (the writer's applied and settled heights; base ≤ settled ≤ height)
//	base: height u64 · digest [32] · epoch u64 · leader [16] · timestamp_ms u64
//	      tick u64 · tick_ms u64 · highest_join_seq u64 · closing u64
//	members: n, n × (address [16] · public key [32] · join_seq u64 · leave_height u64), by address
//	nonces: n, n × (address [16] · nonce u64), by address
//	state: protocol.State encoding
//	batches: n, n × bytes (protocol.Batch encoding), heights base+1 .. height
//
// The base is the state at a batch end at or below the settled height, with
// no journal; the batches are the leader-signed batches applied since, as
// committed. Nothing after the base is taken on trust: the reader
// re-executes every batch (ApplyFacts in package cluster, which also checks
// the base against the chain's settled state hash). Versions 1–3 carried the
// whole state and the journal instead (see decodeLegacy); they are still
// read, and package cluster accepts them only from its own disk.
const (
	// SnapshotVersion is the format version this package writes.
	SnapshotVersion = 4
	// MaxSnapshotBytes bounds what Restore reads.
	MaxSnapshotBytes = 1 << 32

	maxJournal = 1 << 28
)

// tailBatch is one batch applied after the base: its encoding, which a
// snapshot carries, and its layer, which PruneTo folds into the base.
type tailBatch struct {
	raw []byte
	l   *layer
}

// Snapshot is an immutable capture of the machine's state. Its methods may
// run on any goroutine, concurrently with the Machine.
type Snapshot struct {
	st      *state
	base    *state
	tail    []tailBatch
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
	return &Snapshot{st: m.st, base: m.base, tail: m.tail[:len(m.tail):len(m.tail)], channel: m.cfg.Channel, name: m.cfg.Contract}
}

// Height returns the applied height the snapshot was taken at.
func (s *Snapshot) Height() uint64 { return s.st.height }

// Digest returns D(Height()).
func (s *Snapshot) Digest() protocol.Hash { return s.st.digest }

// BaseHeight returns the height of the state the snapshot carries; the
// batches after it bring it to Height().
func (s *Snapshot) BaseHeight() uint64 { return s.base.height }

// Bytes returns the encoded snapshot.
func (s *Snapshot) Bytes() []byte {
	var buf bytes.Buffer
	s.WriteTo(&buf) // a bytes.Buffer does not fail
	return buf.Bytes()
}

// WriteTo writes the encoded snapshot to w. It encodes in chunks of about
// 64 KiB, so a large state is never held twice in memory.
func (s *Snapshot) WriteTo(w io.Writer) (int64, error) {
	st, b := s.st, s.base
	cw := &chunkWriter{w: w, sum: sha256.New()}
	e := cw.next()
	e.U8(SnapshotVersion)
	e.Fixed(s.channel[:])
	e.String(s.name)
	e.U64(st.height)
	e.Fixed(st.digest[:])
	// A base restored from an old snapshot may sit above the settled
	// height: the reader settles at the base at least.
	e.U64(max(st.settled, b.height))

	e.U64(b.height)
	e.Fixed(b.digest[:])
	e.U64(b.epoch)
	e.Fixed(b.leader[:])
	e.U64(b.timestampMs)
	e.U64(b.tick)
	e.U64(b.tickMs)
	e.U64(b.joinSeq)
	e.U64(b.closing)
	e = cw.writeSets(e, b)
	e.Uleb(uint64(len(s.tail)))
	for _, tb := range s.tail {
		e.Bytes(tb.raw)
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

// writeSets writes the members, nonces and resources of st, sorted.
func (c *chunkWriter) writeSets(e *protocol.Encoder, st *state) *protocol.Encoder {
	ms := sortedMembers(st.members)
	e.Uleb(uint64(len(ms)))
	for _, m := range ms {
		encodeMember(e, m)
		e.U64(m.LeaveHeight)
		e = c.maybeFlush(e)
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
		e = c.maybeFlush(e)
	}
	// The encoding of protocol.State, written key by key.
	keys := st.res.Keys()
	e.Uleb(uint64(len(keys)))
	for _, k := range keys {
		e.Fixed(k.Account[:])
		e.String(k.Type)
		e.Bytes(st.res[k])
		e = c.maybeFlush(e)
	}
	return e
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

// SnapshotFile is a decoded snapshot: the state it carries and, from
// version 4, the batches that bring that state to its height. Decoding
// checks the encoding and the invariants of the state; the batches are
// checked only when they are applied.
type SnapshotFile struct {
	// Version is the format version read.
	Version byte
	// Height and Digest are the writer's applied height and D(Height);
	// Settled its settled height. Claims, until the batches are applied.
	Height  uint64
	Digest  protocol.Hash
	Settled uint64
	// Batches are the encoded batches of heights BaseHeight()+1 .. Height
	// (version 4; none before).
	Batches [][]byte
	// Sum is the snapshot's SHA-256 checksum: it names the snapshot.
	Sum protocol.Hash

	// st is the base (version 4: no journal, settled at its height) or
	// the whole state with its journal (versions 1–3).
	st *state
}

// Legacy reports whether the snapshot is of a version before 4: the whole
// state and journal, with no batches to re-execute. Nothing but its
// checksum and invariants vouches for it.
func (f *SnapshotFile) Legacy() bool { return f.Version < 4 }

// BaseHeight returns the height of the state the snapshot carries.
func (f *SnapshotFile) BaseHeight() uint64 { return f.st.height }

// BaseStateHash returns the state hash of the state the snapshot carries,
// computed from scratch when it was decoded.
func (f *SnapshotFile) BaseStateHash() protocol.Hash { return f.st.stateHash() }

// ReadSnapshot reads and decodes a snapshot of this machine's channel and
// contract from r, without changing the machine.
func (m *Machine) ReadSnapshot(r io.Reader) (*SnapshotFile, error) {
	buf, err := io.ReadAll(io.LimitReader(r, MaxSnapshotBytes+1))
	if err != nil {
		return nil, fmt.Errorf("%w: read: %v", ErrSnapshot, err)
	}
	return m.decodeSnapshot(buf)
}

// RestoreBase replaces the machine's state with the state f carries: the
// base of a version-4 snapshot, whose batches the caller then applies in
// order, or the whole state of an older one. Proposed batches not yet
// applied are dropped; evidence is kept.
func (m *Machine) RestoreBase(f *SnapshotFile) {
	m.dropPending()
	m.st, m.frozen = f.st, true
	m.base, m.tail = f.st, nil
	m.logger.Info("restored snapshot state", "version", f.Version, "height", f.st.height, "resources", len(f.st.res))
}

// CheckEnd checks that the machine, with the snapshot's batches applied,
// is at the height and digest the snapshot names.
func (f *SnapshotFile) CheckEnd(m *Machine) error {
	if m.Height() != f.Height || m.LastDigest() != f.Digest {
		return fmt.Errorf("%w: its batches end at height %d digest %s, it names height %d digest %s",
			ErrSnapshot, m.Height(), m.LastDigest(), f.Height, f.Digest)
	}
	return nil
}

// Restore replaces the machine's state with a snapshot read from r: it
// restores the state the snapshot carries and applies its batches with
// nil facts (Apply), as a machine with no chain to ask does; the caller
// trusts the snapshot's base (package cluster checks it against the chain
// and applies the batches with the chain's facts instead). It verifies
// version, checksum, every invariant, and that every batch applies and
// ends at the named height and digest; on any error it leaves the machine
// unchanged. Proposed batches not yet applied are dropped; evidence is
// kept.
func (m *Machine) Restore(r io.Reader) error {
	f, err := m.ReadSnapshot(r)
	if err != nil {
		return err
	}
	undo := m.save()
	m.RestoreBase(f)
	if err := m.replay(f); err != nil {
		undo()
		return err
	}
	m.logger.Info("restored snapshot", "height", m.st.height, "settled", m.st.settled, "resources", len(m.st.res))
	return nil
}

// replay applies f's batches with nil facts, checks the end and prunes to
// f's settled height.
func (m *Machine) replay(f *SnapshotFile) error {
	for i, raw := range f.Batches {
		b, err := protocol.DecodeBatch(raw)
		if err != nil {
			return fmt.Errorf("%w: batch %d: %v", ErrSnapshot, i, err)
		}
		if _, err := m.Apply(b, nil); err != nil {
			return fmt.Errorf("%w: batch %d: %v", ErrSnapshot, i, err)
		}
	}
	if err := f.CheckEnd(m); err != nil {
		return err
	}
	if f.Settled > m.st.settled && f.Settled <= m.st.height {
		return m.PruneTo(f.Settled)
	}
	return nil
}

// save returns a func that puts back the machine as it is now (state,
// base, evidence and stats), for a restore that fails half way.
func (m *Machine) save() func() {
	m.frozen = true
	st, base, tail, pending := m.st, m.base, m.tail, m.pending
	ev, evTotal, stats := slices.Clone(m.evidence), m.evidenceTotal, m.stats
	return func() {
		m.st, m.frozen, m.base, m.tail, m.pending = st, true, base, tail, pending
		m.evidence, m.evidenceTotal, m.stats = ev, evTotal, stats
	}
}

// advanceBase moves the base up to the highest batch end at or below h, the
// new settled height, folding the tail's layers into a copy of it (or taking
// the current state when h is the applied height).
func (m *Machine) advanceBase(h uint64) {
	if h <= m.base.height {
		return
	}
	if h == m.st.height {
		m.base, m.tail, m.frozen = m.st, nil, true
		return
	}
	k := 0
	for k < len(m.tail) && m.tail[k].l.height <= h {
		k++
	}
	if k == 0 {
		return
	}
	nb := m.base.clone()
	for _, tb := range m.tail[:k] {
		nb.fold(tb.l, nil)
	}
	nb.journal, nb.journalBytes = nil, 0
	nb.settled, nb.settledDigest, nb.settledState = nb.height, nb.digest, nb.stateHash()
	m.base = nb
	m.tail = slices.Clone(m.tail[k:])
}

func (m *Machine) decodeSnapshot(buf []byte) (*SnapshotFile, error) {
	switch {
	case len(buf) > MaxSnapshotBytes:
		return nil, fmt.Errorf("%w: larger than %d bytes", ErrSnapshot, MaxSnapshotBytes)
	case len(buf) < 1+sha256.Size:
		return nil, fmt.Errorf("%w: truncated (%d bytes)", ErrSnapshot, len(buf))
	case buf[0] < 1 || buf[0] > SnapshotVersion:
		return nil, fmt.Errorf("%w: version %d, want %d", ErrSnapshot, buf[0], SnapshotVersion)
	}
	body, sum := buf[:len(buf)-sha256.Size], buf[len(buf)-sha256.Size:]
	if want := sha256.Sum256(body); !bytes.Equal(sum, want[:]) {
		return nil, fmt.Errorf("%w: checksum mismatch (corrupt or truncated)", ErrSnapshot)
	}
	f := &SnapshotFile{Version: buf[0]}
	copy(f.Sum[:], sum)
	d := protocol.NewDecoder(body[1:])
	var ch protocol.ChannelID
	d.FixedInto(ch[:])
	name := d.String(protocol.MaxNameLen)
	if d.Err() == nil && (ch != m.cfg.Channel || name != m.cfg.Contract) {
		return nil, fmt.Errorf("%w: of channel %s contract %q, want %s contract %q", ErrSnapshot, ch, name, m.cfg.Channel, m.cfg.Contract)
	}
	var err error
	if f.Legacy() {
		f.st, err = decodeLegacy(d, f.Version)
		if err == nil {
			f.Height, f.Digest, f.Settled = f.st.height, f.st.digest, f.st.settled
		}
	} else {
		err = f.decodeV4(d)
	}
	if err != nil {
		return nil, err
	}
	return f, nil
}

// decodeV4 decodes the body of a version-4 snapshot after the channel
// and contract.
func (f *SnapshotFile) decodeV4(d *protocol.Decoder) error {
	f.Height = d.U64()
	d.FixedInto(f.Digest[:])
	f.Settled = d.U64()
	st := &state{}
	decodeScalars(d, st)
	st.closing = d.U64()
	if d.Err() == nil {
		switch {
		case st.closing > st.height:
			d.Fail(fmt.Errorf("closing height %d above the height %d", st.closing, st.height))
		case st.height > f.Settled || f.Settled > f.Height:
			d.Fail(fmt.Errorf("heights out of order: base %d, settled %d, height %d", st.height, f.Settled, f.Height))
		}
	}
	decodeSets(d, st, false)
	n := d.Length(maxJournal)
	if d.Err() == nil && uint64(n) > f.Height-st.height {
		d.Fail(fmt.Errorf("%d batches for heights %d..%d", n, st.height+1, f.Height))
	}
	for i := 0; i < n && d.Err() == nil; i++ {
		f.Batches = append(f.Batches, d.Bytes(protocol.MaxBatchBytes))
	}
	if d.Err() == nil && n == 0 && (st.height != f.Height || st.digest != f.Digest) {
		d.Fail(fmt.Errorf("no batches, but the base is not at height %d", f.Height))
	}
	if err := d.Finish(); err != nil {
		return fmt.Errorf("%w: %v", ErrSnapshot, err)
	}
	st.settled, st.settledDigest = st.height, st.digest
	st.acc = recomputeAcc(st)
	st.settledState = st.stateHash()
	f.st = st
	return nil
}

// decodeSets decodes the members, nonces and resources into st and checks
// them against its scalars.
func decodeSets(d *protocol.Decoder, st *state, v1 bool) {
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
}

// decodeScalars reads the state's scalars every snapshot version begins
// its state with: height, digest, epoch, leader, timestamp, tick and join
// sequence.
func decodeScalars(d *protocol.Decoder, st *state) {
	st.height = d.U64()
	d.FixedInto(st.digest[:])
	st.epoch = d.U64()
	d.FixedInto(st.leader[:])
	st.timestampMs = d.U64()
	st.tick = d.U64()
	st.tickMs = d.U64()
	st.joinSeq = d.U64()
}

// decodeLegacy decodes the body of a snapshot of version 1, 2 or 3 after
// the channel and contract: the whole state and the journal.
func decodeLegacy(d *protocol.Decoder, version byte) (*state, error) {
	v1 := version == 1
	v3 := version == 3
	st := &state{}
	decodeScalars(d, st)
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
	decodeSets(d, st, v1)

	n := d.Length(maxJournal)
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
	if len(st.journal) > 0 {
		// A snapshot is taken between batches.
		st.journal[len(st.journal)-1].pos = posEnd
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
