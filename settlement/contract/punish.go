package contract

import (
	"fmt"
	"slices"

	"github.com/scraft/scraft/delegate"
	"github.com/scraft/scraft/protocol"
)

// checkPunish checks a punish proposal's evidence: a batch signed by the
// target for this channel that holds an entry at Height, whose result the
// target claimed differs from the honest result the reporter computed. The
// chain does not run contracts; the members' votes judge who is right.
// An equivocation case (Conflict set) is checked whole instead
// (CheckEquivocation): two bodies the target signed for one height.
//
// One offence — target, the batch's epoch, height — has one case: a second
// filing is refused with ErrDuplicateCase naming the case, so the members
// vote on that one while it is open; a decided case stays decided (a
// punishment is not carried out twice, a case voted down is not filed
// again to try another turnout). Only a case whose voting closed without a
// decision may be filed anew, so a cheat is not shielded for good by a
// case nobody could vote on in time. It returns the offence's case key.
func (x *exec) checkPunish(ch *Channel, pu *protocol.Punish) ([]byte, error) {
	if pu.Target == x.env.Sender {
		return nil, fmt.Errorf("%w: a member cannot report itself", ErrBadEvidence)
	}
	if _, err := x.member(ch.ID, pu.Target); err != nil {
		return nil, err
	}
	if until := int64(getU64(x.st, cooldownKey(ch.ID, x.env.Sender))); x.env.TimeMs < until {
		return nil, fmt.Errorf("%w: a case %s filed was voted down; it may report again at chain time %d ms",
			ErrReportCooldown, x.env.Sender, until)
	}
	b, err := protocol.DecodeBatch(pu.Batch)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadEvidence, err)
	}
	if len(pu.Conflict) > 0 {
		err = CheckEquivocation(ch.ID, pu.Target, pu.Height, pu.Batch, pu.Conflict)
	} else {
		err = checkBatchEvidence(ch, pu, b)
	}
	if err != nil {
		return nil, err
	}
	k := caseKey(ch.ID, pu.Target, b.Epoch, pu.Height)
	if id := getU64(x.st, k); id != 0 {
		p, err := x.proposal(ch.ID, id)
		if err != nil {
			return nil, err
		}
		st := p.Standing(x.env.TimeMs)
		expired := p.Status == ProposalOpen && st == ProposalFailed
		if !expired {
			hint := ""
			if st == ProposalOpen {
				hint = "; vote on it"
			}
			return nil, fmt.Errorf("%w: proposal %d (%s) is the case against %s for epoch %d height %d%s",
				ErrDuplicateCase, id, st, pu.Target, b.Epoch, pu.Height, hint)
		}
	}
	return k, nil
}

func checkBatchEvidence(ch *Channel, pu *protocol.Punish, b *protocol.Batch) error {
	switch {
	case b.Channel != ch.ID:
		return fmt.Errorf("%w: batch is for channel %s", ErrBadEvidence, b.Channel)
	case b.Leader != pu.Target:
		return fmt.Errorf("%w: batch signed by %s, not the target %s", ErrBadEvidence, b.Leader, pu.Target)
	case pu.Height < b.FirstHeight || pu.Height > b.LastHeight():
		return fmt.Errorf("%w: height %d not in batch %d..%d", ErrBadEvidence, pu.Height, b.FirstHeight, b.LastHeight())
	}
	if err := b.VerifySignature(); err != nil {
		return fmt.Errorf("%w: batch signature: %v", ErrBadEvidence, err)
	}
	if pu.Honest.ChangeSet != pu.HonestChangeSet.Hash() {
		return fmt.Errorf("%w: honest change set does not match its hash", ErrBadEvidence)
	}
	claimed := b.Results[pu.Height-b.FirstHeight]
	if claimed == pu.Honest {
		return fmt.Errorf("%w: the target's result at height %d equals the honest one", ErrBadEvidence, pu.Height)
	}
	return nil
}

// coolDownReporter starts the cooldown of the reporter of p, a punish case
// that the members voted down: at least one of them re-executed the batch
// and found the target's result right. A case that failed only for want of
// votes (abstentions, nobody voting) costs its reporter nothing.
func (x *exec) coolDownReporter(ch *Channel, p *Proposal) {
	if p.Kind != protocol.ProposalPunish || p.Against == 0 {
		return
	}
	putU64(x.st, cooldownKey(ch.ID, p.Proposer), uint64(x.env.TimeMs+ms(x.params.ReportCooldown)))
}

// executePunish forces the target out and bans it for Params.BanDuration. In a
// channel of 3 or more members (counted when the proposal was made) it is
// also fined, up to its collateral, for the reporter, who becomes leader in a
// new epoch. In a channel of 2 there is no fine; if the target led, the
// channel has no leader until the next claim. In a channel with candidates
// the reporter leads only if it is one once the target is out; otherwise
// a target that led leaves the channel leaderless until a candidate claims.
func (x *exec) executePunish(ch *Channel, p *Proposal) error {
	pu, err := decodePayload(p.Data, &protocol.Punish{})
	if err != nil {
		return err
	}
	target, err := x.member(ch.ID, pu.Target)
	if err != nil {
		return err
	}
	var fine uint64
	if p.Electorate >= 3 {
		fine = min(ch.Config.Fine, target.Locked)
	}
	x.removeMember(ch, target, target.Locked-fine)
	putU64(x.st, banKey(ch.ID, target.Address), uint64(x.env.TimeMs+ms(x.params.BanDuration)))
	if fine > 0 {
		acc := x.account(p.Proposer)
		acc.Balance += fine
		x.putAccount(p.Proposer, acc)
	}
	x.emit(Event{Kind: EventMemberPunished, Channel: ch.ID, Member: target.Address, Other: p.Proposer, Amount: fine, Proposal: p.ID})
	_, reporterErr := x.member(ch.ID, p.Proposer)
	switch {
	case p.Electorate >= 3 && reporterErr == nil && x.mayLead(ch, p.Proposer):
		x.setLeader(ch, p.Proposer)
	case ch.Leader == target.Address:
		x.setLeader(ch, protocol.Address{})
	}
	x.putChannel(ch)
	return nil
}

// checkComplaint: the complained-about tx is the complainer's own, signed,
// for this channel, and the accused is the current leader.
func (x *exec) checkComplaint(ch *Channel, c *protocol.Censorship) error {
	switch {
	case c.Tx.Tx.Channel != ch.ID:
		return fmt.Errorf("%w: tx is for channel %s", ErrBadComplaint, c.Tx.Tx.Channel)
	case c.Tx.Tx.Sender != x.env.Sender:
		return fmt.Errorf("%w: tx sent by %s, not the complainer", ErrBadComplaint, c.Tx.Tx.Sender)
	case c.Accused == x.env.Sender:
		return fmt.Errorf("%w: a member cannot accuse itself", ErrBadComplaint)
	case ch.Leader.IsZero() || c.Accused != ch.Leader:
		return fmt.Errorf("%w: accused %s is not the leader %s", ErrBadComplaint, c.Accused, ch.Leader)
	}
	if err := c.Tx.Verify(); err != nil {
		return fmt.Errorf("%w: tx signature: %v", ErrBadComplaint, err)
	}
	return nil
}

// proveInclusion answers a censorship complaint, before its deadline, with
// a batch that shows the complained-about tx was dealt with or never can
// be (answersComplaint). Anyone may carry it.
func (x *exec) proveInclusion(c *ProveInclusion) error {
	ch, err := x.openChannel(c.Channel)
	if err != nil {
		return err
	}
	p, err := x.proposal(ch.ID, c.Proposal)
	if err != nil {
		return err
	}
	if p.Kind != protocol.ProposalCensorship {
		return fmt.Errorf("%w: proposal %d is a %s proposal", ErrMalformed, p.ID, p.Kind)
	}
	if p.Status != ProposalOpen {
		return fmt.Errorf("%w: complaint %d is %s", ErrProposalClosed, p.ID, p.Status)
	}
	if x.env.TimeMs > p.DeadlineMs {
		return fmt.Errorf("%w: deadline was chain time %d ms", ErrDeadlinePassed, p.DeadlineMs)
	}
	cs, err := decodePayload(p.Data, &protocol.Censorship{})
	if err != nil {
		return err
	}
	b, err := protocol.DecodeBatch(c.Batch)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadProof, err)
	}
	if err := x.answersComplaint(ch, cs, b); err != nil {
		return err
	}
	p.Status = ProposalRefuted
	put(x.st, proposalKey(ch.ID, p.ID), p)
	x.emit(Event{Kind: EventProposalRefuted, Channel: ch.ID, Proposal: p.ID, Member: cs.Accused})
	return nil
}

// mayLead reports whether a may lead ch as its members stand now, within
// the call: any member in a channel of at most delegate.Seats members,
// else a candidate by delegate.Candidates at this call's chain time.
func (x *exec) mayLead(ch *Channel, a protocol.Address) bool {
	ms := x.members(ch.ID)
	return !delegate.Delegated(uint32(len(ms))) || slices.Contains(x.candidates(ch, ms), a)
}
