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

// TestJoinCheckedByHistory: a join entry is judged by who the chain gave
// the join seq to, not by who is a member when it is applied. A fifth node
// that replays the whole log after the fourth joined and left applies the
// fourth's join like everyone did, and all agree with no evidence; a join
// naming another member for that seq is refused for good, and one for a
// seq the chain has not given yet is undecided.
func TestJoinCheckedByHistory(t *testing.T) {
	tc := newTestCluster(t, 3, withLeaveHook)
	tc.submitN(3, "a")
	n4 := tc.addNode(withLeaveHook)
	tc.waitVoters(4, 30*time.Second)
	var n4Join protocol.MemberJoin
	tc.channel(n4).Machine(func(m *fsm.Machine) {
		mem, _ := m.Member(n4.key.Address())
		n4Join = protocol.MemberJoin{Member: mem.Address, PublicKey: mem.PublicKey, JoinSeq: mem.JoinSeq}
	})
	if n4Join.JoinSeq == 0 {
		t.Fatal("the fourth node has no join seq")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := tc.waitLeader(10 * time.Second)
	if err := tc.channel(leader).Leave(ctx, tc.request(n4.key, fsm.RequestLeave)); err != nil {
		t.Fatalf("leave of the fourth node: %v", err)
	}
	rest := append([]*testNode(nil), tc.nodes[:3]...)
	tc.checkLeft(n4.key.Address(), rest)
	tc.nodes = rest
	defer tc.stopNode(n4) // out of tc.nodes, which the cleanup stops
	out := tc.submitAs(rest[0], rest, 3, "b")

	// The fifth node replays every entry, the fourth's join included.
	n5 := tc.addNode(withLeaveHook)
	testutil.WaitFor(t, 30*time.Second, func() error {
		for i, nd := range tc.nodes {
			c := tc.channel(nd)
			if h := c.Status().Height; h < out.Height {
				return fmt.Errorf("node %d at height %d, want %d", i, h, out.Height)
			}
			if ev := c.Status().Evidence; ev != 0 {
				t.Fatalf("node %d recorded %d pieces of evidence", i, ev)
			}
		}
		return nil
	})
	tc.checkConverged([]*fsm.Outcome{out}, 30*time.Second)

	c := tc.channel(n5)
	if decided, err := c.chainJoined(ctx, n4Join); !decided || err != nil {
		t.Fatalf("join of the node that left: decided %v, %v; want accepted", decided, err)
	}
	forged := n4Join
	other, _ := protocol.GenerateKey(nil)
	forged.Member, forged.PublicKey = other.Address(), other.Public()
	if decided, err := c.chainJoined(ctx, forged); !decided || err == nil {
		t.Fatalf("join seq %d for another member: decided %v, %v; want refused", forged.JoinSeq, decided, err)
	}
	ahead := protocol.MemberJoin{Member: other.Address(), PublicKey: other.Public(), JoinSeq: n4Join.JoinSeq + 100}
	if decided, err := c.chainJoined(ctx, ahead); decided || err != nil {
		t.Fatalf("join seq the chain has not given: decided %v, %v; want undecided", decided, err)
	}
}
