package cluster

import (
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
