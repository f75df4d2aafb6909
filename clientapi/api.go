package clientapi

import (
	"context"

	"github.com/scraft/scraft/protocol"
)

// ChannelAPI is what the client stream serves: the channel operations of
// the node. Package cluster serves it (cluster.Node.ClientAPI); cmd/scraft
// passes that to
// NewService.
//
// Errors: return (or wrap with %w) a coded sentinel of package protocol —
// ErrNoChannel, ErrNotMember, ErrBusy, ErrNotReady, ErrUnavailable,
// ErrChannelClosed, ErrSlowSubscriber, ... — or one made with
// protocol.NewError, so that clients get the right Code; anything else is
// CodeInternal (context errors are CodeTimeout).
//
// Threading: every method may be called from many goroutines at once.
type ChannelAPI interface {
	// Exists reports whether this node hosts the channel.
	Exists(ch protocol.ChannelID) bool
	// CheckMember returns nil when a is a member of the channel in the
	// state this node has applied. When a is not, it returns
	// protocol.ErrNotMember if the node is caught up with the channel, and
	// protocol.ErrNotReady if it may not know a yet (catching up after a
	// restart, or a's join still being applied): the client then asks
	// another node, or this one again a moment later.
	CheckMember(ch protocol.ChannelID, a protocol.Address) error
	// NextNonce returns the nonce a's next tx in the channel must carry, as
	// of this node's applied state.
	NextNonce(ch protocol.ChannelID, a protocol.Address) (uint64, error)
	// Submit orders a signed tx and waits until it is committed and this
	// node has applied and verified it. On a follower it forwards to the
	// leader. The stream has checked the tx's form and that its sender is
	// the stream's; Submit verifies the signature (the leader does, a batch
	// at a time) and answers a bad one with protocol.ErrBadSignature. It is
	// idempotent by tx hash: a tx submitted again returns its first outcome
	// and never runs twice.
	Submit(ctx context.Context, tx *protocol.SignedTx) (*protocol.Outcome, error)
	// Subscribe returns the channel's verified outcomes after fromHeight,
	// in height order and without gaps. When fromHeight is 0, or outcomes
	// after it are no longer kept, the protocol.Subscription starts with a protocol.Snapshot
	// and continues after the snapshot's height. A fromHeight above the
	// node's applied height is protocol.ErrNotReady. ctx bounds only the setup.
	Subscribe(ctx context.Context, ch protocol.ChannelID, fromHeight uint64) (protocol.Subscription, error)
	// Status returns the channel's status as this node sees it; with
	// members, also every member with its lag and chain heartbeat, which
	// asks the member nodes and the chain (slower: a stream's join does
	// without).
	Status(ch protocol.ChannelID, members bool) (*protocol.ChannelStatus, error)
	// Leave orders the member's signed request to leave (a protocol.RequestLeave
	// call: its sender is the member, its channel the channel) and returns
	// once it is done: the channel settled past it and the member is out
	// (protocol.ErrNotMember for a non-member; protocol.ErrBadRequest when the channel would
	// lose its only member or its quorum). The stream has checked the tx's
	// form, function and sender.
	Leave(ctx context.Context, tx *protocol.SignedTx) error
	// Close orders the member's signed request to close (a protocol.RequestClose
	// call) and returns once the channel is settled and closed on chain.
	Close(ctx context.Context, tx *protocol.SignedTx) error
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
