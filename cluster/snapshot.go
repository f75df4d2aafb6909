package cluster

import (
	"bufio"
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
)

// Snapshots are verified, not trusted (DESIGN.md, "Snapshots verified,
// not trusted"). A snapshot carries the state at a batch end at or below
// the settled height (its base) and the leader-signed batches since. A
// member that installs one from the leader, or fetches one from another
// member, checks the base against the chain's settled record and
// re-executes every batch with the chain's facts; one that does not check
// out is refused with evidence, and the member fetches the state from the
// other members instead. At startup a node restores its own snapshot from
// its disk: one it wrote or verified before (its checksum is on the trust
// list) needs no chain check, only the re-execution of its batches.

// snapshotCheckTimeout bounds the chain reads and waits of one snapshot
// check (a batch of an epoch the chain has not reached waits for it).
const snapshotCheckTimeout = 30 * time.Second

// snapshotFetchTimeout bounds the search for a good snapshot among the
// other members after one was refused.
const snapshotFetchTimeout = 60 * time.Second

// raftSnapshot is a Raft snapshot as read: the genesis (nil before the
// genesis) and the fsm snapshot after it.
type raftSnapshot struct {
	gen  []byte
	g    *genesis
	body []byte
}

// readRaftSnapshot reads the Raft snapshot format (raftfsm.go) from r.
func readRaftSnapshot(rc io.Reader) (*raftSnapshot, error) {
	r := bufio.NewReaderSize(rc, 1<<16)
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	if hdr[0] != snapshotVersion {
		return nil, fmt.Errorf("version %d, want %d", hdr[0], snapshotVersion)
	}
	n := uint32(hdr[1])<<24 | uint32(hdr[2])<<16 | uint32(hdr[3])<<8 | uint32(hdr[4])
	if n > protocol.MaxBatchBytes {
		return nil, fmt.Errorf("genesis of %d bytes", n)
	}
	rs := &raftSnapshot{}
	if n == 0 {
		return rs, nil
	}
	rs.gen = make([]byte, n)
	if _, err := io.ReadFull(r, rs.gen); err != nil {
		return nil, fmt.Errorf("genesis: %w", err)
	}
	g, err := decodeGenesis(rs.gen)
	if err != nil {
		return nil, err
	}
	rs.g = g
	if rs.body, err = io.ReadAll(io.LimitReader(r, fsm.MaxSnapshotBytes+1)); err != nil {
		return nil, err
	}
	return rs, nil
}

// maxRaftSnapshotBytes bounds a snapshot fetched from a peer: header,
// genesis and the fsm snapshot.
const maxRaftSnapshotBytes = 5 + protocol.MaxBatchBytes + fsm.MaxSnapshotBytes

// snapshotCheck is what a channel's FSM needs to check snapshots: the
// chain's record, the other members, and the list of snapshots this node
// wrote or verified.
type snapshotCheck struct {
	// chain reads the channel's record.
	chain func(ctx context.Context) (*settlement.ChannelInfo, error)
	// fetch returns a Raft snapshot of height min at least from another
	// member, and who sent it; it tries the members in turn.
	fetch func(ctx context.Context, min uint64, skip func(protocol.Address) bool) ([]byte, protocol.Address, error)
	// leader returns the Raft leader, which sends InstallSnapshot.
	leader func() protocol.Address
	// result counts a restore or refusal (restored, fetched, forged,
	// unverifiable).
	result func(string)
	trust  *trustList
}

// checked is a machine restored from a snapshot and checked.
type checked struct {
	m      *fsm.Machine
	g      *genesis
	height uint64
}

// check restores a Raft snapshot into a new machine and checks it. A
// received snapshot, or one of its own not on the trust list, is checked
// against the chain; every batch is re-executed with the chain's facts.
// claimed is the height the snapshot names (0 when it does not decode).
// The error is ErrBadSnapshot when the snapshot is false, ErrUnverifiable
// when the chain cannot tell now.
//
// minBase, when not 0, is the lowest base the caller takes: a snapshot
// that re-executes batches at or below it is refused as unverifiable, with
// no evidence (resync, punish.go).
func (f *machineFSM) check(rs *raftSnapshot, received bool, minBase uint64) (ck *checked, claimed uint64, err error) {
	ctx, cancel := context.WithTimeout(f.ctx, snapshotCheckTimeout)
	defer cancel()
	m, err := f.build(ctx, rs.g)
	var bad *badGenesisError
	if errors.As(err, &bad) {
		return nil, 0, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	if err != nil {
		return nil, 0, err
	}
	genesisHash, _ := m.StateHash(0)
	file, err := m.ReadSnapshot(bytes.NewReader(rs.body))
	if err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	claimed = file.Height
	if minBase > 0 && file.BaseHeight() < minBase {
		return nil, claimed, fmt.Errorf("%w: its base is height %d, below %d", ErrUnverifiable, file.BaseHeight(), minBase)
	}
	if file.Legacy() {
		if received {
			return nil, claimed, fmt.Errorf("%w: version %d carries no batches to re-execute", ErrUnverifiable, file.Version)
		}
		// Written by this node before version 4: its own disk.
		m.RestoreBase(file)
		return &checked{m: m, g: rs.g, height: m.Height()}, claimed, nil
	}
	trusted := !received && f.snaps.trust.has(file.Sum)
	var rec *settlement.ChannelInfo
	if !trusted {
		rec, err = retryChain(ctx, f.snaps.chain)
		if err != nil {
			return nil, claimed, fmt.Errorf("%w: read the chain: %v", ErrUnverifiable, err)
		}
		s := rec.SettledHeight
		switch {
		case s == 0:
			// Nothing settled: the base is the genesis, which the chain
			// vouches for (build checked it).
			if file.BaseHeight() != 0 || file.BaseStateHash() != genesisHash {
				return nil, claimed, fmt.Errorf("%w: nothing is settled, and its base (height %d) is not the genesis", ErrBadSnapshot, file.BaseHeight())
			}
		case rec.SettledStateHash.IsZero():
			return nil, claimed, fmt.Errorf("%w: the chain settled height %d without a state hash", ErrUnverifiable, s)
		case s < file.BaseHeight() || s > file.Height:
			return nil, claimed, fmt.Errorf("%w: the chain settled height %d, the snapshot covers %d..%d", ErrUnverifiable, s, file.BaseHeight(), file.Height)
		case s == file.BaseHeight() && file.BaseStateHash() != rec.SettledStateHash:
			return nil, claimed, fmt.Errorf("%w: state hash of its base (height %d) is not the chain's", ErrBadSnapshot, s)
		}
	}
	m.RestoreBase(file)
	if err := f.replay(ctx, m, file); err != nil {
		return nil, claimed, err
	}
	if err := file.CheckEnd(m); err != nil {
		return nil, claimed, fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	}
	settled := file.Settled
	if rec != nil && rec.SettledHeight > 0 {
		s := rec.SettledHeight
		sh, _ := m.StateHash(s)
		d, _ := m.Digest(s)
		if sh != rec.SettledStateHash || d != rec.SettledDigest {
			return nil, claimed, fmt.Errorf("%w: state at the settled height %d is not the chain's", ErrBadSnapshot, s)
		}
		settled = s
	}
	if settled > m.SettledHeight() {
		if err := m.PruneTo(settled); err != nil {
			return nil, claimed, err
		}
	}
	if received {
		if err := f.snaps.trust.add(file.Sum); err != nil {
			f.logger.Warn("cannot record a verified snapshot", "error", err)
		}
	}
	return &checked{m: m, g: rs.g, height: m.Height()}, claimed, nil
}

// replay applies a snapshot's batches to m as any batch is applied:
// signatures verified, the leader of each epoch and every join and leave
// checked against the chain. A batch refused is a false snapshot: an
// honest member's snapshot carries only batches it applied.
func (f *machineFSM) replay(ctx context.Context, m *fsm.Machine, file *fsm.SnapshotFile) error {
	for i, raw := range file.Batches {
		b, err := protocol.DecodeBatch(raw)
		if err != nil {
			return fmt.Errorf("%w: batch %d: %v", ErrBadSnapshot, i, err)
		}
		ver := fsm.Verify(b)
		facts := &fsm.Facts{}
		f.facts.known(b, facts)
		for {
			_, err := m.ApplyFacts(b, ver, facts)
			var need *fsm.NeedFactsError
			if errors.As(err, &need) {
				if err := f.facts.resolve(ctx, need, facts); err != nil {
					return fmt.Errorf("%w: batch at height %d: the chain did not decide its facts: %v", ErrUnverifiable, b.FirstHeight, err)
				}
				continue
			}
			if err != nil {
				return fmt.Errorf("%w: batch at height %d: %v", ErrBadSnapshot, b.FirstHeight, err)
			}
			break
		}
	}
	return nil
}

// refuseSnapshot records a refused snapshot: evidence when it is false,
// a warning when the chain cannot tell.
func (f *machineFSM) refuseSnapshot(err error, from protocol.Address, claimed uint64, sum []byte) {
	if !errors.Is(err, ErrBadSnapshot) {
		f.logger.Warn("snapshot cannot be checked now, refused", "from", from, "height", claimed, "error", err)
		f.snaps.result("unverifiable")
		return
	}
	ev := &fsm.Evidence{Reason: fsm.ReasonBadSnapshot, Leader: from, Height: claimed, Index: -1,
		Detail: strings.TrimPrefix(err.Error(), ErrBadSnapshot.Error()+": "), Batch: sum}
	f.snaps.result("forged")
	f.recordEvidence(ev)
}

// recordEvidence keeps evidence found outside the machine's apply (a
// refused snapshot, an equivocation) with the refused geneses', and tells
// the channel.
func (a *applier) recordEvidence(ev *fsm.Evidence) {
	a.mu.Lock()
	if len(a.badGen) == maxBadGenesis {
		a.badGen = append(a.badGen[:0], a.badGen[1:]...)
	}
	a.badGen = append(a.badGen, ev)
	a.badGenTotal++
	a.publishLocked()
	a.mu.Unlock()
	if a.onEvidence != nil {
		a.onEvidence(ev)
	}
}

// fetchChecked fetches a snapshot of height min at least from the other
// members and checks it, until one checks out or the time is up. A member
// whose snapshot is false is recorded and not asked again; liar, when not
// zero, sent the refused one and is not asked. Once every member was
// refused the error is ErrBadSnapshot: this member's own execution of the
// batches is the odd one out (or every other member lies). minBase is
// check's.
func (f *machineFSM) fetchChecked(min, minBase uint64, liar protocol.Address) (*checked, error) {
	if f.snaps.fetch == nil {
		return nil, errors.New("no members to fetch from")
	}
	ctx, cancel := context.WithTimeout(f.ctx, snapshotFetchTimeout)
	defer cancel()
	liars := map[protocol.Address]bool{}
	if !liar.IsZero() {
		liars[liar] = true
	}
	skip := func(a protocol.Address) bool { return liars[a] }
	var last error
	refused := 0
	for {
		data, from, err := f.snaps.fetch(ctx, min, skip)
		if err == nil {
			var rs *raftSnapshot
			if rs, err = readRaftSnapshot(bytes.NewReader(data)); err != nil {
				err = fmt.Errorf("%w: %v", ErrBadSnapshot, err)
			} else if rs.g == nil {
				err = fmt.Errorf("%w: without a genesis", ErrBadSnapshot)
			}
			var ck *checked
			var claimed uint64
			if err == nil {
				ck, claimed, err = f.check(rs, true, minBase)
			}
			if err == nil && ck.height < min {
				err = fmt.Errorf("snapshot at height %d, below %d", ck.height, min)
			}
			if err == nil {
				f.logger.Info("fetched a snapshot from a member", "from", from, "height", ck.height)
				f.snaps.result("fetched")
				f.compareApplied(ck.m, from)
				return ck, nil
			}
			f.refuseSnapshot(err, from, claimed, nil)
			if errors.Is(err, ErrBadSnapshot) {
				liars[from] = true
				refused++
			}
		} else if errors.Is(err, errNoMemberLeft) && refused > 0 {
			return nil, fmt.Errorf("%w: the snapshot of every member was refused, the last: %v", ErrBadSnapshot, last)
		}
		last = err
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("no member sent a snapshot that checks out: %w", last)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// trustList is the checksums of the latest snapshots this node wrote or
// verified, kept in a file of the channel's folder: at startup, Raft
// restores the newest snapshot on disk, and one of these needs no chain
// check (the chain may have settled past it while the node was down).
type trustList struct {
	mu   sync.Mutex
	path string
	sums []protocol.Hash
}

// maxTrusted bounds the trust list; Raft keeps fewer snapshots.
const maxTrusted = 32

func loadTrustList(dir string) *trustList {
	t := &trustList{path: filepath.Join(dir, "snapshots-trusted")}
	b, err := os.ReadFile(t.path)
	if err != nil {
		return t
	}
	for _, line := range strings.Fields(string(b)) {
		var h protocol.Hash
		if raw, err := hex.DecodeString(line); err == nil && len(raw) == len(h) {
			copy(h[:], raw)
			t.sums = append(t.sums, h)
		}
	}
	return t
}

func (t *trustList) has(h protocol.Hash) bool {
	if t == nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	return slices.Contains(t.sums, h)
}

// add records h and writes the list (to a new file, synced, then renamed).
func (t *trustList) add(h protocol.Hash) error {
	if t == nil {
		return nil
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if slices.Contains(t.sums, h) {
		return nil
	}
	t.sums = append(t.sums, h)
	if len(t.sums) > maxTrusted {
		t.sums = slices.Clone(t.sums[len(t.sums)-maxTrusted:])
	}
	var sb strings.Builder
	for _, s := range t.sums {
		sb.WriteString(hex.EncodeToString(s[:]))
		sb.WriteByte('\n')
	}
	tmp := t.path + ".tmp"
	fl, err := os.OpenFile(tmp, os.O_CREATE|os.O_TRUNC|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	if _, err := fl.WriteString(sb.String()); err != nil {
		fl.Close()
		return err
	}
	if err := fl.Sync(); err != nil {
		fl.Close()
		return err
	}
	if err := fl.Close(); err != nil {
		return err
	}
	return os.Rename(tmp, t.path)
}

// sumWriter passes writes on and keeps the last 32 bytes: the fsm
// snapshot's checksum, which ends a Raft snapshot.
type sumWriter struct {
	w    io.Writer
	last []byte
}

func (s *sumWriter) Write(p []byte) (int, error) {
	n, err := s.w.Write(p)
	const k = len(protocol.Hash{})
	if n >= k {
		s.last = append(s.last[:0], p[n-k:n]...)
	} else {
		s.last = append(s.last, p[:n]...)
		if len(s.last) > k {
			s.last = append(s.last[:0], s.last[len(s.last)-k:]...)
		}
	}
	return n, err
}

func (s *sumWriter) sum() (protocol.Hash, bool) {
	var h protocol.Hash
	if len(s.last) < len(h) {
		return h, false
	}
	copy(h[:], s.last[len(s.last)-len(h):])
	return h, true
}

// newSnapshotCheck returns the channel's snapshot checker.
func (c *Channel) newSnapshotCheck() *snapshotCheck {
	return &snapshotCheck{
		chain: func(ctx context.Context) (*settlement.ChannelInfo, error) { return c.cfg.Chain.Channel(ctx, c.id) },
		fetch: c.fetchSnapshot,
		leader: func() protocol.Address {
			if c.raft == nil {
				return protocol.Address{}
			}
			_, id := c.raft.LeaderWithID()
			a, _ := protocol.ParseAddress(string(id))
			return a
		},
		result: func(r string) { c.metrics.snapshots.WithLabelValues(r).Inc() },
		trust:  loadTrustList(c.dir),
	}
}

// errNoMemberLeft: every other server of the Raft configuration was
// skipped.
var errNoMemberLeft = errors.New("cluster: no other member to ask")

// fetchSnapshot asks the other servers of the Raft configuration, in
// turn, for a snapshot of height min at least, skipping those skip names.
func (c *Channel) fetchSnapshot(ctx context.Context, min uint64, skip func(protocol.Address) bool) ([]byte, protocol.Address, error) {
	if c.raft == nil {
		return nil, protocol.Address{}, errors.New("raft not started")
	}
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return nil, protocol.Address{}, err
	}
	last := errNoMemberLeft
	for _, s := range cf.Configuration().Servers {
		a, err := protocol.ParseAddress(string(s.ID))
		if err != nil || a == c.me() || skip(a) {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, snapshotCheckTimeout)
		data, err := c.node.peers.snapshot(cctx, string(s.Address), c.id, min)
		cancel()
		if err == nil {
			return data, a, nil
		}
		last = fmt.Errorf("%s: %w", a, err)
	}
	return nil, protocol.Address{}, last
}
