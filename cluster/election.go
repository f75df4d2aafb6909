package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// Leader-election proposals (DESIGN §7, cluster/DESIGN.md "Election"): the
// slow path to a new leader when the fast claim (leadership.go) cannot
// gather its attestations — a leader cut off from the members that still
// heartbeats the chain, so the chain holds it valid, while the members
// cannot reach each other's attest RPC, or refuse to sign.
//
// Trigger: this node leads Raft without the chain's leader (a majority
// that works without it), has admitted no append from the chain's leader
// for ElectionAfter (counted from the loop's start at the earliest), the
// chain shows that leader valid, and no election of the epoch is open.
// It then files an election naming itself (filing is its vote). Every
// other member votes once on each open election of the current epoch:
// for, when it too has had no append from the leader for ElectionAfter;
// against otherwise. An election passes with more than 2/3 of the valid
// members other than the leader (contract.ElectionVotesNeeded); any
// member that sees it passed executes it. The chain then names the
// candidate leader of a new epoch and the leadership loop follows it as
// it follows a claim: the candidate, Raft leader already, starts leading;
// the old leader is fenced.

// election is an open election proposal of the current epoch.
type election struct {
	id        uint64
	el        protocol.Election
	voted     bool
	lastCheck time.Time
}

// runElection files, votes on and executes election proposals.
func (c *Channel) runElection(ctx context.Context) {
	t := time.NewTicker(c.cfg.ChainPollInterval)
	defer t.Stop()
	started := time.Now()
	var scan proposalScan
	var open []*election
	var filedEpoch uint64 // the epoch of this node's last filing
	for {
		news := false
		select {
		case <-ctx.Done():
			return
		case <-c.view.refreshed():
			news = true
		case <-t.C:
		}
		for _, pid := range scan.next(c) {
			if e, ok := c.readElection(ctx, pid); ok {
				open = append(open, e)
			}
		}
		leader, epoch, _ := c.view.current()
		kept := open[:0]
		for _, e := range open {
			if e.el.Epoch == epoch && !c.followElection(ctx, e, leader, news) {
				kept = append(kept, e)
			}
		}
		clear(open[len(kept):])
		open = kept
		if len(open) > 0 || filedEpoch == epoch || !c.electionDue(leader, started) {
			continue
		}
		if e, ok := c.fileElection(ctx, epoch); ok {
			filedEpoch = epoch
			open = append(open, e)
		}
	}
}

// leaderLostFor reports whether this node has admitted no append from
// leader for ElectionAfter, counting from since at the earliest (a node
// that just started has heard from nobody yet).
func (c *Channel) leaderLostFor(leader protocol.Address, since time.Time) bool {
	last := c.node.authz.lastContact(c.id, leader)
	if last.Before(since) {
		last = since
	}
	return time.Since(last) > c.cfg.electionAfter()
}

// electionDue reports whether this node should file an election: it leads
// Raft, the chain names another leader, valid on chain, that it has not
// heard from for ElectionAfter.
func (c *Channel) electionDue(leader protocol.Address, started time.Time) bool {
	if leader.IsZero() || leader == c.me() || c.raft.State() != raft.Leader {
		return false
	}
	info := c.view.members()
	if info == nil {
		return false
	}
	m, ok := info.Member(leader)
	return ok && m.Valid && c.leaderLostFor(leader, started)
}

// fileElection files an election naming this node for epoch.
func (c *Channel) fileElection(ctx context.Context, epoch uint64) (*election, bool) {
	el := protocol.Election{Epoch: epoch, Candidate: c.me()}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	pid, err := c.cfg.Chain.CreateProposal(cctx, c.id, protocol.ProposalElection, protocol.Marshal(&el))
	if err != nil {
		if ctx.Err() == nil {
			c.logger.Warn("election proposal refused", "epoch", epoch, "error", err)
			_ = c.refreshChain()
		}
		return nil, false
	}
	c.metrics.elections.WithLabelValues("filed").Inc()
	c.logger.Warn("leader unreachable and valid on chain: election proposed", "proposal", pid, "epoch", epoch)
	return &election{id: pid, el: el, voted: true}, true
}

// readElection reads proposal pid and returns it if it is an open
// election proposal.
func (c *Channel) readElection(ctx context.Context, pid uint64) (*election, bool) {
	cctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
	defer cancel()
	p, err := retryChain(cctx, func(ctx context.Context) (*settlement.ProposalInfo, error) {
		return c.cfg.Chain.Proposal(ctx, c.id, pid)
	})
	if err != nil || p.Kind != protocol.ProposalElection || p.Status != contract.ProposalOpen {
		return nil, false
	}
	e := &election{id: pid}
	if protocol.Unmarshal(p.Data, &e.el) != nil {
		return nil, false
	}
	for _, v := range p.Votes {
		if v.Voter == c.me() {
			e.voted = true
		}
	}
	return e, true
}

// followElection votes on e once and executes it once passed; it reports
// whether e needs no more following. It reads e on news of the channel
// (a vote is one) or every chainResync.
func (c *Channel) followElection(ctx context.Context, e *election, leader protocol.Address, news bool) bool {
	if !e.voted && leader != c.me() {
		opt := protocol.VoteAgainst
		if c.leaderLostFor(leader, time.Time{}) {
			opt = protocol.VoteFor
		}
		cctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
		err := c.cfg.Chain.Vote(cctx, c.id, e.id, opt)
		cancel()
		switch {
		case err == nil:
			c.metrics.elections.WithLabelValues(opt.String()).Inc()
			c.logger.Info("voted on an election", "proposal", e.id, "candidate", e.el.Candidate, "option", opt)
			e.voted = true
		case errors.Is(err, contract.ErrAlreadyVoted), errors.Is(err, contract.ErrNotEligible),
			errors.Is(err, contract.ErrNotMember):
			e.voted = true
		case errors.Is(err, contract.ErrProposalClosed), errors.Is(err, contract.ErrDeadlinePassed),
			errors.Is(err, contract.ErrNoProposal):
			return true
		default:
			if ctx.Err() == nil {
				c.logger.Warn("election vote failed", "proposal", e.id, "error", err)
			}
		}
	}
	if !news && time.Since(e.lastCheck) < c.chainResync() {
		return false
	}
	e.lastCheck = time.Now()
	cctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	p, err := c.cfg.Chain.Proposal(cctx, c.id, e.id)
	if err != nil {
		return false
	}
	if p.Status != contract.ProposalOpen {
		return true
	}
	if !p.Passed(0) {
		return false
	}
	err = c.cfg.Chain.ExecuteProposal(cctx, c.id, e.id)
	switch {
	case err == nil:
		c.metrics.elections.WithLabelValues("executed").Inc()
		c.logger.Info("election passed and executed", "proposal", e.id, "candidate", e.el.Candidate, "for", p.For, "of", p.ElectorateSize())
		_ = c.refreshChain()
		return true
	case errors.Is(err, contract.ErrProposalClosed):
		return true
	default:
		if ctx.Err() == nil {
			c.logger.Warn("cannot execute an election", "proposal", e.id, "error", err)
		}
		// A stale election (the epoch moved) fails to execute for good;
		// the epoch check above drops it once the view shows the move.
		_ = c.refreshChain()
		return false
	}
}
