package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// TestDelegates25Members runs a channel of 25 members, 5 candidates and
// 20 delegators, each with its node in process:
//
//   - under load through every node, every member applies every batch
//     with the same digest;
//   - a candidate that is not the leader is stopped under load: its
//     delegators are relayed by other candidates at once, the chain drops
//     it once its heartbeat lapses, a new candidate is promoted to voter
//     and the delegators move on chain; writes go on and nothing
//     acknowledged is lost;
//   - with a third of the delegators stopped, a settlement passes, the
//     silent delegators counted with their candidates' votes.
func TestDelegates25Members(t *testing.T) {
	const n, settleAt = 25, 150
	tc := newDelegatedCluster(t, n, contract.ChannelConfig{SettleEveryTxs: settleAt}, nil)
	tc.waitDelegated(30 * time.Second)

	// Phase 1: load through every node, one worker per member.
	stop := make(chan struct{})
	var acked []*protocol.Outcome
	loadDone := make(chan struct{})
	go func() {
		defer close(loadDone)
		acked = tc.load(stop, tc.users, func(i int) *testNode { return tc.nodes[i%n] })
	}()
	waitAcked := func(min int) {
		testutil.WaitFor(t, 30*time.Second, func() error {
			l := tc.leader()
			if l == nil {
				return errors.New("no leader")
			}
			if h := tc.channel(l).Status().Height; h < uint64(min) {
				return fmt.Errorf("at height %d, want %d", h, min)
			}
			return nil
		})
	}
	waitAcked(40)

	// Phase 2: stop a candidate that does not lead and holds delegators.
	ln := tc.leader()
	info, err := tc.chain.client(ln.key).Channel(context.Background(), tc.id)
	if err != nil {
		t.Fatal(err)
	}
	var dead *testNode
	for _, a := range tc.candidates() {
		if m, ok := info.Member(a); ok && a != ln.key.Address() && m.Delegators > 0 {
			dead = tc.nodeOf(a)
			break
		}
	}
	if dead == nil {
		t.Fatal("no candidate with delegators but the leader")
	}
	var orphans []*testNode
	for _, m := range info.Members {
		if m.DelegatedTo == dead.key.Address() {
			orphans = append(orphans, tc.nodeOf(m.Address))
		}
	}
	t.Logf("stopping candidate %s with %d delegators", dead.key.Address(), len(orphans))
	tc.stopNode(dead)
	before := tc.channel(ln).Status().Height
	waitAcked(int(before) + 30) // writes go on while the chain still names it

	// Its heartbeat lapses (chain time moves in steps, each once every
	// running member kept alive after it, so only the stopped one ages).
	tc.ageOut(dead, 4, 5*time.Second)
	testutil.WaitFor(t, 30*time.Second, func() error {
		if slices.Contains(tc.candidates(), dead.key.Address()) {
			return errors.New("still a candidate")
		}
		return nil
	})
	tc.waitCandidateVoters(30 * time.Second)
	tc.waitDelegated(30 * time.Second)
	before = tc.channel(tc.waitLeader(10 * time.Second)).Status().Height
	waitAcked(int(before) + 30)
	close(stop)
	<-loadDone
	got := acked
	if len(got) == 0 {
		t.Fatal("nothing acknowledged")
	}
	tc.checkConvergedSettled(got, 60*time.Second)
	testutil.WaitFor(t, 10*time.Second, func() error {
		for _, o := range orphans {
			c := tc.channel(o)
			if !c.delegating() {
				continue // took the seat itself
			}
			if src := c.relaySource(); src == "" || src == dead.addr {
				return fmt.Errorf("delegator %s relayed from %q", o.key.Address(), src)
			}
		}
		return nil
	})

	// Phase 3: a third of the delegators stop; a settlement passes.
	var delegators []*testNode
	for _, nd := range tc.nodes {
		if nd != dead && tc.channel(nd).delegating() {
			delegators = append(delegators, nd)
		}
	}
	for _, nd := range delegators[:len(delegators)/3] {
		tc.stopNode(nd)
	}
	var live []*testNode
	for _, nd := range tc.nodes {
		if nd.get() != nil {
			live = append(live, nd)
		}
	}
	s0 := tc.settledHeight()
	stop = make(chan struct{})
	loadDone = make(chan struct{})
	var users []*protocol.Key
	for _, nd := range live {
		users = append(users, nd.key)
	}
	go func() {
		defer close(loadDone)
		tc.load(stop, users, func(i int) *testNode { return live[i%len(live)] })
	}()
	testutil.WaitFor(t, 90*time.Second, func() error {
		if h := tc.settledHeight(); h <= s0 {
			return fmt.Errorf("settled at %d", h)
		}
		return nil
	})
	close(stop)
	<-loadDone
	p := tc.executedSettlement()
	votes := 0
	for _, v := range p.Votes {
		if v.Option == protocol.VoteFor {
			votes++
		}
	}
	if p.For <= uint32(votes) {
		t.Fatalf("settlement carried %d votes for out of %d cast: no delegated weight counted", p.For, votes)
	}
	t.Logf("settlement %d: %d for, %d of them cast, %d members", p.ID, p.For, votes, n)
}

// ageOut moves chain time on by step, times times, each once every running
// member has kept alive after the last move, so that only stopped members
// age.
func (tc *testCluster) ageOut(dead *testNode, times int, step time.Duration) {
	tc.t.Helper()
	for i := 0; i < times; i++ {
		tc.chain.clock.Advance(step)
		now := tc.chain.clock.Now().UnixMilli()
		testutil.WaitFor(tc.t, 20*time.Second, func() error {
			info, err := tc.chain.client(tc.nodes[0].key).Channel(context.Background(), tc.id)
			if err != nil {
				return err
			}
			for _, nd := range tc.nodes {
				if nd.get() == nil {
					continue
				}
				m, ok := info.Member(nd.key.Address())
				if ok && m.LastHeartbeat < now {
					return fmt.Errorf("%s kept alive at %d, chain at %d", m.Address, m.LastHeartbeat, now)
				}
			}
			return nil
		})
	}
}

func (tc *testCluster) settledHeight() uint64 {
	info, err := tc.chain.client(tc.nodes[0].key).Channel(context.Background(), tc.id)
	if err != nil {
		tc.t.Fatal(err)
	}
	return info.SettledHeight
}

// executedSettlement returns the channel's last executed settlement
// proposal.
func (tc *testCluster) executedSettlement() *settlement.ProposalInfo {
	tc.t.Helper()
	cl := tc.chain.client(tc.nodes[0].key)
	var last *settlement.ProposalInfo
	for id := uint64(1); ; id++ {
		p, err := cl.Proposal(context.Background(), tc.id, id)
		if err != nil {
			break
		}
		if p.Kind == protocol.ProposalSettlement && p.Status == contract.ProposalExecuted {
			last = p
		}
	}
	if last == nil {
		tc.t.Fatal("no executed settlement")
	}
	return last
}

// checkConvergedSettled is checkConverged for a channel that settles:
// every running node applied the highest acknowledged height with the
// same digest, and has every acknowledged tx above its pruned journal
// with the digest acknowledged; those below were settled on chain by
// 2/3 of the members' votes on their own journals.
func (tc *testCluster) checkConvergedSettled(acked []*protocol.Outcome, timeout time.Duration) {
	tc.t.Helper()
	var h uint64
	for _, o := range acked {
		h = max(h, o.Height)
	}
	testutil.WaitFor(tc.t, timeout, func() error {
		var want protocol.Hash
		first := true
		for i, nd := range tc.nodes {
			if nd.get() == nil {
				continue
			}
			c := tc.channel(nd)
			d, ok := c.Digest(h)
			if !ok {
				return fmt.Errorf("node %d has not applied height %d (at %d)", i, h, c.Status().Height)
			}
			if first {
				want, first = d, false
			} else if d != want {
				return fmt.Errorf("node %d has digest %s at %d, another %s", i, d, h, want)
			}
			var settled uint64
			c.Machine(func(m *fsm.Machine) { settled = m.SettledHeight() })
			for _, o := range acked {
				if o.Height <= settled {
					continue
				}
				if d, ok := c.Digest(o.Height); !ok || d != o.Digest {
					return fmt.Errorf("node %d: acknowledged tx at height %d has digest %s, node has %s", i, o.Height, o.Digest, d)
				}
			}
		}
		return nil
	})
}
