package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// TestVoteBoxDue: a candidate's box sends a proposal's votes as soon as
// its own vote is in, holds its delegators' votes for it until
// ownVoteWait, and, once its own went through, gathers later votes only
// voteGather; one voter's vote is queued once.
func TestVoteBoxDue(t *testing.T) {
	var b voteBox
	b.init()
	t0 := time.Unix(1000, 0)
	const wait = 2 * time.Second
	k1, _ := protocol.GenerateKey(nil)
	k2, _ := protocol.GenerateKey(nil)
	vote := func(k *protocol.Key, pid uint64) protocol.Vote {
		v := protocol.Vote{Proposal: pid, Option: protocol.VoteFor}
		v.Sign(k)
		return v
	}
	if _, err := b.put(vote(k1, 7), false, t0); err != nil {
		t.Fatal(err)
	}
	if _, err := b.put(vote(k1, 7), false, t0); !errors.Is(err, ErrBadTx) {
		t.Fatalf("a second vote of one voter: %v, want ErrBadTx", err)
	}
	pids, _, next := b.due(t0.Add(time.Second), wait)
	if len(pids) != 0 || !next.Equal(t0.Add(wait)) {
		t.Fatalf("a delegator's vote alone: due %v, next %v; want none before %v", pids, next, t0.Add(wait))
	}
	// The candidate's own vote: both go at once, in one queue.
	if _, err := b.put(vote(k2, 7), true, t0.Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	pids, votes, _ := b.due(t0.Add(time.Second), wait)
	if len(pids) != 1 || pids[0] != 7 || len(votes[0]) != 2 {
		t.Fatalf("with the candidate's own vote: due %v %v, want proposal 7 with 2 votes", pids, votes)
	}
	// A later vote, once the candidate's own went through: voteGather.
	b.ownDone(7)
	t1 := t0.Add(3 * time.Second)
	k3, _ := protocol.GenerateKey(nil)
	if _, err := b.put(vote(k3, 7), false, t1); err != nil {
		t.Fatal(err)
	}
	if pids, _, next := b.due(t1, wait); len(pids) != 0 || !next.Equal(t1.Add(voteGather)) {
		t.Fatalf("a late vote: due %v, next %v; want none before %v", pids, next, t1.Add(voteGather))
	}
	if pids, _, _ := b.due(t1.Add(voteGather), wait); len(pids) != 1 {
		t.Fatalf("a late vote after voteGather: due %v", pids)
	}
	// Without the candidate's own vote, ownVoteWait at most; proposals in
	// order.
	for _, pid := range []uint64{9, 8} {
		if _, err := b.put(vote(k1, pid), false, t1); err != nil {
			t.Fatal(err)
		}
	}
	if pids, _, _ := b.due(t1.Add(wait), wait); len(pids) != 2 || pids[0] != 8 || pids[1] != 9 {
		t.Fatalf("after ownVoteWait: due %v, want [8 9]", pids)
	}
}

// voteTx is one chain tx that voted on a proposal.
type voteTx struct {
	height uint64
	kind   contract.CallKind
	sender protocol.Address
	code   uint32
	voters []protocol.Address
}

// chainCalls calls fn with each chain call in blocks from to to, with
// the block's height, the tx's sender and its result code.
func (tc *testCluster) chainCalls(from, to uint64, fn func(h uint64, sender protocol.Address, code uint32, call contract.Call)) {
	tc.t.Helper()
	for h := from; h <= to; h++ {
		b, err := tc.chain.chain.Block(h)
		if err != nil {
			tc.t.Fatal(err)
		}
		for _, bt := range b.Txs {
			stx, err := devchain.DecodeTx(bt.Tx, len(bt.Tx))
			if err != nil {
				tc.t.Fatal(err)
			}
			call, err := contract.DecodeCall(stx.Call)
			if err != nil {
				tc.t.Fatal(err)
			}
			fn(h, stx.Sender, bt.Code, call)
		}
	}
}

// voteTxs returns the chain's vote and submit_votes txs on proposal pid
// of the channel, up to the head.
func (tc *testCluster) voteTxs(pid uint64) []voteTx {
	tc.t.Helper()
	head, err := tc.chain.client(tc.nodes[0].key).Head(context.Background())
	if err != nil {
		tc.t.Fatal(err)
	}
	var out []voteTx
	tc.chainCalls(1, head.Height, func(h uint64, sender protocol.Address, code uint32, call contract.Call) {
		switch c := call.(type) {
		case *contract.Vote:
			if c.Channel == tc.id && c.Proposal == pid {
				out = append(out, voteTx{h, c.Kind(), sender, code, []protocol.Address{sender}})
			}
		case *contract.SubmitVotes:
			if c.Channel == tc.id && c.Proposal == pid {
				vt := voteTx{h, c.Kind(), sender, code, nil}
				for _, v := range c.Votes {
					vt.voters = append(vt.voters, v.Voter)
				}
				out = append(out, vt)
			}
		}
	})
	return out
}

// proposal reads proposal pid of the channel.
func (tc *testCluster) proposal(pid uint64) *settlement.ProposalInfo {
	tc.t.Helper()
	p, err := tc.chain.client(tc.nodes[0].key).Proposal(context.Background(), tc.id, pid)
	if err != nil {
		tc.t.Fatal(err)
	}
	return p
}

// TestCarryVotesOneTxPerCandidate: on a settlement every member judges
// alike (here against: its digest is nobody's, so it stays open), each
// candidate sends one submit_votes tx, its own vote in it, and no
// delegator votes on chain itself; a delegator's later vote the other way
// reaches the chain in a tx of its candidate's, and a later vote that
// agrees with its candidate's on record costs no tx.
func TestCarryVotesOneTxPerCandidate(t *testing.T) {
	tc := newDelegatedCluster(t, 7, contract.ChannelConfig{SettleEveryTxs: noSettlement}, nil)
	tc.waitDelegated(20 * time.Second)
	tc.submitN(3, "v")
	var dels []*testNode
	for _, nd := range tc.nodes {
		if tc.channel(nd).delegating() {
			dels = append(dels, nd)
		}
	}
	if len(dels) != 2 {
		t.Fatalf("%d delegators, want 2", len(dels))
	}
	// One delegator is away while the others vote.
	late := dels[1]
	tc.stopNode(late)
	// A settlement of height 1 with a digest no member has.
	var pid uint64
	testutil.WaitFor(t, 20*time.Second, func() error {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		var err error
		pid, err = tc.chain.client(dels[0].key).CreateProposal(ctx, tc.id, protocol.ProposalSettlement,
			protocol.Marshal(&protocol.Settlement{From: 1, To: 1}))
		return err
	})
	// Every running member voted, as its own loop judged: each
	// delegator's loop took its vote as settled.
	voted := func(nd *testNode) error {
		var m dto.Metric
		if err := tc.channel(nd).metrics.votes.WithLabelValues("against").Write(&m); err != nil {
			return err
		}
		if m.GetCounter().GetValue() < 1 {
			return fmt.Errorf("%s has not voted", nd.key.Address())
		}
		return nil
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		for _, nd := range tc.nodes {
			if nd == late {
				continue
			}
			if err := voted(nd); err != nil {
				return err
			}
		}
		return nil
	})
	p := tc.proposal(pid)
	if p.Status != contract.ProposalOpen || p.Against != 7 {
		t.Fatalf("proposal %d: %s, %d against, want open with 7", pid, p.Status, p.Against)
	}
	txs := tc.voteTxs(pid)
	bySender := map[protocol.Address]int{}
	for _, vt := range txs {
		if vt.kind != contract.CallSubmitVotes {
			t.Errorf("block %d: a %s tx by %s, want only candidates' submit_votes", vt.height, vt.kind, vt.sender)
		}
		if vt.code != 0 {
			t.Errorf("block %d: a refused tx by %s (code %d)", vt.height, vt.sender, vt.code)
		}
		if !slices.Contains(vt.voters, vt.sender) {
			t.Errorf("block %d: %s's tx without its own vote: %v", vt.height, vt.sender, vt.voters)
		}
		bySender[vt.sender]++
	}
	for a, n := range bySender {
		if n != 1 {
			t.Errorf("%s sent %d vote txs, want 1", a, n)
		}
	}
	if len(bySender) != 5 {
		t.Errorf("%d candidates sent vote txs, want 5", len(bySender))
	}

	// The away delegator comes back and votes as its candidate did: its
	// candidate answers it counted, with no tx.
	tc.restartNode(late)
	testutil.WaitFor(t, 30*time.Second, func() error { return voted(late) })
	if got := tc.voteTxs(pid); len(got) != len(txs) {
		t.Fatalf("an agreeing late vote made %d txs: %v", len(got)-len(txs), got[len(txs):])
	}
	// The same delegator's vote the other way reaches the chain.
	carry := func(nd *testNode, opt protocol.VoteOption) {
		t.Helper()
		v := &protocol.Vote{Channel: tc.id, Proposal: pid, Option: opt}
		v.Sign(nd.key)
		src := tc.channel(nd).relaySource()
		if src == "" {
			t.Fatalf("%s is relayed by no candidate", nd.key.Address())
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := nd.node.peers.carryVote(ctx, src, tc.id, v); err != nil {
			t.Fatalf("carry %s's vote: %v", nd.key.Address(), err)
		}
	}
	quiet := late
	carry(quiet, protocol.VoteFor)
	p = tc.proposal(pid)
	if !slices.ContainsFunc(p.Votes, func(r contract.VoteRecord) bool {
		return r.Voter == quiet.key.Address() && r.Option == protocol.VoteFor
	}) {
		t.Fatalf("the disagreeing vote is not on record: %v", p.Votes)
	}
	if p.For != 1 || p.Against != 6 {
		t.Fatalf("tally %d for, %d against; want 1 and 6", p.For, p.Against)
	}
	got := tc.voteTxs(pid)
	if len(got) != len(txs)+1 || got[len(got)-1].kind != contract.CallSubmitVotes {
		t.Fatalf("the disagreeing vote took %v, want one submit_votes", got[len(txs):])
	}
}

// TestCarryVoteLyingCandidate: candidates that answer two delegators'
// votes counted without carrying them, while those delegators' own
// candidates vote against the settlement they judged in favour of, are
// caught: each delegator reads the chain's record, finds its vote not
// counted, and votes on chain itself; the settlement passes on their
// votes (without them it has 3 of the 5 in favour it needs).
func TestCarryVoteLyingCandidate(t *testing.T) {
	tc := newDelegatedCluster(t, 7, contract.ChannelConfig{SettleEveryTxs: 20}, nil)
	tc.waitDelegated(20 * time.Second)
	info, err := tc.chain.client(tc.nodes[0].key).Channel(context.Background(), tc.id)
	if err != nil {
		t.Fatal(err)
	}
	lied := map[protocol.Address]bool{}  // delegators
	liars := map[protocol.Address]bool{} // their candidates on record
	for _, m := range info.Members {
		if !m.DelegatedTo.IsZero() {
			lied[m.Address], liars[m.DelegatedTo] = true, true
		}
	}
	if len(lied) != 2 || len(liars) != 2 {
		t.Fatalf("%d delegators of %d candidates, want 2 of 2", len(lied), len(liars))
	}
	misbehaving.Store(&misbehaviour{
		dropVote: func(_, voter protocol.Address) bool { return lied[voter] },
		flipVote: func(self protocol.Address) bool { return liars[self] },
	})
	t.Cleanup(func() { misbehaving.Store(nil) })
	for i, nd := range tc.nodes {
		tc.submitVia(nd, 4, fmt.Sprintf("l%d-", i))
	}
	tc.waitSettled(1)
	p := tc.executedSettlement()
	for a := range liars {
		if !slices.ContainsFunc(p.Votes, func(r contract.VoteRecord) bool { return r.Voter == a && r.Option == protocol.VoteAgainst }) {
			t.Errorf("candidate %s's vote against is not on record: %v", a, p.Votes)
		}
	}
	for _, vt := range tc.voteTxs(p.ID) {
		if lied[vt.sender] {
			if vt.kind != contract.CallVote || vt.code != 0 {
				t.Errorf("delegator %s: a %s tx, code %d", vt.sender, vt.kind, vt.code)
			}
			delete(lied, vt.sender)
		}
	}
	for a := range lied {
		t.Errorf("delegator %s did not vote on chain itself", a)
	}
}

// TestVoteCounted: what a candidate answers a delegator without a tx,
// and what the delegator accepts from the chain's record.
func TestVoteCounted(t *testing.T) {
	d, c, o := protocol.Address{1}, protocol.Address{2}, protocol.Address{3}
	settle := func(st contract.ProposalStatus, forVotes uint32, votes ...contract.VoteRecord) *settlement.ProposalInfo {
		return &settlement.ProposalInfo{Proposal: contract.Proposal{Kind: protocol.ProposalSettlement, Status: st,
			Electorate: 3, Voters: []protocol.Address{d, c, o}, For: forVotes}, Votes: votes}
	}
	rec := func(a protocol.Address, opt protocol.VoteOption) contract.VoteRecord {
		return contract.VoteRecord{Voter: a, Option: opt}
	}
	punish := settle(contract.ProposalOpen, 1, rec(c, protocol.VoteFor))
	punish.Kind = protocol.ProposalPunish
	for _, tc := range []struct {
		name string
		p    *settlement.ProposalInfo
		opt  protocol.VoteOption
		want bool
	}{
		{"closed", settle(contract.ProposalExecuted, 0), protocol.VoteAgainst, true},
		{"own vote on record", settle(contract.ProposalOpen, 0, rec(d, protocol.VoteAgainst)), protocol.VoteFor, true},
		{"candidate voted the same", settle(contract.ProposalOpen, 2, rec(c, protocol.VoteFor)), protocol.VoteFor, true},
		{"candidate voted the other way", settle(contract.ProposalOpen, 0, rec(c, protocol.VoteAgainst)), protocol.VoteFor, false},
		{"candidate silent", settle(contract.ProposalOpen, 1, rec(o, protocol.VoteFor)), protocol.VoteFor, false},
		{"another's vote the same", settle(contract.ProposalOpen, 1, rec(o, protocol.VoteAgainst)), protocol.VoteAgainst, false},
		{"in favour of a settlement passed", settle(contract.ProposalOpen, 2, rec(o, protocol.VoteFor)), protocol.VoteFor, true},
		{"against a settlement passed", settle(contract.ProposalOpen, 2, rec(o, protocol.VoteFor)), protocol.VoteAgainst, false},
		{"a punish case counts own votes only", punish, protocol.VoteFor, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := voteCounted(tc.p, d, c, tc.opt); got != tc.want {
				t.Fatalf("voteCounted = %v, want %v", got, tc.want)
			}
		})
	}
}
