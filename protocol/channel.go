package protocol

import (
	"context"
	"time"
)

// Subscription is a stream of verified outcomes of one channel, as a node
// serves it to a client (cluster implements it, the client API streams
// it).
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

// Snapshot is a channel's state at a height.
type Snapshot struct {
	Channel ChannelID
	Height  uint64
	// Digest is D(Height).
	Digest  Hash
	State   State
	Members []Address
}

// ChannelStatus is a channel as one node sees it.
type ChannelStatus struct {
	Channel ChannelID
	Leader  Address
	Epoch   uint64
	// Height and Digest are the node's last applied entry.
	Height uint64
	Digest Hash
	// SettledHeight is the last height settled on chain.
	SettledHeight uint64
	// Ready says the node has applied everything committed it knows of.
	Ready   bool
	Members []MemberStatus
}

// MemberStatus is one member in a ChannelStatus.
type MemberStatus struct {
	Address Address
	// Lag is how many heights the member's node is behind this node, as
	// last reported; -1 when unknown (the member runs no node in the
	// channel, or its node did not answer).
	Lag int64
	// HeartbeatAge is the age of its last chain heartbeat; negative when
	// unknown.
	HeartbeatAge time.Duration
	Leader       bool
}
