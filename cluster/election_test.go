package cluster

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// TestElectionReplacesUnreachableLeader cuts the leader off from the other
// members while it keeps heartbeating the chain, so the chain holds it
// valid. The members never attest (AttestAfter of an hour: the fast claim
// cannot gather its attestations), so only an election proposal can move
// the lead: the Raft leader among the others files it, the other votes
// for it, it passes, and the candidate leads and orders writes.
func TestElectionReplacesUnreachableLeader(t *testing.T) {
	tc := newTestCluster(t, 3, func(c *Config) {
		c.AttestAfter = time.Hour
		c.ElectionAfter = 5 * c.HeartbeatTimeout
	})
	old := tc.waitLeader(10 * time.Second)
	_, epoch0, _ := tc.channel(old).view.current()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	if _, err := tc.channel(old).Submit(ctx, tc.tx(old.key, "before")); err != nil {
		t.Fatal(err)
	}
	cancel()

	tc.faults.Isolate(old.addr)
	var nl *testNode
	testutil.WaitFor(t, 60*time.Second, func() error {
		for _, nd := range tc.others(old) {
			leader, epoch, _ := tc.channel(nd).view.current()
			if epoch > epoch0 && leader == nd.key.Address() && tc.channel(nd).leader.Load() != nil {
				nl = nd
				return nil
			}
		}
		return fmt.Errorf("no new chain leader leading")
	})
	info, err := tc.chain.client(nl.key).Channel(context.Background(), tc.id)
	if err != nil {
		t.Fatal(err)
	}
	if m, ok := info.Member(old.key.Address()); !ok || !m.Valid {
		t.Fatal("the old leader is not valid on chain: the election was not needed")
	}
	if info.LastProposal == 0 {
		t.Fatal("no election proposal on chain")
	}
	p, err := tc.chain.client(nl.key).Proposal(context.Background(), tc.id, info.LastProposal)
	if err != nil {
		t.Fatal(err)
	}
	if p.Kind != protocol.ProposalElection {
		t.Fatalf("last proposal is a %s proposal", p.Kind)
	}
	for _, nd := range tc.others(old) {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := tc.channel(nd).Submit(ctx, tc.tx(nd.key, "after"))
		cancel()
		if err != nil {
			t.Fatalf("write through %s after the election: %v", nd.addr, err)
		}
		tc.acked = append(tc.acked, out)
	}
	tc.faults.Heal()
	tc.checkConverged(tc.acked, 20*time.Second)
}

// TestElectionRefusedWhileLeaderReachable: an election filed while every
// member still hears from the leader is voted down by their nodes.
func TestElectionRefusedWhileLeaderReachable(t *testing.T) {
	tc := newTestClusterUsers(t, 3, 1, nil)
	l := tc.waitLeader(10 * time.Second)
	_, epoch, _ := tc.channel(l).view.current()
	u := tc.users[3]
	el := protocol.Election{Epoch: epoch, Candidate: tc.others(l)[0].key.Address()}
	pid, err := tc.chain.client(u).CreateProposal(context.Background(), tc.id, protocol.ProposalElection, protocol.Marshal(&el))
	if err != nil {
		t.Fatal(err)
	}
	tc.waitProposal(pid, contract.ProposalFailed, 20*time.Second)
	p, err := tc.chain.client(u).Proposal(context.Background(), tc.id, pid)
	if err != nil {
		t.Fatal(err)
	}
	if p.Against == 0 || p.For != 0 {
		t.Fatalf("election votes: %d for, %d against", p.For, p.Against)
	}
	if leader, e, _ := tc.channel(l).view.current(); leader != l.key.Address() || e != epoch {
		t.Fatalf("leader %s epoch %d after a refused election", leader, e)
	}
}
