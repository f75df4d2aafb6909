package cluster

import (
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
)

// The sentinel errors. Those a client or a peer may get carry a code of
// protocol's table (protocol.NewError): the client API and the peer API
// answer with it, and errors.Is(err, protocol.ErrUnavailable) holds for
// ErrNotLeader, so no layer translates them.
var (
	// ErrNotLeader means this node does not lead the channel and could not
	// reach the leader.
	ErrNotLeader = protocol.NewError(protocol.CodeUnavailable, "cluster.not_leader", "cluster: not the leader")
	// ErrNoLeader means the channel has no leader at the moment (an
	// election or a claim is under way); retry shortly.
	ErrNoLeader = protocol.NewError(protocol.CodeUnavailable, "cluster.no_leader", "cluster: no leader")
	// ErrBusy means the leader's queue is full; retry later.
	ErrBusy = protocol.NewError(protocol.CodeBusy, "cluster.busy", "cluster: busy")
	// ErrClosed means the node or channel is closed.
	ErrClosed = protocol.NewError(protocol.CodeClosed, "cluster.closed", "cluster: closed")
	// ErrDataDirInUse means another node holds the data directory.
	ErrDataDirInUse = errors.New("cluster: data directory in use by another scraft node")
	// ErrChannelClosed means the channel is closed, or closing since a
	// close request was ordered: its state is final and nothing more is
	// ordered, on any node.
	ErrChannelClosed = protocol.NewError(protocol.CodeChannelClosed, "cluster.channel_closed", "cluster: channel closed for good")
	// ErrLeadershipLost means leadership was lost while the tx was in
	// flight: it may or may not have been committed. Submitting it again is
	// safe: a committed tx returns its first outcome.
	ErrLeadershipLost = protocol.NewError(protocol.CodeUnavailable, "cluster.leadership_lost", "cluster: leadership lost, tx may have been committed")
	// ErrNotMember means the node, sender or caller is not a member of the
	// channel.
	ErrNotMember = protocol.NewError(protocol.CodeNotMember, "cluster.not_member", "cluster: not a member of the channel")
	// ErrUnknownChannel means the node does not host the channel.
	ErrUnknownChannel = protocol.NewError(protocol.CodeNoChannel, "cluster.unknown_channel", "cluster: channel not hosted here")
	// ErrBadTx means a tx failed the leader's checks (signature, channel,
	// size) and was not ordered.
	ErrBadTx = protocol.NewError(protocol.CodeBadRequest, "cluster.bad_tx", "cluster: bad tx")
	// ErrBadSignature means a tx's signature does not verify (it is also
	// ErrBadTx).
	ErrBadSignature = protocol.NewError(protocol.CodeBadSignature, "cluster.bad_signature", "cluster: tx signature does not verify", ErrBadTx)
	// ErrRefused means the leader's state machine refused the entry.
	ErrRefused = protocol.NewError(protocol.CodeBadRequest, "cluster.refused", "cluster: entry refused")
	// ErrLogStore means a channel's folder holds a Raft store other than
	// the one Config.LogStore names, or both kinds: the channel is not
	// opened, so that its log, term and vote are not forgotten.
	ErrLogStore = errors.New("cluster: the channel's Raft log store does not match")
	// ErrConfig means a Config is invalid.
	ErrConfig = errors.New("cluster: invalid config")
	// ErrUnauthenticated means a peer request's caller signature is bad.
	ErrUnauthenticated = protocol.NewError(protocol.CodeBadSignature, "cluster.unauthenticated", "cluster: unauthenticated peer request")
	// ErrBadSnapshot means a snapshot does not check out: its state is not
	// the one the chain settled, or its batches do not apply as signed
	// batches of the channel's leaders. Evidence is recorded.
	ErrBadSnapshot = errors.New("cluster: snapshot does not check out")
	// ErrUnverifiable means a snapshot cannot be checked against the chain
	// now: the chain's settled height is outside the heights it covers, or
	// the chain settled before it recorded state hashes.
	ErrUnverifiable = errors.New("cluster: snapshot cannot be checked against the chain")
	// ErrNotSettlement means a proposal is not a well-formed settlement.
	ErrNotSettlement = errors.New("cluster: not a settlement proposal")
	// ErrStaleNonce means a tx's nonce is already used (counting the
	// batches in flight); it is also ErrBadTx. Sign again
	// with the next nonce.
	ErrStaleNonce = protocol.NewError(protocol.CodeStaleNonce, "cluster.stale_nonce", "cluster: nonce already used", ErrBadTx)
	// ErrNotReady means the channel has not applied what is asked for yet
	// (no genesis, a height above the applied one, a sender it does not
	// know while it catches up).
	ErrNotReady = protocol.NewError(protocol.CodeNotReady, "cluster.not_ready", "cluster: not ready")
	// ErrLastMember means the channel's only member asked to leave: close
	// the channel instead.
	ErrLastMember = protocol.NewError(protocol.CodeBadRequest, "cluster.last_member", "cluster: the channel's only member cannot leave")
	// ErrQuorum means taking a member's node out of the channel's Raft
	// group would leave it without a quorum (no node at all, or too few
	// that answer).
	ErrQuorum = protocol.NewError(protocol.CodeBadRequest, "cluster.quorum", "cluster: leaving would break the channel's quorum")
	// ErrNotRequest means a leave or close request does not carry the
	// member's signed scraft::leave or scraft::close call.
	ErrNotRequest = protocol.NewError(protocol.CodeBadRequest, "cluster.not_request", "cluster: not a leave or close request")
	// ErrVersion means the channel needs a VM or gas table version other
	// than this node's: the node does not host it, since it could
	// disagree with the members on any batch.
	ErrVersion = protocol.NewError(protocol.CodeUnsupported, "cluster.version", "cluster: the channel needs another VM or gas table version")
)

// ExecutorFactory makes the Executor that runs a channel's contract. The
// wiring passes one over package vm.
type ExecutorFactory func(contract string, code []byte) (fsm.Executor, error)

// Config configures a Node and the channels it hosts. Start from
// DefaultConfig.
type Config struct {
	// DataDir holds one folder per channel: DataDir/channels/<id>/ with
	// its Raft store (raft.db or wal/, LogStore) and snapshots/. Required.
	DataDir string
	// LogStore is the kind of store a channel's Raft log and stable store
	// (current term, vote) live in: LogStoreBolt ("bolt", raft-boltdb/v2)
	// or LogStoreWAL ("wal", hashicorp/raft-wal). A channel keeps the kind
	// it was created with: empty opens whichever kind a channel's folder
	// holds and creates new channels with DefaultLogStore; a kind named
	// here creates new channels with it and refuses to open a channel
	// whose folder holds the other (ErrLogStore). Default empty.
	LogStore string
	// Key is the node's member key: it signs batches, attestations, peer
	// requests and chain calls. Required.
	Key *protocol.Key
	// Address is the node's gRPC address as peers reach it; it is the Raft
	// server address of every channel. Required.
	Address string
	// Chain is the settlement chain, bound to Key. Required.
	Chain Chain
	// Executors makes a channel's contract executor. Required.
	Executors ExecutorFactory
	// RaftTransport opens the Raft transport of one channel (the node's
	// gRPC transport multiplexed by channel id). Required.
	RaftTransport func(channel string) (raft.Transport, error)
	// Dial returns the shared connection to a peer's gRPC address.
	// Required.
	Dial func(addr string) (*grpc.ClientConn, error)

	// HeartbeatTimeout, ElectionTimeout and LeaderLeaseTimeout are Raft's.
	// The defaults (300ms, 300ms, 300ms) suit loopback and a LAN: writes
	// resume about 0.5 s after a leader dies (docs/BENCHMARKS.md). A lease
	// shorter than the heartbeat timeout made a busy leader on two shared
	// cores step down for nothing; raise all three on a slow or distant
	// network. Raft's own (1s, 1s, 500ms) make a failover take about three
	// times as long.
	HeartbeatTimeout   time.Duration
	ElectionTimeout    time.Duration
	LeaderLeaseTimeout time.Duration
	// LeaderWatch has a follower's Raft look for a silent leader as soon
	// as a HeartbeatTimeout is due, the voters in turns, instead of when
	// Raft's timer next fires, one to three HeartbeatTimeouts after the
	// last contact (leaderwatch.go). Default true.
	LeaderWatch bool
	// CommitTimeout is Raft's: how long an idle leader waits before a
	// heartbeat that carries the commit index. Default 20ms.
	CommitTimeout time.Duration
	// SnapshotInterval and SnapshotThreshold are Raft's: how often it checks
	// and how many new log entries make a snapshot. Defaults 30s and 8192.
	SnapshotInterval  time.Duration
	SnapshotThreshold uint64
	// TrailingLogs is how many log entries Raft keeps after a snapshot, so
	// a follower that was away for less than TrailingLogs / write rate
	// catches up from the log instead of a snapshot. Default 10240 (about
	// 10 s at 1,000 batches/s).
	TrailingLogs uint64
	// SnapshotRetain is how many snapshots stay on disk. Default 2.
	SnapshotRetain int

	// BatchMaxTxs is the most txs in one batch. Default 256.
	BatchMaxTxs int
	// BatchMaxDelay is how long the leader waits for more txs before it
	// closes a batch that is not full. Default 2ms.
	BatchMaxDelay time.Duration
	// MaxInFlight is how many batches the leader keeps in Raft at once
	// (pipelining): the next batch fills while these commit. Default 2:
	// more in flight makes smaller batches, each a disk write on every
	// member, and measured 25-40 % fewer tx/s here (docs/BENCHMARKS.md).
	MaxInFlight int
	// QueueSize bounds the txs waiting for a batch; a full queue answers
	// ErrBusy. Default 16384.
	QueueSize int
	// ApplyTimeout bounds a raft.Apply of one batch. Default 5s.
	ApplyTimeout time.Duration
	// OutcomeCache is how many recent outcomes each member keeps by tx hash,
	// so that a resubmitted tx gets its first outcome. Default 65536.
	OutcomeCache int
	// RecentOutcomes is how many of the last applied outcomes each channel
	// keeps in memory, in height order, so that a subscriber resumes from a
	// height without a snapshot and a resubmitted tx finds its first
	// outcome even when OutcomeCache lost it. The ring holds the full
	// outcomes (output, change set, events): about 16384 × the mean outcome
	// size per channel. 0 keeps none (subscribers always resume from a
	// snapshot). Default 16384.
	RecentOutcomes int

	// KeepAliveInterval is the period of the member's heartbeat to the
	// chain; a third of the chain's HeartbeatTTL (15 s by default) is
	// used instead when that is shorter. Default 5s.
	KeepAliveInterval time.Duration
	// ChainPollInterval is the channel's local tick: how often its loops
	// check their own state (settlement policy, membership, waits), and the
	// pause before a failed chain read is tried again. The chain itself is
	// reread on news from the node's chain feed and, as a safety net, every
	// 50 ticks (chainResync). Default 100ms.
	ChainPollInterval time.Duration
	// ReconcileInterval is how often the leader checks Raft membership and
	// leadership against the chain. Default 100ms.
	ReconcileInterval time.Duration
	// AttestAfter is how long a follower must have lost contact with the
	// leader before it attests that the leader is unreachable (unless it
	// already follows the claimant in Raft). Default ElectionTimeout.
	AttestAfter time.Duration
	// ElectionAfter is how long the chain's leader, valid on chain, must
	// have been unreachable from a member (no answer to its probes; for a
	// voter, no append either) before the member files a leader-election
	// proposal (when it leads Raft without the chain's leader) or votes
	// for one (election.go). 0 means 10 × HeartbeatTimeout (3s by
	// default).
	ElectionAfter time.Duration
	// PeerTimeout bounds one peer RPC that is not a forwarded tx. Default 2s.
	PeerTimeout time.Duration

	// SettleEveryHeights and SettleInterval are the settlement policy of a
	// channel whose chain config names none (SettleEveryTxs and
	// SettleInterval both zero): its leader proposes settlement once this
	// many heights are unsettled, or when this long passed since the last
	// settlement and some height is unsettled. Defaults 1000 and 10s; both
	// zero: such channels are settled only when someone else proposes.
	SettleEveryHeights uint64
	SettleInterval     time.Duration
	// SettleMaxHeights caps the heights one settlement proposal covers; the
	// leader also halves a range whose net change set exceeds
	// protocol.MaxChanges or SettleMaxBytes. Default 10000.
	SettleMaxHeights uint64
	// SettleMaxBytes caps the encoded settlement a proposal carries, to stay
	// within the chain's tx size. Default 4 MiB.
	SettleMaxBytes int
	// SettleMaxUnsettledBytes bounds the unsettled suffix by weight: once
	// the batches since the settled height weigh this much
	// (fsm.Machine.UnsettledBytes), the leader proposes a settlement
	// whatever the policy, as it does once SettleMaxHeights heights are
	// unsettled. Past 4 times either bound (settlements keep failing) it
	// answers new calls ErrBusy until one executes. In bytes; default
	// 64 MiB.
	SettleMaxUnsettledBytes uint64
	// SettleTimeout is how long the leader waits for its open settlement
	// proposal to pass before it proposes afresh, and how long a member
	// waits to apply a proposal's last height before it abstains.
	// Default 30s.
	SettleTimeout time.Duration

	// Logger receives the node's logs. Default: a null logger.
	Logger hclog.Logger
	// Registerer receives the node's Prometheus metrics. Default nil: the
	// metrics are kept but not registered.
	Registerer prometheus.Registerer
	// Observer, when set, is called with every applied batch's outcomes of
	// every channel, on the channel's apply goroutine; it must not block.
	Observer func(channel protocol.ChannelID, outs []protocol.Outcome)
}

// DefaultConfig returns a Config with every default set; the required
// fields are still empty.
func DefaultConfig() Config {
	return Config{
		HeartbeatTimeout:   300 * time.Millisecond,
		ElectionTimeout:    300 * time.Millisecond,
		LeaderLeaseTimeout: 300 * time.Millisecond,
		LeaderWatch:        true,
		CommitTimeout:      20 * time.Millisecond,
		SnapshotInterval:   30 * time.Second,
		SnapshotThreshold:  8192,
		TrailingLogs:       10240,
		SnapshotRetain:     2,
		BatchMaxTxs:        256,
		BatchMaxDelay:      2 * time.Millisecond,
		MaxInFlight:        2,
		QueueSize:          16384,
		ApplyTimeout:       5 * time.Second,
		OutcomeCache:       65536,
		RecentOutcomes:     16384,
		KeepAliveInterval:  5 * time.Second,
		ChainPollInterval:  100 * time.Millisecond,
		ReconcileInterval:  100 * time.Millisecond,
		PeerTimeout:        2 * time.Second,
		SettleEveryHeights: 1000,
		SettleInterval:     10 * time.Second,
		SettleMaxHeights:   10000,
		SettleMaxBytes:     4 << 20,
		SettleTimeout:      30 * time.Second,

		SettleMaxUnsettledBytes: 64 << 20,
	}
}

// Validate checks the fields and how they relate to each other.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.DataDir == "":
		return bad("DataDir is required")
	case c.Key == nil:
		return bad("Key is required")
	case c.Address == "":
		return bad("Address is required")
	case c.Chain == nil:
		return bad("Chain is required")
	case c.Executors == nil:
		return bad("Executors is required")
	case c.RaftTransport == nil:
		return bad("RaftTransport is required")
	case c.Dial == nil:
		return bad("Dial is required")
	case !validLogStore(c.LogStore):
		return bad("LogStore (%q) must be %q, %q or empty", c.LogStore, LogStoreBolt, LogStoreWAL)
	case c.HeartbeatTimeout < 5*time.Millisecond:
		return bad("HeartbeatTimeout (%s) is too low", c.HeartbeatTimeout)
	case c.ElectionTimeout < c.HeartbeatTimeout:
		return bad("ElectionTimeout (%s) must be equal or greater than HeartbeatTimeout (%s)", c.ElectionTimeout, c.HeartbeatTimeout)
	case c.LeaderLeaseTimeout < 5*time.Millisecond:
		return bad("LeaderLeaseTimeout (%s) is too low", c.LeaderLeaseTimeout)
	case c.LeaderLeaseTimeout > c.HeartbeatTimeout:
		return bad("LeaderLeaseTimeout (%s) cannot be larger than heartbeat timeout (%s)", c.LeaderLeaseTimeout, c.HeartbeatTimeout)
	case c.CommitTimeout < time.Millisecond || c.CommitTimeout > c.HeartbeatTimeout:
		return bad("CommitTimeout (%s) must be between 1ms and HeartbeatTimeout (%s)", c.CommitTimeout, c.HeartbeatTimeout)
	case c.SnapshotInterval < 5*time.Millisecond:
		return bad("SnapshotInterval (%s) is too low", c.SnapshotInterval)
	case c.SnapshotThreshold < 1:
		return bad("SnapshotThreshold must be at least 1")
	case c.SnapshotRetain < 1:
		return bad("SnapshotRetain (%d) must be at least 1", c.SnapshotRetain)
	case c.BatchMaxTxs < 1 || c.BatchMaxTxs > protocol.MaxBatchEntries:
		return bad("BatchMaxTxs (%d) must be between 1 and %d", c.BatchMaxTxs, protocol.MaxBatchEntries)
	case c.BatchMaxDelay < 0:
		return bad("BatchMaxDelay (%s) cannot be negative", c.BatchMaxDelay)
	case c.MaxInFlight < 1:
		return bad("MaxInFlight (%d) must be at least 1", c.MaxInFlight)
	case c.QueueSize < c.BatchMaxTxs:
		return bad("QueueSize (%d) cannot be smaller than BatchMaxTxs (%d)", c.QueueSize, c.BatchMaxTxs)
	case c.ApplyTimeout <= 0:
		return bad("ApplyTimeout (%s) must be positive", c.ApplyTimeout)
	case c.OutcomeCache < 1:
		return bad("OutcomeCache (%d) must be at least 1", c.OutcomeCache)
	case c.RecentOutcomes < 0:
		return bad("RecentOutcomes (%d) cannot be negative", c.RecentOutcomes)
	case c.KeepAliveInterval <= 0:
		return bad("KeepAliveInterval (%s) must be positive", c.KeepAliveInterval)
	case c.ChainPollInterval <= 0:
		return bad("ChainPollInterval (%s) must be positive", c.ChainPollInterval)
	case c.ReconcileInterval <= 0:
		return bad("ReconcileInterval (%s) must be positive", c.ReconcileInterval)
	case c.AttestAfter < 0:
		return bad("AttestAfter (%s) cannot be negative", c.AttestAfter)
	case c.ElectionAfter < 0:
		return bad("ElectionAfter (%s) cannot be negative", c.ElectionAfter)
	case c.PeerTimeout <= 0:
		return bad("PeerTimeout (%s) must be positive", c.PeerTimeout)
	case c.SettleInterval < 0:
		return bad("SettleInterval (%s) cannot be negative", c.SettleInterval)
	case c.SettleMaxHeights < 1:
		return bad("SettleMaxHeights must be at least 1")
	case c.SettleMaxBytes < 1024:
		return bad("SettleMaxBytes (%d) must be at least 1024", c.SettleMaxBytes)
	case c.SettleMaxUnsettledBytes < 1024:
		return bad("SettleMaxUnsettledBytes (%d) must be at least 1024", c.SettleMaxUnsettledBytes)
	case c.SettleTimeout <= 0:
		return bad("SettleTimeout (%s) must be positive", c.SettleTimeout)
	}
	return nil
}

func (c *Config) attestAfter() time.Duration {
	if c.AttestAfter > 0 {
		return c.AttestAfter
	}
	return c.ElectionTimeout
}

// claimWindow is how long a channel may be without a Raft leader, as a
// follower sees it, before the follower claims the chain's leadership of
// a leader whose chain heartbeat expired; and how long, after the chain
// names a leader, other members' vote requests are refused while it wins
// its election (liar.go).
func (c *Config) claimWindow() time.Duration { return 3 * c.ElectionTimeout }

// electionAfterHeartbeats is ElectionAfter's default in HeartbeatTimeouts.
const electionAfterHeartbeats = 10

func (c *Config) electionAfter() time.Duration {
	if c.ElectionAfter > 0 {
		return c.ElectionAfter
	}
	return electionAfterHeartbeats * c.HeartbeatTimeout
}

func (c *Config) logger() hclog.Logger {
	if c.Logger == nil {
		return hclog.NewNullLogger()
	}
	return c.Logger
}
