package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// Chain is what a node needs of the settlement chain: a subset of
// settlement.Chain, bound to the node's own key (the calls it makes are
// signed by it). Any settlement.Chain satisfies it, the devchain client
// included. Calls that change the chain return once the change is in a
// block, so a read after them sees it. Safe for concurrent use.
type Chain interface {
	// Channel returns the channel's record (leader, epoch, code hash, ...)
	// with its members ordered by join sequence.
	Channel(ctx context.Context, id protocol.ChannelID) (*settlement.ChannelInfo, error)
	// Code returns the wasm code stored under hash.
	Code(ctx context.Context, hash protocol.Hash) ([]byte, error)
	// InitialState returns the contract state the channel was created with.
	InitialState(ctx context.Context, id protocol.ChannelID) (protocol.State, error)
	// Departure returns how the channel's membership of join sequence
	// number joinSeq ended (the block, the epoch then), or an error
	// wrapping contract.ErrNoDeparture while it has not. A record never
	// changes once written.
	Departure(ctx context.Context, id protocol.ChannelID, joinSeq uint64) (*contract.Departure, error)
	// EpochLeader returns who led the channel's epoch epoch (zero for
	// none), or an error wrapping contract.ErrNoEpochLeader while the
	// channel has not reached it (and for epochs begun on a chain from
	// before these records). A record never changes once written.
	EpochLeader(ctx context.Context, id protocol.ChannelID, epoch uint64) (*contract.EpochLeader, error)
	// Join makes the node's key a member of the channel, backed by its
	// channel stake or, with usePool, by its shared pool deposit. It returns
	// the join sequence number.
	Join(ctx context.Context, id protocol.ChannelID, usePool bool) (uint64, error)
	// KeepAlive is the member's heartbeat.
	KeepAlive(ctx context.Context, id protocol.ChannelID) error
	// Params returns the chain's settings, fixed at its genesis: the
	// heartbeat interval derives from its HeartbeatTTL.
	Params(ctx context.Context) (contract.Params, error)
	// SetNodeAddress publishes the node's address on its member record,
	// where the other members' nodes find it (join.go).
	SetNodeAddress(ctx context.Context, id protocol.ChannelID, addr string) error
	// ClaimLeader asks to lead in place of the leader of epoch, with the
	// attestations of other members. It returns the new epoch.
	ClaimLeader(ctx context.Context, id protocol.ChannelID, epoch uint64, atts []protocol.Attestation) (uint64, error)
	// TransferLeader hands the lead of epoch, which the node's member
	// holds, to the member to, and returns the new epoch (transfer.go).
	TransferLeader(ctx context.Context, id protocol.ChannelID, epoch uint64, to protocol.Address) (uint64, error)

	// Delegates (delegation.go, relay.go).

	// Delegate records the node's member's delegation to a candidate
	// (zero: withdraw it).
	Delegate(ctx context.Context, id protocol.ChannelID, candidate protocol.Address) error
	// SubmitVotes carries member-signed votes on one proposal: a
	// candidate's and its delegators'.
	SubmitVotes(ctx context.Context, id protocol.ChannelID, proposal uint64, votes []protocol.Vote) error

	// Settlement (settle.go).

	// Head returns the latest committed block's height and chain time.
	Head(ctx context.Context) (settlement.Head, error)
	// Proposal returns a proposal and the votes cast on it.
	Proposal(ctx context.Context, id protocol.ChannelID, proposal uint64) (*settlement.ProposalInfo, error)
	// CreateProposal files a proposal whose data is the canonical encoding
	// of the kind's payload, and returns its id.
	CreateProposal(ctx context.Context, id protocol.ChannelID, kind protocol.ProposalKind, data []byte) (uint64, error)
	// Vote casts the node's vote on a proposal.
	Vote(ctx context.Context, id protocol.ChannelID, proposal uint64, option protocol.VoteOption) error
	// ExecuteProposal executes a passed proposal.
	ExecuteProposal(ctx context.Context, id protocol.ChannelID, proposal uint64) error
	// ProveInclusion answers a censorship complaint against this node with
	// a batch of the channel (censor.go).
	ProveInclusion(ctx context.Context, id protocol.ChannelID, proposal uint64, batch []byte) error
	// Watch streams chain events from the event numbered from on.
	Watch(ctx context.Context, from settlement.EventID) (settlement.EventStream, error)

	// Leaving and closing (leave.go).

	// Leave asks the chain to take the node's member out of the channel:
	// the next settlement proposed after it, once executed, releases its
	// stake; in a closed channel it is released at once.
	Leave(ctx context.Context, id protocol.ChannelID) error
	// CloseChannel closes the channel on chain.
	CloseChannel(ctx context.Context, id protocol.ChannelID) error
}

var _ Chain = settlement.Chain(nil)

// chainView is a channel's cached view of the chain: the current leader and
// epoch, and every epoch's leader seen so far, in a channel read or in the
// chain's record of the epoch. The leader of an epoch never changes once
// set, so the history is a fact that can be judged from. The channel's
// share of the node's chain feed keeps it current (runChainView).
type chainView struct {
	mu      sync.Mutex
	epoch   uint64
	leader  protocol.Address
	history map[uint64]protocol.Address
	// unrecorded holds past epochs this view never saw that the chain
	// keeps no leader record of (a chain from before those records).
	unrecorded map[uint64]bool
	changed    chan struct{} // closed and replaced on every leader or epoch change
	// changedAt is when this view took in the current leader and epoch.
	changedAt time.Time
	record    *contract.Channel
	// info is the last channel read with its members; nil when the last
	// record came without them.
	info *settlement.ChannelInfo
	// read is closed and replaced on every record the view takes in.
	read chan struct{}
}

func newChainView() *chainView {
	return &chainView{history: map[uint64]protocol.Address{}, unrecorded: map[uint64]bool{},
		changed: make(chan struct{}), read: make(chan struct{})}
}

// update records a channel record read from the chain and reports whether
// the leader or epoch changed. Records older than the view are ignored.
func (v *chainView) update(rec *contract.Channel) bool {
	return v.take(rec, nil)
}

// updateInfo is update with the channel's members.
func (v *chainView) updateInfo(info *settlement.ChannelInfo) bool {
	return v.take(&info.Channel, info)
}

func (v *chainView) take(rec *contract.Channel, info *settlement.ChannelInfo) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	if rec.Epoch < v.epoch {
		return false
	}
	v.record, v.info = rec, info
	close(v.read)
	v.read = make(chan struct{})
	v.history[rec.Epoch] = rec.Leader
	if rec.Epoch == v.epoch && rec.Leader == v.leader {
		return false
	}
	v.epoch, v.leader, v.changedAt = rec.Epoch, rec.Leader, time.Now()
	close(v.changed)
	v.changed = make(chan struct{})
	return true
}

// current returns the leader and epoch, and a channel closed on the next
// change.
func (v *chainView) current() (protocol.Address, uint64, <-chan struct{}) {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.leader, v.epoch, v.changed
}

// namedAt returns when this view took in the current leader and epoch.
func (v *chainView) namedAt() time.Time {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.changedAt
}

// leaderOf returns the leader of an epoch if the view has seen it.
func (v *chainView) leaderOf(epoch uint64) (protocol.Address, bool) {
	v.mu.Lock()
	defer v.mu.Unlock()
	a, ok := v.history[epoch]
	return a, ok
}

// remember adds the leader of a past or current epoch, read from the
// chain's record of it, to the history.
func (v *chainView) remember(epoch uint64, leader protocol.Address) {
	v.mu.Lock()
	defer v.mu.Unlock()
	v.history[epoch] = leader
}

// markUnrecorded notes that the chain has no leader record of a past
// epoch, and reports whether this is the first time.
func (v *chainView) markUnrecorded(epoch uint64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	first := !v.unrecorded[epoch]
	v.unrecorded[epoch] = true
	return first
}

// isUnrecorded reports whether markUnrecorded noted epoch.
func (v *chainView) isUnrecorded(epoch uint64) bool {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.unrecorded[epoch]
}

// refreshed returns a channel closed when the view next takes in a record
// (whether or not anything in it changed): the feed's news of the
// channel, a resync, or a read of the view's own.
func (v *chainView) refreshed() <-chan struct{} {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.read
}

// members returns the last channel read with its members, or nil.
func (v *chainView) members() *settlement.ChannelInfo {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.info
}

func (v *chainView) channel() *contract.Channel {
	v.mu.Lock()
	defer v.mu.Unlock()
	return v.record
}
