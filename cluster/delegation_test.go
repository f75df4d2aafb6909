package cluster

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/delegate"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/transport"
)

// newDelegatedCluster creates a channel of n members (n > 5) with a node
// each: the first opens it, the others join through it. It returns once
// the Raft configuration is the five candidates, all voters.
func newDelegatedCluster(t testing.TB, n int, chcfg contract.ChannelConfig, tune func(*Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, chain: newTestChain(t), nonces: map[protocol.Address]uint64{}}
	tc.faults = transport.NewFaults(1)
	ctx := context.Background()
	creator, _ := protocol.GenerateKey(nil)
	id, err := tc.chain.client(creator).CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("chat code"), InitialState: protocol.State{}, Config: chcfg})
	if err != nil {
		t.Fatal(err)
	}
	tc.id = id
	tc.addMembers(n)
	t.Cleanup(tc.close)
	tc.startMembers(tune, 20*time.Second, nil)
	tc.waitCandidateVoters(30 * time.Second)
	return tc
}

// addMembers joins n new members to the channel on chain, each with a
// node that is not started yet.
func (tc *testCluster) addMembers(n int) {
	tc.t.Helper()
	for range n {
		k, _ := protocol.GenerateKey(nil)
		if _, err := tc.chain.client(k).Join(context.Background(), tc.id, false); err != nil {
			tc.t.Fatal(err)
		}
		tc.nodes = append(tc.nodes, &testNode{key: k, dir: tc.t.TempDir()})
		tc.users = append(tc.users, k)
	}
}

// startMembers starts every node with tune: the first opens the channel
// and leads, the others join through it, each within joinTimeout. started,
// when set, runs on each node as soon as it is up, before it opens or joins.
func (tc *testCluster) startMembers(tune func(*Config), joinTimeout time.Duration, started func(i int, nd *testNode)) {
	tc.t.Helper()
	for i, nd := range tc.nodes {
		tc.startNode(nd, tune)
		if started != nil {
			started(i, nd)
		}
		if i == 0 {
			if _, err := nd.node.Open(context.Background(), tc.id); err != nil {
				tc.t.Fatal(err)
			}
			tc.waitLeader(10 * time.Second)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), joinTimeout)
		_, err := nd.node.Join(ctx, tc.id, []string{tc.nodes[0].addr}, false)
		cancel()
		if err != nil {
			tc.t.Fatalf("node %d join: %v", i, err)
		}
	}
}

// candidates returns the chain's candidates of the channel now.
func (tc *testCluster) candidates() []protocol.Address {
	tc.t.Helper()
	info, err := tc.chain.client(tc.nodes[0].key).Channel(context.Background(), tc.id)
	if err != nil {
		tc.t.Fatal(err)
	}
	l, err := layoutOf(info, contract.DefaultHeartbeatTTL)
	if err != nil {
		tc.t.Fatal(err)
	}
	return l.candidates
}

// waitCandidateVoters waits until the leader's Raft configuration holds
// exactly the chain's candidates, every one a voter.
func (tc *testCluster) waitCandidateVoters(timeout time.Duration) {
	tc.t.Helper()
	testutil.WaitFor(tc.t, timeout, func() error {
		l := tc.leader()
		if l == nil {
			return fmt.Errorf("no leader")
		}
		cands := tc.candidates()
		cf := tc.channel(l).raft.GetConfiguration()
		if err := cf.Error(); err != nil {
			return err
		}
		var voters []protocol.Address
		for _, s := range cf.Configuration().Servers {
			a, err := protocol.ParseAddress(string(s.ID))
			if err != nil {
				return err
			}
			if s.Suffrage != raft.Voter {
				return fmt.Errorf("server %s is a %s", s.ID, s.Suffrage)
			}
			voters = append(voters, a)
		}
		slices.SortFunc(voters, protocol.Address.Compare)
		want := slices.SortedFunc(slices.Values(cands), protocol.Address.Compare)
		if !slices.Equal(voters, want) {
			return fmt.Errorf("voters %v, candidates %v", voters, want)
		}
		return nil
	})
}

// waitDelegated waits until every valid member that is no candidate has
// a delegation on chain to a candidate, within capacity.
func (tc *testCluster) waitDelegated(timeout time.Duration) {
	tc.t.Helper()
	testutil.WaitFor(tc.t, timeout, func() error {
		info, err := tc.chain.client(tc.nodes[0].key).Channel(context.Background(), tc.id)
		if err != nil {
			return err
		}
		l, err := layoutOf(info, contract.DefaultHeartbeatTTL)
		if err != nil {
			return err
		}
		capacity := delegate.Capacity(uint32(len(info.Members)))
		load := map[protocol.Address]uint32{}
		for _, m := range info.Members {
			if l.isCandidate(m.Address) {
				if !m.DelegatedTo.IsZero() {
					return fmt.Errorf("candidate %s delegates to %s", m.Address, m.DelegatedTo)
				}
				continue
			}
			if !m.Valid {
				continue // its node is stopped: it chooses nothing
			}
			if !l.isCandidate(m.DelegatedTo) || m.DelegatedTo.IsZero() {
				return fmt.Errorf("%s delegates to %s, not a candidate of %v", m.Address, m.DelegatedTo, l.candidates)
			}
			load[m.DelegatedTo]++
			if load[m.DelegatedTo] > capacity {
				return fmt.Errorf("candidate %s holds more than %d", m.DelegatedTo, capacity)
			}
		}
		return nil
	})
}

func (tc *testCluster) nodeOf(a protocol.Address) *testNode {
	for _, nd := range tc.nodes {
		if nd.key.Address() == a {
			return nd
		}
	}
	tc.t.Fatalf("no node of %s", a)
	return nil
}

// TestDelegatesOnlyCandidatesVote: in a channel of 7 members only the
// chain's 5 candidates are Raft servers, all voters; the two others are
// in no Raft configuration, delegate on chain to a candidate, and never
// lead nor claim.
func TestDelegatesOnlyCandidatesVote(t *testing.T) {
	tc := newDelegatedCluster(t, 7, contract.ChannelConfig{SettleEveryTxs: noSettlement}, nil)
	tc.waitDelegated(20 * time.Second)
	cands := tc.candidates()
	if len(cands) != delegate.Seats {
		t.Fatalf("%d candidates", len(cands))
	}
	for _, nd := range tc.nodes {
		c := tc.channel(nd)
		if slices.Contains(cands, nd.key.Address()) {
			continue
		}
		if c.mayLead() {
			t.Fatalf("delegator %s may lead", nd.key.Address())
		}
		if c.leader.Load() != nil {
			t.Fatalf("delegator %s leads", nd.key.Address())
		}
	}
}

// TestRelayDelegatorsApplyEveryBatch: the delegators of a 7-member
// channel, in no Raft configuration, apply every committed batch through
// their candidates with the same digests as the voters, and their own
// txs, sent through their candidates, are acknowledged with their own
// outcomes.
func TestRelayDelegatorsApplyEveryBatch(t *testing.T) {
	tc := newDelegatedCluster(t, 7, contract.ChannelConfig{SettleEveryTxs: noSettlement}, nil)
	tc.waitDelegated(20 * time.Second)
	var acked []*protocol.Outcome
	for i := 0; i < 3; i++ {
		for j, nd := range tc.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			out, err := tc.channel(nd).Submit(ctx, tc.tx(nd.key, fmt.Sprintf("m%d-%d;", i, j)))
			cancel()
			if err != nil {
				t.Fatalf("submit through node %d: %v", j, err)
			}
			if out.Result.Status != protocol.StatusOK {
				t.Fatalf("node %d: %s: %s", j, out.Result.Status, out.Message)
			}
			acked = append(acked, out)
		}
	}
	tc.checkConverged(acked, 20*time.Second)
	for _, nd := range tc.nodes {
		c := tc.channel(nd)
		if c.delegating() {
			if _, ok := c.raftServer(nd.key.Address()); ok {
				t.Fatalf("delegator %s is in its own Raft configuration", nd.key.Address())
			}
			if st := c.Status(); !st.Ready {
				t.Fatalf("delegator %s not ready: %+v", nd.key.Address(), st)
			}
		}
	}
}

// TestDelegatesConfigurationFollowsSeats: when a richer member takes the
// seat of the candidate that leads, the Raft configuration follows the
// chain: the new candidate is added and promoted to voter, the lead goes
// to a candidate (which claims it on chain), the former leader leaves
// the configuration and is relayed to, and writes go on.
func TestDelegatesConfigurationFollowsSeats(t *testing.T) {
	tc := newDelegatedCluster(t, 7, contract.ChannelConfig{SettleEveryTxs: noSettlement}, nil)
	tc.waitDelegated(20 * time.Second)
	ctx := context.Background()
	old := tc.leader()
	// Every other candidate stakes 10; a delegator stakes 5: more than
	// 10% above the leader's 0, the weakest seat.
	var challenger *testNode
	for _, a := range tc.candidates() {
		if a == old.key.Address() {
			continue
		}
		if err := tc.chain.client(tc.nodeOf(a).key).Stake(ctx, tc.id, 10); err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range tc.nodes {
		if tc.channel(nd).delegating() {
			challenger = nd
			break
		}
	}
	if err := tc.chain.client(challenger.key).Stake(ctx, tc.id, 5); err != nil {
		t.Fatal(err)
	}
	testutil.WaitFor(t, 20*time.Second, func() error {
		cands := tc.candidates()
		if slices.Contains(cands, old.key.Address()) || !slices.Contains(cands, challenger.key.Address()) {
			return fmt.Errorf("candidates %v", cands)
		}
		return nil
	})
	tc.waitCandidateVoters(30 * time.Second)
	nl := tc.waitOtherLeader(old, 30*time.Second)
	if !slices.Contains(tc.candidates(), nl.key.Address()) {
		t.Fatalf("new leader %s is no candidate", nl.key.Address())
	}
	testutil.WaitFor(t, 20*time.Second, func() error {
		if st := tc.channel(old).Status(); !st.Delegator || st.RelayedBy == "" {
			return fmt.Errorf("former leader: delegator %v, relayed by %q", st.Delegator, st.RelayedBy)
		}
		return nil
	})
	var acked []*protocol.Outcome
	for _, nd := range []*testNode{old, challenger, nl} {
		ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		out, err := tc.channel(nd).Submit(ctx, tc.tx(nd.key, "after;"))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		acked = append(acked, out)
	}
	tc.checkConverged(acked, 30*time.Second)
}

// TestDelegatorDoesNotAttest: a delegator hears the leader only through
// its candidate, so its last contact says nothing of the leader: asked by
// a candidate for an attestation while the leader is alive, it refuses.
func TestDelegatorDoesNotAttest(t *testing.T) {
	tc := newDelegatedCluster(t, 7, contract.ChannelConfig{SettleEveryTxs: noSettlement}, nil)
	tc.waitDelegated(20 * time.Second)
	leader := tc.leader()
	var claimant protocol.Address
	for _, a := range tc.candidates() {
		if a != leader.key.Address() {
			claimant = a
			break
		}
	}
	for _, nd := range tc.nodes {
		c := tc.channel(nd)
		if !c.delegating() {
			continue
		}
		_, epoch, _ := c.view.current()
		if a, err := c.attest(claimant, epoch); err == nil || !strings.Contains(err.Error(), "delegator") {
			t.Fatalf("delegator %s attested for %s while the leader is alive: %v, %v", nd.key.Address(), claimant, a, err)
		}
		return
	}
	t.Fatal("no delegator")
}
