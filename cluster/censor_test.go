package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// censorWindow is the channels' answer window here. Chain time moves only
// when a test advances it, so the window is what a test makes it.
const censorWindow = 2 * time.Second

func newCensorCluster(t *testing.T) *testCluster {
	return newTestClusterSpec(t, 3, 1, contract.ChannelConfig{SettleEveryTxs: noSettlement, CensorshipWindow: censorWindow}, nil)
}

// complain files user u's complaint about tx against the chain's leader.
func (tc *testCluster) complain(u *protocol.Key, tx *protocol.SignedTx) (uint64, protocol.Address) {
	tc.t.Helper()
	ctx := context.Background()
	cl := tc.chain.client(u)
	info, err := cl.Channel(ctx, tc.id)
	if err != nil {
		tc.t.Fatal(err)
	}
	pid, err := cl.CreateProposal(ctx, tc.id, protocol.ProposalCensorship, protocol.Marshal(&protocol.Censorship{Accused: info.Leader, Tx: *tx}))
	if err != nil {
		tc.t.Fatalf("complaint: %v", err)
	}
	return pid, info.Leader
}

// waitProposal waits until proposal pid has status want.
func (tc *testCluster) waitProposal(pid uint64, want contract.ProposalStatus, timeout time.Duration) {
	tc.t.Helper()
	cl := tc.chain.client(tc.users[0])
	testutil.WaitFor(tc.t, timeout, func() error {
		p, err := cl.Proposal(context.Background(), tc.id, pid)
		if err != nil {
			return err
		}
		if p.Status != want {
			return fmt.Errorf("proposal %d is %s, want %s", pid, p.Status, want)
		}
		return nil
	})
}

// executeAfterWindow moves chain time past the answer window and executes
// the complaint as u.
func (tc *testCluster) executeAfterWindow(u *protocol.Key, pid uint64) error {
	tc.chain.clock.Advance(censorWindow + time.Second)
	var err error
	testutil.WaitFor(tc.t, 10*time.Second, func() error {
		// The next block carries the new time.
		err = tc.chain.client(u).ExecuteProposal(context.Background(), tc.id, pid)
		if errors.Is(err, contract.ErrNotPassed) {
			return err
		}
		return nil
	})
	return err
}

func TestCensorHonestLeaderProvesInclusion(t *testing.T) {
	tc := newCensorCluster(t)
	l := tc.waitLeader(10 * time.Second)
	u := tc.users[3]
	tx := tc.tx(u, "ordered")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := tc.channel(tc.others(l)[0]).Submit(ctx, tx); err != nil {
		t.Fatal(err)
	}
	pid, accused := tc.complain(u, tx)
	if accused != l.key.Address() {
		t.Fatalf("accused %s, leader %s", accused, l.key.Address())
	}
	tc.waitProposal(pid, contract.ProposalRefuted, 20*time.Second)
	if err := tc.executeAfterWindow(u, pid); !errors.Is(err, contract.ErrProposalClosed) {
		t.Fatalf("executing an answered complaint: %v", err)
	}
	info, err := tc.chain.client(u).Channel(ctx, tc.id)
	if err != nil {
		t.Fatal(err)
	}
	if info.Closed || info.Leader != l.key.Address() {
		t.Fatalf("after the answer: closed %v, leader %s", info.Closed, info.Leader)
	}
}

func TestCensorOrdersComplainedTx(t *testing.T) {
	tc := newCensorCluster(t)
	tc.waitLeader(10 * time.Second)
	u := tc.users[3]
	// Signed but never sent: the complaint is how the leader learns of it.
	tx := tc.tx(u, "only on chain")
	pid, _ := tc.complain(u, tx)
	tc.waitProposal(pid, contract.ProposalRefuted, 20*time.Second)
	for _, nd := range tc.nodes {
		testutil.Eventually(t, 10*time.Second, "the tx applied on every node", func() bool {
			_, ok := tc.channel(nd).knownOutcome(tx.Hash())
			return ok
		})
	}
}

func TestCensorNonceUsedAnswered(t *testing.T) {
	tc := newCensorCluster(t)
	l := tc.waitLeader(10 * time.Second)
	u := tc.users[3]
	first := tc.tx(u, "first")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := tc.channel(l).Submit(ctx, first); err != nil {
		t.Fatal(err)
	}
	// A second tx with the same nonce can never be ordered.
	again := protocol.SignTx(u, protocol.Tx{Channel: tc.id, Nonce: first.Tx.Nonce, Function: "chat::send", Args: []byte("again")})
	pid, _ := tc.complain(u, again)
	tc.waitProposal(pid, contract.ProposalRefuted, 20*time.Second)
	if _, ok := tc.channel(l).knownOutcome(again.Hash()); ok {
		t.Fatal("the tx with a used nonce was ordered")
	}
}

func TestCensorUnansweredComplaintClosesChannel(t *testing.T) {
	tc := newCensorCluster(t)
	l := tc.waitLeader(10 * time.Second)
	u := tc.users[3]
	var drops atomic.Int32
	censor := func(leader protocol.Address, tx *protocol.SignedTx) bool {
		if leader == l.key.Address() && tx.Tx.Sender == u.Address() {
			drops.Add(1)
			return true
		}
		return false
	}
	censorTxs.Store(&censor)
	t.Cleanup(func() { censorTxs.Store(nil) })

	tx := tc.tx(u, "censored")
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	_, err := tc.channel(tc.others(l)[0]).Submit(ctx, tx)
	cancel()
	if err == nil {
		t.Fatal("the censored tx was ordered")
	}
	before, err := tc.chain.client(u).Account(context.Background(), l.key.Address())
	if err != nil {
		t.Fatal(err)
	}
	pid, _ := tc.complain(u, tx)
	// The leader's own attempt to order the tx, to answer, is dropped too.
	testutil.Eventually(t, 20*time.Second, "the leader's attempt to order the tx", func() bool { return drops.Load() >= 2 })
	// Past the deadline, the other members' nodes execute it.
	tc.chain.clock.Advance(censorWindow + time.Second)
	tc.waitProposal(pid, contract.ProposalExecuted, 20*time.Second)
	info, err := tc.chain.client(u).Channel(context.Background(), tc.id)
	if err != nil {
		t.Fatal(err)
	}
	if !info.Closed {
		t.Fatal("the channel is open after an unanswered complaint")
	}
	after, err := tc.chain.client(u).Account(context.Background(), l.key.Address())
	if err != nil {
		t.Fatal(err)
	}
	if after.Balance != before.Balance {
		t.Fatalf("the leader's balance went from %d to %d: no fine for censorship", before.Balance, after.Balance)
	}
}

// muteChain loses every answer to a complaint its node sends.
type muteChain struct {
	Chain
	tried atomic.Int32
}

func (c *muteChain) ProveInclusion(context.Context, protocol.ChannelID, uint64, []byte) error {
	c.tried.Add(1)
	return errors.New("test: this node's answers are lost")
}

// TestCensorOthersAnswer: when the accused's answers do not reach the
// chain, the other members' nodes answer from their own logs.
func TestCensorOthersAnswer(t *testing.T) {
	var mute *muteChain
	tc := newTestClusterSpec(t, 3, 1, contract.ChannelConfig{SettleEveryTxs: noSettlement, CensorshipWindow: censorWindow}, func(c *Config) {
		if mute == nil { // the first node: it bootstraps and leads
			mute = &muteChain{Chain: c.Chain}
			c.Chain = mute
		}
	})
	l := tc.waitLeader(10 * time.Second)
	if l != tc.nodes[0] {
		t.Fatalf("node %s leads, not the first", l.addr)
	}
	u := tc.users[3]
	tx := tc.tx(u, "ordered")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := tc.channel(l).Submit(ctx, tx); err != nil {
		t.Fatal(err)
	}
	pid, accused := tc.complain(u, tx)
	if accused != l.key.Address() {
		t.Fatalf("accused %s, leader %s", accused, l.key.Address())
	}
	tc.waitProposal(pid, contract.ProposalRefuted, 20*time.Second)
}
