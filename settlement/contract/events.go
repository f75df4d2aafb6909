package contract

import (
	"fmt"

	"github.com/scraft/scraft/protocol"
)

// EventKind tells what a chain event reports.
type EventKind uint8

// Event kinds. The fields of Event each kind sets are listed.
const (
	// EventChannelCreated: Channel, Member (creator).
	EventChannelCreated EventKind = 1
	// EventChannelClosed: Channel, Member (who closed; zero when a
	// censorship complaint closed it), Proposal (the complaint, if any).
	EventChannelClosed EventKind = 2
	// EventMemberJoined: Channel, Member, JoinSeq.
	EventMemberJoined EventKind = 3
	// EventMemberLeaving: Channel, Member.
	EventMemberLeaving EventKind = 4
	// EventMemberLeft: Channel, Member, Amount (collateral released).
	EventMemberLeft EventKind = 5
	// EventMemberPunished: Channel, Member (target), Other (reporter),
	// Amount (fine), Proposal.
	EventMemberPunished EventKind = 6
	// EventLeaderChanged: Channel, Member (new leader, zero for none), Epoch.
	EventLeaderChanged EventKind = 7
	// EventProposalCreated: Channel, Proposal, ProposalKind, Member (proposer).
	EventProposalCreated EventKind = 8
	// EventProposalVoted: Channel, Proposal, Member (voter), Option.
	EventProposalVoted EventKind = 9
	// EventProposalExecuted: Channel, Proposal, ProposalKind, Member (executor).
	EventProposalExecuted EventKind = 10
	// EventProposalRefuted: Channel, Proposal, Member (the leader that proved
	// inclusion).
	EventProposalRefuted EventKind = 11
	// EventChannelSettled: Channel, Proposal, Height (settled), Digest.
	EventChannelSettled EventKind = 12
	// EventDelegated: Channel, Member (delegator), Other (candidate, zero
	// when withdrawn).
	EventDelegated EventKind = 13
	// EventStaked: Channel, Member, Amount.
	EventStaked EventKind = 14
	// EventDeposited: Member, Amount.
	EventDeposited EventKind = 15
	// EventWithdrawn: Member, Amount.
	EventWithdrawn EventKind = 16
	// EventNodeAddress: Channel, Member (whose node address changed; read
	// the member record for it).
	EventNodeAddress EventKind = 17
	// EventProposalFailed: Channel, Proposal, ProposalKind, Member (who
	// sent the call whose votes left it unable to pass).
	EventProposalFailed EventKind = 18
	// EventCandidates: Channel (whose candidate set changed; read the
	// channel record for it).
	EventCandidates EventKind = 19
)

var eventNames = map[EventKind]string{
	EventChannelCreated: "channel_created", EventChannelClosed: "channel_closed",
	EventMemberJoined: "member_joined", EventMemberLeaving: "member_leaving",
	EventMemberLeft: "member_left", EventMemberPunished: "member_punished",
	EventLeaderChanged: "leader_changed", EventProposalCreated: "proposal_created",
	EventProposalVoted: "proposal_voted", EventProposalExecuted: "proposal_executed",
	EventProposalRefuted: "proposal_refuted", EventChannelSettled: "channel_settled",
	EventDelegated: "delegated", EventStaked: "staked", EventDeposited: "deposited",
	EventWithdrawn: "withdrawn", EventNodeAddress: "node_address",
	EventProposalFailed: "proposal_failed", EventCandidates: "candidates",
}

func (k EventKind) String() string {
	if n, ok := eventNames[k]; ok {
		return n
	}
	return fmt.Sprintf("event(%d)", uint8(k))
}

// MarshalText implements encoding.TextMarshaler.
func (k EventKind) MarshalText() ([]byte, error) { return []byte(k.String()), nil }

// Event is something a call did that nodes watch for. Unused fields are
// zero.
type Event struct {
	Kind         EventKind
	Channel      protocol.ChannelID
	Member       protocol.Address
	Other        protocol.Address
	Epoch        uint64
	JoinSeq      uint64
	Proposal     uint64
	ProposalKind protocol.ProposalKind
	Option       protocol.VoteOption
	Height       uint64
	Digest       protocol.Hash
	Amount       uint64
}

// Encode writes the canonical encoding.
func (ev *Event) Encode(e *protocol.Encoder) {
	e.U8(uint8(ev.Kind))
	e.Fixed(ev.Channel[:])
	e.Fixed(ev.Member[:])
	e.Fixed(ev.Other[:])
	e.U64(ev.Epoch)
	e.U64(ev.JoinSeq)
	e.U64(ev.Proposal)
	e.U8(uint8(ev.ProposalKind))
	e.U8(uint8(ev.Option))
	e.U64(ev.Height)
	e.Fixed(ev.Digest[:])
	e.U64(ev.Amount)
}

// Decode reads ev.
func (ev *Event) Decode(d *protocol.Decoder) {
	ev.Kind = EventKind(d.U8())
	d.FixedInto(ev.Channel[:])
	d.FixedInto(ev.Member[:])
	d.FixedInto(ev.Other[:])
	ev.Epoch = d.U64()
	ev.JoinSeq = d.U64()
	ev.Proposal = d.U64()
	ev.ProposalKind = protocol.ProposalKind(d.U8())
	ev.Option = protocol.VoteOption(d.U8())
	ev.Height = d.U64()
	d.FixedInto(ev.Digest[:])
	ev.Amount = d.U64()
}
