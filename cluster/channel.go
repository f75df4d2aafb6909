package cluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/backoff"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// Channel is one channel a node hosts: a Raft group whose log carries the
// leader's signed batches, an fsm.Machine that every member drives, and the
// loops that make the chain's leader the Raft leader.
//
// Goroutines: raft's own; the channel's loops, started together by start
// and stopped in reverse by Close (loops): the chain view (the node's
// chain feed for this channel), leadership (Raft leadership
// notifications, fencing, transfers, claims), settlement votes,
// censorship complaint answers, elections, membership (leaving, retiring) and keep-alive; while this node leads,
// the leader run (batcher, completer, settler); the forwarder's.
// All methods are safe for concurrent use.
type Channel struct {
	id     protocol.ChannelID
	node   *Node
	cfg    *Config
	logger hclog.Logger
	dir    string

	raft      *raft.Raft
	store     raftStore
	storeKind string // LogStoreBolt or LogStoreWAL
	// disk is the Raft log store as Raft writes it, remembering a failed
	// write (diskfull.go); diskHandOff says a hand-off for it runs.
	disk        *storeWatch
	diskHandOff atomic.Bool
	transport   raft.Transport
	fsm         *machineFSM
	view        *chainView
	notifyCh    chan bool
	// ttl is the chain's heartbeat TTL in nanoseconds once read
	// (heartbeatTTL); 0 before.
	ttl atomic.Int64

	// ctx is cancelled by Close; every loop and chain call uses it.
	ctx    context.Context
	cancel context.CancelFunc
	// loops are the channel's long-lived loops (start); wg counts the
	// forwarder's goroutines.
	loops group
	wg    sync.WaitGroup

	closeOnce sync.Once
	closeErr  error

	// leader is the running leader work, nil while this node does not
	// lead. Only the leadership loop sets it.
	leader atomic.Pointer[leaderRun]

	// inflight maps the hash of every submitted and not yet answered tx to
	// its submission, so that a tx submitted twice waits for one outcome.
	inflight struct {
		sync.Mutex
		m map[protocol.Hash]*submission
	}
	// fwd forwards txs to the leader while this node follows.
	fwd *forwarder
	// retired is the end of this node's hosting of the channel (leave.go).
	retired retirement

	subs struct {
		sync.Mutex
		next int
		m    map[int]chan Applied
	}
	// recent holds the last applied outcomes; guarded by subs.
	recent recentOutcomes
	// applied is closed and replaced after each applied batch (guarded by
	// subs): what a forwarded call waits on for this member's own outcome.
	applied chan struct{}

	metrics *channelMetrics
	// punish is this member's evidence against leaders and the chain's
	// judgement of it (punish.go).
	punish punishment
	// voided keeps the batches this node signed and Raft did not apply,
	// to propose again when it leads the same epoch again.
	voided voidedBatches

	// chainWaits counts the applies waiting for the chain to decide
	// (awaitChain, awaitLeader); the scraft_chain_waits gauge shows it.
	chainWaits atomic.Int32

	// deleg is the channel's delegate layout (delegation.go).
	deleg delegation
	// relay keeps the recent applied commands for delegators (relay.go).
	relay relayLog
	// votes are the settlement votes a candidate carries to the chain
	// (delegation_votes.go).
	votes voteBox
}

// Applied is one applied batch as subscribers see it.
type Applied struct {
	Channel  protocol.ChannelID
	Epoch    uint64
	Leader   protocol.Address
	Outcomes []protocol.Outcome
}

// Status is a channel's state as this node sees it.
type Status struct {
	Channel protocol.ChannelID `json:"channel"`
	// Height and Digest are those of the last applied entry.
	Height uint64        `json:"height"`
	Digest protocol.Hash `json:"digest"`
	// Leader and Epoch are the chain's; SettledHeight is the last height
	// settled on chain.
	Leader        protocol.Address `json:"leader"`
	Epoch         uint64           `json:"epoch"`
	SettledHeight uint64           `json:"settled_height"`
	// Leading says this node signs batches now.
	Leading bool `json:"leading"`
	// RaftState is Follower, Candidate, Leader or Shutdown; RaftLeader the
	// Raft leader's server address.
	RaftState  string `json:"raft_state"`
	RaftLeader string `json:"raft_leader"`
	// AppliedIndex, CommitIndex and LastIndex are Raft's; Lag is
	// CommitIndex - AppliedIndex.
	AppliedIndex uint64 `json:"applied_index"`
	CommitIndex  uint64 `json:"commit_index"`
	LastIndex    uint64 `json:"last_index"`
	Lag          uint64 `json:"lag"`
	// Members is the number of channel members in the state; Voters and
	// NonVoters count the servers of the Raft configuration.
	Members   int `json:"members"`
	Voters    int `json:"voters"`
	NonVoters int `json:"non_voters"`
	// Evidence counts the leader faults this node recorded.
	Evidence uint64 `json:"evidence"`
	// Holding says this member recorded an offence against a leader and
	// holds that epoch's later batches until the chain judges it;
	// Diverged, that its case failed: it applies nothing more until it
	// resynced from the members' settled state (punish.go).
	Holding  bool `json:"holding"`
	Diverged bool `json:"diverged"`
	// Ready says the channel has a genesis, knows its Raft leader and has
	// applied what it knows is committed, but for at most a few log entries.
	Ready bool `json:"ready"`
	// Candidates are the channel's delegate candidates as this node last
	// read them (none in a channel of at most 5 members); Delegator says
	// this node's member is none of them, and RelayedBy is the node
	// address of the candidate relaying to it ("" when none).
	Candidates []protocol.Address `json:"candidates"`
	Delegator  bool               `json:"delegator"`
	RelayedBy  string             `json:"relayed_by"`
	// StoreError is why the last write to this node's Raft log failed
	// (a full disk), "" when it succeeded; the node is not ready then.
	StoreError string `json:"store_error,omitempty"`
}

// readyLag is the most log entries a ready member may have committed and
// not yet applied.
const readyLag = 16

func channelDir(dataDir string, id protocol.ChannelID) string {
	return filepath.Join(dataDir, "channels", id.String())
}

// openChannel sets up the stores, the FSM and Raft of one channel. It does
// not bootstrap and starts no loop of its own.
func openChannel(n *Node, id protocol.ChannelID) (_ *Channel, err error) {
	cfg := &n.cfg
	c := &Channel{
		id:       id,
		node:     n,
		cfg:      cfg,
		logger:   n.logger.Named("channel").With("channel", id.String()),
		dir:      channelDir(cfg.DataDir, id),
		view:     newChainView(),
		notifyCh: make(chan bool, 16),
		metrics:  n.metrics.forChannel(id),
	}
	c.inflight.m = make(map[protocol.Hash]*submission)
	c.retired.init()
	c.relay.init()
	c.votes.init()
	c.subs.m = make(map[int]chan Applied)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.fwd = newForwarder(c)
	defer func() {
		if err != nil {
			c.cancel()
		}
	}()

	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		return nil, fmt.Errorf("open channel %s: %w", id, err)
	}
	if err := c.voided.init(c.dir); err != nil {
		return nil, fmt.Errorf("open channel %s: %w", id, err)
	}
	if err := c.punish.init(c.dir); err != nil {
		return nil, fmt.Errorf("open channel %s: %w", id, err)
	}
	store, kind, err := openLogStore(c.dir, cfg.LogStore, c.logger.Named("wal"))
	if err != nil {
		return nil, fmt.Errorf("open channel %s: %w", id, err)
	}
	c.store, c.storeKind = store, kind
	defer func() {
		if err != nil {
			store.Close()
		}
	}()
	c.disk = &storeWatch{LogStore: store}
	logs, err := raft.NewLogCache(1024, c.disk)
	if err != nil {
		return nil, err
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(c.dir, cfg.SnapshotRetain, c.logger.Named("snapshots"))
	if err != nil {
		return nil, fmt.Errorf("open channel %s: snapshots: %w", id, err)
	}
	tr, err := cfg.RaftTransport(id.String())
	if err != nil {
		return nil, fmt.Errorf("open channel %s: transport: %w", id, err)
	}
	c.transport = tr
	defer func() {
		if err != nil {
			if cl, ok := tr.(interface{ Close() error }); ok {
				cl.Close()
			}
		}
	}()

	c.fsm = newMachineFSM(c.ctx, id, cfg.Key.Address(), c.logger.Named("fsm"), cfg.OutcomeCache)
	c.fsm.build = c.buildMachine
	c.fsm.onEvidence = c.onEvidence
	c.fsm.facts = chainFacts{c: c}
	c.fsm.applied = c.onApplied
	c.fsm.hold = c.hold
	c.fsm.snaps = c.newSnapshotCheck()

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.Key.Address().String())
	rc.HeartbeatTimeout = cfg.HeartbeatTimeout
	rc.ElectionTimeout = cfg.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.CommitTimeout
	rc.SnapshotInterval = cfg.SnapshotInterval
	rc.SnapshotThreshold = cfg.SnapshotThreshold
	rc.TrailingLogs = cfg.TrailingLogs
	rc.NotifyCh = c.notifyCh
	// Let the batcher hand a batch to Raft without waiting for the leader
	// loop: batches queued meanwhile share one disk write.
	rc.BatchApplyCh = true
	rc.Logger = newRaftLogger(c.logger.Named("raft"))
	if err := raft.ValidateConfig(rc); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrConfig, err)
	}
	r, err := raft.NewRaft(rc, c.fsm, logs, store, snaps, c.equivocating(tr))
	if err != nil {
		return nil, fmt.Errorf("open channel %s: raft: %w", id, err)
	}
	c.raft = r
	c.fsm.booted.Store(true)
	return c, nil
}

// ID returns the channel id.
func (c *Channel) ID() protocol.ChannelID { return c.id }

// start runs the channel's loops, in the order Close stops them in
// reverse: the chain view first (the others wait on it), then leadership
// (whose exit stops any leader work), settlement, punishment, membership,
// keep-alive.
func (c *Channel) start() {
	c.loops.start(c.ctx, c.runChainView)
	c.loops.start(c.ctx, c.runLeadership)
	c.loops.start(c.ctx, c.runLeaderWatch)
	c.loops.start(c.ctx, c.runSettlement)
	c.loops.start(c.ctx, c.runPunishment)
	c.loops.start(c.ctx, c.runComplaints)
	c.loops.start(c.ctx, c.runElection)
	c.loops.start(c.ctx, c.runMembership)
	c.loops.start(c.ctx, c.runKeepAlive)
	c.loops.start(c.ctx, c.runDelegation)
	c.loops.start(c.ctx, c.runRelay)
	c.loops.start(c.ctx, c.runVoteBox)
}

// hasState reports whether Raft has a log, a snapshot or a configuration.
func (c *Channel) hasState() bool {
	return c.raft.LastIndex() > 0
}

// bootstrap makes this node the only voter of a new Raft group.
func (c *Channel) bootstrap() error {
	f := c.raft.BootstrapCluster(raft.Configuration{Servers: []raft.Server{{
		Suffrage: raft.Voter,
		ID:       raft.ServerID(c.cfg.Key.Address().String()),
		Address:  raft.ServerAddress(c.cfg.Address),
	}}})
	if err := f.Error(); err != nil && !errors.Is(err, raft.ErrCantBootstrap) {
		return fmt.Errorf("bootstrap channel %s: %w", c.id, err)
	}
	return nil
}

// buildMachine makes the Machine a genesis defines, with the contract's
// code from the chain, after checking every field of the genesis against
// the chain (a *badGenesisError when one differs) and this node's VM and
// gas table versions against the channel's (ErrVersion). It retries the
// chain for up to 30 s, and gives up when ctx ends. It runs outside the
// machine lock.
func (c *Channel) buildMachine(ctx context.Context, g *genesis) (*fsm.Machine, error) {
	ctx, cancel := context.WithTimeout(ctx, genesisReadTimeout)
	defer cancel()
	cg, err := retryChain(ctx, func(ctx context.Context) (*chainGenesis, error) {
		return readChainGenesis(ctx, c.cfg.Chain, c.id, g.HighestJoinSeq)
	})
	if err != nil {
		return nil, fmt.Errorf("load channel %s: %w", c.id, unanswered(err))
	}
	if err := cg.check(g); err != nil {
		return nil, &badGenesisError{detail: err.Error()}
	}
	code, err := retryChain(ctx, func(ctx context.Context) ([]byte, error) {
		return c.cfg.Chain.Code(ctx, g.CodeHash)
	})
	if err != nil {
		return nil, fmt.Errorf("load code %s: %w", g.CodeHash, unanswered(err))
	}
	if contract.CodeHashOf(code) != g.CodeHash {
		return nil, fmt.Errorf("code from the chain does not hash to %s", g.CodeHash)
	}
	exec, err := c.cfg.Executors(g.Contract, code)
	if err != nil {
		return nil, fmt.Errorf("load contract %q: %w", g.Contract, err)
	}
	if err := checkVersions(exec, &cg.rec.Config); err != nil {
		return nil, fmt.Errorf("channel %s: %w", c.id, err)
	}
	exec = misexecute(exec)
	fc := g.fsmConfig(c.id)
	fc.Logger = c.logger.Named("machine")
	fc.OnEvidence = c.onEvidence
	return fsm.New(fc, exec)
}

// genesisReadTimeout bounds one attempt of buildMachine to read the chain.
var genesisReadTimeout = 30 * time.Second

// errChainUnanswered marks a genesis that could not be built because the
// chain did not answer in time: the applier tries again, where a genesis
// the chain contradicts, or a node that cannot run the channel, is final.
var errChainUnanswered = errors.New("the chain did not answer")

// unanswered marks err, a chain read given up on, as errChainUnanswered
// unless the chain answered that there is no such channel.
func unanswered(err error) error {
	if errors.Is(err, contract.ErrNoChannel) {
		return err
	}
	return fmt.Errorf("%w: %w", errChainUnanswered, err)
}

// loadGenesis reads the channel from the chain as its first leader (seed
// §6): code, initial state, and every membership up to the last join seq.
func (c *Channel) loadGenesis(ctx context.Context) (*genesis, error) {
	cg, err := loadChainGenesis(ctx, c.cfg.Chain, c.id)
	if err != nil {
		return nil, err
	}
	return cg.genesis(), nil
}

// chainJoined answers from the chain's history whether it gave join's seq
// to join's member and key: decided with a nil error for yes, decided with
// the reason for no; not decided while the chain has not given the seq to
// anyone, or when the chain cannot be read (err).
func (c *Channel) chainJoined(ctx context.Context, join protocol.MemberJoin) (decided bool, err error) {
	switch {
	case join.JoinSeq == 0:
		return true, fmt.Errorf("join seq 0")
	case protocol.AddressOf(join.PublicKey) != join.Member:
		return true, fmt.Errorf("the key is not %s's", join.Member)
	}
	rec, err := c.cfg.Chain.Channel(ctx, c.id)
	if err != nil {
		return false, err
	}
	if join.JoinSeq > rec.LastJoinSeq {
		return false, nil
	}
	var holder *settlement.MemberInfo
	for i := range rec.Members {
		if rec.Members[i].JoinSeq == join.JoinSeq {
			holder = &rec.Members[i]
		}
	}
	if holder != nil {
		if holder.Address != join.Member || !bytes.Equal(holder.PublicKey, join.PublicKey) {
			return true, fmt.Errorf("join seq %d is %s's on chain, not %s's", join.JoinSeq, holder.Address, join.Member)
		}
		return true, nil
	}
	// Given and ended before the channel was read: the departure record
	// says to whom.
	dp, err := c.cfg.Chain.Departure(ctx, c.id, join.JoinSeq)
	switch {
	case err == nil:
		if dp.Address != join.Member {
			return true, fmt.Errorf("join seq %d was %s's on chain, not %s's", join.JoinSeq, dp.Address, join.Member)
		}
		return true, nil
	case errors.Is(err, contract.ErrNoDeparture):
		// A chain from before departures were recorded: nothing tells.
		c.logger.Warn("the chain keeps no record of who held a join seq; accepting the join", "member", join.Member, "join_seq", join.JoinSeq)
		return true, nil
	}
	return false, err
}

// awaitChain asks decide until the chain's history decides an entry of a
// batch of epoch, and returns the verdict (refusal, nil for yes). It gives
// up, with ctx's error, only when ctx ends: the applier then abandons the
// machine rather than guess, and the node applies the batch again after a
// restart.
func (c *Channel) awaitChain(ctx context.Context, epoch uint64, what string, member protocol.Address,
	decide func(context.Context) (bool, error), undecided func() error) (refusal, err error) {
	warned := false
	for {
		cctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
		decided, err := decide(cctx)
		cancel()
		if decided {
			return err, nil
		}
		if !warned {
			warned = true
			defer c.waitingOnChain()() // counted from here to the verdict
			if err == nil {
				err = undecided()
			}
			c.logger.Warn("cannot decide a "+what+" entry yet: waiting for the chain", "member", member, "epoch", epoch, "reason", err)
		}
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(c.cfg.ChainPollInterval):
		}
	}
}

// chainEnded answers from the chain's history whether it ended member m's
// membership (the one of its join seq) in an epoch at most epoch: decided
// with a nil error for yes, decided with the reason for no. The answer does
// not depend on when it is asked: a departure is recorded for good, and a
// membership that has not ended while the chain is past epoch can only end
// in a later one. It is not decided while the membership is current and
// the chain still at epoch, or when the chain cannot be read (err).
func (c *Channel) chainEnded(ctx context.Context, m fsm.Member, epoch uint64) (decided bool, err error) {
	judge := func(dp *contract.Departure) error {
		switch {
		case dp.Address != m.Address:
			return fmt.Errorf("join seq %d was %s's on chain, not %s's", m.JoinSeq, dp.Address, m.Address)
		case dp.Epoch > epoch:
			return fmt.Errorf("the chain ended its membership in epoch %d, after epoch %d", dp.Epoch, epoch)
		}
		return nil
	}
	if m.JoinSeq == 0 {
		return true, fmt.Errorf("%s holds no join seq", m.Address)
	}
	dp, err := c.cfg.Chain.Departure(ctx, c.id, m.JoinSeq)
	switch {
	case err == nil:
		return true, judge(dp)
	case !errors.Is(err, contract.ErrNoDeparture):
		return false, err
	}
	// Not ended when asked. The channel read after it tells whether the
	// chain has left epoch behind since: then it can only end later.
	rec, err := c.cfg.Chain.Channel(ctx, c.id)
	if err != nil {
		return false, err
	}
	if cur, ok := rec.Member(m.Address); (ok && cur.JoinSeq == m.JoinSeq) || m.JoinSeq > rec.LastJoinSeq {
		if rec.Epoch > epoch {
			return true, fmt.Errorf("the chain had not ended its membership when it left epoch %d", epoch)
		}
		return false, nil
	}
	// It ended in between the two reads.
	dp, err = c.cfg.Chain.Departure(ctx, c.id, m.JoinSeq)
	switch {
	case err == nil:
		return true, judge(dp)
	case errors.Is(err, contract.ErrNoDeparture):
		// Gone from the channel without a departure record: a chain from
		// before departures were recorded. Judge as before, by absence.
		c.logger.Warn("the chain keeps no departure record for a member it let go; accepting its leave", "member", m.Address)
		return true, nil
	}
	return false, err
}

// awaitLeader returns the chain's leader of epoch, for the batches'
// leader check: the signer must be it. An epoch's leader never changes once
// the epoch began, and the chain keeps it for good (Chain.EpochLeader), so
// the answer is a fact of history: the view's when it saw the epoch, else
// the chain's record. An epoch the chain has not reached yet is waited
// for, never judged: saying no now could split this member from one that
// asks later. unrecorded says the chain is past epoch and keeps no record
// of it (a chain from before these records, and the view skipped the
// epoch): nothing here can judge its batches. It fails only when ctx ends.
func (c *Channel) awaitLeader(ctx context.Context, epoch uint64) (leader protocol.Address, unrecorded bool, err error) {
	waiting, counted := false, false
	for {
		if a, ok := c.view.leaderOf(epoch); ok {
			return a, false, nil
		}
		if c.view.isUnrecorded(epoch) {
			return protocol.Address{}, true, nil
		}
		_, _, changed := c.view.current()
		a, reached, err := c.chainLeaderOf(ctx, epoch)
		switch {
		case a != nil:
			return *a, false, nil
		case reached:
			if c.view.markUnrecorded(epoch) {
				c.logger.Warn("the chain keeps no record of an epoch's leader; accepting its batches unjudged", "epoch", epoch)
			}
			return protocol.Address{}, true, nil
		case err != nil:
			c.logger.Debug("chain read failed while checking a batch", "epoch", epoch, "error", err)
		case !waiting:
			waiting = true
			c.logger.Debug("batch of an epoch the chain has not reached: waiting for the chain", "epoch", epoch)
		}
		if !counted {
			counted = true
			defer c.waitingOnChain()()
		}
		select {
		case <-ctx.Done():
			return protocol.Address{}, false, ctx.Err()
		case <-changed:
		case <-time.After(c.cfg.ChainPollInterval):
		}
	}
}

// waitingOnChain counts an apply waiting for the chain until the returned
// func is called.
func (c *Channel) waitingOnChain() func() {
	c.chainWaits.Add(1)
	c.metrics.chainWaits.Inc()
	return func() {
		c.chainWaits.Add(-1)
		c.metrics.chainWaits.Dec()
	}
}

// chainLeaderOf asks the chain who led epoch: the leader (zero for none)
// when the chain has it on record; nil and reached when the chain is past
// epoch without a record of it; nil and not reached while the chain has
// not reached epoch, or when it cannot be read (err). It remembers what it
// learns in the view.
func (c *Channel) chainLeaderOf(ctx context.Context, epoch uint64) (leader *protocol.Address, reached bool, err error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
	defer cancel()
	recorded := func() (*protocol.Address, error) {
		el, err := c.cfg.Chain.EpochLeader(ctx, c.id, epoch)
		if err != nil {
			return nil, err
		}
		c.view.remember(epoch, el.Leader)
		return &el.Leader, nil
	}
	a, err := recorded()
	if !errors.Is(err, contract.ErrNoEpochLeader) {
		return a, a != nil, err
	}
	// Not on record when asked. The channel read after it tells whether
	// the chain has reached epoch since.
	if err := c.refreshChain(); err != nil {
		return nil, false, err
	}
	if a, ok := c.view.leaderOf(epoch); ok {
		return &a, true, nil
	}
	if _, cur, _ := c.view.current(); cur < epoch {
		return nil, false, nil
	}
	// Past it: the record, if the chain keeps one, was written in between.
	a, err = recorded()
	if errors.Is(err, contract.ErrNoEpochLeader) {
		return nil, true, nil
	}
	return a, a != nil, err
}

// refreshChain rereads the channel's record (leader, epoch, settled
// height, members) into the view.
func (c *Channel) refreshChain() error {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.PeerTimeout)
	defer cancel()
	rec, err := c.cfg.Chain.Channel(ctx, c.id)
	if err != nil {
		return err
	}
	c.metrics.chainReads.Inc()
	if c.view.updateInfo(rec) {
		c.logger.Info("chain leader", "leader", rec.Leader, "epoch", rec.Epoch)
		c.metrics.epoch.Set(float64(rec.Epoch))
	}
	c.metrics.settled.Set(float64(rec.SettledHeight))
	if ci, ai := c.raft.CommitIndex(), c.raft.AppliedIndex(); ci > ai {
		c.metrics.applyLag.Set(float64(ci - ai))
	} else {
		c.metrics.applyLag.Set(0)
	}
	return nil
}

// chainRetry is how reads of the chain that must succeed are retried.
var chainRetry = backoff.Policy{Initial: 20 * time.Millisecond, Max: 500 * time.Millisecond}

// retryChain calls fn until it succeeds, the channel does not exist, or ctx
// ends.
func retryChain[T any](ctx context.Context, fn func(context.Context) (T, error)) (T, error) {
	return backoff.Retry(ctx, chainRetry, func(err error) bool { return errors.Is(err, contract.ErrNoChannel) }, fn)
}

func (c *Channel) onEvidence(ev *fsm.Evidence) {
	c.metrics.evidence.Inc()
	c.logger.Error("leader fault recorded", "evidence", ev.String())
	if !fileable(ev, c.me()) {
		return
	}
	if c.punish.muted.Load() {
		c.logger.Warn("not an offence: this member is resyncing, and the result differs from the members' own", "leader", ev.Leader, "epoch", ev.Epoch)
		return
	}
	added, err := c.punish.offend(ev)
	switch {
	case added && ev.Reason == fsm.ReasonEquivocation:
		c.logger.Warn("offence recorded: filing it", "leader", ev.Leader, "epoch", ev.Epoch, "height", ev.Height)
	case added:
		c.logger.Warn("offence recorded: holding the epoch's later batches until the chain judges it",
			"leader", ev.Leader, "epoch", ev.Epoch, "height", ev.Height)
	}
	if err != nil {
		c.logger.Error("cannot keep the offence on disk", "error", err)
	}
}

// onApplied runs for every applied batch, on the applier's goroutine under
// the machine lock (so SubscribeWithSnapshot sees a batch either in its
// snapshot or on its feed).
func (c *Channel) onApplied(b *protocol.Batch, cmd []byte, a *fsm.Applied) {
	c.metrics.observeApplied(b, a)
	c.keepForRelay(b, cmd)
	if c.cfg.Observer != nil {
		c.cfg.Observer(c.id, a.Outcomes)
	}
	c.subs.Lock()
	defer c.subs.Unlock()
	c.recordApplied(a.Outcomes)
	if c.applied != nil {
		close(c.applied)
	}
	c.applied = make(chan struct{})
	if len(c.subs.m) == 0 {
		return
	}
	ev := Applied{Channel: c.id, Epoch: b.Epoch, Leader: b.Leader, Outcomes: a.Outcomes}
	for id, ch := range c.subs.m {
		select {
		case ch <- ev:
		default:
			// A subscriber that cannot keep up loses its subscription; it
			// sees its channel closed and resubscribes from a snapshot.
			close(ch)
			delete(c.subs.m, id)
		}
	}
}

// Subscribe returns the applied batches from now on, in order, and a
// function that ends the subscription. A subscriber that falls more than
// buffer batches behind has its channel closed.
func (c *Channel) Subscribe(buffer int) (<-chan Applied, func()) {
	ch := make(chan Applied, max(buffer, 1))
	c.subs.Lock()
	id := c.subs.next
	c.subs.next++
	c.subs.m[id] = ch
	c.subs.Unlock()
	return ch, func() {
		c.subs.Lock()
		defer c.subs.Unlock()
		if _, ok := c.subs.m[id]; ok {
			delete(c.subs.m, id)
			close(ch)
		}
	}
}

// Status returns the channel's state as this node sees it. It never waits
// for the state machine: what it reports of the state is as of the last
// apply, even while an apply runs (or waits on the chain).
func (c *Channel) Status() Status {
	leader, epoch, _ := c.view.current()
	st := Status{
		Channel:      c.id,
		Leader:       leader,
		Epoch:        epoch,
		Leading:      c.leader.Load() != nil,
		RaftState:    c.raft.State().String(),
		AppliedIndex: c.raft.AppliedIndex(),
		CommitIndex:  c.raft.CommitIndex(),
		LastIndex:    c.raft.LastIndex(),
	}
	if rec := c.view.channel(); rec != nil {
		st.SettledHeight = rec.SettledHeight
	}
	if cf := c.raft.GetConfiguration(); cf.Error() == nil {
		for _, s := range cf.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				st.Voters++
			} else {
				st.NonVoters++
			}
		}
	}
	addr, _ := c.raft.LeaderWithID()
	st.RaftLeader = string(addr)
	if st.CommitIndex > st.AppliedIndex {
		st.Lag = st.CommitIndex - st.AppliedIndex
	}
	st.Holding, st.Diverged = c.punish.state()
	if l := c.layout(); l.delegated() {
		st.Candidates = l.candidates
		st.Delegator = !l.isCandidate(c.me())
		st.RelayedBy = c.relaySource()
	}
	if sum := c.fsm.summary.Load(); sum != nil {
		st.Height, st.Digest = sum.height, sum.digest
		st.Members, st.Evidence = sum.members, sum.evidence
		st.Ready = true
	}
	// Under load a follower is always a few batches behind what it knows
	// is committed; within readyLag it serves reads as caught up.
	// A delegator has no Raft leader: its candidate relays to it.
	st.Ready = st.Ready && st.Lag <= readyLag && (st.RaftLeader != "" || c.relaySource() != "")
	if _, err := c.disk.failure(); err != nil {
		st.StoreError = err.Error()
		st.Ready = false
	}
	return st
}

// Digest returns D(h) if h is in this member's journal.
func (c *Channel) Digest(h uint64) (d protocol.Hash, ok bool) {
	c.fsm.machine(func(m *fsm.Machine) {
		if m != nil {
			d, ok = m.Digest(h)
		}
	})
	return d, ok
}

// Machine runs fn with the channel's state machine under its lock (nil
// before the genesis). fn must not keep m.
func (c *Channel) Machine(fn func(m *fsm.Machine)) { c.fsm.machine(fn) }

// Close stops the channel: the loops in the reverse order of their start
// (leader work with the leadership loop), then Raft, then the stores. It
// cancels the channel's context first: chain calls give up at once, and an
// apply waiting on the chain, which may hold the machine a loop needs,
// lets go. It is safe to call more than once.
func (c *Channel) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.loops.stop()
		c.wg.Wait()
		if err := c.raft.Shutdown().Error(); err != nil {
			c.closeErr = fmt.Errorf("close channel %s: raft: %w", c.id, err)
		}
		if cl, ok := c.transport.(interface{ Close() error }); ok {
			_ = cl.Close()
		}
		if err := c.store.Close(); err != nil && c.closeErr == nil {
			c.closeErr = fmt.Errorf("close channel %s: %s store: %w", c.id, c.storeKind, err)
		}
		c.subs.Lock()
		for id, ch := range c.subs.m {
			close(ch)
			delete(c.subs.m, id)
		}
		c.subs.Unlock()
		c.failInflight(ErrClosed)
	})
	return c.closeErr
}

// runKeepAlive sends the member's heartbeat to the chain: every
// KeepAliveInterval, or a third of the chain's HeartbeatTTL when that is
// shorter (a chain with short windows), so that a beat or two may be lost.
func (c *Channel) runKeepAlive(ctx context.Context) {
	every := c.cfg.KeepAliveInterval
	t := time.NewTicker(every)
	defer t.Stop()
	notMember := false // said once, not every beat
	tuned := false     // the chain's TTL is known
	for {
		if !tuned {
			pctx, cancel := context.WithTimeout(ctx, every)
			p, err := c.cfg.Chain.Params(pctx)
			cancel()
			if tuned = err == nil; tuned && keepAliveEvery(every, p.HeartbeatTTL) != every {
				every = keepAliveEvery(every, p.HeartbeatTTL)
				t.Reset(every)
				c.logger.Info("keep_alive every third of the chain's heartbeat TTL", "ttl", p.HeartbeatTTL, "every", every)
			}
		}
		cctx, cancel := context.WithTimeout(ctx, every)
		err := c.cfg.Chain.KeepAlive(cctx, c.id)
		cancel()
		switch {
		case err == nil:
			notMember = false
		case ctx.Err() != nil:
		case errors.Is(err, contract.ErrNotMember):
			select {
			case <-c.retired.began:
				return // this member left: it has nothing to keep alive
			default:
			}
			if !notMember {
				c.logger.Info("keep_alive: this node's member is not a member on chain (left, let go or punished): no heartbeats until it is again", "error", err)
				notMember = true
			}
		default:
			c.logger.Warn("keep_alive failed", "error", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// keepAliveEvery is the period of the member's heartbeat: interval, or a
// third of the chain's heartbeat TTL when that is shorter.
func keepAliveEvery(interval, ttl time.Duration) time.Duration {
	if ttl > 0 && ttl/3 < interval {
		return ttl / 3
	}
	return interval
}

// StateSnapshot is a channel's applied state at one height.
type StateSnapshot struct {
	Height  uint64
	Digest  protocol.Hash
	State   protocol.State
	Members []protocol.Address
}

// SubscribeWithSnapshot captures the applied state and subscribes to the
// batches applied after it, atomically: the first batch the subscription
// delivers follows the snapshot's height. The snapshot is nil before the
// channel's genesis.
func (c *Channel) SubscribeWithSnapshot(buffer int) (*StateSnapshot, <-chan Applied, func()) {
	var snap *StateSnapshot
	var ch <-chan Applied
	var cancel func()
	c.fsm.machine(func(m *fsm.Machine) {
		if m != nil {
			snap = &StateSnapshot{Height: m.Height(), Digest: m.LastDigest(), State: m.Resources()}
			for _, mem := range m.Members() {
				snap.Members = append(snap.Members, mem.Address)
			}
		}
		ch, cancel = c.Subscribe(buffer)
	})
	return snap, ch, cancel
}

// NextNonce returns the nonce the sender's next tx must carry, as of the
// applied state.
func (c *Channel) NextNonce(sender protocol.Address) uint64 {
	var n uint64
	c.fsm.machine(func(m *fsm.Machine) {
		if m != nil {
			n = m.Nonce(sender)
		}
	})
	return n + 1
}

// IsMember reports whether a is a member in the applied state.
func (c *Channel) IsMember(a protocol.Address) bool {
	var ok bool
	c.fsm.machine(func(m *fsm.Machine) {
		if m != nil {
			_, ok = m.Member(a)
		}
	})
	return ok
}

// CheckMember returns nil when a is a member in the applied state. When it
// is not, the answer depends on whether this node is caught up: while it
// is not Ready, or has committed entries left to apply (the member's join
// may be among them), it returns ErrNotReady, which a client retries
// (elsewhere); only a caught-up node says ErrNotMember. A node restarted
// after a crash would otherwise tell long-standing members that they are
// none until it has replayed its log.
func (c *Channel) CheckMember(a protocol.Address) error {
	if c.IsMember(a) {
		return nil
	}
	if st := c.Status(); !st.Ready || st.Lag > 0 {
		return fmt.Errorf("%w: channel %s is catching up (applied %d, lag %d): %s may be a member it has not applied yet",
			ErrNotReady, c.id, st.Height, st.Lag, a)
	}
	return fmt.Errorf("%w: %s", ErrNotMember, a)
}

// Members returns the members in the applied state, ordered by address.
func (c *Channel) Members() []protocol.Address {
	var out []protocol.Address
	c.fsm.machine(func(m *fsm.Machine) {
		if m != nil {
			for _, mem := range m.Members() {
				out = append(out, mem.Address)
			}
		}
	})
	return out
}
