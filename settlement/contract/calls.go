package contract

import (
	"fmt"
	"time"

	"github.com/scraft/scraft/protocol"
)

// CallKind numbers the calls of the contract; the number is the first byte
// of a call's encoding.
type CallKind uint8

// The calls (DESIGN §5).
const (
	CallCreateChannel   CallKind = 1
	CallStake           CallKind = 2
	CallDeposit         CallKind = 3
	CallWithdraw        CallKind = 4
	CallJoin            CallKind = 5
	CallLeave           CallKind = 6
	CallKeepAlive       CallKind = 7
	CallClaimLeader     CallKind = 8
	CallCreateProposal  CallKind = 9
	CallVote            CallKind = 10
	CallSubmitVotes     CallKind = 11
	CallExecuteProposal CallKind = 12
	CallProveInclusion  CallKind = 13
	CallDelegate        CallKind = 14
	CallClose           CallKind = 15
	CallSetNodeAddress  CallKind = 16
	CallTransferLeader  CallKind = 17
)

var callNames = map[CallKind]string{
	CallCreateChannel: "create_channel", CallStake: "stake", CallDeposit: "deposit",
	CallWithdraw: "withdraw", CallJoin: "join", CallLeave: "leave", CallKeepAlive: "keep_alive",
	CallClaimLeader: "claim_leader", CallCreateProposal: "create_proposal", CallVote: "vote",
	CallSubmitVotes: "submit_votes", CallExecuteProposal: "execute_proposal",
	CallProveInclusion: "prove_inclusion", CallDelegate: "delegate", CallClose: "close",
	CallSetNodeAddress: "set_node_address", CallTransferLeader: "transfer_leader",
}

func (k CallKind) String() string {
	if n, ok := callNames[k]; ok {
		return n
	}
	return fmt.Sprintf("call(%d)", uint8(k))
}

// Call is one contract call, the payload of a chain tx.
type Call interface {
	Kind() CallKind
	encode(e *protocol.Encoder)
	decode(d *protocol.Decoder)
}

// EncodeCall returns the canonical encoding of c: its kind byte, then its
// fields.
func EncodeCall(c Call) []byte {
	e := protocol.NewEncoder(64)
	e.U8(uint8(c.Kind()))
	c.encode(e)
	return e.Out()
}

// DecodeCall decodes a call and refuses unknown kinds and trailing bytes.
func DecodeCall(b []byte) (Call, error) {
	if len(b) == 0 {
		return nil, fmt.Errorf("%w: empty call", ErrMalformed)
	}
	var c Call
	switch CallKind(b[0]) {
	case CallCreateChannel:
		c = new(CreateChannel)
	case CallStake:
		c = new(Stake)
	case CallDeposit:
		c = new(Deposit)
	case CallWithdraw:
		c = new(Withdraw)
	case CallJoin:
		c = new(Join)
	case CallLeave:
		c = new(Leave)
	case CallKeepAlive:
		c = new(KeepAlive)
	case CallClaimLeader:
		c = new(ClaimLeader)
	case CallCreateProposal:
		c = new(CreateProposal)
	case CallVote:
		c = new(Vote)
	case CallSubmitVotes:
		c = new(SubmitVotes)
	case CallExecuteProposal:
		c = new(ExecuteProposal)
	case CallProveInclusion:
		c = new(ProveInclusion)
	case CallDelegate:
		c = new(Delegate)
	case CallClose:
		c = new(Close)
	case CallSetNodeAddress:
		c = new(SetNodeAddress)
	case CallTransferLeader:
		c = new(TransferLeader)
	default:
		return nil, fmt.Errorf("%w: kind %d", ErrUnknownCall, b[0])
	}
	d := protocol.NewDecoder(b[1:])
	c.decode(d)
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrMalformed, c.Kind(), err)
	}
	return c, nil
}

// CreateChannel creates a channel; the sender becomes its creator. Code may
// be empty when CodeHash names code already on chain.
type CreateChannel struct {
	Contract     string
	Code         []byte
	CodeHash     protocol.Hash
	InitialState protocol.State
	Labels       []Label
	Config       ChannelConfig
	// ABI is the contract's abi.json, recorded with the code so that
	// clients decode the channel's calls, state and events with it
	// (GetABI); empty records none. At most MaxABILen bytes, one JSON
	// object. Encoded last, only when set, after the versions (then
	// always written), so calls without it keep their bytes.
	ABI []byte
}

func (*CreateChannel) Kind() CallKind { return CallCreateChannel }
func (c *CreateChannel) encode(e *protocol.Encoder) {
	e.String(c.Contract)
	e.Bytes(c.Code)
	e.Fixed(c.CodeHash[:])
	c.InitialState.Encode(e)
	encodeLabels(e, c.Labels)
	c.Config.encode(e)
	if len(c.ABI) == 0 {
		c.Config.encodeVersions(e)
		return
	}
	e.U32(c.Config.VMVersion)
	e.U32(c.Config.GasTableVersion)
	e.Bytes(c.ABI)
}
func (c *CreateChannel) decode(d *protocol.Decoder) {
	c.Contract = d.String(MaxContractName)
	c.Code = d.Bytes(MaxCodeLen)
	d.FixedInto(c.CodeHash[:])
	c.InitialState = protocol.DecodeState(d)
	c.Labels = decodeLabels(d)
	c.Config.decode(d)
	c.Config.decodeVersions(d)
	c.ABI = nil
	if d.Err() == nil && d.Remaining() > 0 {
		// Bounded by the tx, not by MaxABILen, so that an ABI too large
		// is refused by the rules with its size rather than as garbage.
		c.ABI = d.Bytes(MaxCodeLen)
		if d.Err() == nil && len(c.ABI) == 0 {
			d.Fail(fmt.Errorf("%w: empty ABI written out", ErrMalformed))
		}
	}
}

// CodeHashOf returns the hash under which code is stored.
func CodeHashOf(code []byte) protocol.Hash { return protocol.HashOf("scraft/code/v1", code) }

// Stake moves Amount from the sender's balance to its stake in Channel.
type Stake struct {
	Channel protocol.ChannelID
	Amount  uint64
}

func (*Stake) Kind() CallKind { return CallStake }
func (c *Stake) encode(e *protocol.Encoder) {
	e.Fixed(c.Channel[:])
	e.U64(c.Amount)
}
func (c *Stake) decode(d *protocol.Decoder) {
	d.FixedInto(c.Channel[:])
	c.Amount = d.U64()
}

// Deposit moves Amount from the sender's balance into the shared staking
// pool.
type Deposit struct{ Amount uint64 }

func (*Deposit) Kind() CallKind               { return CallDeposit }
func (c *Deposit) encode(e *protocol.Encoder) { e.U64(c.Amount) }
func (c *Deposit) decode(d *protocol.Decoder) { c.Amount = d.U64() }

// Withdraw moves Amount of the sender's unlocked pool deposit back to its
// balance.
type Withdraw struct{ Amount uint64 }

func (*Withdraw) Kind() CallKind               { return CallWithdraw }
func (c *Withdraw) encode(e *protocol.Encoder) { e.U64(c.Amount) }
func (c *Withdraw) decode(d *protocol.Decoder) { c.Amount = d.U64() }

// Join makes the sender a member of Channel, backed by its channel stake or,
// with UsePool, by MinStake locked from its shared pool deposit.
type Join struct {
	Channel protocol.ChannelID
	UsePool bool
}

func (*Join) Kind() CallKind { return CallJoin }
func (c *Join) encode(e *protocol.Encoder) {
	e.Fixed(c.Channel[:])
	e.Bool(c.UsePool)
}
func (c *Join) decode(d *protocol.Decoder) {
	d.FixedInto(c.Channel[:])
	c.UsePool = d.Bool()
}

// channelCall is a call that names only a channel.
type channelCall struct{ Channel protocol.ChannelID }

func (c *channelCall) encode(e *protocol.Encoder) { e.Fixed(c.Channel[:]) }
func (c *channelCall) decode(d *protocol.Decoder) { d.FixedInto(c.Channel[:]) }

// Leave asks to leave Channel: the next executed settlement removes the
// member and releases its collateral (at once when the channel is closed).
type Leave channelCall

func (*Leave) Kind() CallKind               { return CallLeave }
func (c *Leave) encode(e *protocol.Encoder) { (*channelCall)(c).encode(e) }
func (c *Leave) decode(d *protocol.Decoder) { (*channelCall)(c).decode(d) }

// KeepAlive is the member's heartbeat: it stays valid for the chain's
// Params.HeartbeatTTL.
type KeepAlive channelCall

func (*KeepAlive) Kind() CallKind               { return CallKeepAlive }
func (c *KeepAlive) encode(e *protocol.Encoder) { (*channelCall)(c).encode(e) }
func (c *KeepAlive) decode(d *protocol.Decoder) { (*channelCall)(c).decode(d) }

// Close closes Channel (creator or member).
type Close channelCall

func (*Close) Kind() CallKind               { return CallClose }
func (c *Close) encode(e *protocol.Encoder) { (*channelCall)(c).encode(e) }
func (c *Close) decode(d *protocol.Decoder) { (*channelCall)(c).decode(d) }

// ClaimLeader asks to become leader of Channel in place of the leader of
// Epoch (the channel's current epoch).
type ClaimLeader struct {
	Channel      protocol.ChannelID
	Epoch        uint64
	Attestations []protocol.Attestation
}

func (*ClaimLeader) Kind() CallKind { return CallClaimLeader }
func (c *ClaimLeader) encode(e *protocol.Encoder) {
	e.Fixed(c.Channel[:])
	e.U64(c.Epoch)
	e.Uleb(uint64(len(c.Attestations)))
	for i := range c.Attestations {
		c.Attestations[i].Encode(e)
	}
}
func (c *ClaimLeader) decode(d *protocol.Decoder) {
	d.FixedInto(c.Channel[:])
	c.Epoch = d.U64()
	n := d.Length(MaxAttestations)
	for i := 0; i < n && d.Err() == nil; i++ {
		var a protocol.Attestation
		a.Decode(d)
		c.Attestations = append(c.Attestations, a)
	}
}

// CreateProposal files a proposal; Data is the canonical encoding of the
// kind's payload.
type CreateProposal struct {
	Channel protocol.ChannelID
	Type    protocol.ProposalKind
	Data    []byte
}

func (*CreateProposal) Kind() CallKind { return CallCreateProposal }
func (c *CreateProposal) encode(e *protocol.Encoder) {
	e.Fixed(c.Channel[:])
	e.U8(uint8(c.Type))
	e.Bytes(c.Data)
}
func (c *CreateProposal) decode(d *protocol.Decoder) {
	d.FixedInto(c.Channel[:])
	c.Type = protocol.ProposalKind(d.U8())
	c.Data = d.Bytes(MaxProposalData)
}

// Vote is the sender's own vote.
type Vote struct {
	Channel  protocol.ChannelID
	Proposal uint64
	Option   protocol.VoteOption
}

func (*Vote) Kind() CallKind { return CallVote }
func (c *Vote) encode(e *protocol.Encoder) {
	e.Fixed(c.Channel[:])
	e.U64(c.Proposal)
	e.U8(uint8(c.Option))
}
func (c *Vote) decode(d *protocol.Decoder) {
	d.FixedInto(c.Channel[:])
	c.Proposal = d.U64()
	c.Option = protocol.VoteOption(d.U8())
}

// SubmitVotes carries member-signed votes on one proposal; anyone may
// submit them. The call is all or nothing.
type SubmitVotes struct {
	Channel  protocol.ChannelID
	Proposal uint64
	Votes    []protocol.Vote
}

func (*SubmitVotes) Kind() CallKind { return CallSubmitVotes }
func (c *SubmitVotes) encode(e *protocol.Encoder) {
	e.Fixed(c.Channel[:])
	e.U64(c.Proposal)
	e.Uleb(uint64(len(c.Votes)))
	for i := range c.Votes {
		c.Votes[i].Encode(e)
	}
}
func (c *SubmitVotes) decode(d *protocol.Decoder) {
	d.FixedInto(c.Channel[:])
	c.Proposal = d.U64()
	n := d.Length(MaxVotes)
	for i := 0; i < n && d.Err() == nil; i++ {
		var v protocol.Vote
		v.Decode(d)
		c.Votes = append(c.Votes, v)
	}
}

// ExecuteProposal executes a passed proposal (anyone may).
type ExecuteProposal struct {
	Channel  protocol.ChannelID
	Proposal uint64
}

func (*ExecuteProposal) Kind() CallKind { return CallExecuteProposal }
func (c *ExecuteProposal) encode(e *protocol.Encoder) {
	e.Fixed(c.Channel[:])
	e.U64(c.Proposal)
}
func (c *ExecuteProposal) decode(d *protocol.Decoder) {
	d.FixedInto(c.Channel[:])
	c.Proposal = d.U64()
}

// ProveInclusion answers a censorship complaint with a batch, signed by the
// accused leader, that holds the complained-about tx.
type ProveInclusion struct {
	Channel  protocol.ChannelID
	Proposal uint64
	Batch    []byte
}

func (*ProveInclusion) Kind() CallKind { return CallProveInclusion }
func (c *ProveInclusion) encode(e *protocol.Encoder) {
	e.Fixed(c.Channel[:])
	e.U64(c.Proposal)
	e.Bytes(c.Batch)
}
func (c *ProveInclusion) decode(d *protocol.Decoder) {
	d.FixedInto(c.Channel[:])
	c.Proposal = d.U64()
	c.Batch = d.Bytes(protocol.MaxBatchBytes)
}

// Delegate records that the sender delegates its vote to Candidate; the
// zero address withdraws the delegation.
type Delegate struct {
	Channel   protocol.ChannelID
	Candidate protocol.Address
}

func (*Delegate) Kind() CallKind { return CallDelegate }
func (c *Delegate) encode(e *protocol.Encoder) {
	e.Fixed(c.Channel[:])
	e.Fixed(c.Candidate[:])
}
func (c *Delegate) decode(d *protocol.Decoder) {
	d.FixedInto(c.Channel[:])
	d.FixedInto(c.Candidate[:])
}

// SetNodeAddress records Address (host:port, see ValidNodeAddress) as the
// gRPC address of the sender's node in Channel, on the sender's own member
// record; the empty string clears it.
type SetNodeAddress struct {
	Channel protocol.ChannelID
	Address string
}

func (*SetNodeAddress) Kind() CallKind { return CallSetNodeAddress }
func (c *SetNodeAddress) encode(e *protocol.Encoder) {
	e.Fixed(c.Channel[:])
	e.String(c.Address)
}
func (c *SetNodeAddress) decode(d *protocol.Decoder) {
	d.FixedInto(c.Channel[:])
	c.Address = d.String(MaxNodeAddressLen)
}

// ms converts a duration to whole milliseconds of chain time.
func ms(d time.Duration) int64 { return d.Milliseconds() }
