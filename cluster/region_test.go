package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/scraft/scraft/delegate"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/transport"
)

// Three simulated regions: a and b 10 ms apart, a and c 60 ms, b and c
// 150 ms (more than through a: the shortest path between two members is
// not always the direct one), 1 ms within each.
var regionRTTs = []struct {
	a, b string
	rtt  time.Duration
}{
	{"a", "a", time.Millisecond}, {"b", "b", time.Millisecond}, {"c", "c", time.Millisecond},
	{"a", "b", 10 * time.Millisecond},
	{"a", "c", 60 * time.Millisecond},
	{"b", "c", 150 * time.Millisecond},
}

// regionOf places the i-th member: round robin over a, b, c, so that the
// five candidates (the first five to join) and the delegators are spread
// over the three regions.
func regionOf(i int) string { return string(rune('a' + i%3)) }

// regionConfig is the README's recipe for members in several regions,
// where the round trip between candidates reaches 150 ms: Raft's
// heartbeat and election timeouts at about 6 times the longest round trip
// (a follower waits 1-2 s without a heartbeat before it stands), the
// leader's lease at more than 3 round trips, and 4 batches in flight, so
// that the next batches fill while one crosses the longest link. The
// rest keeps its defaults: a follower attests after ElectionTimeout, the
// election proposal waits 10 × HeartbeatTimeout, and a peer call may take
// PeerTimeout (2 s, 13 of the longest round trips).
func regionConfig(cfg *Config) {
	cfg.HeartbeatTimeout = time.Second
	cfg.ElectionTimeout = time.Second
	cfg.LeaderLeaseTimeout = 500 * time.Millisecond
	cfg.MaxInFlight = 4
}

// newRegionCluster is newDelegatedCluster with its members in the three
// regions of regionRTTs, each placed before its node joins, so that the
// channel runs across them from its start. tune, when set, runs after
// regionConfig.
func newRegionCluster(t testing.TB, n int, chcfg contract.ChannelConfig, tune func(*Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, chain: newTestChain(t), nonces: map[protocol.Address]uint64{}}
	tc.faults = transport.NewFaults(1)
	for _, r := range regionRTTs {
		if err := tc.faults.SetRegionRTT(r.a, r.b, r.rtt); err != nil {
			t.Fatal(err)
		}
	}
	cfgOf := func(cfg *Config) {
		regionConfig(cfg)
		if tune != nil {
			tune(cfg)
		}
	}
	ctx := context.Background()
	creator, _ := protocol.GenerateKey(nil)
	id, err := tc.chain.client(creator).CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("chat code"), InitialState: protocol.State{}, Config: chcfg})
	if err != nil {
		t.Fatal(err)
	}
	tc.id = id
	tc.addMembers(n)
	t.Cleanup(tc.close)
	tc.startMembers(cfgOf, 20*time.Second, func(i int, nd *testNode) { tc.faults.SetRegion(nd.addr, regionOf(i)) })
	tc.waitCandidateVoters(30 * time.Second)
	return tc
}

// TestRegions runs a channel of 7 members, 5 candidates and 2 delegators,
// across three regions 10, 60 and 150 ms apart, with the timeouts of the
// recipe: a tx submitted through every member commits, and every member
// applies every batch alike.
func TestRegions(t *testing.T) {
	const n = 7
	tc := newRegionCluster(t, n, contract.ChannelConfig{}, nil)
	tc.waitDelegated(30 * time.Second)
	testutil.WaitFor(t, 10*time.Second, func() error {
		delegators := 0
		for _, nd := range tc.nodes {
			if tc.channel(nd).delegating() {
				delegators++
			}
		}
		if delegators != n-delegate.Seats {
			return fmt.Errorf("%d delegators, want %d", delegators, n-delegate.Seats)
		}
		return nil
	})

	// One write through each member, then load through all of them.
	var acked []*protocol.Outcome
	for i, nd := range tc.nodes {
		t0 := time.Now()
		out := tc.submitVia(nd, 1, fmt.Sprintf("r%d-", i))
		t.Logf("member %d in region %s (delegator %v): a write committed in %s", i, regionOf(i), tc.channel(nd).delegating(), time.Since(t0).Round(time.Millisecond))
		acked = append(acked, out)
	}
	stop := make(chan struct{})
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		acked = append(acked, tc.load(stop, tc.users, func(i int) *testNode { return tc.nodes[i%n] })...)
	}()
	start := tc.channel(tc.waitLeader(10 * time.Second)).Status().Height
	testutil.WaitFor(t, 30*time.Second, func() error {
		l := tc.leader()
		if l == nil {
			return errors.New("no leader")
		}
		if h := tc.channel(l).Status().Height; h < start+50 {
			return fmt.Errorf("at height %d, want %d", h, start+50)
		}
		return nil
	})
	close(stop)
	<-loadDone
	tc.checkConverged(acked, 30*time.Second)
}
