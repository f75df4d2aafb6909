package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// submitN submits n chat txs through node 0, one after the other, and
// returns the last outcome.
func (tc *testCluster) submitN(n int, tag string) *protocol.Outcome {
	return tc.submitVia(tc.nodes[0], n, tag)
}

// submitVia is submitN through node nd.
func (tc *testCluster) submitVia(nd *testNode, n int, tag string) *protocol.Outcome {
	tc.t.Helper()
	c := tc.channel(nd)
	var last *protocol.Outcome
	for i := 0; i < n; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		out, err := c.Submit(ctx, tc.tx(tc.users[i%len(tc.users)], fmt.Sprintf("%s%d;", tag, i)))
		cancel()
		if err != nil {
			tc.t.Fatalf("submit %s %d: %v", tag, i, err)
		}
		last = out
	}
	return last
}

// waitSettled waits until the chain's settled height is at least h and
// returns the channel record.
func (tc *testCluster) waitSettled(h uint64) *settlement.ChannelInfo {
	tc.t.Helper()
	cl := tc.chain.client(tc.nodes[0].key)
	var info *settlement.ChannelInfo
	testutil.WaitFor(tc.t, 30*time.Second, func() error {
		var err error
		if info, err = cl.Channel(context.Background(), tc.id); err != nil {
			return err
		}
		if info.SettledHeight < h {
			return fmt.Errorf("settled height %d, want %d", info.SettledHeight, h)
		}
		return nil
	})
	return info
}

// settlementOf returns the executed settlement proposal that settled up to
// height to.
func (tc *testCluster) settlementOf(info *settlement.ChannelInfo, to uint64) (*settlement.ProposalInfo, protocol.Settlement) {
	tc.t.Helper()
	cl := tc.chain.client(tc.nodes[0].key)
	for pid := info.LastProposal; pid > 0; pid-- {
		p, err := cl.Proposal(context.Background(), tc.id, pid)
		if err != nil {
			tc.t.Fatal(err)
		}
		var s protocol.Settlement
		if p.Kind != protocol.ProposalSettlement || protocol.Unmarshal(p.Data, &s) != nil {
			continue
		}
		if p.Status == contract.ProposalExecuted && s.To == to {
			return p, s
		}
	}
	tc.t.Fatalf("no executed settlement up to %d", to)
	return nil, protocol.Settlement{}
}

// checkSettledRound checks one executed settlement: votes, the chain's
// state against every member's state at that height, and pruned journals.
func (tc *testCluster) checkSettledRound(info *settlement.ChannelInfo, from uint64) {
	t := tc.t
	t.Helper()
	p, s := tc.settlementOf(info, info.SettledHeight)
	if s.From != from {
		t.Fatalf("settlement from %d, want %d", s.From, from)
	}
	if p.Against != 0 || p.Abstain != 0 || 3*p.For < 2*p.Electorate {
		t.Fatalf("settlement votes: %d for, %d against, %d abstain of %d", p.For, p.Against, p.Abstain, p.Electorate)
	}
	onChain, err := tc.chain.client(tc.nodes[0].key).SettledState(context.Background(), tc.id)
	if err != nil {
		t.Fatal(err)
	}
	if info.SettledDigest != s.Digest {
		t.Fatalf("chain settled digest %s, proposal %s", info.SettledDigest, s.Digest)
	}
	if s.StateHash.IsZero() || info.SettledStateHash != s.StateHash {
		t.Fatalf("chain settled state hash %s, proposal %s", info.SettledStateHash, s.StateHash)
	}
	testutil.WaitFor(t, 20*time.Second, func() error {
		for i, nd := range tc.nodes {
			var err error
			tc.channel(nd).Machine(func(m *fsm.Machine) {
				switch {
				case m == nil:
					err = fmt.Errorf("node %d has no state yet", i)
					return
				case m.Height() != s.To:
					// No tx after the round: the state is that of s.To.
					err = fmt.Errorf("node %d at height %d, want %d", i, m.Height(), s.To)
				case m.SettledHeight() != s.To:
					err = fmt.Errorf("node %d journal pruned to %d, want %d", i, m.SettledHeight(), s.To)
				case m.Resources().Hash() != onChain.Hash():
					err = fmt.Errorf("node %d state differs from the chain's settled state", i)
				}
				if d, _ := m.Digest(s.To); err == nil && d != s.Digest {
					err = fmt.Errorf("node %d D(%d) = %s, settled %s", i, s.To, d, s.Digest)
				}
				if sh, ok := m.StateHash(s.To); err == nil && (!ok || sh != s.StateHash) {
					err = fmt.Errorf("node %d state hash at %d = %s, settled %s", i, s.To, sh, s.StateHash)
				}
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if st := tc.channel(tc.nodes[1]).Status(); st.SettledHeight < s.To {
		// Status reads the chain view, which the chain feed refreshes once
		// the settlement is in a block.
		testutil.WaitFor(t, 5*time.Second, func() error {
			if h := tc.channel(tc.nodes[1]).Status().SettledHeight; h < s.To {
				return fmt.Errorf("status settled height %d, want %d", h, s.To)
			}
			return nil
		})
	}
}

func TestSettlementRounds(t *testing.T) {
	const every = 20
	tc := newTestClusterSpec(t, 3, 0, contract.ChannelConfig{SettleEveryTxs: every}, nil)

	tc.submitN(every, "a")
	info := tc.waitSettled(every)
	tc.checkSettledRound(info, 1)
	first := info.SettledHeight

	// The next round starts right after the settled height.
	tc.submitN(every, "b")
	info = tc.waitSettled(first + every)
	tc.checkSettledRound(info, first+1)

	// The chain's state is the initial state with every round applied.
	initial, err := tc.chain.client(tc.nodes[0].key).InitialState(context.Background(), tc.id)
	if err != nil {
		t.Fatal(err)
	}
	if len(initial) != 0 {
		t.Fatalf("initial state has %d accounts", len(initial))
	}
}

func TestSettlementWrongProposalVotedAgainst(t *testing.T) {
	// The leader proposes only every 1000 heights: the test's proposal is
	// the only one.
	tc := newTestClusterSpec(t, 3, 0, contract.ChannelConfig{SettleEveryTxs: 1000}, nil)
	last := tc.submitN(5, "w")
	tc.checkConverged([]*protocol.Outcome{last}, 10*time.Second)

	var right protocol.Settlement
	tc.channel(tc.nodes[1]).Machine(func(m *fsm.Machine) {
		var err error
		if right, err = m.Settlement(last.Height); err != nil {
			t.Fatal(err)
		}
	})
	if right.ChangeSet.Len() == 0 {
		t.Fatal("empty change set")
	}
	cases := []struct {
		name  string
		alter func(s *protocol.Settlement)
		want  protocol.VoteOption
	}{
		{"changed value", func(s *protocol.Settlement) {
			ch := &s.ChangeSet.Changes[0]
			ch.New = append(append([]byte(nil), ch.New...), 'x')
		}, protocol.VoteAgainst},
		{"wrong digest", func(s *protocol.Settlement) { s.Digest[0] ^= 1 }, protocol.VoteAgainst},
		{"wrong state hash", func(s *protocol.Settlement) { s.StateHash[0] ^= 1 }, protocol.VoteAgainst},
		{"no state hash", func(s *protocol.Settlement) { s.StateHash = protocol.Hash{} }, protocol.VoteAgainst},
		{"right", func(*protocol.Settlement) {}, protocol.VoteFor},
	}
	proposer := tc.nodes[1].cfg.Chain
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			s := right
			s.ChangeSet = protocol.ChangeSet{Changes: append([]protocol.Change(nil), right.ChangeSet.Changes...)}
			tt.alter(&s)
			pid, err := proposer.CreateProposal(context.Background(), tc.id, protocol.ProposalSettlement, protocol.Marshal(&s))
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if opt, err := tc.channel(tc.nodes[2]).JudgeSettlement(ctx, pid); err != nil || opt != tt.want {
				t.Fatalf("JudgeSettlement: %s, %v; want %s", opt, err, tt.want)
			}
			testutil.WaitFor(t, 20*time.Second, func() error {
				p, err := proposer.Proposal(context.Background(), tc.id, pid)
				if err != nil {
					return err
				}
				if len(p.Votes) < 2 {
					return fmt.Errorf("%d votes", len(p.Votes))
				}
				for _, v := range p.Votes {
					if v.Option != tt.want {
						return fmt.Errorf("%s voted %s, want %s", v.Voter, v.Option, tt.want)
					}
				}
				if tt.want == protocol.VoteFor {
					// Passed: the leader executes only its own proposals.
					if !p.Passed(0) {
						return fmt.Errorf("not passed: %d for", p.For)
					}
					return nil
				}
				if len(p.Votes) != 3 {
					return fmt.Errorf("%d votes", len(p.Votes))
				}
				return nil
			})
			if tt.want == protocol.VoteAgainst {
				// Voted down: it never executes.
				err := proposer.ExecuteProposal(context.Background(), tc.id, pid)
				if !errors.Is(err, contract.ErrNotPassed) && !errors.Is(err, contract.ErrProposalClosed) {
					t.Fatalf("executing a proposal voted down: %v", err)
				}
				if p, err := proposer.Proposal(context.Background(), tc.id, pid); err != nil || p.Status == contract.ProposalExecuted {
					t.Fatalf("proposal voted down: %v, status %v", err, p.Status)
				}
			}
		})
	}
}

func TestSettlementRangesCappedAndContiguous(t *testing.T) {
	const maxHeights = 8
	tc := newTestClusterSpec(t, 3, 0, contract.ChannelConfig{SettleEveryTxs: 3, SettleInterval: 200 * time.Millisecond},
		func(c *Config) { c.SettleMaxHeights = maxHeights })
	last := tc.submitN(30, "c")
	// The last few heights, fewer than 3, settle by time.
	info := tc.waitSettled(last.Height)

	// Every executed settlement covers at most maxHeights heights, and the
	// executed ones follow each other from height 1 on.
	cl := tc.chain.client(tc.nodes[0].key)
	next, lastFrom := uint64(1), uint64(0)
	for pid := uint64(1); pid <= info.LastProposal; pid++ {
		p, err := cl.Proposal(context.Background(), tc.id, pid)
		if err != nil {
			t.Fatal(err)
		}
		var s protocol.Settlement
		if err := protocol.Unmarshal(p.Data, &s); err != nil {
			t.Fatal(err)
		}
		if s.To-s.From+1 > maxHeights {
			t.Fatalf("proposal %d covers %d..%d, more than %d heights", pid, s.From, s.To, maxHeights)
		}
		if p.Status != contract.ProposalExecuted {
			continue
		}
		if s.From != next {
			t.Fatalf("proposal %d settles from %d, want %d", pid, s.From, next)
		}
		next, lastFrom = s.To+1, s.From
	}
	if next != info.SettledHeight+1 {
		t.Fatalf("executed settlements reach %d, chain settled %d", next-1, info.SettledHeight)
	}
	tc.checkSettledRound(info, lastFrom)
}

// TestSettlementSuffixBound: a channel whose policy would settle only
// hourly is settled once SettleMaxHeights heights are unsettled.
func TestSettlementSuffixBound(t *testing.T) {
	const bound = 6
	tc := newTestClusterSpec(t, 3, 0, contract.ChannelConfig{SettleInterval: time.Hour},
		func(c *Config) { c.SettleMaxHeights = bound })
	tc.submitN(bound, "s")
	info := tc.waitSettled(bound)
	p, s := tc.settlementOf(info, info.SettledHeight)
	if s.From != 1 || s.To-s.From+1 > bound || p.Against != 0 {
		t.Fatalf("forced settlement %d..%d, %d against", s.From, s.To, p.Against)
	}
	tc.checkSettledRound(info, 1)
}

func TestSettlementAfterFailover(t *testing.T) {
	const every = 10
	tc := newTestClusterSpec(t, 3, 0, contract.ChannelConfig{SettleEveryTxs: every}, nil)
	tc.submitN(every, "f")
	first := tc.waitSettled(every).SettledHeight

	// The leader stops; the next one settles with the two members left
	// (2 of 3 in favour is enough).
	old := tc.waitLeader(10 * time.Second)
	tc.stopNode(old)
	nl := tc.waitOtherLeader(old, 20*time.Second)
	last := tc.submitVia(nl, every, "g")
	info := tc.waitSettled(last.Height)
	if info.SettledHeight <= first {
		t.Fatalf("settled height %d after the failover, was %d", info.SettledHeight, first)
	}

	// The old leader comes back, catches up and prunes to the chain's
	// settled height too.
	tc.restartNode(old)
	tc.checkSettledRound(info, first+1)
}

// Members that run no node count in the electorate: they vote with their
// own key, as the node they trust judges.
func TestSettlementClientMembersVote(t *testing.T) {
	const every = 10
	tc := newTestClusterSpec(t, 3, 2, contract.ChannelConfig{SettleEveryTxs: every}, nil)
	clients := tc.users[3:]
	c := tc.channel(tc.nodes[0])
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	defer func() { cancel(); <-done }()
	st, err := tc.chain.client(clients[0]).Watch(ctx, settlement.EventID{})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(done)
		for {
			e, err := st.Recv()
			if err != nil {
				return
			}
			if e.Kind != contract.EventProposalCreated || e.Channel != tc.id || e.ProposalKind != protocol.ProposalSettlement {
				continue
			}
			opt, err := c.JudgeSettlement(ctx, e.Proposal)
			if err != nil {
				continue
			}
			for _, k := range clients {
				if err := tc.chain.client(k).Vote(ctx, tc.id, e.Proposal, opt); err != nil && ctx.Err() == nil &&
					!errors.Is(err, contract.ErrProposalClosed) {
					t.Errorf("client vote: %v", err)
				}
			}
		}
	}()
	last := tc.submitN(every, "k")
	info := tc.waitSettled(last.Height)
	tc.checkSettledRound(info, 1)
}

// refusingChain refuses settlement proposals while refuse is set, as a
// chain that keeps failing them would.
type refusingChain struct {
	Chain
	refuse *atomic.Bool
}

func (c *refusingChain) CreateProposal(ctx context.Context, id protocol.ChannelID, kind protocol.ProposalKind, data []byte) (uint64, error) {
	if kind == protocol.ProposalSettlement && c.refuse.Load() {
		return 0, errors.New("settlement refused by the test")
	}
	return c.Chain.CreateProposal(ctx, id, kind, data)
}

// TestSettlementSuffixHardBoundBusy: while settlements fail, the leader
// orders calls until the unsettled suffix passes 4 × SettleMaxHeights,
// then answers ErrBusy; once a settlement executes it orders them again.
func TestSettlementSuffixHardBoundBusy(t *testing.T) {
	const bound = 2
	var refuse atomic.Bool
	refuse.Store(true)
	tc := newTestClusterSpec(t, 3, 0, contract.ChannelConfig{SettleInterval: time.Hour}, func(c *Config) {
		c.SettleMaxHeights = bound
		c.Chain = &refusingChain{Chain: c.Chain, refuse: &refuse}
	})
	leader := tc.waitLeader(10 * time.Second)
	c := tc.channel(leader)
	user := tc.users[0]
	submit := func(tx *protocol.SignedTx) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_, err := c.Submit(ctx, tx)
		return err
	}
	// Submit until busy; a refused tx is submitted again later, so the
	// nonces stay in order.
	tx := tc.tx(user, "h;")
	applied := 0
	testutil.WaitFor(t, 20*time.Second, func() error {
		err := submit(tx)
		switch {
		case errors.Is(err, ErrBusy):
			return nil
		case err != nil:
			t.Fatalf("submit: %v", err)
		}
		applied++
		tx = tc.tx(user, "h;")
		return fmt.Errorf("%d txs ordered, not busy yet", applied)
	})
	if applied < suffixHardFactor*bound {
		t.Fatalf("busy after %d txs, the hard bound is %d heights", applied, suffixHardFactor*bound)
	}
	if info := tc.waitSettled(0); info.SettledHeight != 0 {
		t.Fatalf("settled %d while settlements are refused", info.SettledHeight)
	}
	// Settlements go through again: the suffix shrinks and calls are
	// ordered again.
	refuse.Store(false)
	testutil.WaitFor(t, 30*time.Second, func() error {
		if err := submit(tx); err != nil {
			return err
		}
		return nil
	})
	if info := tc.waitSettled(1); info.SettledHeight == 0 {
		t.Fatal("not settled")
	}
}
