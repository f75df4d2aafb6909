package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/scraft/scraft/cluster/peerpb"
	"github.com/scraft/scraft/delegate"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/protocol/rpcerr"
	"github.com/scraft/scraft/settlement/contract"
)

// Settlement votes in a channel with candidates (docs/DESIGN.md §10): a
// delegator signs its vote and hands it to the candidate it is relayed
// from (CarryVote); the candidate gathers its own vote and those of its
// delegators that arrive meanwhile and submits them in one SubmitVotes
// tx a proposal each flush. A delegator whose candidate does not answer
// votes on chain itself. The chain counts a silent delegator as its
// candidate voted, and a delegator's own vote overrides that.

// carriedVote is one signed vote waiting for the candidate's next flush.
type carriedVote struct {
	v    protocol.Vote
	done chan error // buffered: the flush never waits on it
}

// voteBox gathers the votes a candidate carries to the chain, by proposal.
type voteBox struct {
	mu   sync.Mutex
	m    map[uint64][]*carriedVote
	kick chan struct{}
}

func (b *voteBox) init() {
	b.m = map[uint64][]*carriedVote{}
	b.kick = make(chan struct{}, 1)
}

// maxCarried bounds the votes one proposal's box holds: a candidate
// carries at most its delegators' and its own.
const maxCarried = 1 << 12

// put queues v and returns where its outcome will be told.
func (b *voteBox) put(v protocol.Vote) (<-chan error, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	q := b.m[v.Proposal]
	if len(q) >= maxCarried {
		return nil, fmt.Errorf("%w: %d votes queued on proposal %d", ErrBusy, len(q), v.Proposal)
	}
	for _, cv := range q {
		if cv.v.Voter == v.Voter {
			return nil, fmt.Errorf("%w: %s's vote on proposal %d is queued already", ErrBadTx, v.Voter, v.Proposal)
		}
	}
	cv := &carriedVote{v: v, done: make(chan error, 1)}
	b.m[v.Proposal] = append(q, cv)
	select {
	case b.kick <- struct{}{}:
	default:
	}
	return cv.done, nil
}

// take empties the box and returns its votes by proposal, in proposal
// order.
func (b *voteBox) take() (pids []uint64, votes [][]*carriedVote) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for pid := range b.m {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	for _, pid := range pids {
		votes = append(votes, b.m[pid])
		delete(b.m, pid)
	}
	return pids, votes
}

// voteGather is how long a candidate waits, after the first vote of a
// flush arrives, for others to join it in the same tx.
const voteGather = 50 * time.Millisecond

// runVoteBox is a candidate's carrier loop: it submits the queued votes,
// one SubmitVotes tx a proposal, a moment after the first arrives.
func (c *Channel) runVoteBox(ctx context.Context) {
	for {
		select {
		case <-ctx.Done():
			c.failVotes(ErrClosed)
			return
		case <-c.votes.kick:
		}
		select {
		case <-ctx.Done():
			c.failVotes(ErrClosed)
			return
		case <-time.After(voteGather):
		}
		pids, votes := c.votes.take()
		for i, pid := range pids {
			c.carryVotes(ctx, pid, votes[i])
		}
	}
}

func (c *Channel) failVotes(err error) {
	_, votes := c.votes.take()
	for _, q := range votes {
		for _, cv := range q {
			cv.done <- err
		}
	}
}

// carryVotes submits the votes of one proposal in one tx, without those
// the chain has already (each vote is final there, and one refused vote
// would fail the whole tx), and none once the proposal is closed: with
// delegated weight a settlement often passes before its delegators'
// votes are in, and every later tx for it would be refused, a chain tx
// each; the delegators are answered as if carried, so that none votes
// on chain instead.
// When a vote it carries reached the chain meanwhile by another way (the
// delegator voted itself), it sends the rest once more.
func (c *Channel) carryVotes(ctx context.Context, pid uint64, q []*carriedVote) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	finish := func(q []*carriedVote, err error) {
		for _, cv := range q {
			cv.done <- err
		}
	}
	for try := 0; ; try++ {
		p, err := c.cfg.Chain.Proposal(ctx, c.id, pid)
		if err != nil {
			finish(q, err)
			return
		}
		if p.Status != contract.ProposalOpen {
			// Nothing to carry: the votes need no retry, on chain or here.
			c.logger.Debug("proposal closed; votes not carried", "proposal", pid, "votes", len(q))
			finish(q, nil)
			return
		}
		var send []protocol.Vote
		var pending []*carriedVote
		for _, cv := range q {
			if slices.ContainsFunc(p.Votes, func(r contract.VoteRecord) bool { return r.Voter == cv.v.Voter }) {
				cv.done <- nil
				continue
			}
			send = append(send, cv.v)
			pending = append(pending, cv)
		}
		if len(send) == 0 {
			return
		}
		q = pending
		err = c.cfg.Chain.SubmitVotes(ctx, c.id, pid, send)
		if err == nil {
			c.metrics.votes.WithLabelValues("carried").Add(float64(len(send)))
			c.logger.Debug("carried votes to the chain", "proposal", pid, "votes", len(send))
		} else if errors.Is(err, contract.ErrAlreadyVoted) && try == 0 {
			continue
		} else {
			c.logger.Warn("cannot carry votes to the chain", "proposal", pid, "votes", len(send), "error", err)
		}
		finish(q, err)
		return
	}
}

// carryOwnVote is castVote on a candidate: its own vote goes in the box
// with its delegators'. It reports whether the vote needs no retry.
func (c *Channel) carryOwnVote(pid uint64, opt protocol.VoteOption) bool {
	v := protocol.Vote{Channel: c.id, Proposal: pid, Option: opt}
	v.Sign(c.cfg.Key)
	done, err := c.votes.put(v)
	if err != nil {
		return false
	}
	select {
	case err = <-done:
	case <-c.ctx.Done():
		return true
	}
	return voteSettled(err)
}

// voteSettled reports whether a vote call's outcome needs no retry.
func voteSettled(err error) bool {
	return err == nil || errors.Is(err, contract.ErrAlreadyVoted) || errors.Is(err, contract.ErrProposalClosed) ||
		errors.Is(err, contract.ErrNotEligible) || errors.Is(err, contract.ErrNoProposal) ||
		errors.Is(err, contract.ErrNotMember)
}

// voteThroughCandidate is castVote on a delegator: its signed vote goes to
// the candidate it is relayed from. ok is false when there is none or it
// did not take the vote: the delegator then votes itself.
func (c *Channel) voteThroughCandidate(pid uint64, opt protocol.VoteOption) (settled, ok bool) {
	addr := c.relaySource()
	if addr == "" {
		return false, false
	}
	v := protocol.Vote{Channel: c.id, Proposal: pid, Option: opt}
	v.Sign(c.cfg.Key)
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ApplyTimeout)
	defer cancel()
	err := c.node.peers.carryVote(ctx, addr, c.id, &v)
	if err != nil && !voteSettled(err) {
		c.logger.Info("candidate did not carry the vote; voting on chain", "candidate", addr, "proposal", pid, "error", err)
		return false, false
	}
	return true, true
}

// CarryVote takes a delegator's own settlement vote for the chain.
func (p *peerService) CarryVote(ctx context.Context, req *peerpb.CarryVoteRequest) (*peerpb.CarryVoteResponse, error) {
	caller, _, err := verifyCaller(req.Caller, "CarryVote", req.Channel, req.Vote)
	if err != nil {
		return nil, rpcerr.Err(err)
	}
	if err := p.admit(ctx, req.Channel, caller); err != nil {
		return nil, err
	}
	c, err := p.channelFor(req.Channel, caller)
	if err != nil {
		return nil, err
	}
	if !c.relaysFor() {
		return nil, rpcerr.Err(fmt.Errorf("%w: this member is no candidate of channel %s", ErrRefused, c.id))
	}
	var v protocol.Vote
	if err := protocol.Unmarshal(req.Vote, &v); err != nil {
		return nil, rpcerr.Err(fmt.Errorf("%w: vote: %v", ErrBadTx, err))
	}
	if err := delegate.VerifyVote(&v, c.id, v.Proposal); err != nil {
		return nil, rpcerr.Err(fmt.Errorf("%w: %v", ErrBadTx, err))
	}
	if rec := c.view.channel(); rec == nil || v.Proposal == 0 || v.Proposal > rec.LastProposal {
		// Only proposals the chain has: no one makes a candidate read
		// the chain for made-up ones.
		return nil, rpcerr.Err(fmt.Errorf("%w: no proposal %d known on channel %s", ErrBadTx, v.Proposal, c.id))
	}
	if v.Voter != caller {
		// Each member hands over its own vote only: no one queues votes
		// in another's name, even signed ones it picked up.
		return nil, rpcerr.Err(fmt.Errorf("%w: vote of %s sent by %s", ErrBadTx, v.Voter, caller))
	}
	done, err := c.votes.put(v)
	if err != nil {
		return nil, rpcerr.Err(err)
	}
	select {
	case err = <-done:
	case <-ctx.Done():
		return nil, rpcerr.Err(ctx.Err())
	}
	if err != nil {
		return nil, rpcerr.Err(err)
	}
	return &peerpb.CarryVoteResponse{}, nil
}

// carryVote hands v to the candidate at addr.
func (p *peerClient) carryVote(ctx context.Context, addr string, id protocol.ChannelID, v *protocol.Vote) error {
	cl, err := p.client(addr)
	if err != nil {
		return err
	}
	raw := protocol.Marshal(v)
	_, err = cl.CarryVote(ctx, &peerpb.CarryVoteRequest{Channel: id[:], Vote: raw, Caller: signCaller(p.key, "CarryVote", id[:], raw)})
	return rpcerr.From(err)
}
