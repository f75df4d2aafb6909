package transport

import (
	"context"
	"time"

	"github.com/scraft/scraft/protocol"
)

// ChannelAPI is what the client stream serves: the channel operations of
// the node. Package cluster implements it; cmd/scraft passes it to
// NewClientService.
//
// Errors: return (or wrap with %w) the sentinels of client_errors.go —
// ErrNoChannel, ErrNotMember, ErrBusy, ErrNotReady, ErrUnavailable,
// ErrChannelClosed, ErrSlowSubscriber, ... — so that clients get the right
// Code; anything else is CodeInternal (context errors are CodeTimeout).
//
// Threading: every method may be called from many goroutines at once.
type ChannelAPI interface {
	// Exists reports whether this node hosts the channel.
	Exists(ch protocol.ChannelID) bool
	// IsMember reports whether a is a member of the channel in the state
	// this node has applied.
	IsMember(ch protocol.ChannelID, a protocol.Address) bool
	// NextNonce returns the nonce a's next tx in the channel must carry, as
	// of this node's applied state.
	NextNonce(ch protocol.ChannelID, a protocol.Address) (uint64, error)
	// Submit orders a signed tx and waits until it is committed and this
	// node has applied and verified it. On a follower it forwards to the
	// leader. The stream has checked the tx's form and that its sender is
	// the stream's; Submit verifies the signature (the leader does, a batch
	// at a time) and answers a bad one with ErrBadSignature. It is
	// idempotent by tx hash: a tx submitted again returns its first outcome
	// and never runs twice.
	Submit(ctx context.Context, tx *protocol.SignedTx) (*Outcome, error)
	// Subscribe returns the channel's verified outcomes after fromHeight,
	// in height order and without gaps. When fromHeight is 0, or outcomes
	// after it are no longer kept, the Subscription starts with a Snapshot
	// and continues after the snapshot's height. A fromHeight above the
	// node's applied height is ErrNotReady. ctx bounds only the setup.
	Subscribe(ctx context.Context, ch protocol.ChannelID, fromHeight uint64) (Subscription, error)
	// Status returns the channel's status as this node sees it; with
	// members, also every member with its lag and chain heartbeat, which
	// asks the member nodes and the chain (slower: a stream's join does
	// without).
	Status(ch protocol.ChannelID, members bool) (*ChannelStatus, error)
	// Leave orders the member's signed request to leave (a LeaveFunction
	// call: its sender is the member, its channel the channel) and returns
	// once it is done: the channel settled past it and the member is out
	// (ErrNotMember for a non-member; ErrBadRequest when the channel would
	// lose its only member or its quorum). The stream has checked the tx's
	// form, function and sender.
	Leave(ctx context.Context, tx *protocol.SignedTx) error
	// Close orders the member's signed request to close (a CloseFunction
	// call) and returns once the channel is settled and closed on chain.
	Close(ctx context.Context, tx *protocol.SignedTx) error
}

// LeaveFunction and CloseFunction are the reserved functions of the
// signed calls that leave and close requests carry.
const (
	LeaveFunction = "scraft::leave"
	CloseFunction = "scraft::close"
)

// Subscription is a stream of verified outcomes of one channel.
//
// Threading: Next is called from one goroutine; Close may be called from
// any goroutine, at any time, more than once, and makes Next return.
type Subscription interface {
	// Snapshot is the state the outcomes follow, or nil when they follow
	// the fromHeight given to Subscribe directly.
	Snapshot() *Snapshot
	// Next blocks until outcomes are available and returns them: the
	// heights that follow the last ones returned, consecutive. It should
	// return all it has buffered (up to a bound of its own), not one
	// batch: a subscriber whose stream was busy then catches up in one
	// message. It returns ErrSlowSubscriber when the subscriber fell too
	// far behind (the implementation's buffer is bounded),
	// ErrChannelClosed when the channel closes, and ctx's error.
	Next(ctx context.Context) ([]Outcome, error)
	// Close ends the subscription.
	Close()
}

// Outcome is a node's verified result of one entry. It has the fields of
// fsm.Outcome, in the same order, so that one converts to the other.
type Outcome struct {
	Height uint64
	Kind   protocol.EntryKind
	// Hash is the entry hash (the tx hash for calls).
	Hash   protocol.Hash
	Result protocol.Result
	// Digest is D(Height).
	Digest protocol.Hash
	// Message explains a failure; it is not part of the digest.
	Message   string
	Output    []byte
	ChangeSet protocol.ChangeSet
	Events    []protocol.Event
}

// Snapshot is a channel's state at a height.
type Snapshot struct {
	Channel protocol.ChannelID
	Height  uint64
	// Digest is D(Height).
	Digest  protocol.Hash
	State   protocol.State
	Members []protocol.Address
}

// ChannelStatus is a channel as one node sees it.
type ChannelStatus struct {
	Channel protocol.ChannelID
	Leader  protocol.Address
	Epoch   uint64
	// Height and Digest are the node's last applied entry.
	Height uint64
	Digest protocol.Hash
	// SettledHeight is the last height settled on chain.
	SettledHeight uint64
	// Ready says the node has applied everything committed it knows of.
	Ready   bool
	Members []MemberStatus
}

// MemberStatus is one member in a ChannelStatus.
type MemberStatus struct {
	Address protocol.Address
	// Lag is how many heights the member's node is behind this node, as
	// last reported; -1 when unknown (the member runs no node in the
	// channel, or its node did not answer).
	Lag int64
	// HeartbeatAge is the age of its last chain heartbeat; negative when
	// unknown.
	HeartbeatAge time.Duration
	Leader       bool
}

// DomainClientBind is the signing domain of a stream's Bind.
const DomainClientBind = "scraft/client-bind/v1"

// ChallengeLen is the byte length of a stream's challenge nonce.
const ChallengeLen = 32

// BindMessage is what a client signs to bind a stream: the challenge nonce
// and the node address it dialed. Signing the dialed address, not the one
// the node claims, keeps a node from relaying the challenge of another.
func BindMessage(nonce []byte, nodeAddress string) []byte {
	e := protocol.NewEncoder(ChallengeLen + len(nodeAddress) + 2)
	e.Bytes(nonce)
	e.String(nodeAddress)
	return e.Out()
}
