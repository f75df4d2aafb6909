package cluster

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"

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
}

func newMachineFSM(ctx context.Context, id protocol.ChannelID, self protocol.Address, logger hclog.Logger, cacheSize int) *machineFSM {
	return &machineFSM{ctx: ctx, applier: &applier{id: id, self: self, logger: logger, cache: newOutcomeCache(cacheSize)}}
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
	if f.gen != nil {
		s.gen = f.gen.bytes()
	}
	if f.m != nil {
		s.snap = f.m.Snapshot()
	}
	return s, nil
}

// Restore implements raft.FSM. The fsm snapshot verifies its checksum and
// channel. The snapshot is read, and a machine for another genesis built,
// before the machine lock is taken.
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
	f.feedMu.Lock()
	defer f.feedMu.Unlock()
	if n == 0 {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.gen, f.m = nil, nil
		f.publishLocked()
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
	snap, err := io.ReadAll(io.LimitReader(r, fsm.MaxSnapshotBytes+1))
	if err != nil {
		return fmt.Errorf("restore snapshot: %w", err)
	}
	m := f.m
	if m == nil || f.gen == nil || string(f.gen.bytes()) != string(gb) {
		if m, err = f.build(f.ctx, g); err != nil {
			return fmt.Errorf("restore snapshot: %w", err)
		}
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	defer f.publishLocked()
	if err := m.Restore(bytes.NewReader(snap)); err != nil {
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
