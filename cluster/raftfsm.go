package cluster

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
)

// machineFSM is the raft.BatchingFSM of one channel. It is intentionally a
// thin wrapper: it decodes log commands and hands batches to the
// fsm.Machine, which does all the checking. Raft calls ApplyBatch, Snapshot
// and Restore from its FSM goroutine; the leader's batcher calls Propose
// under the same mutex.
type machineFSM struct {
	id     protocol.ChannelID
	self   protocol.Address // this node: it need not verify its own batches
	logger hclog.Logger
	// build makes the Machine of a genesis: it loads the code and checks
	// the genesis against the chain.
	build func(*genesis) (*fsm.Machine, error)
	// check is the batch's LeaderCheck: the chain's leader of the epoch.
	check fsm.LeaderCheck
	// applied is told each applied batch's outcomes, in order.
	applied func(b *protocol.Batch, a *fsm.Applied)

	mu      sync.Mutex
	m       *fsm.Machine // nil until the genesis command is applied
	gen     *genesis
	genErr  error // why the genesis could not be loaded
	cache   *outcomeCache
	lastLog uint64 // index of the last log applied
	// abandoned is set when an apply was cut short by shutdown and let an
	// entry through undecided (awaitChain): the state is not to be kept.
	abandoned atomic.Bool
	// summary is what Status reads of the applied state, published after
	// every apply and restore so that Status never waits for the lock (an
	// apply may wait long on the chain).
	summary atomic.Pointer[appliedSummary]
}

// appliedSummary is the part of the applied state Status reports.
type appliedSummary struct {
	height   uint64
	digest   protocol.Hash
	members  int
	evidence uint64
}

// publish stores the summary of the machine's applied state; f.mu held.
func (f *machineFSM) publish() {
	if f.m == nil {
		f.summary.Store(nil)
		return
	}
	f.summary.Store(&appliedSummary{height: f.m.Height(), digest: f.m.LastDigest(), members: f.m.MemberCount(), evidence: f.m.EvidenceTotal()})
}

// applyResult is the FSM's response to one log command, which raft hands
// to the ApplyFuture on the node that applied it.
type applyResult struct {
	batch   *protocol.Batch
	applied *fsm.Applied
	err     error
}

func newMachineFSM(id protocol.ChannelID, self protocol.Address, logger hclog.Logger, cacheSize int) *machineFSM {
	return &machineFSM{id: id, self: self, logger: logger, cache: newOutcomeCache(cacheSize)}
}

// ApplyBatch implements raft.BatchingFSM. The batches' signatures are
// verified before the lock is taken (most of a follower's work, and a
// function of the batch alone), so that the leader's batcher and readers
// of the state wait only for execution.
func (f *machineFSM) ApplyBatch(logs []*raft.Log) []any {
	pre := make([]*decoded, len(logs))
	for i, l := range logs {
		if l.Type == raft.LogCommand && len(l.Data) > 0 && l.Data[0] == logBatch {
			pre[i] = f.decode(l.Data[1:])
		}
	}
	out := make([]any, len(logs))
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.publish()
	for i, l := range logs {
		f.lastLog = l.Index
		if l.Type != raft.LogCommand || len(l.Data) == 0 {
			continue
		}
		out[i] = f.applyLocked(l.Data, pre[i])
	}
	return out
}

// decoded is a batch log command decoded, and verified unless this node
// signed it (then the machine reuses what it proposed and verifies only
// if it cannot).
type decoded struct {
	b   *protocol.Batch
	ver *fsm.Verified
	err error
}

func (f *machineFSM) decode(data []byte) *decoded {
	b, err := protocol.DecodeBatch(data)
	if err != nil {
		return &decoded{err: err}
	}
	d := &decoded{b: b}
	if b.Leader != f.self {
		d.ver = fsm.Verify(b)
	}
	return d
}

// Apply implements raft.FSM; raft uses ApplyBatch.
func (f *machineFSM) Apply(l *raft.Log) any {
	return f.ApplyBatch([]*raft.Log{l})[0]
}

func (f *machineFSM) applyLocked(data []byte, pre *decoded) *applyResult {
	switch data[0] {
	case logGenesis:
		if f.gen != nil {
			return &applyResult{err: fmt.Errorf("%w: second genesis", ErrRefused)}
		}
		g, err := decodeGenesis(data[1:])
		if err != nil {
			return &applyResult{err: err}
		}
		f.gen = g
		f.m, f.genErr = f.build(g)
		if f.genErr != nil {
			f.logger.Error("cannot load the channel's genesis", "error", f.genErr)
		}
		return &applyResult{err: f.genErr}
	case logBatch:
		if pre == nil {
			pre = f.decode(data[1:])
		}
		b := pre.b
		if pre.err != nil {
			return &applyResult{err: pre.err}
		}
		if f.m == nil {
			return &applyResult{batch: b, err: fmt.Errorf("%w: batch before genesis", ErrRefused)}
		}
		var a *fsm.Applied
		var err error
		if pre.ver != nil {
			a, err = f.m.ApplyVerified(pre.ver, f.check)
		} else {
			a, err = f.m.Apply(b, f.check)
		}
		if err != nil {
			f.logger.Warn("batch refused", "first_height", b.FirstHeight, "epoch", b.Epoch, "leader", b.Leader, "error", err)
			return &applyResult{batch: b, err: fmt.Errorf("%w: %v", ErrRefused, err)}
		}
		if f.abandoned.Load() {
			// Cut short by shutdown (awaitChain): nothing of it is told to
			// anyone, and the state is not kept.
			return &applyResult{batch: b, err: fmt.Errorf("%w: shutting down mid-apply", ErrClosed)}
		}
		for i := range a.Outcomes {
			if a.Outcomes[i].Kind == protocol.EntryCall {
				f.cache.put(&a.Outcomes[i])
			}
		}
		if f.applied != nil {
			f.applied(b, a)
		}
		return &applyResult{batch: b, applied: a}
	}
	return &applyResult{err: fmt.Errorf("%w: unknown log command %d", ErrRefused, data[0])}
}

// machine runs fn with the machine under the lock; m is nil before the
// genesis.
func (f *machineFSM) machine(fn func(m *fsm.Machine)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	fn(f.m)
}

// outcome returns the cached outcome of a tx.
func (f *machineFSM) outcome(h protocol.Hash) (*protocol.Outcome, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cache.get(h)
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
	if f.gen != nil {
		s.gen = f.gen.bytes()
	}
	if f.m != nil {
		s.snap = f.m.Snapshot()
	}
	return s, nil
}

// Restore implements raft.FSM. The fsm snapshot verifies its checksum and
// channel.
func (f *machineFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	r := bufio.NewReaderSize(rc, 1<<16)
	var hdr [5]byte
	if _, err := io.ReadFull(r, hdr[:]); err != nil {
		return fmt.Errorf("restore snapshot: header: %w", err)
	}
	if hdr[0] != snapshotVersion {
		return fmt.Errorf("restore snapshot: version %d, want %d", hdr[0], snapshotVersion)
	}
	n := uint32(hdr[1])<<24 | uint32(hdr[2])<<16 | uint32(hdr[3])<<8 | uint32(hdr[4])
	if n > protocol.MaxBatchBytes {
		return fmt.Errorf("restore snapshot: genesis of %d bytes", n)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.publish()
	if n == 0 {
		f.gen, f.m = nil, nil
		return nil
	}
	gb := make([]byte, n)
	if _, err := io.ReadFull(r, gb); err != nil {
		return fmt.Errorf("restore snapshot: genesis: %w", err)
	}
	g, err := decodeGenesis(gb)
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	m := f.m
	if m == nil || f.gen == nil || string(f.gen.bytes()) != string(gb) {
		if m, err = f.build(g); err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
	}
	if err := m.Restore(r); err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	f.gen, f.m, f.genErr = g, m, nil
	f.logger.Info("restored snapshot", "height", m.Height())
	return nil
}

type fsmSnapshot struct {
	gen  []byte
	snap *fsm.Snapshot
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

func (s *fsmSnapshot) write(w io.Writer) error {
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
