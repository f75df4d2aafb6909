package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

// addNode makes a new member: it joins on chain and its node joins the
// channel through peers under load.
func (tc *testCluster) addNode(tune func(*Config)) *testNode {
	k, _ := protocol.GenerateKey(nil)
	nd := &testNode{key: k, dir: tc.t.TempDir()}
	tc.startNode(nd, tune)
	tc.nodes = append(tc.nodes, nd)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := nd.node.Join(ctx, tc.id, []string{tc.nodes[1].addr, tc.nodes[0].addr}, false); err != nil {
		tc.t.Fatalf("join: %v", err)
	}
	return nd
}

func TestJoinUnderLoad(t *testing.T) {
	tc := newTestClusterUsers(t, 3, 3, nil)
	stop := make(chan struct{})
	done := make(chan []*fsm.Outcome)
	first := append([]*testNode(nil), tc.nodes...) // addNode appends to tc.nodes
	go func() { done <- tc.load(stop, tc.users[3:], func(i int) *testNode { return first[i%3] }) }()
	testutil.Eventually(t, 10*time.Second, "writes", func() bool {
		return tc.channel(tc.waitLeader(10*time.Second)).Status().Height >= 10
	})
	n4 := tc.addNode(nil)
	n5 := tc.addNode(nil)
	tc.waitVoters(5, 30*time.Second)

	// The new members are in the state and can send txs themselves.
	for _, nd := range []*testNode{n4, n5} {
		out, err := tc.channel(nd).Submit(context.Background(), tc.tx(nd.key, "hello from a new member"))
		if err != nil {
			t.Fatal(err)
		}
		if out.Result.Status != protocol.StatusOK {
			t.Fatalf("new member's tx: %s: %s", out.Result.Status, out.Message)
		}
	}
	// Joining again with the same address changes nothing.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tc.channel(n4).requestJoin(ctx, []string{tc.nodes[0].addr}); err != nil {
		t.Fatal(err)
	}
	close(stop)
	acked := <-done
	tc.checkConverged(acked, 20*time.Second)
	var members int
	tc.channel(n5).Machine(func(m *fsm.Machine) { members = len(m.Members()) })
	if members != 8 {
		t.Fatalf("%d members in the state, want 8", members)
	}
}

func TestJoinRefusesNonMember(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	k, _ := protocol.GenerateKey(nil)
	nd := &testNode{key: k, dir: t.TempDir()}
	tc.startNode(nd, nil)
	defer tc.stopNode(nd)
	// Not a member on chain: the peers answer nothing of the channel.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if _, err := nd.node.peers.status(ctx, tc.nodes[0].addr, tc.id); err == nil {
		t.Fatal("a non-member got the channel's status")
	}
	if _, err := nd.node.Open(ctx, tc.id); err == nil {
		t.Fatal("a non-member opened the channel")
	}
}

func TestRestartCatchesUpFromSnapshot(t *testing.T) {
	tc := newTestClusterUsers(t, 3, 2, func(c *Config) {
		c.SnapshotThreshold = 32
		c.SnapshotInterval = 50 * time.Millisecond
		c.TrailingLogs = 8
	})
	l := tc.waitLeader(10 * time.Second)
	var off *testNode
	for _, nd := range tc.nodes {
		if nd != l {
			off = nd
			break
		}
	}
	tc.stopNode(off)
	var acked []*fsm.Outcome
	for i := 0; i < 150; i++ {
		out, err := tc.channel(l).Submit(context.Background(), tc.tx(tc.users[3], fmt.Sprintf("m%d;", i)))
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, out)
	}
	tc.restartNode(off)
	tc.checkConverged(acked, 30*time.Second)
	// The restarted member can serve a write (forwarded to the leader).
	if _, err := tc.channel(off).Submit(context.Background(), tc.tx(tc.users[4], "after restart")); err != nil {
		t.Fatal(err)
	}
}
