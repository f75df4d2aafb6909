package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// TestChainNamesAnotherLeader: when the chain gives the leadership to
// another member (here by the heartbeat-expiry path), the Raft leader stops
// signing at once and hands Raft leadership over to it.
func TestChainNamesAnotherLeader(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *Config) { c.KeepAliveInterval = time.Hour })
	old := tc.waitLeader(10 * time.Second)
	next := tc.others(old)[0]
	_, epoch, _ := tc.channel(old).view.current()
	tc.chain.clock.Advance(contract.DefaultHeartbeatTTL + time.Second)
	ctx := context.Background()
	testutil.WaitFor(t, 10*time.Second, func() error {
		_, err := tc.chain.client(next.key).ClaimLeader(ctx, tc.id, epoch, nil)
		return err
	})
	testutil.WaitFor(t, 10*time.Second, func() error {
		if l := tc.leader(); l != next {
			return fmt.Errorf("leader is not the chain's choice yet")
		}
		return nil
	})
	out, err := tc.channel(old).Submit(ctx, tc.tx(old.key, "after the transfer"))
	if err != nil {
		t.Fatal(err)
	}
	tc.checkConverged([]*protocol.Outcome{out}, 10*time.Second)
}

// TestTicks: the leader of a channel with ticks appends them at the
// interval; every member applies them.
func TestTicks(t *testing.T) {
	tc := newTestClusterSpec(t, 3, 0, contract.ChannelConfig{TickInterval: 20 * time.Millisecond}, nil)
	testutil.WaitFor(t, 10*time.Second, func() error {
		for i, nd := range tc.nodes {
			var n uint64
			tc.channel(nd).Machine(func(m *fsm.Machine) { n, _ = m.Tick() })
			if n < 10 {
				return fmt.Errorf("node %d at tick %d", i, n)
			}
		}
		return nil
	})
}
