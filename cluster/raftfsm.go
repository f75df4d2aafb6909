package cluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
)

// machineFSM is the raft.BatchingFSM of one channel. It is intentionally a
// thin wrapper: it hands the commands of Raft's log to the channel's
// applier, which drives the fsm.Machine. Raft calls ApplyBatch, Snapshot
// and Restore from its FSM goroutine; the leader's batcher calls Propose
// under the machine lock.
type machineFSM struct {
	*applier
	// ctx ends at shutdown: an apply waiting for the chain gives up, and
	// the applier is abandoned.
	ctx     context.Context
	lastLog uint64 // index of the last log applied
	// booted is set once raft.NewRaft returned: a Restore before it
	// restores this node's own snapshot at startup, one after it installs
	// a snapshot the leader sent (snapshot.go).
	booted atomic.Bool
	// snaps checks and fetches snapshots (snapshot.go).
	snaps *snapshotCheck
}

func newMachineFSM(ctx context.Context, id protocol.ChannelID, self protocol.Address, logger hclog.Logger, cacheSize int) *machineFSM {
	return &machineFSM{ctx: ctx, applier: &applier{id: id, self: self, logger: logger, cache: newOutcomeCache(cacheSize)},
		snaps: &snapshotCheck{leader: func() protocol.Address { return protocol.Address{} }, result: func(string) {}}}
}

// ApplyBatch implements raft.BatchingFSM. The batches are decoded and
// their signatures verified first (most of a follower's work, and a
// function of the batch alone), then the applier applies them, each under
// the machine lock only while it executes. A batch whose chain facts are
// not known yet waits for them here, on Raft's FSM goroutine, with the
// lock released (see DESIGN.md).
func (f *machineFSM) ApplyBatch(logs []*raft.Log) []any {
	cmds := make([]committedBatch, len(logs))
	for i, l := range logs {
		if l.Type != raft.LogCommand || len(l.Data) == 0 {
			continue
		}
		cmds[i].data = l.Data
		if l.Data[0] == logBatch {
			cmds[i].pre = f.decode(l.Data[1:])
		}
	}
	res := f.applier.Apply(f.ctx, cmds)
	out := make([]any, len(logs))
	for i := range res {
		if res[i] != nil {
			out[i] = res[i]
		}
	}
	if n := len(logs); n > 0 {
		f.lastLog = logs[n-1].Index
	}
	return out
}

// Apply implements raft.FSM; raft uses ApplyBatch.
func (f *machineFSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

// Snapshot format: a version byte, the genesis (length-prefixed, empty
// before the genesis), then the fsm snapshot (which carries its own
// checksum).
const snapshotVersion = 1

// Snapshot implements raft.FSM: it captures a pointer; Persist encodes.
func (f *machineFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.abandoned.Load() {
		return nil, fmt.Errorf("%w: the state machine was abandoned mid-apply at shutdown", ErrChannelClosed)
	}
	s := &fsmSnapshot{}
	if f.snaps != nil {
		s.trust = f.snaps.trust
	}
	if f.gen != nil {
		s.gen = f.gen.bytes()
	}
	if f.m != nil {
		s.snap = f.m.Snapshot()
	}
	return s, nil
}

// Restore implements raft.FSM. Raft calls it at startup with the newest
// snapshot on this node's disk, and when it installs a snapshot the
// leader sent. The snapshot is restored into a new machine and checked
// (snapshot.go), with the machine lock not held; the machine is swapped
// in only when it checks out. A snapshot the leader sent that does not
// check out is refused, with evidence when it is false, and the member
// fetches a snapshot from the other members instead: one of at least the
// height the refused one named, so that the log after it still follows.
// Restore returns nil when the fetched one checks out and is swapped in,
// an error (Raft does not install the snapshot) when none does.
func (f *machineFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	received := f.booted.Load()
	f.feedMu.Lock()
	defer f.feedMu.Unlock()
	rs, err := readRaftSnapshot(rc)
	if err == nil && rs.g == nil && received && f.m != nil {
		// Every snapshot taken after the genesis carries it: this one
		// would wipe the machine.
		err = errors.New("no genesis, and this member has applied one")
	}
	if err == nil && rs.g == nil {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.gen, f.m = nil, nil
		f.publishLocked()
		return nil
	}
	var ck *checked
	var claimed uint64
	if err != nil {
		err = fmt.Errorf("%w: %v", ErrBadSnapshot, err)
	} else {
		ck, claimed, err = f.check(rs, received, 0)
	}
	if err != nil && received && f.ctx.Err() == nil {
		from := f.snaps.leader()
		f.refuseSnapshot(err, from, claimed, nil)
		if !errors.Is(err, ErrBadSnapshot) {
			from = protocol.Address{} // honest, perhaps: ask it too
		}
		ck, err = f.fetchChecked(claimed, 0, from)
	} else if err == nil {
		f.snaps.result("restored")
		if received {
			f.compareApplied(ck.m, f.snaps.leader())
		}
	}
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.install(ck)
	f.logger.Info("restored snapshot", "height", ck.m.Height(), "settled", ck.m.SettledHeight(), "received", received)
	return nil
}

// install swaps in a machine restored from a snapshot and checked. The
// caller holds feedMu.
func (f *machineFSM) install(ck *checked) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.gen, f.m, f.genErr = ck.g, ck.m, nil
	f.publishLocked()
}

type fsmSnapshot struct {
	gen  []byte
	snap *fsm.Snapshot
	// trust records the snapshot's checksum once written: this node
	// restores it at startup without asking the chain.
	trust *trustList
}

// Persist implements raft.FSMSnapshot; it runs while Apply goes on.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	err := s.write(sink)
	if err != nil {
		_ = sink.Cancel()
		return err
	}
	return sink.Close()
}

func (s *fsmSnapshot) write(sink io.Writer) error {
	w := &sumWriter{w: sink}
	if err := s.writeTo(w); err != nil {
		return err
	}
	if sum, ok := w.sum(); ok && s.snap != nil {
		return s.trust.add(sum)
	}
	return nil
}

func (s *fsmSnapshot) writeTo(w io.Writer) error {
	n := len(s.gen)
	hdr := []byte{snapshotVersion, byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)}
	if _, err := w.Write(hdr); err != nil {
		return err
	}
	if n == 0 {
		return nil
	}
	if _, err := w.Write(s.gen); err != nil {
		return err
	}
	if s.snap == nil {
		return errors.New("cluster: snapshot without machine")
	}
	_, err := s.snap.WriteTo(w)
	return err
}

// Release implements raft.FSMSnapshot.
func (s *fsmSnapshot) Release() {}

// outcomeCache keeps the most recent call outcomes by tx hash, oldest
// evicted first, so that a tx submitted twice gets its first outcome.
type outcomeCache struct {
	byHash map[protocol.Hash]*protocol.Outcome
	ring   []protocol.Hash
	next   int
}

func newOutcomeCache(n int) *outcomeCache {
	return &outcomeCache{byHash: make(map[protocol.Hash]*protocol.Outcome, n), ring: make([]protocol.Hash, n)}
}

func (c *outcomeCache) put(o *protocol.Outcome) {
	if _, ok := c.byHash[o.Hash]; ok {
		return
	}
	if old := c.ring[c.next]; !old.IsZero() {
		delete(c.byHash, old)
	}
	c.ring[c.next] = o.Hash
	c.next = (c.next + 1) % len(c.ring)
	c.byHash[o.Hash] = o
}

func (c *outcomeCache) get(h protocol.Hash) (*protocol.Outcome, bool) {
	o, ok := c.byHash[h]
	return o, ok
}
