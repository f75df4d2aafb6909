package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

// leaveExec is counterExec with an on_leave hook that writes
// (member, "chat::Left") = "bye", so tests can see that the hook ran.
type leaveExec struct{ counterExec }

func (leaveExec) Has(fn string) bool { return fn == "send" || fn == protocol.FuncOnLeave }

func (x leaveExec) Execute(call protocol.Call, st protocol.StateReader) protocol.CallResult {
	if call.Function != protocol.FuncOnLeave {
		return x.counterExec.Execute(call, st)
	}
	key := protocol.ResourceKey{Account: call.Sender, Type: "chat::Left"}
	return protocol.CallResult{Status: protocol.StatusOK, GasUsed: 1,
		ChangeSet: protocol.ChangeSet{Changes: []protocol.Change{{Key: key, Kind: protocol.OpNew, New: []byte("bye")}}}}
}

func withLeaveHook(c *Config) {
	c.Executors = func(string, []byte) (fsm.Executor, error) { return leaveExec{}, nil }
}

// request makes user u's next signed request of the reserved namespace.
func (tc *testCluster) request(u *protocol.Key, fn string) *protocol.SignedTx {
	tc.mu.Lock()
	tc.nonces[u.Address()]++
	n := tc.nonces[u.Address()]
	tc.mu.Unlock()
	return protocol.SignTx(u, protocol.Tx{Channel: tc.id, Nonce: n, Function: fn})
}

// checkLeft checks that member a is out of the channel on every running
// node, that on_leave ran for it, and that the chain no longer has it.
func (tc *testCluster) checkLeft(a protocol.Address, nodes []*testNode) {
	t := tc.t
	t.Helper()
	testutil.WaitFor(t, 20*time.Second, func() error {
		for i, nd := range nodes {
			var err error
			tc.channel(nd).Machine(func(m *fsm.Machine) {
				if _, in := m.Member(a); in {
					err = fmt.Errorf("node %d still has %s as a member", i, a)
				} else if v, ok := m.Get(protocol.ResourceKey{Account: a, Type: "chat::Left"}); !ok || string(v) != "bye" {
					err = fmt.Errorf("node %d: on_leave did not run for %s", i, a)
				}
			})
			if err != nil {
				return err
			}
		}
		info, err := tc.chain.client(tc.nodes[0].key).Channel(context.Background(), tc.id)
		if err != nil {
			return err
		}
		if _, ok := info.Member(a); ok {
			return fmt.Errorf("%s is still a member on chain", a)
		}
		return nil
	})
}

// submitAs submits n chat txs through node nd, signed in turn by the keys
// of the given nodes, and returns the last outcome.
func (tc *testCluster) submitAs(nd *testNode, as []*testNode, n int, tag string) *protocol.Outcome {
	tc.t.Helper()
	var last *protocol.Outcome
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := tc.channel(nd).Submit(ctx, tc.tx(as[i%len(as)].key, fmt.Sprintf("%s%d;", tag, i)))
		cancel()
		if err != nil {
			tc.t.Fatalf("submit %s %d: %v", tag, i, err)
		}
		last = out
	}
	return last
}

func (tc *testCluster) raftServers(nd *testNode) []raft.Server {
	cf := tc.channel(nd).raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		tc.t.Fatal(err)
	}
	return cf.Configuration().Servers
}

// TestLeaveUser: a member without a node asks the chain, then the
// channel, to leave. The channel settles past the request, orders its
// leave (on_leave runs), the settlement releases its stake, and its later
// calls are not a member's.
func TestLeaveUser(t *testing.T) {
	tc := newTestClusterUsers(t, 3, 1, withLeaveHook)
	user := tc.users[3]
	tc.submitN(8, "before")
	ctx := context.Background()
	ucl := tc.chain.client(user)
	if err := ucl.Leave(ctx, tc.id); err != nil {
		t.Fatal(err)
	}
	follower := tc.nodes[0]
	if l := tc.leader(); l == follower {
		follower = tc.nodes[1]
	}
	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := tc.channel(follower).Leave(lctx, tc.request(user, protocol.RequestLeave)); err != nil {
		t.Fatalf("leave: %v", err)
	}
	t.Logf("user left in %s", time.Since(start))
	tc.checkLeft(user.Address(), tc.nodes)
	info, err := ucl.Channel(ctx, tc.id)
	if err != nil {
		t.Fatal(err)
	}
	var left uint64
	tc.channel(tc.nodes[0]).Machine(func(m *fsm.Machine) { left = m.Height() })
	if info.SettledHeight == 0 || info.SettledHeight >= left {
		t.Fatalf("settled height %d: want the request settled before the leave at %d", info.SettledHeight, left)
	}
	// Later calls from it are refused; the others go on.
	_, err = tc.channel(tc.nodes[1]).Submit(ctx, tc.tx(user, "after"))
	if !errors.Is(err, ErrNotMember) {
		t.Fatalf("call after leaving: %v, want ErrNotMember", err)
	}
	if out := tc.submitAs(tc.nodes[0], tc.nodes, 3, "after"); out.Result.Status != protocol.StatusOK {
		t.Fatalf("call after the leave: %s", out.Result.Status)
	}
	// Asking again answers done.
	if err := tc.channel(follower).Leave(lctx, tc.request(user, protocol.RequestLeave)); err != nil {
		t.Fatalf("second leave: %v", err)
	}
}

// TestLeaveNodes: a follower node's member leaves, then the leader's. Each
// is settled, ordered and removed from Raft; the leader hands leadership
// over before it is removed; the remaining node keeps committing.
func TestLeaveNodes(t *testing.T) {
	tc := newTestCluster(t, 3, withLeaveHook)
	tc.submitN(5, "a")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	leader := tc.waitLeader(10 * time.Second)
	follower := tc.others(leader)[0]
	// The follower asks through the leader.
	if err := tc.channel(leader).Leave(ctx, tc.request(follower.key, protocol.RequestLeave)); err != nil {
		t.Fatalf("follower leave: %v", err)
	}
	rest := tc.others(follower)
	tc.checkLeft(follower.key.Address(), rest)
	testutil.WaitFor(t, 10*time.Second, func() error {
		if n := len(tc.raftServers(tc.leader())); n != 2 {
			return fmt.Errorf("%d servers, want 2", n)
		}
		if reason, ok := tc.channel(follower).Retired(); !ok || reason != RetiredLeft {
			return fmt.Errorf("the left node still hosts the channel (%q, %v)", reason, ok)
		}
		return nil
	})
	out := tc.submitAs(rest[0], rest, 5, "b")

	// Now the leader leaves, through the other node.
	leader = tc.waitLeader(10 * time.Second)
	other := rest[0]
	if other == leader {
		other = rest[1]
	}
	if err := tc.channel(other).Leave(ctx, tc.request(leader.key, protocol.RequestLeave)); err != nil {
		t.Fatalf("leader leave: %v", err)
	}
	tc.checkLeft(leader.key.Address(), []*testNode{other})
	testutil.WaitFor(t, 20*time.Second, func() error {
		if l := tc.leader(); l != other {
			return fmt.Errorf("leader is not the remaining node")
		}
		if s := tc.raftServers(other); len(s) != 1 || string(s[0].ID) != other.key.Address().String() {
			return fmt.Errorf("servers %v", s)
		}
		return nil
	})
	last := tc.submitAs(other, []*testNode{other}, 5, "c")
	if last.Height <= out.Height {
		t.Fatalf("height %d after the leaves, %d before", last.Height, out.Height)
	}
}

// TestClose: a member asks to close; the final state is settled, the
// channel closed on chain, every node stops hosting it (calls answer
// ErrChannelClosed, status still reads the final state), and a restarted node
// keeps it closed.
func TestClose(t *testing.T) {
	tc := newTestClusterUsers(t, 3, 1, nil)
	tc.submitN(10, "x")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	user := tc.users[3]
	if err := tc.channel(tc.nodes[1]).RequestClose(ctx, tc.request(user, protocol.RequestClose)); err != nil {
		t.Fatalf("close: %v", err)
	}
	info, err := tc.chain.client(user).Channel(ctx, tc.id)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Closed {
		t.Fatal("the channel is not closed on chain")
	}
	final := info.SettledHeight
	testutil.WaitFor(t, 20*time.Second, func() error {
		for i, nd := range tc.nodes {
			c := tc.channel(nd)
			if reason, ok := c.Retired(); !ok || reason != RetiredClosed {
				return fmt.Errorf("node %d still hosts the channel", i)
			}
			if h := c.Status().Height; h != final {
				return fmt.Errorf("node %d at height %d, settled %d", i, h, final)
			}
		}
		return nil
	})
	for i, nd := range tc.nodes {
		if _, err := tc.channel(nd).Submit(ctx, tc.tx(tc.users[0], "late")); !errors.Is(err, ErrChannelClosed) {
			t.Fatalf("node %d: call after close: %v, want ErrChannelClosed", i, err)
		}
	}
	// The nodes took their stakes out of the closed channel.
	testutil.WaitFor(t, 10*time.Second, func() error {
		info, err := tc.chain.client(user).Channel(ctx, tc.id)
		if err != nil {
			return err
		}
		if len(info.Members) != 1 {
			return fmt.Errorf("%d members on chain, want the user only", len(info.Members))
		}
		return nil
	})

	nd := tc.nodes[0]
	tc.stopNode(nd)
	tc.restartNode(nd)
	c := tc.channel(nd)
	if reason, ok := c.Retired(); !ok || reason != RetiredClosed {
		t.Fatalf("restarted node hosts the closed channel live (%q)", reason)
	}
	if st := c.Status(); st.Height != final {
		t.Fatalf("restarted node at height %d, want %d", st.Height, final)
	}
	if _, err := c.Submit(ctx, tc.tx(tc.users[0], "later")); !errors.Is(err, ErrChannelClosed) {
		t.Fatalf("call on the restarted node: %v, want ErrChannelClosed", err)
	}
	// Started with peers (as `scraft node --peer` does), it opens the
	// closed channel it left on chain read-only rather than joining again.
	if jc, err := nd.node.Join(ctx, tc.id, []string{tc.nodes[1].addr}, false); err != nil || jc != c {
		t.Fatalf("join of the closed channel on the restarted node: %v", err)
	}
}

// TestLeaveRefused: leave requests that cannot be carried out are refused
// before anything is ordered.
func TestLeaveRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	t.Run("only member", func(t *testing.T) {
		tc := newTestCluster(t, 1, nil)
		err := tc.channel(tc.nodes[0]).Leave(ctx, tc.request(tc.nodes[0].key, protocol.RequestLeave))
		if !errors.Is(err, ErrLastMember) {
			t.Fatalf("leave: %v, want ErrLastMember", err)
		}
	})
	t.Run("last node", func(t *testing.T) {
		tc := newTestClusterUsers(t, 1, 1, nil)
		err := tc.channel(tc.nodes[0]).Leave(ctx, tc.request(tc.nodes[0].key, protocol.RequestLeave))
		if !errors.Is(err, ErrQuorum) {
			t.Fatalf("leave: %v, want ErrQuorum", err)
		}
	})
	t.Run("non-member and not a request", func(t *testing.T) {
		tc := newTestCluster(t, 1, nil)
		stranger, _ := protocol.GenerateKey(nil)
		err := tc.channel(tc.nodes[0]).Leave(ctx, tc.request(stranger, protocol.RequestLeave))
		if !errors.Is(err, ErrNotMember) {
			t.Fatalf("leave of a stranger: %v, want ErrNotMember", err)
		}
		err = tc.channel(tc.nodes[0]).Leave(ctx, tc.tx(tc.nodes[0].key, "x"))
		if !errors.Is(err, ErrNotRequest) {
			t.Fatalf("leave with a chat tx: %v, want ErrNotRequest", err)
		}
		err = tc.channel(tc.nodes[0]).RequestClose(ctx, tc.request(stranger, protocol.RequestClose))
		if !errors.Is(err, ErrNotMember) {
			t.Fatalf("close by a stranger: %v, want ErrNotMember", err)
		}
	})
	t.Run("quorum", func(t *testing.T) {
		if testing.Short() {
			t.Skip("three nodes, one stopped")
		}
		tc := newTestCluster(t, 3, nil)
		leader := tc.waitLeader(10 * time.Second)
		var others []*testNode
		for _, nd := range tc.nodes {
			if nd != leader {
				others = append(others, nd)
			}
		}
		tc.stopNode(others[1])
		// Without others[0], the channel keeps the leader and a stopped
		// node: one of two answers, a quorum needs two.
		err := tc.channel(leader).Leave(ctx, tc.request(others[0].key, protocol.RequestLeave))
		if !errors.Is(err, ErrQuorum) {
			t.Fatalf("leave: %v, want ErrQuorum", err)
		}
		if n := len(tc.raftServers(leader)); n != 3 {
			t.Fatalf("%d servers after a refused leave", n)
		}
	})
}

// TestLeaveChainOnly: a member that leaves through the chain only, without
// asking in the channel, is let go by a settlement; the leader then orders
// its leave, which every member checks against the chain's record of the
// departure and accepts.
func TestLeaveChainOnly(t *testing.T) {
	tc := newTestClusterUsers(t, 3, 1, withLeaveHook)
	user := tc.users[3]
	tc.submitN(4, "before")
	ctx := context.Background()
	if err := tc.chain.client(user).Leave(ctx, tc.id); err != nil {
		t.Fatal(err)
	}
	tc.checkLeft(user.Address(), tc.nodes)
	dp, err := tc.chain.client(user).Departure(ctx, tc.id, 4)
	if err != nil || dp.Address != user.Address() {
		t.Fatalf("departure on chain: %+v, %v", dp, err)
	}
	for i, nd := range tc.nodes {
		if ev := tc.channel(nd).Status().Evidence; ev != 0 {
			t.Fatalf("node %d recorded %d pieces of evidence", i, ev)
		}
	}
}

// evictionBatch is what a leader that skips the leave rules would sign: the
// leave of victim at the next height of node nd's state, with the results
// of a machine that accepts any leave (signedBatch's has no LeaveChecker),
// signed by leader for epoch.
func (tc *testCluster) evictionBatch(nd *testNode, victim protocol.Address, leader *protocol.Key, epoch uint64) *protocol.Batch {
	en := protocol.Entry{Kind: protocol.EntryLeave, Leave: &protocol.MemberLeave{Member: victim}}
	return tc.signedBatch(nd, []protocol.Entry{en}, leader, epoch)
}

// TestLeaveNotBacked: a leave of a member that neither asked to leave in
// the channel nor left on chain is refused. The leader's own Propose
// refuses it; a leader that signs one anyway gets nothing from any member,
// itself included, while the chain is still in its epoch (they wait for
// the chain rather than say no), and once the chain has moved on every member refuses it,
// keeps the member and records the leader's fault, and all agree.
func TestLeaveNotBacked(t *testing.T) {
	tc := newTestClusterUsers(t, 3, 1, withLeaveHook)
	victim := tc.users[3].Address()
	tc.submitN(3, "a")
	leader := tc.waitLeader(10 * time.Second)
	lc := tc.channel(leader)
	epoch := lc.leader.Load().epoch

	// The honest path: the leader does not sign it.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := lc.submitSystem(ctx, protocol.Entry{Kind: protocol.EntryLeave, Leave: &protocol.MemberLeave{Member: victim}})
	if !errors.Is(err, ErrRefused) {
		t.Fatalf("leave of a member still on chain: %v, want ErrRefused", err)
	}

	// A leader that signs it anyway.
	b := tc.evictionBatch(leader, victim, leader.key, epoch)
	applied := make(chan error, 1)
	go func() {
		applied <- lc.raft.Apply(encodeLog(logBatch, b.Bytes()), 30*time.Second).Error()
	}()
	// Every member, the leader too (it did not propose this batch), waits
	// on the chain before the batch's height, with its machine free: the
	// member could still leave in this epoch.
	testutil.WaitFor(t, 10*time.Second, func() error {
		for i, nd := range tc.nodes {
			c := tc.channel(nd)
			var h uint64
			c.Machine(func(m *fsm.Machine) { h = m.Height() })
			if h >= b.FirstHeight {
				t.Fatalf("node %d decided while the chain is still in epoch %d", i, epoch)
			}
			if c.chainWaits.Load() == 0 {
				return fmt.Errorf("node %d at height %d, not waiting on the chain", i, h)
			}
		}
		return nil
	})

	// The chain moves on: another member takes over with the others'
	// attestations. The membership did not end in epoch: refused.
	next := tc.others(leader)[0]
	tc.claimAs(next, epoch, tc.others(leader)...)
	if err := <-applied; err != nil {
		t.Fatalf("raft apply: %v", err)
	}
	testutil.WaitFor(t, 20*time.Second, func() error {
		var d protocol.Hash
		for i, nd := range tc.nodes {
			c := tc.channel(nd)
			var err error
			c.Machine(func(m *fsm.Machine) {
				if m.Height() < b.FirstHeight {
					err = fmt.Errorf("node %d at height %d", i, m.Height())
					return
				}
				if _, in := m.Member(victim); !in {
					t.Fatalf("node %d took the member out", i)
				}
				evs, _ := m.Evidence()
				if len(evs) != 1 || evs[0].Reason != fsm.ReasonBadLeave || evs[0].Leader != leader.key.Address() || evs[0].Epoch != epoch {
					t.Fatalf("node %d evidence %v, want one %s against the leader of epoch %d", i, evs, fsm.ReasonBadLeave, epoch)
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
	// The channel goes on under the new leader: the claimant, or, once
	// the members' punish case against the signer of the leave executed,
	// its reporter.
	var now *testNode
	testutil.WaitFor(t, 20*time.Second, func() error {
		info, err := tc.chain.client(next.key).Channel(context.Background(), tc.id)
		if err != nil {
			return err
		}
		if now = tc.leader(); now == nil || now.key.Address() != info.Leader || now == leader {
			return fmt.Errorf("the chain's new leader does not lead yet")
		}
		return nil
	})
	if out := tc.submitAs(now, tc.others(leader), 2, "after"); out.Result.Status != protocol.StatusOK || out.Height <= b.FirstHeight {
		t.Fatalf("after the refused leave: %s at %d", out.Result.Status, out.Height)
	}
}

// TestAwaitApplied: the retirement's wait wakes when the node applies the
// height it waits for, and returns unreached when the channel closes.
func TestAwaitApplied(t *testing.T) {
	tc := newTestCluster(t, 1, nil)
	c := tc.channel(tc.nodes[0])
	type result struct {
		h  uint64
		ok bool
	}
	wait := func(want uint64) <-chan result {
		res := make(chan result, 1)
		go func() {
			h, ok := c.awaitApplied(want, time.Minute)
			res <- result{h, ok}
		}()
		return res
	}
	get := func(res <-chan result) result {
		select {
		case r := <-res:
			return r
		case <-time.After(20 * time.Second):
			t.Fatal("awaitApplied did not return")
		}
		return result{}
	}
	h := c.Status().Height
	res := wait(h + 2)
	tc.submitN(2, "x")
	if r := get(res); !r.ok || r.h < h+2 {
		t.Fatalf("awaitApplied(%d) = %d, %v", h+2, r.h, r.ok)
	}
	res = wait(h + 100)
	tc.stopNode(tc.nodes[0])
	if r := get(res); r.ok || r.h != h+2 {
		t.Fatalf("awaitApplied on a closed channel = %d, %v; want %d, false", r.h, r.ok, h+2)
	}
}

// TestRetireInterrupted: a node that is shut down while it waits to apply
// a closed channel's final state does not mark the channel retired: after
// a restart it opens the channel live and retires it again.
func TestRetireInterrupted(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *Config) { c.ApplyTimeout = time.Minute })
	leader := tc.waitLeader(10 * time.Second)
	var lagging, other *testNode
	for _, nd := range tc.nodes {
		switch {
		case nd == leader:
		case lagging == nil:
			lagging = nd
		default:
			other = nd
		}
	}
	tc.submitN(3, "a")
	// The lagging node misses the last txs and the settlement; the chain
	// closes the channel with a settled height it has not applied.
	tc.faults.Isolate(lagging.addr)
	tc.submitVia(other, 3, "b")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := tc.channel(other).RequestClose(ctx, tc.request(other.key, protocol.RequestClose)); err != nil {
		t.Fatalf("close: %v", err)
	}
	marker := func(nd *testNode) bool {
		_, err := os.Stat(filepath.Join(channelDir(nd.dir, tc.id), retiredFile))
		return err == nil
	}
	lc := tc.channel(lagging)
	testutil.WaitFor(t, 20*time.Second, func() error {
		for _, nd := range []*testNode{leader, other} {
			if _, ok := tc.channel(nd).Retired(); !ok || !marker(nd) {
				return fmt.Errorf("node %s has not retired", nd.addr)
			}
		}
		select {
		case <-lc.retired.began:
			return nil
		default:
			return fmt.Errorf("the lagging node has not started retiring")
		}
	})
	if _, ok := lc.Retired(); ok {
		t.Fatal("the lagging node retired without the final state")
	}

	// Shut down while it waits: no retired file.
	tc.stopNode(lagging)
	testutil.WaitFor(t, 10*time.Second, func() error {
		select {
		case <-lc.retired.ended:
			return nil
		default:
			return fmt.Errorf("the retirement goes on after the node closed")
		}
	})
	if _, ok := lc.Retired(); ok || marker(lagging) {
		t.Fatalf("interrupted retirement marked the channel retired (marker %v)", marker(lagging))
	}

	// Restarted, it opens the channel live (a retired file would open it
	// read-only at once) and retires it again. Its peers are gone, so it
	// retires at the height it has once the wait times out.
	tc.faults.Heal()
	tc.startNode(lagging, func(c *Config) { c.ApplyTimeout = 3 * time.Second })
	if err := lagging.node.Start(ctx); err != nil {
		t.Fatal(err)
	}
	rc := tc.channel(lagging)
	if _, ok := rc.Retired(); ok {
		t.Fatal("the restarted node opened the channel retired")
	}
	testutil.WaitFor(t, 20*time.Second, func() error {
		if reason, ok := rc.Retired(); !ok || reason != RetiredClosed || !marker(lagging) {
			return fmt.Errorf("not retired yet (%q, %v, marker %v)", reason, ok, marker(lagging))
		}
		return nil
	})
}

// TestShutdownWhileWaitingOnChain: a follower waiting on the chain for a
// leave it cannot decide yet still answers Status; shut down then, it
// keeps nothing of that apply:
// no outcome reaches its subscribers, its machine takes no snapshot, and
// after a restart it decides the leave as the others do.
func TestShutdownWhileWaitingOnChain(t *testing.T) {
	tc := newTestClusterUsers(t, 3, 1, withLeaveHook)
	victim := tc.users[3].Address()
	tc.submitN(3, "a")
	leader := tc.waitLeader(10 * time.Second)
	lc := tc.channel(leader)
	epoch := lc.leader.Load().epoch
	follower := tc.others(leader)[0]
	fc := tc.channel(follower)
	feed, cancelFeed := fc.Subscribe(1024)
	defer cancelFeed()

	b := tc.evictionBatch(leader, victim, leader.key, epoch)
	applied := make(chan error, 1)
	go func() {
		applied <- lc.raft.Apply(encodeLog(logBatch, b.Bytes()), 60*time.Second).Error()
	}()
	testutil.WaitFor(t, 10*time.Second, func() error {
		if fc.chainWaits.Load() == 0 {
			return fmt.Errorf("the follower is not waiting on the chain inside the apply")
		}
		return nil
	})
	// Its status answers meanwhile, as of the last apply.
	got := make(chan Status, 1)
	go func() { got <- fc.Status() }()
	select {
	case st := <-got:
		if st.Height >= b.FirstHeight || st.Height == 0 {
			t.Fatalf("status during the wait at height %d, batch at %d", st.Height, b.FirstHeight)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Status waited for the apply")
	}
	tc.stopNode(follower)
	tc.checkAbandoned(fc, feed, b.FirstHeight)

	// The chain moves on; the restarted follower decides as the others.
	tc.claimAs(follower, epoch, tc.others(leader)...)
	tc.restartNode(follower)
	if err := <-applied; err != nil {
		t.Fatalf("raft apply: %v", err)
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
				if _, in := m.Member(victim); !in {
					t.Fatalf("node %d took the member out", i)
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
