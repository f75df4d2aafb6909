package contract

import (
	"errors"
	"fmt"
)

// Sentinel errors: every refusal of a call is one of these, wrapped with
// context. Each has a stable numeric code (see Code) so that a refusal that
// crossed the gRPC API still matches with errors.Is.
var (
	// ErrMalformed means a call or its data does not decode or is out of range.
	ErrMalformed = errors.New("contract: malformed call")
	// ErrUnknownCall means the call kind is not known.
	ErrUnknownCall = errors.New("contract: unknown call")
	// ErrNoChannel means the channel does not exist.
	ErrNoChannel = errors.New("contract: channel does not exist")
	// ErrChannelClosed means the channel is closed.
	ErrChannelClosed = errors.New("contract: channel is closed")
	// ErrNotMember means the sender (or the named address) is not a member.
	ErrNotMember = errors.New("contract: not a member of the channel")
	// ErrAlreadyMember means the sender is already a member.
	ErrAlreadyMember = errors.New("contract: already a member")
	// ErrBanned means the sender was forced out and its ban has not expired.
	ErrBanned = errors.New("contract: banned from the channel")
	// ErrInsufficientFunds means a balance is too small for the transfer.
	ErrInsufficientFunds = errors.New("contract: insufficient funds")
	// ErrInsufficientStake means the collateral named on join is too small.
	ErrInsufficientStake = errors.New("contract: insufficient stake")
	// ErrLocked means the pool funds asked for are locked as collateral.
	ErrLocked = errors.New("contract: funds are locked as collateral")
	// ErrNotCreator means only the channel's creator may do this.
	ErrNotCreator = errors.New("contract: not the channel creator")
	// ErrLeaderValid means a claim was refused: the leader's heartbeat is
	// fresh and the claim carries too few attestations.
	ErrLeaderValid = errors.New("contract: the leader is still valid")
	// ErrStaleEpoch means a claim, attestation or election names another
	// epoch than the channel's current one.
	ErrStaleEpoch = errors.New("contract: stale epoch")
	// ErrAlreadyLeader means the claimant already leads the channel.
	ErrAlreadyLeader = errors.New("contract: already the leader")
	// ErrBadAttestation means an attestation does not verify or does not
	// name this channel, epoch and claimant.
	ErrBadAttestation = errors.New("contract: bad attestation")
	// ErrNoProposal means the proposal does not exist.
	ErrNoProposal = errors.New("contract: proposal does not exist")
	// ErrProposalClosed means the proposal was executed or refuted already.
	ErrProposalClosed = errors.New("contract: proposal is closed")
	// ErrAlreadyVoted means the member voted on this proposal already.
	ErrAlreadyVoted = errors.New("contract: member already voted")
	// ErrNotEligible means the voter is not in the proposal's electorate:
	// it joined after the proposal was created, or it is the target of a
	// punishment, or the leader (or was not valid) when an election was
	// proposed. Also an election proposal when no member could vote on it.
	ErrNotEligible = errors.New("contract: member may not vote on this proposal")
	// ErrBadVote means a submitted vote does not verify or names another
	// channel or proposal.
	ErrBadVote = errors.New("contract: bad vote")
	// ErrNotPassed means the proposal has not (yet) passed.
	ErrNotPassed = errors.New("contract: proposal has not passed")
	// ErrBadRange means a settlement does not start right after the settled
	// height.
	ErrBadRange = errors.New("contract: settlement must start at settled height + 1")
	// ErrStateMismatch means a settlement's change set does not fit the
	// channel's on-chain state (an old value differs).
	ErrStateMismatch = errors.New("contract: change set does not fit the settled state")
	// ErrBadEvidence means a punish proposal's evidence does not prove a
	// wrong result by the target.
	ErrBadEvidence = errors.New("contract: evidence does not prove cheating")
	// ErrBadComplaint means a censorship complaint is malformed (tx not
	// signed by the complainer, wrong channel, accused is not the leader).
	ErrBadComplaint = errors.New("contract: bad censorship complaint")
	// ErrBadProof means a batch does not prove that the leader included the
	// complained-about tx.
	ErrBadProof = errors.New("contract: batch does not prove inclusion")
	// ErrDeadlinePassed means the answer to a complaint, or a vote on a
	// punish or election proposal, came after its deadline.
	ErrDeadlinePassed = errors.New("contract: complaint deadline passed")
	// ErrNoCapacity means the candidate has as many delegators as allowed.
	ErrNoCapacity = errors.New("contract: candidate has no delegation capacity")
	// ErrLeaving means the member asked to leave already.
	ErrLeaving = errors.New("contract: member is leaving")
	// ErrTooLarge means a field exceeds its limit.
	ErrTooLarge = errors.New("contract: value too large")
	// ErrNoDeparture means no membership of that join sequence number has
	// ended: it is current, or was never given.
	ErrNoDeparture = errors.New("contract: no such departure")
	// ErrNoEpochLeader means no leader is on record for that epoch of the
	// channel: the channel has not reached it yet (or reached it on a
	// chain from before epochs' leaders were recorded).
	ErrNoEpochLeader = errors.New("contract: no leader on record for that epoch")
	// ErrDuplicateCase means a punish proposal names an offence (target,
	// epoch, height) that already has its case; the message names the
	// case's proposal, on which the members vote instead.
	ErrDuplicateCase = errors.New("contract: this offence already has a punish case")
	// ErrReportCooldown means the sender filed a punish case that the
	// members voted down, and may not file another in the channel until
	// its ReportCooldown has passed.
	ErrReportCooldown = errors.New("contract: a false reporter may not report again yet")
	// ErrNotCandidate means the member named is not one of the channel's
	// candidates: in a channel of more than 5 members only a candidate
	// takes delegations, claims leadership or is named by an election.
	ErrNotCandidate = errors.New("contract: not a candidate")
	// ErrNoABI means the channel's creator recorded no ABI with its code.
	ErrNoABI = errors.New("contract: the channel has no ABI on record")
	// ErrNotLeader means the sender does not lead the channel's current
	// epoch: only the leader hands the lead over (transfer_leader).
	ErrNotLeader = errors.New("contract: not the leader")
	// ErrLapsed means the member named has sent no heartbeat within the
	// chain's HeartbeatTTL, so it cannot be handed the lead.
	ErrLapsed = errors.New("contract: the member's heartbeat has lapsed")
)

// codes lists every sentinel with its stable code. Codes never change
// meaning; new errors get new numbers.
var codes = []struct {
	code uint32
	err  error
}{
	{1, ErrMalformed}, {2, ErrUnknownCall}, {3, ErrNoChannel}, {4, ErrChannelClosed},
	{5, ErrNotMember}, {6, ErrAlreadyMember}, {7, ErrBanned}, {8, ErrInsufficientFunds},
	{9, ErrInsufficientStake}, {10, ErrLocked}, {11, ErrNotCreator}, {12, ErrLeaderValid},
	{13, ErrStaleEpoch}, {14, ErrAlreadyLeader}, {15, ErrBadAttestation}, {16, ErrNoProposal},
	{17, ErrProposalClosed}, {18, ErrAlreadyVoted}, {19, ErrNotEligible}, {20, ErrBadVote},
	{21, ErrNotPassed}, {22, ErrBadRange}, {23, ErrStateMismatch}, {24, ErrBadEvidence},
	{25, ErrBadComplaint}, {26, ErrBadProof}, {27, ErrDeadlinePassed}, {28, ErrNoCapacity},
	{29, ErrLeaving}, {30, ErrTooLarge}, {31, ErrNoDeparture}, {32, ErrNoEpochLeader},
	{33, ErrDuplicateCase}, {34, ErrReportCooldown}, {35, ErrNotCandidate},
	{36, ErrNoABI}, {37, ErrNotLeader}, {38, ErrLapsed},
}

// Code returns the stable code of err's sentinel, or 0 when err is nil or
// not a contract error.
func Code(err error) uint32 {
	if err == nil {
		return 0
	}
	for _, c := range codes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return 0
}

// ErrorOf rebuilds an error from a code and message, wrapping the sentinel
// so errors.Is works on the other side of an API. An unknown code gives a
// plain error with the message.
func ErrorOf(code uint32, msg string) error {
	for _, c := range codes {
		if c.code == code {
			if msg == "" || msg == c.err.Error() {
				return c.err
			}
			return &codedError{sentinel: c.err, msg: msg}
		}
	}
	return fmt.Errorf("contract error %d: %s", code, msg)
}

// codedError carries the full message of a remote error and unwraps to its
// sentinel.
type codedError struct {
	sentinel error
	msg      string
}

func (e *codedError) Error() string { return e.msg }
func (e *codedError) Unwrap() error { return e.sentinel }
