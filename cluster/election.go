package cluster

import (
	"context"
	"errors"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// Leader-election proposals (DESIGN §7, cluster/DESIGN.md "Election"): the
// slow path to a new leader when the fast claim (leadership.go) cannot
// gather its attestations — a leader cut off from the members that still
// heartbeats the chain, so the chain holds it valid, while the members
// cannot reach each other's attest RPC, or refuse to sign.
//
// Trigger: this node leads Raft without the chain's leader (a majority
// that works without it), the chain shows that leader valid, and the
// leader has not answered this node's status probes (one each
// ElectionTimeout, as the hand-over's) for ElectionAfter, and no election
// of the epoch is open. It then files an election naming itself (filing
// is its vote). Every other member of its electorate (the valid members
// other than the leader; past 5 members, the candidates among them: a
// delegator hears the leader only through its candidate) votes once on
// each open election of the current epoch: for, when it has admitted no
// append from the leader for ElectionAfter and the leader does not answer
// its own probe either; against otherwise. An append is not enough
// evidence alone: a member that follows another Raft leader (a hand-over
// under way) hears nothing from a chain leader that is alive. An election
// passes with more than 2/3 of its electorate
// (contract.ElectionVotesNeeded); any
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
	var scan proposalScan
	var open []*election
	var filedEpoch uint64 // the epoch of this node's last filing
	var pr leaderProbe
	refreshed := c.view.refreshed() // re-armed as it fires: a read taken in meanwhile wakes the next round (settler)
	for {
		news := false
		select {
		case <-ctx.Done():
			return
		case <-refreshed:
			refreshed = c.view.refreshed()
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
		if len(open) > 0 || filedEpoch == epoch || !c.electionDue(ctx, &pr, leader) {
			continue
		}
		if e, ok := c.fileElection(ctx, epoch); ok {
			filedEpoch = epoch
			open = append(open, e)
		}
	}
}

// leaderProbe is the filer's record of its probes of the chain's leader.
type leaderProbe struct {
	leader    protocol.Address
	last      time.Time // the last probe
	lostSince time.Time // the first of the failed probes since the last answer; zero after one
}

// electionDue reports whether this node should file an election: it leads
// Raft, the chain names another leader, valid on chain, whose probes have
// failed for ElectionAfter.
func (c *Channel) electionDue(ctx context.Context, pr *leaderProbe, leader protocol.Address) bool {
	if pr.leader != leader {
		*pr = leaderProbe{leader: leader}
	}
	if leader.IsZero() || leader == c.me() || c.raft.State() != raft.Leader {
		pr.lostSince = time.Time{}
		return false
	}
	info := c.view.members()
	if info == nil {
		return false
	}
	if m, ok := info.Member(leader); !ok || !m.Valid {
		pr.lostSince = time.Time{}
		return false
	}
	if time.Since(pr.last) >= c.cfg.ElectionTimeout {
		pr.last = time.Now()
		if c.leaderAnswers(ctx, leader) {
			pr.lostSince = time.Time{}
		} else if pr.lostSince.IsZero() {
			pr.lostSince = pr.last
		}
	}
	return !pr.lostSince.IsZero() && time.Since(pr.lostSince) >= c.cfg.electionAfter()
}

// leaderAnswers reports whether the member leader's node answers a status
// probe at its Raft address within ElectionTimeout. A leader not in the
// Raft configuration cannot answer.
func (c *Channel) leaderAnswers(ctx context.Context, leader protocol.Address) bool {
	srv, ok := c.raftServer(leader)
	if !ok {
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.ElectionTimeout)
	defer cancel()
	_, err := c.node.peers.status(cctx, string(srv.Address), c.id)
	return err == nil
}

// leaderLost reports whether this node finds leader unreachable, for its
// vote: no append admitted from it for ElectionAfter, and no answer to a
// probe now.
func (c *Channel) leaderLost(ctx context.Context, leader protocol.Address) bool {
	if time.Since(c.node.authz.lastContact(c.id, leader)) <= c.cfg.electionAfter() {
		return false
	}
	return !c.leaderAnswers(ctx, leader)
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
	p, err := c.readProposal(ctx, pid)
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
	if !p.InElectorate(c.me()) {
		// A delegator has no say (it hears the leader only through its
		// candidate): a vote would be a refused chain tx.
		e.voted = true
	}
	return e, true
}

// followElection votes on e once and executes it once passed; it reports
// whether e needs no more following. It reads e on news of the channel
// (a vote is one) or every chainResync.
func (c *Channel) followElection(ctx context.Context, e *election, leader protocol.Address, news bool) bool {
	if !e.voted && leader != c.me() {
		opt := protocol.VoteAgainst
		if c.leaderLost(ctx, leader) {
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
