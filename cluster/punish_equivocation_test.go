package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// TestPunishEquivocation: the leader of a 4-member channel signs two
// batches for one height and sends one follower the second. That follower
// commits and applies it, as Raft has it do; it sees the other one when
// it comes back from a stop and the leader, which compacted its log,
// sends it a snapshot: the snapshot's batches hold the first. It files an
// equivocation case with both batches; the others vote for it by the two
// signatures alone; the leader is punished, the reporter leads, writes
// resume and the remaining members agree.
func TestPunishEquivocation(t *testing.T) {
	var liar atomic.Pointer[protocol.Address]
	var at atomic.Uint64
	misbehaving.Store(&misbehaviour{equivocate: func(self protocol.Address, b *protocol.Batch) bool {
		l, h := liar.Load(), at.Load()
		return l != nil && *l == self && h >= b.FirstHeight && h <= b.LastHeight()
	}})
	t.Cleanup(func() { misbehaving.Store(nil) })
	tc := newTestClusterSpec(t, 4, 0, punishConfig, func(c *Config) {
		c.SnapshotThreshold = 1 << 20 // only the snapshot the test asks for
		c.SnapshotInterval = time.Hour
		c.TrailingLogs = 4
	})
	bad := tc.waitLeader(10 * time.Second)
	tc.submitAs(bad, tc.nodes, 3, "before")
	h := tc.channel(bad).Status().Height + 1
	addr := bad.key.Address()
	at.Store(h)
	liar.Store(&addr)
	// One tx at a time: each batch a millisecond or more after the last,
	// so the later timestamp of the second batch stays in order.
	out := tc.submitAs(bad, tc.nodes, 1, "fork")
	if out.Height != h {
		t.Fatalf("the forked batch is at height %d, not %d", out.Height, h)
	}
	tc.submitAs(bad, tc.nodes, 2, "after")

	// Who got the other batch: its Raft log holds a batch for h that
	// is not the leader's.
	mine := tc.committedBatch(bad, h)
	var victim *testNode
	testutil.WaitFor(t, 10*time.Second, func() error {
		for _, nd := range tc.others(bad) {
			if b := tc.committedBatch(nd, h); b.TimestampMs != mine.TimestampMs {
				victim = nd
				return nil
			}
		}
		return errors.New("no follower got the second batch yet")
	})
	rest := tc.others(bad)
	honest := tc.others(victim)
	// The victim applied it, with the same results: nothing it executes
	// tells it apart.
	testutil.WaitFor(t, 10*time.Second, func() error {
		if d, ok := tc.channel(victim).Digest(out.Height); !ok || d != out.Digest {
			return fmt.Errorf("victim: digest at %d %s (%v)", out.Height, d, ok)
		}
		return nil
	})
	if st := tc.channel(victim).Status(); st.Evidence != 0 || st.Holding {
		t.Fatalf("victim before the snapshot: %+v", st)
	}

	// The victim takes a snapshot of its own and stops; the leader
	// compacts its log past it and sends it a snapshot when it is back.
	if err := tc.channel(victim).raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	tc.stopNode(victim)
	var live []*testNode
	for _, nd := range tc.nodes {
		if nd != victim {
			live = append(live, nd)
		}
	}
	tc.submitAs(bad, live, 8, "while")
	if err := tc.channel(bad).raft.Snapshot().Error(); err != nil {
		t.Fatal(err)
	}
	tc.restartNode(victim)

	ctx := context.Background()
	cl := tc.chain.client(honest[0].key)
	testutil.WaitFor(t, 30*time.Second, func() error {
		info, err := cl.Channel(ctx, tc.id)
		if err != nil {
			return err
		}
		if _, in := info.Member(addr); in {
			return fmt.Errorf("the equivocating leader is still a member (leader %s)", info.Leader)
		}
		return nil
	})
	cases := tc.punishCases()
	if len(cases) != 1 || cases[0].Status != contract.ProposalExecuted || cases[0].Proposer != victim.key.Address() {
		t.Fatalf("punish cases: %+v", cases)
	}
	var pu protocol.Punish
	if err := protocol.Unmarshal(cases[0].Data, &pu); err != nil || pu.Height != h || pu.Target != addr || len(pu.Conflict) == 0 {
		t.Fatalf("case %+v (%v), want an equivocation at height %d", pu, err, h)
	}
	if err := contract.CheckEquivocation(tc.id, addr, h, pu.Batch, pu.Conflict); err != nil {
		t.Fatal(err)
	}
	evs, _ := tc.channel(victim).fsm.refusedGeneses()
	found := false
	for _, ev := range evs {
		found = found || ev.Reason == fsm.ReasonEquivocation
	}
	if !found {
		t.Fatal("the victim kept no equivocation evidence")
	}
	// The reporter leads, the liar is out of Raft, writes resume, and
	// the remaining members agree.
	testutil.WaitFor(t, 30*time.Second, func() error {
		if l := tc.leader(); l != victim {
			return fmt.Errorf("the reporter does not lead")
		}
		for _, nd := range rest {
			for _, s := range tc.raftServers(nd) {
				if s.ID == raft.ServerID(addr.String()) {
					return fmt.Errorf("node %s still has the liar in its configuration", nd.addr)
				}
			}
		}
		return nil
	})
	last := tc.submitAs(victim, rest, 4, "resumed")
	testutil.WaitFor(t, 20*time.Second, func() error {
		for _, nd := range rest {
			st := tc.channel(nd).Status()
			if st.Height != last.Height || st.Digest != last.Digest || st.Holding || st.Diverged {
				return fmt.Errorf("node %s: %+v, want height %d digest %s", nd.addr, st, last.Height, last.Digest)
			}
		}
		return nil
	})
}

// TestEquivocationFound: equivocation compares what this member applied
// with another member's batches by height, and finds only two different
// bodies of one leader and epoch covering one height.
func TestEquivocationFound(t *testing.T) {
	k, _ := protocol.GenerateKey(nil)
	other, _ := protocol.GenerateKey(nil)
	mk := func(key *protocol.Key, epoch, first uint64, n int, ts uint64) []byte {
		b := &protocol.Batch{Channel: protocol.ChannelID{1}, Epoch: epoch, FirstHeight: first, TimestampMs: ts}
		for i := 0; i < n; i++ {
			b.Entries = append(b.Entries, protocol.Entry{Kind: protocol.EntryTick, Tick: &protocol.Tick{Number: first + uint64(i), TimestampMs: ts}})
			b.Results = append(b.Results, protocol.Result{Status: protocol.StatusOK})
		}
		b.Sign(key)
		return b.Bytes()
	}
	own := [][]byte{mk(k, 1, 1, 2, 5), mk(k, 1, 3, 3, 6), mk(k, 1, 6, 1, 7)}
	tests := []struct {
		name   string
		theirs [][]byte
		height uint64 // 0: none
	}{
		{"the same batches", own, 0},
		{"fewer of the same", own[1:2], 0},
		{"nothing in common", [][]byte{mk(k, 1, 7, 2, 8)}, 0},
		{"another epoch", [][]byte{mk(k, 2, 3, 3, 9)}, 0},
		{"another leader", [][]byte{mk(other, 1, 3, 3, 9)}, 0},
		{"another timestamp", [][]byte{own[0], mk(k, 1, 3, 3, 9)}, 3},
		{"another cut of the heights", [][]byte{own[0], mk(k, 1, 3, 1, 6), mk(k, 1, 4, 2, 6)}, 3},
		{"below and overlapping", [][]byte{mk(k, 1, 2, 2, 5)}, 2},
		{"undecodable", [][]byte{{1, 2}}, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ev := equivocation(own, tc.theirs)
			switch {
			case tc.height == 0 && ev != nil:
				t.Fatalf("found %s", ev)
			case tc.height != 0 && (ev == nil || ev.Height != tc.height):
				t.Fatalf("found %v, want height %d", ev, tc.height)
			case ev != nil:
				if err := contract.CheckEquivocation(protocol.ChannelID{1}, k.Address(), ev.Height, ev.Batch, ev.Conflict); err != nil {
					t.Fatalf("the chain would refuse it: %v", err)
				}
				if !fileable(ev, other.Address()) || fileable(ev, k.Address()) {
					t.Fatal("fileable by the wrong member")
				}
			}
		})
	}
}

// appliedBatch returns the batch nd applied that covers height h, nil
// when it has none (yet).
func (tc *testCluster) appliedBatch(nd *testNode, h uint64) []byte {
	var out []byte
	tc.channel(nd).fsm.machine(func(m *fsm.Machine) {
		if m == nil {
			return
		}
		for _, raw := range m.AppliedBatches() {
			if b, err := protocol.DecodeBatch(raw); err == nil && b.FirstHeight <= h && h <= b.LastHeight() {
				out = raw
			}
		}
	})
	return out
}

// loggedBatch returns the batch in nd's Raft log, committed or not, that
// covers height h, nil when there is none.
func (tc *testCluster) loggedBatch(nd *testNode, h uint64) []byte {
	c := tc.channel(nd)
	last, err := c.store.LastIndex()
	if err != nil {
		return nil
	}
	for idx := last; idx > 0; idx-- {
		var l raft.Log
		if err := c.store.GetLog(idx, &l); err != nil {
			continue
		}
		if l.Type != raft.LogCommand || len(l.Data) == 0 || l.Data[0] != logBatch {
			continue
		}
		if b, err := protocol.DecodeBatch(l.Data[1:]); err == nil && b.FirstHeight <= h && h <= b.LastHeight() {
			return l.Data[1:]
		}
	}
	return nil
}

// TestLeaderProposesVoidedBatchAgain: the leader signs a batch it cannot
// commit (it is cut off), loses Raft leadership, and the member elected
// meanwhile overwrites the batch in its log. When it leads the same epoch
// again, it proposes that batch again as it signed it, before anything
// new: the height gets the one body the leader ever signed for it, and no
// pair of its batches makes an equivocation.
func TestLeaderProposesVoidedBatchAgain(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *Config) {
		c.AttestAfter = time.Hour
		c.ElectionAfter = time.Hour
	})
	l := tc.waitLeader(10 * time.Second)
	tc.submitAs(l, tc.nodes, 2, "before")
	h := tc.channel(l).Status().Height + 1
	_, epoch, _ := tc.channel(l).view.current()

	tc.faults.Isolate(l.addr)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		_, err := tc.channel(l).Submit(ctx, tc.tx(l.key, "cut-off"))
		done <- err
	}()
	var signed []byte
	testutil.WaitFor(t, 10*time.Second, func() error {
		if signed = tc.loggedBatch(l, h); signed == nil {
			return fmt.Errorf("no batch for height %d in the leader's log yet", h)
		}
		return nil
	})
	testutil.WaitFor(t, 20*time.Second, func() error {
		if tc.channel(l).raft.State() == raft.Leader {
			return errors.New("the cut-off node still leads Raft")
		}
		for _, nd := range tc.others(l) {
			if tc.channel(nd).raft.State() == raft.Leader {
				return nil
			}
		}
		return errors.New("no Raft leader among the others")
	})
	tc.faults.Heal()
	<-done // its submitter was told leadership was lost, or got the outcome
	testutil.WaitFor(t, 30*time.Second, func() error {
		for _, nd := range tc.nodes {
			got := tc.appliedBatch(nd, h)
			if got == nil {
				return fmt.Errorf("node %s has not applied height %d", nd.addr, h)
			}
			if !bytes.Equal(got, signed) {
				t.Fatalf("node %s applied another batch for height %d than the one the leader signed first", nd.addr, h)
			}
		}
		return nil
	})
	if _, e, _ := tc.channel(l).view.current(); e != epoch {
		t.Fatalf("epoch %d, was %d: the chain moved the lead", e, epoch)
	}
	last := tc.submitAs(tc.waitLeader(10*time.Second), tc.nodes, 2, "after")
	testutil.WaitFor(t, 20*time.Second, func() error {
		for _, nd := range tc.nodes {
			if st := tc.channel(nd).Status(); st.Height != last.Height || st.Digest != last.Digest {
				return fmt.Errorf("node %s: %d %s, want %d %s", nd.addr, st.Height, st.Digest, last.Height, last.Digest)
			}
		}
		return nil
	})
}

// TestFetchCheckedAllRefused: when every member's snapshot is refused, the
// fetch ends at once with ErrBadSnapshot (a resync then stops with its
// error) instead of asking nobody until its time is up; each refusal is
// evidence against its sender.
func TestFetchCheckedAllRefused(t *testing.T) {
	self, _ := protocol.GenerateKey(nil)
	f := newMachineFSM(context.Background(), protocol.ChannelID{1}, self.Address(), testutil.Logger(t, "fsm"), 8)
	var members []protocol.Address
	for i := 0; i < 2; i++ {
		k, _ := protocol.GenerateKey(nil)
		members = append(members, k.Address())
	}
	asked := 0
	f.snaps.fetch = func(_ context.Context, _ uint64, skip func(protocol.Address) bool) ([]byte, protocol.Address, error) {
		for _, a := range members {
			if !skip(a) {
				asked++
				return []byte{snapshotVersion + 1, 0, 0, 0, 0}, a, nil // not a snapshot this build reads
			}
		}
		return nil, protocol.Address{}, errNoMemberLeft
	}
	_, err := f.fetchChecked(1, 0, protocol.Address{})
	if !errors.Is(err, ErrBadSnapshot) {
		t.Fatalf("fetch: %v, want ErrBadSnapshot", err)
	}
	if asked != len(members) {
		t.Fatalf("asked %d members, want each once", asked)
	}
	evs, n := f.refusedGeneses()
	if n != uint64(len(members)) || evs[0].Reason != fsm.ReasonBadSnapshot || evs[0].Leader != members[0] {
		t.Fatalf("evidence %d: %+v", n, evs)
	}
}

// TestVoidedBatchesKept: the batches a leader signed and Raft did not
// apply are kept on disk until proposed again, for their epoch only.
func TestVoidedBatchesKept(t *testing.T) {
	dir := t.TempDir()
	k, _ := protocol.GenerateKey(nil)
	mk := func(first uint64) *protocol.Batch {
		b := &protocol.Batch{Channel: protocol.ChannelID{1}, Epoch: 3, FirstHeight: first,
			Entries: []protocol.Entry{{Kind: protocol.EntryTick, Tick: &protocol.Tick{Number: first, TimestampMs: first}}},
			Results: []protocol.Result{{Status: protocol.StatusOK}}}
		b.Sign(k)
		return b
	}
	var v voidedBatches
	if err := v.init(dir); err != nil {
		t.Fatal(err)
	}
	if err := v.keep(3, []*protocol.Batch{mk(5), mk(6)}); err != nil {
		t.Fatal(err)
	}
	var w voidedBatches
	if err := w.init(dir); err != nil {
		t.Fatal(err)
	}
	got := w.pending(3)
	if len(got) != 2 || !bytes.Equal(got[0], mk(5).Bytes()) || !bytes.Equal(got[1], mk(6).Bytes()) {
		t.Fatalf("reloaded %d batches", len(got))
	}
	if len(w.pending(4)) != 0 {
		t.Fatal("batches of epoch 3 offered to a run of epoch 4")
	}
	if err := w.done(3, 1); err != nil {
		t.Fatal(err)
	}
	var x voidedBatches
	if err := x.init(dir); err != nil {
		t.Fatal(err)
	}
	if got := x.pending(3); len(got) != 1 || !bytes.Equal(got[0], mk(6).Bytes()) {
		t.Fatalf("after one was proposed again: %d kept", len(got))
	}
	if err := x.done(4, 0); err != nil || len(x.pending(3)) != 0 {
		t.Fatalf("a run of another epoch left them: %v", err)
	}
}
