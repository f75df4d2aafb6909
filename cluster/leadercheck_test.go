package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
)

// signedBatch returns a batch of entries on top of nd's applied state,
// executed on a copy of its machine and signed by key for epoch: what a
// leader of that epoch, honest or not, would put in the log.
func (tc *testCluster) signedBatch(nd *testNode, entries []protocol.Entry, key *protocol.Key, epoch uint64) *protocol.Batch {
	t := tc.t
	t.Helper()
	c := tc.channel(nd)
	var snap []byte
	var ts uint64
	c.fsm.machine(func(m *fsm.Machine) {
		snap = m.Snapshot().Bytes()
		ts = max(uint64(time.Now().UnixMilli()), m.TimestampMs())
	})
	c.fsm.mu.Lock()
	cfg := c.fsm.gen.fsmConfig(tc.id)
	c.fsm.mu.Unlock()
	exec, err := nd.cfg.Executors(cfg.Contract, nil)
	if err != nil {
		t.Fatal(err)
	}
	m, err := fsm.New(cfg, exec)
	if err != nil {
		t.Fatal(err)
	}
	if err := m.Restore(bytes.NewReader(snap)); err != nil {
		t.Fatal(err)
	}
	b, _, err := m.Propose(entries, epoch, key, ts)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// claimAs makes nd the chain's leader in place of the leader of epoch,
// with the attestations of the members named by attesters.
func (tc *testCluster) claimAs(nd *testNode, epoch uint64, attesters ...*testNode) uint64 {
	tc.t.Helper()
	var atts []protocol.Attestation
	for _, at := range attesters {
		a := protocol.Attestation{Channel: tc.id, Epoch: epoch, Claimant: nd.key.Address()}
		a.Sign(at.key)
		atts = append(atts, a)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	e, err := tc.chain.client(nd.key).ClaimLeader(ctx, tc.id, epoch, atts)
	if err != nil {
		tc.t.Fatalf("claim of epoch %d's successor: %v", epoch, err)
	}
	return e
}

// TestLeaderCheckSkippedEpoch: two leader changes happen on the chain
// between two reads of a follower, so its view skips an epoch. A batch
// of that epoch is still judged by who led it: every member refuses one
// signed by another member and records the fault, whether its view saw
// the epoch, skipped it, or has not reached it; and every member accepts
// the epoch's real leader's batch at the same height.
func TestLeaderCheckSkippedEpoch(t *testing.T) {
	// Views move only when a test or a Raft event rereads the chain: no
	// chain feed, no resync.
	tc := newTestCluster(t, 3, func(c *Config) { c.ChainPollInterval = time.Hour; c.Chain = noFeed{c.Chain} })
	tc.submitN(2, "a")
	leader := tc.waitLeader(10 * time.Second)
	lc := tc.channel(leader)
	epoch := lc.leader.Load().epoch
	var f []*testNode
	for _, nd := range tc.nodes {
		if nd != leader {
			f = append(f, nd)
		}
	}
	// f[0] takes over (epoch+1), then f[1] (epoch+2). f[0] reads the
	// chain in between, f[1] only after both: its view skips epoch+1. The
	// Raft leader reads neither and goes on leading in Raft.
	if e := tc.claimAs(f[0], epoch, f[0], f[1]); e != epoch+1 {
		t.Fatalf("first claim gave epoch %d", e)
	}
	if err := tc.channel(f[0]).refreshChain(); err != nil {
		t.Fatal(err)
	}
	if e := tc.claimAs(f[1], epoch+1, leader, f[1]); e != epoch+2 {
		t.Fatalf("second claim gave epoch %d", e)
	}
	for _, nd := range f {
		if err := tc.channel(nd).refreshChain(); err != nil {
			t.Fatal(err)
		}
	}
	views := []struct {
		nd   *testNode
		saw  bool   // the view holds epoch+1
		head uint64 // the view's epoch
	}{{leader, false, epoch}, {f[0], true, epoch + 2}, {f[1], false, epoch + 2}}
	for i, v := range views {
		c := tc.channel(v.nd)
		_, saw := c.view.leaderOf(epoch + 1)
		if _, cur, _ := c.view.current(); saw != v.saw || cur != v.head {
			t.Fatalf("view %d: saw epoch %d %v, at epoch %d; want %v at %d", i, epoch+1, saw, cur, v.saw, v.head)
		}
	}

	// apply puts b in the log through the Raft leader and waits until
	// every member's machine shows done (Raft's applied index runs ahead
	// of the machine); it returns the leader's verdict.
	apply := func(b *protocol.Batch, done func(m *fsm.Machine) bool) error {
		t.Helper()
		fut := lc.raft.Apply(encodeLog(logBatch, b.Bytes()), 30*time.Second)
		if err := fut.Error(); err != nil {
			t.Fatalf("raft apply: %v", err)
		}
		testutil.WaitFor(t, 20*time.Second, func() error {
			for i, nd := range tc.nodes {
				ok := false
				tc.channel(nd).Machine(func(m *fsm.Machine) { ok = m != nil && done(m) })
				if !ok {
					return fmt.Errorf("node %d has not applied the batch at %d", i, b.FirstHeight)
				}
			}
			return nil
		})
		return fut.Response().(*applyResult).err
	}
	// refused: the machine judged a batch (one piece of evidence);
	// accepted: it applied up to the batch's last height.
	refused := func(m *fsm.Machine) bool { _, n := m.Evidence(); return n >= 1 }
	accepted := func(b *protocol.Batch) func(m *fsm.Machine) bool {
		return func(m *fsm.Machine) bool { return m.Height() >= b.LastHeight() }
	}
	var before uint64
	lc.Machine(func(m *fsm.Machine) { before = m.Height() })
	tx := tc.tx(tc.users[0], "x;")
	call := []protocol.Entry{{Kind: protocol.EntryCall, Call: tx}}

	// f[1] signs for epoch+1, which f[0] led.
	forged := tc.signedBatch(leader, call, f[1].key, epoch+1)
	if err := apply(forged, refused); !errors.Is(err, ErrRefused) {
		t.Fatalf("the leader's verdict on a batch of epoch %d by %s: %v, want ErrRefused", epoch+1, f[1].key.Address(), err)
	}
	for i, nd := range tc.nodes {
		tc.channel(nd).Machine(func(m *fsm.Machine) {
			evs, _ := m.Evidence()
			switch {
			case m.Height() != before:
				t.Fatalf("node %d applied the batch: height %d, was %d", i, m.Height(), before)
			case len(evs) != 1 || evs[0].Reason != fsm.ReasonBadLeader || evs[0].Leader != f[1].key.Address() || evs[0].Epoch != epoch+1:
				t.Fatalf("node %d evidence %v, want one %s against %s in epoch %d", i, evs, fsm.ReasonBadLeader, f[1].key.Address(), epoch+1)
			}
		})
	}

	// f[0], the leader of epoch+1, signs the same.
	honest := tc.signedBatch(leader, call, f[0].key, epoch+1)
	if err := apply(honest, accepted(honest)); err != nil {
		t.Fatalf("the leader's verdict on the batch of epoch %d's leader: %v", epoch+1, err)
	}
	var d protocol.Hash
	for i, nd := range tc.nodes {
		tc.channel(nd).Machine(func(m *fsm.Machine) {
			_, n := m.Evidence()
			dh, ok := m.Digest(honest.FirstHeight)
			switch {
			case m.Height() != honest.LastHeight() || !ok:
				t.Fatalf("node %d at height %d, want %d", i, m.Height(), honest.LastHeight())
			case n != 1:
				t.Fatalf("node %d recorded %d faults, want the one", i, n)
			case i > 0 && dh != d:
				t.Fatalf("node %d has another digest at %d", i, honest.FirstHeight)
			}
			d = dh
		})
	}
	// Every view now holds what the chain recorded for the epoch.
	for i, nd := range tc.nodes {
		if a, ok := tc.channel(nd).view.leaderOf(epoch + 1); !ok || a != f[0].key.Address() {
			t.Fatalf("node %d: view has %s (%v) as epoch %d's leader", i, a, ok, epoch+1)
		}
	}
}

// TestShutdownWhileCheckingLeader: a follower shut down while it waits
// for the chain to reach a batch's epoch keeps nothing of that apply: no
// outcome reaches its subscribers, its machine takes no snapshot, and
// after a restart it judges the batch as the others do.
func TestShutdownWhileCheckingLeader(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	tc.submitN(3, "a")
	leader := tc.waitLeader(10 * time.Second)
	lc := tc.channel(leader)
	epoch := lc.leader.Load().epoch
	var f []*testNode
	for _, nd := range tc.nodes {
		if nd != leader {
			f = append(f, nd)
		}
	}
	victim, next := f[0], f[1]
	fc := tc.channel(victim)
	feed, cancelFeed := fc.Subscribe(1024)
	defer cancelFeed()

	// A batch of the next epoch, signed by the member that will lead it.
	b := tc.signedBatch(leader, []protocol.Entry{{Kind: protocol.EntryCall, Call: tc.tx(tc.users[0], "x;")}}, next.key, epoch+1)
	applied := make(chan raft.ApplyFuture, 1)
	go func() {
		fut := lc.raft.Apply(encodeLog(logBatch, b.Bytes()), 60*time.Second)
		_ = fut.Error()
		applied <- fut
	}()
	// Every member waits for the chain inside the apply.
	testutil.WaitFor(t, 10*time.Second, func() error {
		for i, nd := range tc.nodes {
			c := tc.channel(nd)
			var h uint64
			if c.fsm.tryMachine(func(m *fsm.Machine) { h = m.Height() }) && h >= b.FirstHeight {
				t.Fatalf("node %d decided while the chain is still in epoch %d", i, epoch)
			}
			if c.chainWaits.Load() == 0 {
				return fmt.Errorf("node %d is not waiting on the chain", i)
			}
		}
		return nil
	})
	tc.stopNode(victim)
	tc.checkAbandoned(fc, feed, b.FirstHeight)

	// The chain reaches the epoch, led by the signer; the restarted member
	// judges the batch as the others.
	if e := tc.claimAs(next, epoch, victim, next); e != epoch+1 {
		t.Fatalf("claim gave epoch %d", e)
	}
	tc.restartNode(victim)
	fut := <-applied
	if err := fut.Error(); err != nil {
		t.Fatalf("raft apply: %v", err)
	}
	if res := fut.Response().(*applyResult); res.err != nil {
		t.Fatalf("the leader's verdict: %v", res.err)
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		var d protocol.Hash
		for i, nd := range tc.nodes {
			var err error
			tc.channel(nd).Machine(func(m *fsm.Machine) {
				if m == nil || m.Height() < b.FirstHeight {
					err = fmt.Errorf("node %d not at height %d yet", i, b.FirstHeight)
					return
				}
				if _, n := m.Evidence(); n != 0 {
					t.Fatalf("node %d recorded %d faults", i, n)
				}
				dh, _ := m.Digest(b.FirstHeight)
				if i > 0 && dh != d {
					t.Fatalf("node %d has another digest at %d", i, b.FirstHeight)
				}
				d = dh
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
}

// noFeed is a chain whose event stream never reports anything.
type noFeed struct{ Chain }

func (noFeed) Watch(ctx context.Context, _ settlement.EventID) (settlement.EventStream, error) {
	return silentStream{ctx}, nil
}

type silentStream struct{ ctx context.Context }

func (s silentStream) Recv() (settlement.Event, error) {
	<-s.ctx.Done()
	return settlement.Event{}, s.ctx.Err()
}
