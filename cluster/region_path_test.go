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

// TestRegionsBestPath: in a channel of 7 members across three regions, a
// delegator routes its relay stream and its txs through the candidate with
// the least total latency to the leader; when the link to that candidate
// slows down, the route moves to another candidate, the relay stream and
// the txs follow, and the delegation on chain stays as it was: routing
// costs no chain tx.
func TestRegionsBestPath(t *testing.T) {
	if testing.Short() {
		t.Skip("three regions and a route change: about 30 s")
	}
	const n = 7
	tc := newRegionCluster(t, n, contract.ChannelConfig{}, nil)
	tc.waitDelegated(30 * time.Second)
	var d *testNode
	testutil.WaitFor(t, 20*time.Second, func() error {
		for _, nd := range tc.nodes {
			if tc.channel(nd).delegating() {
				d = nd
				return nil
			}
		}
		return errors.New("no delegator")
	})
	c := tc.channel(d)
	routed := func(not protocol.Address) protocol.Address {
		t.Helper()
		var via protocol.Address
		testutil.WaitFor(t, 30*time.Second, func() error {
			l := c.layout()
			r := c.route()
			switch {
			case !r.OK() || r.Direct():
				return fmt.Errorf("route %+v", r)
			case r.Via == not:
				return fmt.Errorf("still through %s", not)
			case c.relaySource() != l.nodeAddress(r.Via):
				return fmt.Errorf("relayed from %q, route through %s at %q", c.relaySource(), r.Via, l.nodeAddress(r.Via))
			}
			via = r.Via
			return nil
		})
		return via
	}
	delegatedTo := func() protocol.Address {
		info, err := tc.chain.client(d.key).Channel(context.Background(), tc.id)
		if err != nil {
			t.Fatal(err)
		}
		m, _ := info.Member(d.key.Address())
		return m.DelegatedTo
	}

	first := routed(protocol.Address{})
	t.Logf("delegator %s routes through %s (%s)", d.key.Address(), first, c.route().Latency)
	tc.submitVia(d, 1, "before-")
	onChain := delegatedTo()

	// The link to that candidate slows down by far more than any other
	// route is long: the route moves.
	slow := tc.nodeOf(first).addr
	if err := tc.faults.SetLatency(d.addr, slow, 500*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	second := routed(first)
	t.Logf("after the link slowed down: through %s (%s)", second, c.route().Latency)
	out := tc.submitVia(d, 3, "after-")
	if got := delegatedTo(); got != onChain {
		t.Fatalf("delegation on chain moved from %s to %s with the route", onChain, got)
	}
	tc.checkConverged([]*protocol.Outcome{out}, 30*time.Second)
}
