package contract

import (
	"fmt"

	"github.com/scraft/scraft/protocol"
)

// claimLeader makes the sender leader of the channel when there is no
// leader, when the leader's heartbeat is older than the chain's HeartbeatTTL, or when
// the claim carries attestations for the current epoch naming the sender
// from more than 2/3 of the valid members other than the leader (the leader
// cannot attest to its own unreachability; in a channel of more than
// delegate.Seats members, of the valid candidates other than the leader). Every accepted claim starts a
// new epoch. A claim counts as the claimant's heartbeat.
//
// In a channel of more than delegate.Seats members only a candidate claims
// (ErrNotCandidate), as the call's chain time finds the set: a member whose
// heartbeat lapsed sends keep_alive first. A leader that is no longer a
// candidate keeps its epoch, so the channel is not left leaderless, but
// holds it only until a candidate claims: such a claim needs no
// attestations, as against a leader whose heartbeat expired.
func (x *exec) claimLeader(c *ClaimLeader) error {
	ch, err := x.openChannel(c.Channel)
	if err != nil {
		return err
	}
	me, err := x.member(ch.ID, x.env.Sender)
	if err != nil {
		return err
	}
	if me.Leaving() {
		return fmt.Errorf("%w: a leaving member cannot lead", ErrLeaving)
	}
	if c.Epoch != ch.Epoch {
		return fmt.Errorf("%w: claim for epoch %d, channel is at %d", ErrStaleEpoch, c.Epoch, ch.Epoch)
	}
	if ch.Leader == me.Address {
		return fmt.Errorf("%w: %s in epoch %d", ErrAlreadyLeader, me.Address, ch.Epoch)
	}
	if !isCandidate(ch, me.Address) {
		return fmt.Errorf("%w: %s may not lead; the channel's candidates are %v", ErrNotCandidate, me.Address, ch.Candidates)
	}
	me.LastHeartbeat = x.env.TimeMs
	x.putMember(ch.ID, me)

	if !ch.Leader.IsZero() {
		leader, err := x.member(ch.ID, ch.Leader)
		if err == nil && leader.ValidAt(x.env.TimeMs, x.params.HeartbeatTTL) && isCandidate(ch, leader.Address) {
			if err := x.checkAttestations(ch, c.Attestations); err != nil {
				return err
			}
		}
	}
	x.setLeader(ch, me.Address)
	x.putChannel(ch)
	x.rc.Epoch = ch.Epoch
	return nil
}

// checkAttestations accepts the fast path of a claim: more than 2/3 of the
// valid members other than the leader attest, for this epoch, that the
// sender should lead. Any attestation that is forged, for another channel,
// epoch or claimant, from a non-member, or repeated refuses the claim.
func (x *exec) checkAttestations(ch *Channel, atts []protocol.Attestation) error {
	now := x.env.TimeMs
	eligible := 0
	// In a channel that runs through candidates only they are Raft
	// voters that hear from the leader; a delegator hears of it through
	// its candidate, so its word on the leader's reachability is its
	// candidate's and counts for nothing on its own.
	attests := func(m *Member) bool {
		return m.Address != ch.Leader && m.ValidAt(now, x.params.HeartbeatTTL) && isCandidate(ch, m.Address)
	}
	for _, m := range x.members(ch.ID) {
		if attests(m) {
			eligible++
		}
	}
	seen := make(map[protocol.Address]bool, len(atts))
	count := 0
	for i := range atts {
		a := &atts[i]
		switch {
		case a.Channel != ch.ID:
			return fmt.Errorf("%w: attestation %d names channel %s", ErrBadAttestation, i, a.Channel)
		case a.Epoch != ch.Epoch:
			return fmt.Errorf("%w: attestation %d is for epoch %d, channel is at %d", ErrStaleEpoch, i, a.Epoch, ch.Epoch)
		case a.Claimant != x.env.Sender:
			return fmt.Errorf("%w: attestation %d names claimant %s", ErrBadAttestation, i, a.Claimant)
		case seen[a.Attester]:
			return fmt.Errorf("%w: attestation %d repeats %s", ErrBadAttestation, i, a.Attester)
		}
		seen[a.Attester] = true
		if err := a.Verify(); err != nil {
			return fmt.Errorf("%w: attestation %d by %s: %v", ErrBadAttestation, i, a.Attester, err)
		}
		m, err := x.member(ch.ID, a.Attester)
		if err != nil {
			return fmt.Errorf("%w: attestation %d: %v", ErrBadAttestation, i, err)
		}
		if attests(m) {
			count++
		}
	}
	if 3*count <= 2*eligible {
		return fmt.Errorf("%w: leader %s is valid and %d of %d valid members attest (more than 2/3 needed)",
			ErrLeaderValid, ch.Leader, count, eligible)
	}
	return nil
}

// setLeader names a new leader (zero for none) and starts a new epoch, and
// records the epoch's leader for good (EpochLeader). It is the only place
// the leader or the epoch changes, so every epoch after 0 has its record.
// ch is changed, not stored.
func (x *exec) setLeader(ch *Channel, leader protocol.Address) {
	ch.Leader = leader
	ch.Epoch++
	put(x.st, epochKey(ch.ID, ch.Epoch), &EpochLeader{Epoch: ch.Epoch, Leader: leader, Height: x.env.Height})
	x.emit(Event{Kind: EventLeaderChanged, Channel: ch.ID, Member: leader, Epoch: ch.Epoch})
}
