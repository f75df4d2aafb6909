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
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// Settlement votes in a channel with candidates (docs/DESIGN.md §10).
//
// The chain counts a silent delegator as its candidate voted, and a
// delegator's own vote overrides that (delegate.Count). So a delegator's
// vote that agrees with its candidate's adds nothing to the tally, and
// only a vote the count would not give it needs a chain tx. The carrying
// follows from that:
//
//   - A delegator signs its vote and hands it to its candidate on record
//     (CarryVote), the one whose vote the chain counts for it; when that
//     one does not take it, to the candidate it is relayed from.
//   - A candidate sends one SubmitVotes tx a proposal: its own vote and
//     the delegators' votes it holds by then. It sends it as soon as its
//     own vote is ready, never before (a delegator's early vote waits for
//     it), unless its own vote is not ready within ownVoteWait.
//   - A delegator's vote arriving later is answered without a tx when the
//     chain's record already counts it (delegate.CountedAs: its own vote
//     is on record, or its candidate on record voted the same), when the
//     proposal is closed, or when it is a vote in favour of a settlement
//     that has passed; only any other vote goes in a further tx (rare: an
//     honest delegator that judged otherwise than its candidate).
//   - The same rule spares the candidate's own vote in favour of a
//     settlement already passed: the fifth candidate sends nothing.
//
// The answer a delegator gets, nil, says "the chain counts your vote, or
// needs no vote of yours": never more than the chain's record shows. The
// delegator does not take the candidate's word for it: it reads the
// proposal and checks the same rule (voteCounted) against the record.
// A candidate that answers "counted" and votes the other way, or does not
// vote, is caught there, and the delegator votes on chain itself. A
// delegator votes on chain itself too when no candidate relays it, or its
// candidate does not answer within carryVoteTimeout, which covers the
// candidate's wait for its own vote and its chain tx.

// ownVoteWait is how long a candidate holds its delegators' votes on a
// proposal for its own vote, which the tx must carry; past it they go
// without (a candidate that cannot judge the range yet, or a punish case
// against itself, on which it does not vote).
func (c *Channel) ownVoteWait() time.Duration { return c.cfg.PeerTimeout }

// carryVoteTimeout is how long a delegator waits for its candidate to
// carry a vote before it votes on chain itself: the candidate's wait for
// its own vote, its chain read and tx (bounded by ApplyTimeout, which
// suits the chain's block time), and the call itself.
func (c *Channel) carryVoteTimeout() time.Duration {
	return c.ownVoteWait() + c.cfg.ApplyTimeout + c.cfg.PeerTimeout
}

// carriedVote is one signed vote waiting for the candidate's next flush.
type carriedVote struct {
	v    protocol.Vote
	own  bool       // the candidate's own vote
	done chan error // buffered: the flush never waits on it
}

// boxEntry is what a candidate holds for one proposal.
type boxEntry struct {
	q     []*carriedVote
	own   bool      // the candidate's own vote is in q
	first time.Time // when q's first vote arrived
	// ownDone says the candidate's own vote went through the box (sent,
	// or needing no tx) or is on the chain's record: the delegators'
	// votes that arrive later wait no more for it.
	ownDone bool
}

// voteBox gathers the votes a candidate carries to the chain, by proposal.
type voteBox struct {
	mu struct {
		sync.Mutex
		m map[uint64]*boxEntry
	}
	kick chan struct{}

	// tries is a delegator's side: when it first handed its vote on a
	// proposal to a candidate, while no candidate has taken it.
	tries struct {
		sync.Mutex
		m map[uint64]time.Time
	}
}

func (b *voteBox) init() {
	b.mu.m = map[uint64]*boxEntry{}
	b.kick = make(chan struct{}, 1)
	b.tries.m = map[uint64]time.Time{}
}

// carryStart returns when this delegator first tried to hand its vote on
// pid to a candidate, now if it had not.
func (b *voteBox) carryStart(pid uint64, now time.Time) time.Time {
	b.tries.Lock()
	defer b.tries.Unlock()
	if t, ok := b.tries.m[pid]; ok {
		return t
	}
	if len(b.tries.m) >= maxBoxEntries {
		// Proposals given up on without an end: start afresh.
		clear(b.tries.m)
	}
	b.tries.m[pid] = now
	return now
}

// carryEnd forgets the tries on pid: a candidate took the vote, or the
// delegator votes itself.
func (b *voteBox) carryEnd(pid uint64) {
	b.tries.Lock()
	defer b.tries.Unlock()
	delete(b.tries.m, pid)
}

// maxCarried bounds the votes one proposal's box holds: a candidate
// carries at most its delegators' and its own.
const maxCarried = 1 << 12

// maxBoxEntries bounds the proposals a box remembers it voted on; the
// oldest idle ones are forgotten first (a later vote on one then waits
// for ownVoteWait, or finds the proposal closed).
const maxBoxEntries = 64

// voteGather is how long a candidate waits, after a delegator's vote
// arrives once its own vote is on record, for others to join it in one
// read of the proposal (most then need no tx).
const voteGather = 50 * time.Millisecond

// put queues v, the candidate's own vote when own, and returns where its
// outcome will be told.
func (b *voteBox) put(v protocol.Vote, own bool, now time.Time) (<-chan error, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e := b.mu.m[v.Proposal]
	if e == nil {
		e = &boxEntry{}
		b.mu.m[v.Proposal] = e
		b.trimLocked()
	}
	if len(e.q) >= maxCarried {
		return nil, fmt.Errorf("%w: %d votes queued on proposal %d", ErrBusy, len(e.q), v.Proposal)
	}
	for _, cv := range e.q {
		if cv.v.Voter == v.Voter {
			return nil, fmt.Errorf("%w: %s's vote on proposal %d is queued already", ErrBadTx, v.Voter, v.Proposal)
		}
	}
	if len(e.q) == 0 {
		e.first = now
	}
	cv := &carriedVote{v: v, own: own, done: make(chan error, 1)}
	e.q = append(e.q, cv)
	e.own = e.own || own
	select {
	case b.kick <- struct{}{}:
	default:
	}
	return cv.done, nil
}

// trimLocked forgets the oldest idle entries past maxBoxEntries.
func (b *voteBox) trimLocked() {
	if len(b.mu.m) <= maxBoxEntries {
		return
	}
	pids := make([]uint64, 0, len(b.mu.m))
	for pid := range b.mu.m {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	for _, pid := range pids {
		if len(b.mu.m) <= maxBoxEntries {
			return
		}
		if len(b.mu.m[pid].q) == 0 {
			delete(b.mu.m, pid)
		}
	}
}

// due takes the queues ready to go at now, in proposal order, and
// returns when the next one will be (zero: none waits). A queue is ready
// at once when it holds the candidate's own vote, voteGather after its
// first vote when the candidate's own is on record, and ownVoteWait after
// it otherwise.
func (b *voteBox) due(now time.Time, ownWait time.Duration) (pids []uint64, votes [][]*carriedVote, next time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var waiting []uint64
	for pid, e := range b.mu.m {
		if len(e.q) > 0 {
			waiting = append(waiting, pid)
		}
	}
	slices.Sort(waiting)
	for _, pid := range waiting {
		e := b.mu.m[pid]
		at := e.first.Add(ownWait)
		switch {
		case e.own:
			at = now
		case e.ownDone:
			at = e.first.Add(voteGather)
		}
		if at.After(now) {
			if next.IsZero() || at.Before(next) {
				next = at
			}
			continue
		}
		pids = append(pids, pid)
		votes = append(votes, e.q)
		e.q, e.own = nil, false
	}
	return pids, votes, next
}

// ownDone notes that the candidate's own vote on pid went through the
// box or is on record.
func (b *voteBox) ownDone(pid uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.mu.m[pid]; e != nil {
		e.ownDone = true
	}
}

// forget drops what the box knows of pid once it is closed; votes that
// arrived meanwhile stay, for the next round to answer.
func (b *voteBox) forget(pid uint64) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if e := b.mu.m[pid]; e != nil && len(e.q) == 0 {
		delete(b.mu.m, pid)
	}
}

// takeAll empties the box.
func (b *voteBox) takeAll() (votes [][]*carriedVote) {
	b.mu.Lock()
	defer b.mu.Unlock()
	pids := make([]uint64, 0, len(b.mu.m))
	for pid := range b.mu.m {
		pids = append(pids, pid)
	}
	slices.Sort(pids)
	for _, pid := range pids {
		votes = append(votes, b.mu.m[pid].q)
		delete(b.mu.m, pid)
	}
	return votes
}

// runVoteBox is a candidate's carrier loop: it sends each proposal's
// queue when due (voteBox.due).
func (c *Channel) runVoteBox(ctx context.Context) {
	for {
		pids, votes, next := c.votes.due(time.Now(), c.ownVoteWait())
		for i, pid := range pids {
			c.carryVotes(ctx, pid, votes[i])
		}
		if len(pids) > 0 {
			continue // votes may have arrived meanwhile
		}
		var wake <-chan time.Time
		var t *time.Timer
		if !next.IsZero() {
			t = time.NewTimer(time.Until(next))
			wake = t.C
		}
		select {
		case <-ctx.Done():
			c.failVotes(ErrClosed)
			return
		case <-c.votes.kick:
		case <-wake:
		}
		if t != nil {
			t.Stop()
		}
	}
}

func (c *Channel) failVotes(err error) {
	for _, q := range c.votes.takeAll() {
		for _, cv := range q {
			cv.done <- err
		}
	}
}

// voteCounted reports whether voter's vote opt on p needs no chain tx
// (package comment): p is closed (the chain takes no more votes), the
// record counts voter as it votes (delegate.CountedAs, voter delegating
// to candidate; a vote of its own on record, whatever the option, is
// final), or opt is in favour of a settlement that has passed. Only a
// settlement filed with candidates counts delegated weight; on any other
// proposal only the voter's own vote counts.
func voteCounted(p *settlement.ProposalInfo, voter, candidate protocol.Address, opt protocol.VoteOption) bool {
	if p.Status != contract.ProposalOpen {
		return true
	}
	cast := make([]delegate.Cast, len(p.Votes))
	for i, r := range p.Votes {
		cast[i] = delegate.Cast{Voter: r.Voter, Option: r.Option}
	}
	if _, own := delegate.CountedAs(cast, voter, protocol.Address{}); own {
		return true
	}
	if p.Kind != protocol.ProposalSettlement || len(p.Voters) == 0 {
		return false
	}
	if got, ok := delegate.CountedAs(cast, voter, candidate); ok && got == opt {
		return true
	}
	return opt == protocol.VoteFor && p.Passed(0)
}

// carryVotes submits the votes of one proposal in one tx, leaving out
// those the chain's record counts already (voteCounted): each vote is
// final there, and one refused vote would fail the whole tx. Those left
// out are answered nil. When a vote it carries reached the chain
// meanwhile by another way (the delegator voted itself), it sends the
// rest once more.
func (c *Channel) carryVotes(ctx context.Context, pid uint64, q []*carriedVote) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	finish := func(q []*carriedVote, err error) {
		for _, cv := range q {
			cv.done <- err
		}
	}
	l := c.layout()
	mb := misbehaving.Load()
	for try := 0; ; try++ {
		p, err := c.cfg.Chain.Proposal(ctx, c.id, pid)
		if err != nil {
			finish(q, err)
			return
		}
		if p.Status != contract.ProposalOpen {
			c.logger.Debug("proposal closed; votes not carried", "proposal", pid, "votes", len(q))
			c.votes.forget(pid)
			finish(q, nil)
			return
		}
		if slices.ContainsFunc(q, func(cv *carriedVote) bool { return cv.own }) ||
			slices.ContainsFunc(p.Votes, func(r contract.VoteRecord) bool { return r.Voter == c.me() }) {
			c.votes.ownDone(pid)
		}
		var send []protocol.Vote
		var pending []*carriedVote
		own := false
		for _, cv := range q {
			if voteCounted(p, cv.v.Voter, l.delegatedTo(cv.v.Voter), cv.v.Option) {
				cv.done <- nil
				continue
			}
			if !cv.own && mb != nil && mb.dropVote != nil && mb.dropVote(c.me(), cv.v.Voter) {
				c.logger.Warn("misbehaving: answering a delegator's vote counted without carrying it", "proposal", pid, "voter", cv.v.Voter)
				cv.done <- nil
				continue
			}
			send = append(send, cv.v)
			pending = append(pending, cv)
			own = own || cv.own
		}
		if len(send) == 0 {
			return
		}
		q = pending
		err = c.cfg.Chain.SubmitVotes(ctx, c.id, pid, send)
		if err == nil {
			c.metrics.votes.WithLabelValues("carried").Add(float64(len(send)))
			c.logger.Debug("carried votes to the chain", "proposal", pid, "votes", len(send), "own", own)
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
// with its delegators', and the box sends it at once. It reports whether
// the vote needs no retry.
func (c *Channel) carryOwnVote(pid uint64, opt protocol.VoteOption) bool {
	v := protocol.Vote{Channel: c.id, Proposal: pid, Option: opt}
	v.Sign(c.cfg.Key)
	done, err := c.votes.put(v, true, time.Now())
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
// its candidate on record, whose vote the chain counts for it, so that a
// vote agreeing with the candidate's costs no tx; when that candidate does
// not take it, to the candidate it is relayed from. The answer is checked
// against the chain's record (voteCounted). ok is false when no candidate
// took the vote within carryVoteTimeout of the first try, or the record
// does not count the vote though the candidate said so: the delegator
// then votes itself. settled is false when the next round should try
// again: the candidates refused for now, or the record could not be read.
func (c *Channel) voteThroughCandidate(pid uint64, opt protocol.VoteOption) (settled, ok bool) {
	l := c.layout()
	cand := l.delegatedTo(c.me())
	var addrs []string
	for _, a := range []string{l.nodeAddress(cand), c.relaySource()} {
		if a != "" && !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	v := protocol.Vote{Channel: c.id, Proposal: pid, Option: opt}
	v.Sign(c.cfg.Key)
	first := c.votes.carryStart(pid, time.Now())
	carried := ""
	for _, addr := range addrs {
		ctx, cancel := context.WithTimeout(c.ctx, c.carryVoteTimeout())
		err := c.node.peers.carryVote(ctx, addr, c.id, &v)
		cancel()
		if err == nil || voteSettled(err) {
			carried = addr
			break
		}
		c.logger.Info("candidate did not carry the vote", "candidate", addr, "proposal", pid, "error", err)
	}
	if carried == "" {
		// A refusal or a broken connection comes back at once: the
		// candidates are tried again next round, and the delegator
		// votes itself only once they failed for carryVoteTimeout.
		if time.Since(first) < c.carryVoteTimeout() {
			return false, true
		}
		c.votes.carryEnd(pid)
		c.logger.Info("no candidate carried the vote; voting on chain", "proposal", pid)
		return false, false
	}
	c.votes.carryEnd(pid)
	p, err := c.readProposal(c.ctx, pid)
	if err != nil {
		return false, true
	}
	if !voteCounted(p, c.me(), cand, opt) {
		c.logger.Warn("the candidate answered the vote counted, but the chain's record does not count it; voting on chain",
			"candidate", carried, "delegated_to", cand, "proposal", pid, "option", opt)
		return false, false
	}
	return true, true
}

// CarryVote takes a delegator's own vote for the chain. Its answer, nil,
// means the chain's record counts the vote or needs none (voteCounted),
// which the delegator checks there.
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
	if !c.knowsProposal(ctx, v.Proposal) {
		// Only proposals the chain has: no one makes a candidate read
		// the chain for made-up ones.
		return nil, rpcerr.Err(fmt.Errorf("%w: no proposal %d known on channel %s", ErrBadTx, v.Proposal, c.id))
	}
	if v.Voter != caller {
		// Each member hands over its own vote only: no one queues votes
		// in another's name, even signed ones it picked up.
		return nil, rpcerr.Err(fmt.Errorf("%w: vote of %s sent by %s", ErrBadTx, v.Voter, caller))
	}
	done, err := c.votes.put(v, false, time.Now())
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

// knowsProposal reports whether the chain view knows proposal pid. A
// proposal a little past the view's last (a delegator may hear of it
// first) is waited for, up to PeerTimeout, as the chain feed brings the
// view's next reads; the candidate reads nothing for it itself.
func (c *Channel) knowsProposal(ctx context.Context, pid uint64) bool {
	if pid == 0 {
		return false
	}
	var deadline <-chan time.Time
	for {
		read := c.view.refreshed()
		rec := c.view.channel()
		switch {
		case rec == nil:
			return false
		case pid <= rec.LastProposal:
			return true
		case pid > rec.LastProposal+recentProposals:
			return false
		}
		if deadline == nil {
			t := time.NewTimer(c.cfg.PeerTimeout)
			defer t.Stop()
			deadline = t.C
		}
		select {
		case <-read:
		case <-deadline:
			return false
		case <-ctx.Done():
			return false
		case <-c.ctx.Done():
			return false
		}
	}
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
