package console

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"sync"
	"time"

	"github.com/scraft/scraft/protocol"
)

// Node is what the console needs of the node: its address, its channels
// as it sees them now, and a channel's ABI. cmd/scraft adapts it from the
// cluster and the chain.
//
// Threading: Channels is called from the console's one polling goroutine;
// ABI from each channel view's own goroutine, several at once. Both may
// take as long as ctx allows.
type Node interface {
	// Address is the node's member address.
	Address() protocol.Address
	// Channels returns every channel the node hosts, in any order. With
	// members it also lists each channel's members with their lag and
	// heartbeat, which asks the member nodes and the chain: the console
	// asks for them only while someone watches.
	Channels(ctx context.Context, members bool) []ChannelState
	// ABI returns the ABI (the contract's abi.json) recorded on chain
	// with the channel's code, or nil and no error when the channel has
	// none on record: its views then decode with the demo contracts'
	// ABIs, by each type's prefix.
	ABI(ctx context.Context, id protocol.ChannelID) ([]byte, error)
}

// Roles of a member in a ChannelState. A channel of at most five members
// has a leader and followers; a larger one runs through five candidates
// (package delegate): the leader is one of them, the others are
// candidates, and every other member is a delegator, outside the Raft
// configuration, whose vote a candidate carries.
const (
	// RoleLeader is the member the chain records as leader.
	RoleLeader = "leader"
	// RoleCandidate is a candidate that does not lead.
	RoleCandidate = "candidate"
	// RoleDelegator is a member of a channel with candidates that is
	// none of them.
	RoleDelegator = "delegator"
	// RoleFollower is a member of a channel without candidates that does
	// not lead.
	RoleFollower = "follower"
)

// Member is one member of a channel. JSON names follow scraft status
// --json.
type Member struct {
	Address protocol.Address `json:"address"`
	Role    string           `json:"role"`
	Leader  bool             `json:"leader"`
	// Self marks this node's own member.
	Self bool `json:"self"`
	// Online says its node answered this node (its lag is known).
	Online bool `json:"online"`
	// Lag is how many heights its node is behind this node; -1 unknown.
	Lag int64 `json:"lag"`
	// HeartbeatAgeMs is the age of its last chain heartbeat; -1 unknown.
	// Valid says the chain counts that heartbeat as recent enough.
	HeartbeatAgeMs int64 `json:"heartbeat_age_ms"`
	Valid          bool  `json:"valid"`
	// DelegatedTo is the candidate a delegator's vote is delegated to on
	// chain, nil when none; Delegators counts the members that delegated
	// to this one.
	DelegatedTo *protocol.Address `json:"delegated_to,omitempty"`
	Delegators  uint32            `json:"delegators"`
}

// Proposal is an open proposal of a channel on chain (a settlement, a
// punishment, a leader election or a censorship complaint), with the
// votes cast on it so far.
type Proposal struct {
	ID       uint64           `json:"id"`
	Kind     string           `json:"kind"`
	Proposer protocol.Address `json:"proposer"`
	// State is "open", or "passed" when it has what it needs and waits
	// to be executed.
	State   string `json:"state"`
	For     uint32 `json:"for"`
	Against uint32 `json:"against"`
	Abstain uint32 `json:"abstain"`
	// Needed votes in favour, of Voters who may vote (0 for a complaint,
	// decided by its deadline).
	Needed uint32 `json:"needed"`
	Voters uint32 `json:"voters"`
	// DeadlineMs ends the voting (a complaint: the time to answer it);
	// chain time, Unix ms, 0 for none.
	DeadlineMs int64 `json:"deadline_ms"`
	// Target is whom a punishment accuses, the candidate an election
	// would seat, or the member a complaint accuses; Height the
	// settlement's last height or the punished offence's.
	Target *protocol.Address `json:"target,omitempty"`
	Height uint64            `json:"height,omitempty"`
	// Votes are those cast, in voter address order.
	Votes []Vote `json:"votes"`
}

// Vote is one member's vote on a proposal.
type Vote struct {
	Voter  protocol.Address `json:"voter"`
	Option string           `json:"option"` // for, against, abstain
}

// Ban is a member forced out of a channel by a punishment, barred from
// joining it again until UntilMs (chain time, Unix ms).
type Ban struct {
	Address  protocol.Address `json:"address"`
	UntilMs  int64            `json:"until_ms"`
	Proposal uint64           `json:"proposal"`
}

// ChannelState is one hosted channel as the node sees it.
type ChannelState struct {
	Channel       protocol.ChannelID `json:"channel"`
	Leader        protocol.Address   `json:"leader"`
	Epoch         uint64             `json:"epoch"`
	Height        uint64             `json:"height"`
	SettledHeight uint64             `json:"settled_height"`
	Digest        string             `json:"digest"`
	Ready         bool               `json:"ready"`
	// Leading says this node signs the channel's batches now.
	Leading bool `json:"leading"`
	// RaftState is this node's Raft role: Follower, Candidate, Leader.
	RaftState string `json:"raft_state"`
	// Lag is how many committed entries this node has not applied yet.
	Lag uint64 `json:"lag"`
	// Voters and NonVoters count the Raft configuration's servers.
	Voters    int `json:"voters"`
	NonVoters int `json:"non_voters"`
	// Evidence counts the leader faults this node recorded; Holding says
	// it holds batches until the chain judges its case, Diverged that its
	// case was voted down.
	Evidence uint64 `json:"evidence"`
	Holding  bool   `json:"holding"`
	Diverged bool   `json:"diverged"`
	// Retired is why the node stopped hosting it ("closed", "left"), or "".
	Retired string `json:"retired,omitempty"`
	// StoreError is why this node's last write to the channel's Raft log
	// failed (a full disk), "" when it succeeded.
	StoreError string `json:"store_error,omitempty"`
	// CommitRate is heights applied per second since the previous reading
	// (filled in by the console).
	CommitRate float64 `json:"commit_rate"`
	// TxCommitSeconds and TxCommits are the running sum and count of the
	// times from a tx reaching this node as leader to its outcome; the
	// console turns them into CommitLatencyMs.
	TxCommitSeconds float64 `json:"-"`
	TxCommits       uint64  `json:"-"`
	// CommitLatencyMs is the mean of those times over the txs committed
	// since the previous reading; -1 when none was (a follower, or idle).
	CommitLatencyMs float64  `json:"commit_latency_ms"`
	Members         []Member `json:"members"`
	// Candidates are the channel's delegate candidates as this node last
	// read them, best ranked first; empty in a channel of at most five
	// members.
	Candidates []protocol.Address `json:"candidates"`
	// Proposals are the channel's open proposals on chain, by id; Bans
	// its members' bans still running, by address. Both are read with
	// the members, while someone watches.
	Proposals []Proposal `json:"proposals"`
	Bans      []Ban      `json:"bans"`
}

// Event kinds of the cluster view.
const (
	EventChannel  = "channel"  // the node hosts a channel it did not
	EventLeader   = "leader"   // the chain's leader or epoch changed
	EventRaft     = "raft"     // this node's Raft role changed
	EventSettled  = "settled"  // the settled height grew
	EventEvidence = "evidence" // this node recorded leader faults
	EventHolding  = "holding"  // this node holds batches until the chain judges its case
	EventDiverged = "diverged" // this node's case was voted down
	EventRetired  = "retired"  // the node stopped hosting a channel
)

// Event is one thing that happened in a channel, as the node saw it.
type Event struct {
	Kind    string             `json:"kind"`
	Channel protocol.ChannelID `json:"channel"`
	// AtMs is when the console saw it (Unix ms, the node's clock).
	AtMs   int64            `json:"at_ms"`
	Height uint64           `json:"height"`
	Epoch  uint64           `json:"epoch"`
	Leader protocol.Address `json:"leader"`
	// Previous is the leader before a leader event.
	Previous      *protocol.Address `json:"previous,omitempty"`
	SettledHeight uint64            `json:"settled_height"`
	Evidence      uint64            `json:"evidence,omitempty"`
	RaftState     string            `json:"raft_state,omitempty"`
	Detail        string            `json:"detail,omitempty"`
}

// ClusterView is the data of a "cluster" message and of /console/api/cluster.
type ClusterView struct {
	Node     protocol.Address `json:"node"`
	AtMs     int64            `json:"at_ms"`
	Channels []ChannelState   `json:"channels"`
}

// message is one retained SSE message.
type message struct {
	id   uint64
	kind string
	data []byte
}

// history is a bounded, numbered list of messages with a broadcast of every
// append: the cluster view's history, and each channel view's.
type history struct {
	max int
	mu  struct {
		sync.Mutex
		msgs []message // ids growing
		// dropped is the id of the newest message evicted: a reader
		// after an id below it missed something.
		dropped uint64
		wake    chan struct{}
		closed  bool
	}
}

func newHistory(max int) *history {
	l := &history{max: max}
	l.mu.wake = make(chan struct{})
	return l
}

// append adds a message with the id given; ids must grow.
func (l *history) append(id uint64, kind string, data []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.mu.msgs = append(l.mu.msgs, message{id: id, kind: kind, data: data})
	if n := len(l.mu.msgs) - l.max; n > 0 {
		l.mu.dropped = l.mu.msgs[n-1].id
		l.mu.msgs = slices.Delete(l.mu.msgs, 0, n)
	}
	close(l.mu.wake)
	l.mu.wake = make(chan struct{})
}

// close wakes every reader for good.
func (l *history) close() {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.mu.closed {
		l.mu.closed = true
		close(l.mu.wake)
	}
}

// after returns the messages with ids above id, whether id is covered
// (no message above it was evicted), a channel closed at the next append,
// and whether the history is closed. Callers check that id is one they
// could have been given.
func (l *history) after(id uint64) (msgs []message, covered bool, wake <-chan struct{}, closed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	ms := l.mu.msgs
	wake, closed = l.mu.wake, l.mu.closed
	if id < l.mu.dropped {
		return nil, false, wake, closed
	}
	if len(ms) == 0 || id >= ms[len(ms)-1].id {
		return nil, true, wake, closed
	}
	i, _ := slices.BinarySearchFunc(ms, id+1, func(m message, id uint64) int {
		switch {
		case m.id < id:
			return -1
		case m.id > id:
			return 1
		}
		return 0
	})
	return slices.Clone(ms[i:]), true, wake, closed
}

// all returns every retained message.
func (l *history) all() []message {
	l.mu.Lock()
	defer l.mu.Unlock()
	return slices.Clone(l.mu.msgs)
}

// last returns the id of the newest message, 0 when there is none.
func (l *history) last() uint64 {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.mu.msgs) == 0 {
		return 0
	}
	return l.mu.msgs[len(l.mu.msgs)-1].id
}

// clusterWatch reads the node's channels every interval and turns the
// differences into events: one goroutine (run) owns prev and the ids.
type clusterWatch struct {
	node     Node
	interval time.Duration
	log      *history
	// watched says whether anyone watches now (members are read then).
	watched func() bool

	// owned by run
	nextID   uint64
	prev     map[protocol.ChannelID]ChannelState
	prevAt   time.Time
	latestMu sync.Mutex
	latest   ClusterView
}

func newClusterWatch(node Node, interval time.Duration, history int, watched func() bool) *clusterWatch {
	return &clusterWatch{node: node, interval: interval, log: newHistory(history), nextID: 1,
		prev: map[protocol.ChannelID]ChannelState{}, watched: watched}
}

func (w *clusterWatch) run(ctx context.Context) {
	defer w.log.close()
	t := time.NewTicker(w.interval)
	defer t.Stop()
	for {
		w.read(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// read takes one reading of the node and appends its events and state.
func (w *clusterWatch) read(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, max(w.interval*4, 2*time.Second))
	chs := w.node.Channels(rctx, w.watched())
	cancel()
	if ctx.Err() != nil {
		return
	}
	now := time.Now()
	slices.SortFunc(chs, func(a, b ChannelState) int { return compareChannel(a.Channel, b.Channel) })
	seen := make(map[protocol.ChannelID]bool, len(chs))
	var events []Event
	for i := range chs {
		c := &chs[i]
		seen[c.Channel] = true
		slices.SortFunc(c.Members, func(a, b Member) int { return a.Address.Compare(b.Address) })
		if c.Members == nil {
			c.Members = []Member{}
		}
		if c.Candidates == nil {
			c.Candidates = []protocol.Address{}
		}
		slices.SortFunc(c.Proposals, func(a, b Proposal) int { return cmp.Compare(a.ID, b.ID) })
		if c.Proposals == nil {
			c.Proposals = []Proposal{}
		}
		for i := range c.Proposals {
			slices.SortFunc(c.Proposals[i].Votes, func(a, b Vote) int { return a.Voter.Compare(b.Voter) })
			if c.Proposals[i].Votes == nil {
				c.Proposals[i].Votes = []Vote{}
			}
		}
		slices.SortFunc(c.Bans, func(a, b Ban) int { return a.Address.Compare(b.Address) })
		if c.Bans == nil {
			c.Bans = []Ban{}
		}
		p, had := w.prev[c.Channel]
		if had && !w.prevAt.IsZero() && c.Height >= p.Height {
			if dt := now.Sub(w.prevAt).Seconds(); dt > 0 {
				c.CommitRate = float64(c.Height-p.Height) / dt
			}
		}
		c.CommitLatencyMs = -1
		if had && c.TxCommits > p.TxCommits && c.TxCommitSeconds >= p.TxCommitSeconds {
			c.CommitLatencyMs = (c.TxCommitSeconds - p.TxCommitSeconds) / float64(c.TxCommits-p.TxCommits) * 1000
		}
		events = append(events, diff(p, had, *c, now.UnixMilli())...)
	}
	// Channels gone since the last reading, in id order.
	var gone []protocol.ChannelID
	for id := range w.prev {
		if !seen[id] {
			gone = append(gone, id)
		}
	}
	slices.SortFunc(gone, compareChannel)
	for _, id := range gone {
		p := w.prev[id]
		events = append(events, Event{Kind: EventRetired, Channel: id, AtMs: now.UnixMilli(), Height: p.Height,
			Epoch: p.Epoch, Leader: p.Leader, SettledHeight: p.SettledHeight, Detail: "no longer hosted"})
		delete(w.prev, id)
	}
	for _, c := range chs {
		w.prev[c.Channel] = c
	}
	w.prevAt = now
	for _, e := range events {
		b, _ := json.Marshal(e)
		w.log.append(w.nextID, "event", b)
		w.nextID++
	}
	view := ClusterView{Node: w.node.Address(), AtMs: now.UnixMilli(), Channels: chs}
	if view.Channels == nil {
		view.Channels = []ChannelState{}
	}
	b, _ := json.Marshal(view)
	w.latestMu.Lock()
	w.latest = view
	w.latestMu.Unlock()
	w.log.append(w.nextID, "cluster", b)
	w.nextID++
}

func (w *clusterWatch) view() ClusterView {
	w.latestMu.Lock()
	defer w.latestMu.Unlock()
	return w.latest
}

func compareChannel(a, b protocol.ChannelID) int { return slices.Compare(a[:], b[:]) }

// diff returns the events between two readings of a channel, in a fixed
// order.
func diff(p ChannelState, had bool, c ChannelState, at int64) []Event {
	ev := func(kind string) Event {
		return Event{Kind: kind, Channel: c.Channel, AtMs: at, Height: c.Height, Epoch: c.Epoch, Leader: c.Leader,
			SettledHeight: c.SettledHeight, Evidence: c.Evidence, RaftState: c.RaftState}
	}
	if !had {
		out := []Event{ev(EventChannel)}
		if !c.Leader.IsZero() {
			out = append(out, ev(EventLeader))
		}
		return out
	}
	var out []Event
	if c.Leader != p.Leader || c.Epoch != p.Epoch {
		e := ev(EventLeader)
		prev := p.Leader
		e.Previous = &prev
		out = append(out, e)
	}
	if c.RaftState != p.RaftState {
		e := ev(EventRaft)
		e.Detail = p.RaftState + " -> " + c.RaftState
		out = append(out, e)
	}
	if c.SettledHeight > p.SettledHeight {
		out = append(out, ev(EventSettled))
	}
	if c.Evidence > p.Evidence {
		out = append(out, ev(EventEvidence))
	}
	if c.Holding && !p.Holding {
		out = append(out, ev(EventHolding))
	}
	if c.Diverged && !p.Diverged {
		out = append(out, ev(EventDiverged))
	}
	if c.Retired != "" && p.Retired == "" {
		e := ev(EventRetired)
		e.Detail = c.Retired
		out = append(out, e)
	}
	return out
}
