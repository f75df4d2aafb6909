package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/transport"
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
	done := make(chan []*protocol.Outcome)
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
	var acked []*protocol.Outcome
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
	// A voter may not have applied its own join entry yet.
	var n4Join protocol.MemberJoin
	testutil.WaitFor(t, 30*time.Second, func() error {
		tc.channel(n4).Machine(func(m *fsm.Machine) {
			if m == nil {
				return
			}
			if mem, ok := m.Member(n4.key.Address()); ok {
				n4Join = protocol.MemberJoin{Member: mem.Address, PublicKey: mem.PublicKey, JoinSeq: mem.JoinSeq}
			}
		})
		if n4Join.JoinSeq == 0 {
			return fmt.Errorf("the fourth node has not applied its join")
		}
		return nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	leader := tc.waitLeader(10 * time.Second)
	if err := tc.channel(leader).Leave(ctx, tc.request(n4.key, protocol.RequestLeave)); err != nil {
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
	tc.checkConverged([]*protocol.Outcome{out}, 30*time.Second)

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

// newIdleCluster creates a channel with n members on chain and starts
// their nodes without opening the channel on any.
func newIdleCluster(t *testing.T, n int) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, chain: newTestChain(t), faults: transport.NewFaults(1), nonces: map[protocol.Address]uint64{}}
	ctx := context.Background()
	creator, _ := protocol.GenerateKey(nil)
	id, err := tc.chain.client(creator).CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("chat code"),
		InitialState: protocol.State{}, Config: contract.ChannelConfig{SettleEveryTxs: noSettlement}})
	if err != nil {
		t.Fatal(err)
	}
	tc.id = id
	for range n {
		k, _ := protocol.GenerateKey(nil)
		if _, err := tc.chain.client(k).Join(ctx, tc.id, false); err != nil {
			t.Fatal(err)
		}
		nd := &testNode{key: k, dir: t.TempDir()}
		tc.nodes = append(tc.nodes, nd)
		tc.users = append(tc.users, k)
		tc.startNode(nd, nil)
	}
	t.Cleanup(tc.close)
	return tc
}

// checkOneChannel checks that every node is in one Raft group of all the
// nodes, that a call commits on every node, and that the chain lists each
// member's node address.
func (tc *testCluster) checkOneChannel() {
	tc.t.Helper()
	tc.waitVoters(len(tc.nodes), 20*time.Second)
	out, err := tc.channel(tc.nodes[len(tc.nodes)-1]).Submit(context.Background(), tc.tx(tc.users[0], "hello"))
	if err != nil {
		tc.t.Fatal(err)
	}
	tc.checkConverged([]*protocol.Outcome{out}, 20*time.Second)
	info, err := tc.chain.client(tc.users[0]).Channel(context.Background(), tc.id)
	if err != nil {
		tc.t.Fatal(err)
	}
	for _, nd := range tc.nodes {
		if m, _ := info.Member(nd.key.Address()); m == nil || m.NodeAddress != nd.addr {
			tc.t.Fatalf("chain lists %+v for the node at %s", m, nd.addr)
		}
	}
}

// TestOpenAtOnce: members whose nodes open a new channel at the same time,
// none told a peer, race for the first claim; the losers find the winner's
// node by the address it published on chain and join it.
func TestOpenAtOnce(t *testing.T) {
	for round := range 3 {
		t.Run(fmt.Sprint(round), func(t *testing.T) {
			tc := newIdleCluster(t, 3)
			errs := make(chan error, len(tc.nodes))
			for _, nd := range tc.nodes {
				go func() {
					ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
					defer cancel()
					_, err := nd.node.Open(ctx, tc.id)
					errs <- err
				}()
			}
			for range tc.nodes {
				if err := <-errs; err != nil {
					t.Fatal(err)
				}
			}
			tc.checkOneChannel()
		})
	}
}

// TestJoinThroughPeerNeverBootstraps: nodes told to join through a peer
// that is not up yet never claim the channel, however long they wait; the
// peer's node claims it when it opens, and they join it.
func TestJoinThroughPeerNeverBootstraps(t *testing.T) {
	tc := newIdleCluster(t, 3)
	errs := make(chan error, 2)
	for _, nd := range tc.nodes[1:] {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			_, err := nd.node.Join(ctx, tc.id, []string{tc.nodes[0].addr}, false)
			errs <- err
		}()
	}
	cl := tc.chain.client(tc.users[0])
	testutil.WaitFor(t, 10*time.Second, func() error {
		info, err := cl.Channel(context.Background(), tc.id)
		if err != nil {
			return err
		}
		for _, nd := range tc.nodes[1:] {
			if m, _ := info.Member(nd.key.Address()); m.NodeAddress != nd.addr {
				return fmt.Errorf("node %s not on chain yet", nd.addr)
			}
		}
		return nil
	})
	if info, err := cl.Channel(context.Background(), tc.id); err != nil || !info.Leader.IsZero() {
		t.Fatalf("leader %v before the first node opened (%v)", info.Leader, err)
	}
	if _, err := tc.nodes[0].node.Open(context.Background(), tc.id); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	tc.checkOneChannel()
}
