package contract

import (
	"fmt"
	"slices"

	"github.com/scraft/scraft/delegate"
	"github.com/scraft/scraft/protocol"
)

// createProposal files a proposal after checking its payload against the
// channel as it is now. Any member may propose. A punish or election
// proposal takes its electorate now (Proposal.Voters) and votes until
// Params.VoteWindow has passed; filing it counts as the proposer's vote in favour
// when the proposer is in the electorate (the reporter of a punishment
// always is).
func (x *exec) createProposal(c *CreateProposal) error {
	ch, err := x.openChannel(c.Channel)
	if err != nil {
		return err
	}
	if _, err := x.member(ch.ID, x.env.Sender); err != nil {
		return err
	}
	p := &Proposal{
		Kind:          c.Type,
		Proposer:      x.env.Sender,
		Data:          c.Data,
		CreatedHeight: x.env.Height,
		CreatedAtMs:   x.env.TimeMs,
		Electorate:    ch.Members,
		MaxJoinSeq:    ch.LastJoinSeq,
	}
	var caseAt []byte // the offence's case key, for a punishment
	switch c.Type {
	case protocol.ProposalSettlement:
		s, err := decodePayload(c.Data, &protocol.Settlement{})
		if err != nil {
			return err
		}
		if err := x.checkSettlement(ch, s); err != nil {
			return err
		}
		if delegate.Delegated(ch.Members) {
			// Counted with delegated weight (recount): the electorate is
			// kept, so a voter removed before execution still counts.
			p.Voters = x.memberList(ch.ID)
		}
	case protocol.ProposalPunish:
		pu, err := decodePayload(c.Data, &protocol.Punish{})
		if err != nil {
			return err
		}
		if caseAt, err = x.checkPunish(ch, pu); err != nil {
			return err
		}
		for _, m := range x.memberList(ch.ID) {
			if m != pu.Target {
				p.Voters = append(p.Voters, m)
			}
		}
		p.DeadlineMs = x.env.TimeMs + ms(x.params.VoteWindow)
	case protocol.ProposalElection:
		el, err := decodePayload(c.Data, &protocol.Election{})
		if err != nil {
			return err
		}
		if err := x.checkElection(ch, el); err != nil {
			return err
		}
		// The electorate is whoever could have heard from the leader:
		// in a channel that runs through candidates only they do (the
		// attestations' rule, checkAttestations). A delegator hears the
		// leader through its candidate, so to it a live leader looks
		// gone; counted, the delegators of a channel of 100 would pass
		// any candidate's election against a leader that is alive.
		for _, m := range x.members(ch.ID) {
			if m.Address != ch.Leader && m.ValidAt(x.env.TimeMs, x.params.HeartbeatTTL) && isCandidate(ch, m.Address) {
				p.Voters = append(p.Voters, m.Address)
			}
		}
		if len(p.Voters) == 0 {
			return fmt.Errorf("%w: no valid member other than the leader could vote on an election", ErrNotEligible)
		}
		p.DeadlineMs = x.env.TimeMs + ms(x.params.VoteWindow)
	case protocol.ProposalCensorship:
		cs, err := decodePayload(c.Data, &protocol.Censorship{})
		if err != nil {
			return err
		}
		if err := x.checkComplaint(ch, cs); err != nil {
			return err
		}
		window := ch.Config.CensorshipWindow
		if window == 0 {
			window = x.params.CensorshipWindow
		}
		p.DeadlineMs = x.env.TimeMs + ms(window)
	default:
		return fmt.Errorf("%w: proposal kind %d", ErrMalformed, c.Type)
	}
	ch.LastProposal++
	p.ID = ch.LastProposal
	x.putChannel(ch)
	x.rc.Proposal = p.ID
	x.emit(Event{Kind: EventProposalCreated, Channel: ch.ID, Proposal: p.ID, ProposalKind: p.Kind, Member: p.Proposer})
	if caseAt != nil {
		putU64(x.st, caseAt, p.ID)
	}
	if p.Kind != protocol.ProposalSettlement && len(p.Voters) > 0 && p.InElectorate(p.Proposer) {
		x.recordVote(ch, p, p.Proposer, protocol.VoteFor)
	}
	put(x.st, proposalKey(ch.ID, p.ID), p)
	return nil
}

func decodePayload[T protocol.Decodable](data []byte, v T) (T, error) {
	if err := protocol.Unmarshal(data, v); err != nil {
		return v, fmt.Errorf("%w: proposal data: %v", ErrMalformed, err)
	}
	return v, nil
}

// checkSettlement: the range starts right after the settled height and the
// change set applies to the settled state.
func (x *exec) checkSettlement(ch *Channel, s *protocol.Settlement) error {
	if s.From != ch.SettledHeight+1 {
		return fmt.Errorf("%w: from %d, settled height %d", ErrBadRange, s.From, ch.SettledHeight)
	}
	if _, err := x.settledStateAfter(ch, s.ChangeSet); err != nil {
		return err
	}
	return nil
}

func (x *exec) settledStateAfter(ch *Channel, cs protocol.ChangeSet) (protocol.State, error) {
	st := x.settledState(ch.ID)
	if err := st.Apply(cs); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrStateMismatch, err)
	}
	return st, nil
}

func (x *exec) settledState(id protocol.ChannelID) protocol.State {
	b := x.st.Get(stateKey(id))
	d := protocol.NewDecoder(b)
	st := protocol.DecodeState(d)
	if err := d.Finish(); err != nil {
		panic(fmt.Sprintf("settled state of %s: %v", id, err))
	}
	return st
}

// checkElection: the proposal is for the current epoch and names a member
// that is not the leader and, in a channel with candidates, is one.
func (x *exec) checkElection(ch *Channel, el *protocol.Election) error {
	if el.Epoch != ch.Epoch {
		return fmt.Errorf("%w: election for epoch %d, channel is at %d", ErrStaleEpoch, el.Epoch, ch.Epoch)
	}
	if el.Candidate == ch.Leader {
		return fmt.Errorf("%w: %s", ErrAlreadyLeader, el.Candidate)
	}
	if _, err := x.member(ch.ID, el.Candidate); err != nil {
		return err
	}
	if !isCandidate(ch, el.Candidate) {
		return fmt.Errorf("%w: %s may not lead; the channel's candidates are %v", ErrNotCandidate, el.Candidate, ch.Candidates)
	}
	return nil
}

func (x *exec) proposal(id protocol.ChannelID, pid uint64) (*Proposal, error) {
	var p Proposal
	if !get(x.st, proposalKey(id, pid), &p) {
		return nil, fmt.Errorf("%w: %d in %s", ErrNoProposal, pid, id)
	}
	return &p, nil
}

// vote records the sender's own vote.
func (x *exec) vote(c *Vote) error {
	ch, err := x.openChannel(c.Channel)
	if err != nil {
		return err
	}
	p, err := x.proposal(ch.ID, c.Proposal)
	if err != nil {
		return err
	}
	if err := x.castVote(ch, p, x.env.Sender, c.Option); err != nil {
		return err
	}
	x.recount(ch, p)
	x.failIfHopeless(ch, p)
	put(x.st, proposalKey(ch.ID, p.ID), p)
	return nil
}

// submitVotes records member-signed votes carried by anyone (a candidate
// for itself and its delegators, in one tx). All votes must be valid
// (delegate.VerifyVote) or none is recorded.
func (x *exec) submitVotes(c *SubmitVotes) error {
	ch, err := x.openChannel(c.Channel)
	if err != nil {
		return err
	}
	p, err := x.proposal(ch.ID, c.Proposal)
	if err != nil {
		return err
	}
	if len(c.Votes) == 0 {
		return fmt.Errorf("%w: no votes", ErrMalformed)
	}
	for i := range c.Votes {
		v := &c.Votes[i]
		if err := delegate.VerifyVote(v, ch.ID, p.ID); err != nil {
			return fmt.Errorf("%w: vote %d: %v", ErrBadVote, i, err)
		}
		if err := x.castVote(ch, p, v.Voter, v.Option); err != nil {
			return fmt.Errorf("vote %d: %w", i, err)
		}
	}
	x.recount(ch, p)
	x.failIfHopeless(ch, p)
	put(x.st, proposalKey(ch.ID, p.ID), p)
	return nil
}

// castVote checks and records one vote; p is changed, not stored. Only the
// proposal's electorate votes, once: a vote is final. A vote on a punish or
// election proposal is taken until its deadline; the call whose votes leave
// it unable to pass fails it (failIfHopeless).
func (x *exec) castVote(ch *Channel, p *Proposal, voter protocol.Address, opt protocol.VoteOption) error {
	m, err := x.member(ch.ID, voter)
	if err != nil {
		return err
	}
	if p.Status != ProposalOpen {
		return fmt.Errorf("%w: proposal %d is %s", ErrProposalClosed, p.ID, p.Status)
	}
	if opt > protocol.VoteAbstain {
		return fmt.Errorf("%w: vote option %d", ErrMalformed, opt)
	}
	if m.JoinSeq > p.MaxJoinSeq {
		return fmt.Errorf("%w: %s joined after proposal %d", ErrNotEligible, voter, p.ID)
	}
	if !p.InElectorate(voter) {
		return fmt.Errorf("%w: %s is not in the electorate of %s proposal %d", ErrNotEligible, voter, p.Kind, p.ID)
	}
	if p.hasVotingDeadline() && x.env.TimeMs > p.DeadlineMs {
		return fmt.Errorf("%w: voting on proposal %d closed at chain time %d ms", ErrDeadlinePassed, p.ID, p.DeadlineMs)
	}
	if x.st.Get(voteKey(ch.ID, p.ID, voter)) != nil {
		return fmt.Errorf("%w: %s on proposal %d", ErrAlreadyVoted, voter, p.ID)
	}
	x.recordVote(ch, p, voter, opt)
	return nil
}

// recordVote stores a vote and counts it; p is changed, not stored.
func (x *exec) recordVote(ch *Channel, p *Proposal, voter protocol.Address, opt protocol.VoteOption) {
	x.st.Put(voteKey(ch.ID, p.ID, voter), []byte{byte(opt)})
	switch opt {
	case protocol.VoteFor:
		p.For++
	case protocol.VoteAgainst:
		p.Against++
	default:
		p.Abstain++
	}
	x.emit(Event{Kind: EventProposalVoted, Channel: ch.ID, Proposal: p.ID, Member: voter, Option: opt})
}

// failIfHopeless fails a punish or election proposal that can no longer
// pass; p is changed, not stored. It runs once a call's votes are all
// recorded, so a batch of votes is taken whole even when an early one
// already decided the case.
func (x *exec) failIfHopeless(ch *Channel, p *Proposal) {
	if p.Status == ProposalOpen && p.hasVotingDeadline() && !p.canPass() {
		p.Status = ProposalFailed
		x.emit(Event{Kind: EventProposalFailed, Channel: ch.ID, Proposal: p.ID, ProposalKind: p.Kind, Member: x.env.Sender})
		x.coolDownReporter(ch, p)
	}
}

// InElectorate reports whether a may vote on p by its electorate: one of
// Voters when p has them (punish and election), else any member, whose
// join seq castVote checks against MaxJoinSeq.
func (p *Proposal) InElectorate(a protocol.Address) bool {
	if len(p.Voters) == 0 {
		return true
	}
	_, ok := slices.BinarySearchFunc(p.Voters, a, protocol.Address.Compare)
	return ok
}

// hasVotingDeadline reports whether p is a punish or election proposal
// under the voting deadline (all but records from before deadlines).
func (p *Proposal) hasVotingDeadline() bool {
	return (p.Kind == protocol.ProposalPunish || p.Kind == protocol.ProposalElection) && p.DeadlineMs != 0
}

// ElectorateSize returns how many members may vote on p: its Voters, or
// for a record without them the members counted at creation.
func (p *Proposal) ElectorateSize() uint32 {
	if len(p.Voters) > 0 {
		return uint32(len(p.Voters))
	}
	return p.Electorate
}

// VotesNeeded returns the votes in favour p needs to pass, counted of
// ElectorateSize (n): a punishment at least 2/3 of n (the members other
// than the target); an election more than 2/3 of n (the valid members
// other than the leader); a settlement at least 2/3 of the members.
// A censorship complaint needs no votes (0).
func (p *Proposal) VotesNeeded() uint32 {
	n := p.ElectorateSize()
	switch p.Kind {
	case protocol.ProposalPunish:
		return PunishVotesNeeded(n)
	case protocol.ProposalElection:
		return ElectionVotesNeeded(n)
	case protocol.ProposalSettlement:
		return uint32((2*uint64(n) + 2) / 3)
	}
	return 0
}

// PunishVotesNeeded returns the votes in favour a punish proposal needs
// when n members other than the target may vote: at least 2/3 of them,
// ⌈2n/3⌉ — the reporter alone in a channel of 2, both others in a channel
// of 3 (the seed's "two votes"), 4 of the 6 others in a channel of 7.
func PunishVotesNeeded(n uint32) uint32 {
	return max(1, uint32((2*uint64(n)+2)/3))
}

// ElectionVotesNeeded returns the votes in favour an election proposal
// needs when n valid members other than the leader may vote: more than
// 2/3 of them, ⌊2n/3⌋ + 1 (the rule of claim_leader's attestations).
func ElectionVotesNeeded(n uint32) uint32 {
	return uint32(2*uint64(n)/3) + 1
}

// canPass reports whether the votes in favour p has, with those not yet
// cast, could still reach VotesNeeded.
func (p *Proposal) canPass() bool {
	n := p.ElectorateSize()
	cast := p.For + p.Against + p.Abstain
	left := uint32(0)
	if n > cast {
		left = n - cast
	}
	return uint64(p.For)+uint64(left) >= uint64(p.VotesNeeded())
}

// Passed reports whether p has what it needs, at chain time nowMs:
// settlement at least 2/3 of the members counted at creation in favour;
// punishment and election VotesNeeded in favour of their electorate (cast
// before the deadline: later votes are refused); a censorship complaint
// needs no votes, only its deadline to pass unanswered.
func (p *Proposal) Passed(nowMs int64) bool {
	if p.Status != ProposalOpen {
		return false
	}
	switch p.Kind {
	case protocol.ProposalSettlement:
		return 3*uint64(p.For) >= 2*uint64(p.Electorate)
	case protocol.ProposalPunish, protocol.ProposalElection:
		return p.For >= p.VotesNeeded()
	case protocol.ProposalCensorship:
		return nowMs > p.DeadlineMs
	}
	return false
}

// Standing returns where p stands at chain time nowMs: its stored status,
// or for an open proposal ProposalPassed when it has what it needs and
// ProposalFailed when its voting deadline passed without it.
func (p *Proposal) Standing(nowMs int64) ProposalStatus {
	switch {
	case p.Status != ProposalOpen:
		return p.Status
	case p.Passed(nowMs):
		return ProposalPassed
	case p.hasVotingDeadline() && nowMs > p.DeadlineMs:
		return ProposalFailed
	}
	return ProposalOpen
}

// executeProposal carries out a passed proposal, once. Anyone may execute.
func (x *exec) executeProposal(c *ExecuteProposal) error {
	ch, err := x.openChannel(c.Channel)
	if err != nil {
		return err
	}
	p, err := x.proposal(ch.ID, c.Proposal)
	if err != nil {
		return err
	}
	if p.Status != ProposalOpen {
		return fmt.Errorf("%w: proposal %d is %s", ErrProposalClosed, p.ID, p.Status)
	}
	x.recount(ch, p)
	if !p.Passed(x.env.TimeMs) {
		if p.Kind == protocol.ProposalCensorship {
			return fmt.Errorf("%w: complaint %d is open until chain time %d ms", ErrNotPassed, p.ID, p.DeadlineMs)
		}
		state := "open"
		if p.Standing(x.env.TimeMs) == ProposalFailed {
			state = fmt.Sprintf("failed, voting closed at chain time %d ms", p.DeadlineMs)
		}
		return fmt.Errorf("%w: proposal %d (%s) has %d for, %d against, %d abstain of %d voters, needs %d for",
			ErrNotPassed, p.ID, state, p.For, p.Against, p.Abstain, p.ElectorateSize(), p.VotesNeeded())
	}
	if _, err := x.member(ch.ID, p.Proposer); err != nil && p.Kind == protocol.ProposalCensorship {
		// The complainer left: its tx can never be ordered now (complaint.go).
		p.Status = ProposalFailed
		put(x.st, proposalKey(ch.ID, p.ID), p)
		x.emit(Event{Kind: EventProposalFailed, Channel: ch.ID, Proposal: p.ID, ProposalKind: p.Kind, Member: x.env.Sender})
		return nil
	}
	p.Status = ProposalExecuted
	p.ExecutedHeight = x.env.Height
	p.ExecutedAtMs = x.env.TimeMs
	put(x.st, proposalKey(ch.ID, p.ID), p)
	x.emit(Event{Kind: EventProposalExecuted, Channel: ch.ID, Proposal: p.ID, ProposalKind: p.Kind, Member: x.env.Sender})
	switch p.Kind {
	case protocol.ProposalSettlement:
		err = x.executeSettlement(ch, p)
	case protocol.ProposalElection:
		err = x.executeElection(ch, p)
	case protocol.ProposalPunish:
		err = x.executePunish(ch, p)
	case protocol.ProposalCensorship:
		x.closeChannel(ch, protocol.Address{}, p.ID)
	}
	return err
}

// executeSettlement applies the net change set to the channel's on-chain
// state, records the settled height, digest and state hash, and lets the members that
// asked to leave before the proposal was made go.
func (x *exec) executeSettlement(ch *Channel, p *Proposal) error {
	s, err := decodePayload(p.Data, &protocol.Settlement{})
	if err != nil {
		return err
	}
	if s.From != ch.SettledHeight+1 {
		return fmt.Errorf("%w: from %d, settled height is now %d", ErrBadRange, s.From, ch.SettledHeight)
	}
	st, err := x.settledStateAfter(ch, s.ChangeSet)
	if err != nil {
		return err
	}
	put(x.st, stateKey(ch.ID), st)
	ch.SettledHeight = s.To
	ch.SettledDigest = s.Digest
	ch.SettledStateHash = s.StateHash
	ch.SettledAtMs = x.env.TimeMs
	x.emit(Event{Kind: EventChannelSettled, Channel: ch.ID, Proposal: p.ID, Height: s.To, Digest: s.Digest})
	for _, snap := range x.members(ch.ID) {
		m, err := x.member(ch.ID, snap.Address) // removals may have changed it
		if err != nil {
			continue
		}
		if m.Leaving() && m.LeaveHeight < p.CreatedHeight {
			x.removeMember(ch, m, m.Locked)
			if ch.Leader == m.Address {
				x.setLeader(ch, protocol.Address{})
			}
		}
	}
	x.putChannel(ch)
	return nil
}

// executeElection makes the candidate leader, if the epoch has not moved.
func (x *exec) executeElection(ch *Channel, p *Proposal) error {
	el, err := decodePayload(p.Data, &protocol.Election{})
	if err != nil {
		return err
	}
	if err := x.checkElection(ch, el); err != nil {
		return err
	}
	x.setLeader(ch, el.Candidate)
	x.putChannel(ch)
	return nil
}
