package cluster

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// TestTransferLeadership hands the lead to a named member under a write
// load, after the refusals that must change nothing: asked of a follower,
// for this node itself, for an address that is no server, for a member
// whose node is down; then with no successor named.
func TestTransferLeadership(t *testing.T) {
	// Five members: every one may lead (no candidates).
	tc := newTestClusterUsers(t, 4, 1, nil)
	old := tc.waitLeader(10 * time.Second)
	oc := tc.channel(old)
	_, epoch0, _ := oc.view.current()
	var followers []*testNode
	for _, nd := range tc.nodes {
		if nd != old {
			followers = append(followers, nd)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	_, err := tc.channel(followers[0]).TransferLeadership(ctx, followers[1].key.Address())
	if !errors.Is(err, ErrNotLeader) || !strings.Contains(err.Error(), old.key.Address().String()) {
		t.Fatalf("transfer asked of a follower: %v, want ErrNotLeader naming the leader %s", err, old.key.Address())
	}
	if _, err := oc.TransferLeadership(ctx, old.key.Address()); !errors.Is(err, ErrUnknownSuccessor) {
		t.Fatalf("transfer to itself: %v", err)
	}
	stranger, _ := protocol.GenerateKey(nil)
	if _, err := oc.TransferLeadership(ctx, stranger.Address()); !errors.Is(err, ErrUnknownSuccessor) {
		t.Fatalf("transfer to a stranger: %v", err)
	}
	// A user is a member on chain but runs no node: no Raft server.
	if _, err := oc.TransferLeadership(ctx, tc.users[4].Address()); !errors.Is(err, ErrUnknownSuccessor) {
		t.Fatalf("transfer to a member without a node: %v", err)
	}
	down := followers[2]
	tc.stopNode(down)
	if _, err := oc.TransferLeadership(ctx, down.key.Address()); !errors.Is(err, ErrSuccessorOffline) {
		t.Fatalf("transfer to a stopped node: %v", err)
	}
	if l, e, _ := oc.view.current(); l != old.key.Address() || e != epoch0 || tc.leader() != old {
		t.Fatalf("refused transfers moved the lead: chain leader %s epoch %d", l, e)
	}

	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		out := tc.load(stop, tc.users[4:], func(i int) *testNode { return followers[i%2] })
		tc.mu.Lock()
		tc.acked = out
		tc.mu.Unlock()
	}()
	testutil.Eventually(t, 10*time.Second, "writes before the transfer", func() bool { return oc.Status().Height >= 20 })
	to := followers[0]
	tr, err := oc.TransferLeadership(ctx, to.key.Address())
	if err != nil {
		t.Fatal(err)
	}
	if tr.To != to.key.Address() || tr.From != old.key.Address() || tr.Epoch != epoch0+1 {
		t.Fatalf("transfer %+v, want %s → %s in epoch %d", tr, old.key.Address(), to.key.Address(), epoch0+1)
	}
	if nl := tc.waitLeader(10 * time.Second); nl != to {
		t.Fatalf("leading after the transfer: %s, want %s", nl.key.Address(), to.key.Address())
	}
	h := tc.channel(to).Status().Height
	testutil.Eventually(t, 10*time.Second, "writes after the transfer", func() bool { return tc.channel(to).Status().Height >= h+20 })
	t.Logf("transfer: Raft followed the chain %s after the request", tr.Took)

	// The old leader no longer leads: it cannot hand the lead on.
	if _, err := oc.TransferLeadership(ctx, followers[1].key.Address()); !errors.Is(err, ErrNotLeader) {
		t.Fatalf("transfer asked of the old leader: %v", err)
	}
	// With no successor named the leader picks one whose node answers.
	tr, err = tc.channel(to).TransferLeadership(ctx, protocol.Address{})
	if err != nil {
		t.Fatal(err)
	}
	if tr.To == down.key.Address() || tr.To == to.key.Address() || tr.Epoch != epoch0+2 {
		t.Fatalf("transfer to the best member: %+v", tr)
	}
	close(stop)
	<-done
	tc.checkConverged(tc.acked, 10*time.Second)
}

// TestTransferLeadershipChainRefusal: a successor the chain refuses (its
// heartbeat lapsed) leaves the lead where it was, and the error says why.
func TestTransferLeadershipChainRefusal(t *testing.T) {
	tc := newTestCluster(t, 3, nil)
	old := tc.waitLeader(10 * time.Second)
	oc := tc.channel(old)
	var to *testNode
	for _, nd := range tc.nodes {
		if nd != old {
			to = nd
		}
	}
	_, epoch0, _ := oc.view.current()
	// The successor asks to leave: the chain will not hand it the lead.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tc.chain.client(to.key).Leave(ctx, tc.id); err != nil {
		t.Fatal(err)
	}
	if _, err := oc.TransferLeadership(ctx, to.key.Address()); !errors.Is(err, contract.ErrLeaving) {
		t.Fatalf("transfer to a leaving member: %v, want contract.ErrLeaving", err)
	}
	if l, e, _ := oc.view.current(); l != old.key.Address() || e != epoch0 {
		t.Fatalf("a refused transfer moved the lead: %s epoch %d", l, e)
	}
}

// TestTransferLeadershipDelegated: in a channel of seven members the lead
// goes only to a candidate; a delegator, in no Raft configuration, is
// refused before anything changes.
func TestTransferLeadershipDelegated(t *testing.T) {
	tc := newDelegatedCluster(t, 7, contract.ChannelConfig{SettleEveryTxs: noSettlement}, nil)
	tc.waitDelegated(20 * time.Second)
	cands := tc.candidates()
	old := tc.waitLeader(10 * time.Second)
	oc := tc.channel(old)
	_, epoch0, _ := oc.view.current()
	var delegator, cand *testNode
	for _, nd := range tc.nodes {
		switch {
		case !slices.Contains(cands, nd.key.Address()):
			delegator = nd
		case nd != old:
			cand = nd
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := oc.TransferLeadership(ctx, delegator.key.Address())
	if !errors.Is(err, contract.ErrNotCandidate) && !errors.Is(err, ErrUnknownSuccessor) {
		t.Fatalf("transfer to a delegator: %v", err)
	}
	tr, err := oc.TransferLeadership(ctx, cand.key.Address())
	if err != nil {
		t.Fatal(err)
	}
	if tr.To != cand.key.Address() || tr.Epoch != epoch0+1 {
		t.Fatalf("transfer %+v", tr)
	}
	if nl := tc.waitLeader(10 * time.Second); nl != cand {
		t.Fatalf("leading after the transfer: %s, want %s", nl.key.Address(), cand.key.Address())
	}
}
