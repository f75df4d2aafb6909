package settlement

import (
	"context"
	"fmt"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// Chain is what a node uses to reach the settlement chain. A Chain value is
// bound to one signing key, the node's: every call is a chain tx signed by
// that key and sent from its address (Address). Tests that play several
// members open one Chain per key on the same chain. Votes of other members
// travel as their own signed protocol.Vote in SubmitVotes.
//
// Calls block until the tx is in a committed block and return its outcome: a
// refusal by the contract rules is an error wrapping a contract sentinel
// (errors.Is(err, contract.ErrLeaderValid)), whatever the transport. If ctx
// ends first the call returns ctx's error and the tx may still be included.
// A Chain is safe for concurrent use; its txs get consecutive nonces.
type Chain interface {
	// Address is the address of the key the Chain signs with.
	Address() protocol.Address

	// Head returns the latest committed block's height and chain time.
	Head(ctx context.Context) (Head, error)
	// Params returns the chain's settings (heartbeat validity, ban, vote
	// and complaint windows), fixed at its genesis: a node times its
	// heartbeats and waits by these, never by the defaults.
	Params(ctx context.Context) (contract.Params, error)
	// Channel returns a channel with its members, each marked valid or not
	// at the head's chain time.
	Channel(ctx context.Context, id protocol.ChannelID) (*ChannelInfo, error)
	// Member returns one member of a channel.
	Member(ctx context.Context, id protocol.ChannelID, member protocol.Address) (*MemberInfo, error)
	// Departure returns how the channel's membership of join sequence
	// number joinSeq ended (left, let go by a settlement, forced out): the
	// block and the channel's epoch then. A record never changes once
	// written; until the membership ends the call fails with
	// contract.ErrNoDeparture.
	Departure(ctx context.Context, id protocol.ChannelID, joinSeq uint64) (*contract.Departure, error)
	// EpochLeader returns who led the channel's epoch epoch (zero for an
	// epoch without a leader; epoch 0 never has one) and the block that
	// began it. A record never changes once written; until the channel
	// reaches the epoch the call fails with contract.ErrNoEpochLeader (as
	// it does for epochs begun on a chain from before these records).
	EpochLeader(ctx context.Context, id protocol.ChannelID, epoch uint64) (*contract.EpochLeader, error)
	// SettledState returns the channel's state at its settled height (the
	// initial state before the first settlement).
	SettledState(ctx context.Context, id protocol.ChannelID) (protocol.State, error)
	// InitialState returns the state the channel was created with.
	InitialState(ctx context.Context, id protocol.ChannelID) (protocol.State, error)
	// Code returns the wasm code stored under hash.
	Code(ctx context.Context, hash protocol.Hash) ([]byte, error)
	// ABI returns the ABI (the contract's abi.json) the channel's creator
	// recorded with its code, with its hash; a channel without one (and a
	// chain from before ABIs were recorded) answers contract.ErrNoABI.
	ABI(ctx context.Context, id protocol.ChannelID) (*contract.ChannelABI, error)
	// Proposal returns a proposal and the votes cast on it.
	Proposal(ctx context.Context, id protocol.ChannelID, proposal uint64) (*ProposalInfo, error)
	// Account returns an account's balance, pool deposit and next nonce.
	Account(ctx context.Context, addr protocol.Address) (*AccountInfo, error)

	// CreateChannel creates a channel and returns its id.
	CreateChannel(ctx context.Context, spec ChannelSpec) (protocol.ChannelID, error)
	// Stake adds amount to this key's stake in a channel.
	Stake(ctx context.Context, id protocol.ChannelID, amount uint64) error
	// Deposit moves amount into the shared staking pool.
	Deposit(ctx context.Context, amount uint64) error
	// Withdraw takes unlocked money out of the shared staking pool.
	Withdraw(ctx context.Context, amount uint64) error
	// Join joins a channel backed by the channel stake or, with usePool, by
	// the shared pool; it returns the join sequence number.
	Join(ctx context.Context, id protocol.ChannelID, usePool bool) (uint64, error)
	// Leave asks to leave; the next executed settlement releases the stake.
	Leave(ctx context.Context, id protocol.ChannelID) error
	// KeepAlive is the heartbeat that keeps this member valid for the
	// chain's Params.HeartbeatTTL.
	KeepAlive(ctx context.Context, id protocol.ChannelID) error
	// SetNodeAddress records addr (host:port, contract.ValidNodeAddress)
	// as where this member's node serves the channel, on this member's own
	// record (MemberInfo.NodeAddress); "" clears it. Other members' nodes
	// find the node there.
	SetNodeAddress(ctx context.Context, id protocol.ChannelID, addr string) error
	// ClaimLeader claims leadership in place of the leader of epoch and
	// returns the new epoch.
	ClaimLeader(ctx context.Context, id protocol.ChannelID, epoch uint64, atts []protocol.Attestation) (uint64, error)
	// TransferLeader hands the lead of epoch, which this key holds, to the
	// member to (valid, not leaving, a candidate where there are
	// candidates) and returns the new epoch.
	TransferLeader(ctx context.Context, id protocol.ChannelID, epoch uint64, to protocol.Address) (uint64, error)
	// CreateProposal files a proposal; data is the canonical encoding of
	// the kind's payload (protocol.Settlement, Punish, Election, Censorship).
	CreateProposal(ctx context.Context, id protocol.ChannelID, kind protocol.ProposalKind, data []byte) (uint64, error)
	// Vote casts this key's vote.
	Vote(ctx context.Context, id protocol.ChannelID, proposal uint64, option protocol.VoteOption) error
	// SubmitVotes carries member-signed votes on one proposal.
	SubmitVotes(ctx context.Context, id protocol.ChannelID, proposal uint64, votes []protocol.Vote) error
	// ExecuteProposal executes a passed proposal.
	ExecuteProposal(ctx context.Context, id protocol.ChannelID, proposal uint64) error
	// ProveInclusion answers a censorship complaint with a leader-signed
	// batch (canonical encoding) that holds the tx.
	ProveInclusion(ctx context.Context, id protocol.ChannelID, proposal uint64, batch []byte) error
	// Delegate delegates this member's vote to candidate (zero: withdraw).
	Delegate(ctx context.Context, id protocol.ChannelID, candidate protocol.Address) error
	// CloseChannel closes a channel (named so that implementations can also
	// be io.Closers).
	CloseChannel(ctx context.Context, id protocol.ChannelID) error

	// Watch streams chain events from the event numbered from (inclusive)
	// on, in order, without gaps or repeats, including events committed
	// before the call and across a restart of the chain. The stream ends
	// when ctx ends.
	Watch(ctx context.Context, from EventID) (EventStream, error)
}

// ChannelSpec describes a channel to create.
type ChannelSpec = contract.CreateChannel

// Head is a committed block's height and chain time.
type Head struct {
	Height uint64
	TimeMs int64 // Unix milliseconds
}

// ChannelInfo is a channel as the chain holds it. Its record carries the
// candidates (Channel.Candidates, a channel of more than 5 members) as the
// last call on the channel left them; contract.CandidatesAt gives the set
// the next call will find at a later chain time.
type ChannelInfo struct {
	contract.Channel
	// Members are ordered by join sequence number.
	Members []MemberInfo
	// AtMs is the chain time the members' validity refers to.
	AtMs int64
}

// Member returns the member with address a, if any.
func (c *ChannelInfo) Member(a protocol.Address) (*MemberInfo, bool) {
	for i := range c.Members {
		if c.Members[i].Address == a {
			return &c.Members[i], true
		}
	}
	return nil, false
}

// ValidMembers returns how many members have a heartbeat within the
// chain's HeartbeatTTL at AtMs.
func (c *ChannelInfo) ValidMembers() int {
	n := 0
	for i := range c.Members {
		if c.Members[i].Valid {
			n++
		}
	}
	return n
}

// MemberInfo is a member with its validity at the chain's head time.
type MemberInfo struct {
	contract.Member
	Valid bool
}

// ProposalInfo is a proposal with the votes cast on it.
type ProposalInfo struct {
	contract.Proposal
	Votes []contract.VoteRecord
}

// AccountInfo is an account's money and the nonce its next tx must carry.
type AccountInfo struct {
	contract.Account
	// NextNonce is the nonce of the next tx, counting txs still pending.
	NextNonce uint64
}

// EventID numbers a chain event: the block it was committed in and its
// index among that block's events. IDs only grow.
type EventID struct {
	Block uint64
	Index uint32
}

func (id EventID) String() string { return fmt.Sprintf("%d.%d", id.Block, id.Index) }

// Less reports whether id comes before o.
func (id EventID) Less(o EventID) bool {
	return id.Block < o.Block || (id.Block == o.Block && id.Index < o.Index)
}

// Next returns the ID to resume from after id.
func (id EventID) Next() EventID { return EventID{Block: id.Block, Index: id.Index + 1} }

// Event is a chain event with its number and block time.
type Event struct {
	ID     EventID
	TimeMs int64
	contract.Event
}

// EventStream delivers events in order. Recv blocks until the next event
// or the end of the stream's context (then it returns the context's error).
type EventStream interface {
	Recv() (Event, error)
}
