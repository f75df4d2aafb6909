package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

func outcomesAt(heights ...uint64) []protocol.Outcome {
	out := make([]protocol.Outcome, len(heights))
	for i, h := range heights {
		out[i] = protocol.Outcome{Height: h, Kind: protocol.EntryCall, Hash: protocol.Hash{byte(h), byte(h >> 8), 1}}
	}
	return out
}

func span(lo, hi uint64) []uint64 {
	var hs []uint64
	for h := lo; h <= hi; h++ {
		hs = append(hs, h)
	}
	return hs
}

func heightsOf(outs []protocol.Outcome) []uint64 {
	var hs []uint64
	for _, o := range outs {
		hs = append(hs, o.Height)
	}
	return hs
}

func TestRecentOutcomesRing(t *testing.T) {
	tests := []struct {
		name    string
		size    int
		batches [][]uint64
		from    uint64
		want    []uint64 // nil with ok: nothing after from
		ok      bool
		first   uint64
		hashed  []uint64 // heights findable by hash
		evicted []uint64 // heights no longer findable by hash
	}{
		{name: "empty", size: 4, from: 0, ok: false},
		{name: "all held", size: 8, batches: [][]uint64{{1, 2, 3}, {4, 5}}, from: 2, want: []uint64{3, 4, 5}, ok: true, first: 1, hashed: []uint64{1, 5}},
		{name: "from the first height's predecessor", size: 8, batches: [][]uint64{{1, 2, 3}}, from: 0, want: []uint64{1, 2, 3}, ok: true, first: 1},
		{name: "from the last", size: 8, batches: [][]uint64{{1, 2, 3}}, from: 3, ok: true, first: 1},
		{name: "wrapped", size: 4, batches: [][]uint64{{1, 2, 3}, {4, 5, 6}, {7}}, from: 4, want: []uint64{5, 6, 7}, ok: true, first: 4, hashed: []uint64{4, 7}, evicted: []uint64{1, 3}},
		{name: "evicted from", size: 4, batches: [][]uint64{{1, 2, 3}, {4, 5, 6}, {7}}, from: 2, ok: false, first: 4},
		{name: "one batch larger than the ring", size: 3, batches: [][]uint64{span(1, 10)}, from: 7, want: []uint64{8, 9, 10}, ok: true, first: 8, evicted: []uint64{7}},
		{name: "gap restarts", size: 8, batches: [][]uint64{{1, 2, 3}, {10, 11}}, from: 9, want: []uint64{10, 11}, ok: true, first: 10, hashed: []uint64{10}, evicted: []uint64{2}},
		{name: "gap hides the old heights", size: 8, batches: [][]uint64{{1, 2, 3}, {10, 11}}, from: 2, ok: false, first: 10},
		{name: "disabled", size: 0, batches: [][]uint64{{1, 2}}, from: 1, ok: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r recentOutcomes
			for _, b := range tt.batches {
				r.add(tt.size, outcomesAt(b...))
			}
			got, ok := r.after(tt.from)
			if ok != tt.ok || fmt.Sprint(heightsOf(got)) != fmt.Sprint(tt.want) {
				t.Fatalf("after(%d) = %v, %v; want %v, %v", tt.from, heightsOf(got), ok, tt.want, tt.ok)
			}
			if first, _ := r.first(); first != tt.first {
				t.Fatalf("first = %d, want %d", first, tt.first)
			}
			for _, h := range tt.hashed {
				hh, ok := r.byHash[outcomesAt(h)[0].Hash]
				if !ok || hh != h {
					t.Fatalf("hash of height %d: %d, %v", h, hh, ok)
				}
			}
			for _, h := range tt.evicted {
				if _, ok := r.byHash[outcomesAt(h)[0].Hash]; ok {
					t.Fatalf("hash of evicted height %d still indexed", h)
				}
			}
			if len(r.byHash) > max(tt.size, 0) {
				t.Fatalf("%d hashes indexed in a ring of %d", len(r.byHash), tt.size)
			}
		})
	}
}

// submitN submits n txs of user 0 through nd and returns their outcomes.
func submitN(t *testing.T, tc *testCluster, nd *testNode, n int, prefix string) []*protocol.Outcome {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var outs []*protocol.Outcome
	for i := range n {
		out, err := tc.channel(nd).Submit(ctx, tc.tx(tc.users[0], fmt.Sprintf("%s%d;", prefix, i)))
		if err != nil {
			t.Fatalf("submit %s%d: %v", prefix, i, err)
		}
		outs = append(outs, out)
	}
	return outs
}

func waitApplied(t *testing.T, tc *testCluster, h uint64) {
	t.Helper()
	testutil.WaitFor(t, 10*time.Second, func() error {
		for _, nd := range tc.nodes {
			if got := tc.channel(nd).Status().Height; got < h {
				return fmt.Errorf("node %s applied %d, want %d", nd.addr, got, h)
			}
		}
		return nil
	})
}

// checkConsecutive checks outs are the heights from+1, from+2, ….
func checkConsecutive(t *testing.T, outs []protocol.Outcome, from uint64) {
	t.Helper()
	for i, o := range outs {
		if o.Height != from+1+uint64(i) {
			t.Fatalf("outcome %d has height %d, want %d (heights %v)", i, o.Height, from+1+uint64(i), heightsOf(outs))
		}
	}
}

func TestSubscribeFrom(t *testing.T) {
	const ring = 64
	tc := newTestCluster(t, 3, func(c *Config) { c.RecentOutcomes = ring })
	tc.waitLeader(10 * time.Second)
	first := submitN(t, tc, tc.nodes[0], 20, "a")
	waitApplied(t, tc, first[19].Height)

	from := first[9].Height
	for _, nd := range tc.nodes {
		c := tc.channel(nd)
		f, err := c.SubscribeFrom(from, 1024)
		if err != nil {
			t.Fatalf("node %s: %v", nd.addr, err)
		}
		if f.Snapshot != nil {
			t.Fatalf("node %s: snapshot at %d for a retained height", nd.addr, f.Snapshot.Height)
		}
		checkConsecutive(t, f.Backlog, from)
		if len(f.Backlog) == 0 || f.Backlog[len(f.Backlog)-1].Height != f.Height {
			t.Fatalf("node %s: backlog %v does not end at the feed height %d", nd.addr, heightsOf(f.Backlog), f.Height)
		}
		// The txs after from are in the backlog with their first outcome.
		byHeight := map[uint64]protocol.Outcome{}
		for _, o := range f.Backlog {
			byHeight[o.Height] = o
		}
		for _, o := range first[10:] {
			if got := byHeight[o.Height]; got.Hash != o.Hash || got.Digest != o.Digest {
				t.Fatalf("node %s: backlog at %d is %s, acknowledged %s", nd.addr, o.Height, got.Hash, o.Hash)
			}
		}

		// Then live outcomes, starting right after the feed's height.
		more := submitN(t, tc, tc.nodes[1], 5, "b"+nd.addr)
		next := f.Height
		for next < more[4].Height {
			select {
			case a, ok := <-f.C:
				if !ok {
					t.Fatalf("node %s: subscription dropped", nd.addr)
				}
				checkConsecutive(t, a.Outcomes, next)
				next += uint64(len(a.Outcomes))
			case <-time.After(10 * time.Second):
				t.Fatalf("node %s: no live outcome after height %d", nd.addr, next)
			}
		}
		f.Cancel()
		f.Cancel()
	}

	// Heights the ring no longer holds: a snapshot instead.
	submitN(t, tc, tc.nodes[0], ring+8, "c")
	c := tc.channel(tc.nodes[2])
	f, err := c.SubscribeFrom(from, 16)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Cancel()
	if f.Snapshot == nil || len(f.Backlog) != 0 {
		t.Fatalf("evicted height %d: snapshot %v, backlog %v", from, f.Snapshot, heightsOf(f.Backlog))
	}
	if f.Snapshot.Height != f.Height || len(f.Snapshot.Members) != 3 {
		t.Fatalf("snapshot at %d with %d members; feed height %d", f.Snapshot.Height, len(f.Snapshot.Members), f.Height)
	}
	if d, ok := c.Digest(f.Height); !ok || d != f.Snapshot.Digest {
		t.Fatalf("snapshot digest %s, journal %s", f.Snapshot.Digest, d)
	}

	// From 0: always a snapshot. Above the applied height: not ready.
	f0, err := c.SubscribeFrom(0, 16)
	if err != nil {
		t.Fatal(err)
	}
	f0.Cancel()
	if f0.Snapshot == nil {
		t.Fatal("from 0: no snapshot")
	}
	if _, err := c.SubscribeFrom(f0.Height+1000, 16); !errors.Is(err, ErrNotReady) {
		t.Fatalf("from above the applied height: %v, want ErrNotReady", err)
	}
}

func TestResubmitFromRecentOutcomes(t *testing.T) {
	// An outcome cache of one: the ring alone remembers older txs.
	tc := newTestCluster(t, 3, func(c *Config) { c.OutcomeCache = 1; c.RecentOutcomes = 1024 })
	leader := tc.waitLeader(10 * time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	a := tc.tx(tc.users[0], "a;")
	first, err := tc.channel(tc.nodes[1]).Submit(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	later := submitN(t, tc, tc.nodes[2], 3, "later")
	waitApplied(t, tc, later[2].Height)
	for _, nd := range tc.nodes {
		c := tc.channel(nd)
		if _, ok := c.fsm.outcome(a.Hash()); ok {
			t.Fatalf("node %s: the outcome cache still has the first tx", nd.addr)
		}
		again, err := c.Submit(ctx, a)
		if err != nil {
			t.Fatalf("node %s: resubmit: %v", nd.addr, err)
		}
		if again.Height != first.Height || again.Digest != first.Digest || again.Hash != first.Hash {
			t.Fatalf("node %s: resubmitted tx at height %d, first at %d", nd.addr, again.Height, first.Height)
		}
	}

	// Another tx with a used nonce is a stale nonce, on the leader and
	// through a follower.
	stale := protocol.SignTx(tc.users[0], protocol.Tx{Channel: tc.id, Nonce: a.Tx.Nonce, Function: "chat::send", Args: []byte("other;")})
	for _, nd := range tc.nodes {
		_, err := tc.channel(nd).Submit(ctx, stale)
		if !errors.Is(err, ErrStaleNonce) || !errors.Is(err, ErrBadTx) {
			t.Fatalf("node %s (leader %v): used nonce: %v, want ErrStaleNonce", nd.addr, nd == leader, err)
		}
	}
}

func TestMemberStatuses(t *testing.T) {
	tc := newTestClusterUsers(t, 3, 1, nil)
	tc.waitVoters(3, 20*time.Second)
	outs := submitN(t, tc, tc.nodes[0], 5, "s")
	waitApplied(t, tc, outs[4].Height)
	user := tc.users[len(tc.users)-1].Address()

	for _, nd := range tc.nodes {
		c := tc.channel(nd)
		testutil.WaitFor(t, 10*time.Second, func() error {
			ms, settled := c.MemberStatuses(context.Background())
			if len(ms) != 4 {
				return fmt.Errorf("%d members, want 4", len(ms))
			}
			if settled > c.Status().Height {
				return fmt.Errorf("settled %d above the applied height", settled)
			}
			leaders := 0
			for _, m := range ms {
				if m.Leader {
					leaders++
				}
				// The user never keeps alive and the test chain's clock
				// moved past its heartbeat TTL.
				if m.HeartbeatAge < 0 || m.Valid != (m.Address != user) || (m.Address == user && m.HeartbeatAge <= contract.DefaultHeartbeatTTL) {
					return fmt.Errorf("member %s: heartbeat age %s, valid %v", m.Address, m.HeartbeatAge, m.Valid)
				}
				switch {
				case m.Address == user && m.Lag != -1:
					return fmt.Errorf("member %s runs no node, lag %d", m.Address, m.Lag)
				case m.Address != user && m.Lag != 0:
					return fmt.Errorf("member %s: lag %d after convergence", m.Address, m.Lag)
				}
			}
			if leaders != 1 {
				return fmt.Errorf("%d leaders", leaders)
			}
			return nil
		})
	}
}
