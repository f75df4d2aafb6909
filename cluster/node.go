package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/scraft/scraft/cluster/peerpb"
	"github.com/scraft/scraft/internal/backoff"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// Node hosts the channels one member takes part in, each a Raft group over
// the node's single gRPC port, and serves the peer API for all of them.
type Node struct {
	cfg     Config
	logger  hclog.Logger
	peers   *peerClient
	metrics *metrics
	authz   *authorizer
	unlock  func() error // releases the data directory
	// feed is the node's one stream of chain events, shared by its
	// channels (feed.go).
	feed *chainFeed
	// snapshotSlot lets one peer Snapshot stream run at a time.
	snapshotSlot chan struct{}

	closeOnce sync.Once
	mu        struct {
		sync.Mutex
		closed   bool
		channels map[protocol.ChannelID]*Channel
		opening  map[protocol.ChannelID]chan struct{}
		// expected are channels the node will open (Expect) and has not
		// begun to: the client API answers for them as for one opening.
		expected map[protocol.ChannelID]bool
	}
}

// NewNode returns a Node hosting no channel yet. Register its peer API on
// the node's gRPC server, then Start or Open channels. The node holds its
// data directory until Close: a second node on the same directory gets
// ErrDataDirInUse (two Raft members writing one log would corrupt it).
func NewNode(cfg Config) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Registerer != nil {
		chain, err := meterChain(cfg.Chain, cfg.Registerer)
		if err != nil {
			return nil, fmt.Errorf("register metrics: %w", err)
		}
		cfg.Chain = chain
	}
	unlock, err := lockDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:    cfg,
		logger: cfg.logger().With("node", cfg.Key.Address().String()),
		peers:  &peerClient{key: cfg.Key, dial: cfg.Dial},
		unlock: unlock,

		snapshotSlot: make(chan struct{}, 1),
	}
	n.metrics = newMetrics(cfg.Registerer)
	if cfg.Registerer != nil {
		if err := cfg.Registerer.Register(newMachineCollector(n)); err != nil {
			unlock()
			return nil, fmt.Errorf("register metrics: %w", err)
		}
	}
	n.feed = newChainFeed(cfg.Chain, n.logger.Named("feed"), n.metrics.feedResumes)
	n.authz = newAuthorizer(n)
	n.peers.authz = n.authz
	n.mu.channels = make(map[protocol.ChannelID]*Channel)
	n.mu.opening = make(map[protocol.ChannelID]chan struct{})
	n.mu.expected = make(map[protocol.ChannelID]bool)
	return n, nil
}

// Expect says the node is about to open or join these channels, before it
// serves clients: until their Open or Join ends, the client API answers
// calls for them "not ready" (retry) instead of "no such channel".
func (n *Node) Expect(ids ...protocol.ChannelID) {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, id := range ids {
		n.mu.expected[id] = true
	}
}

// opening reports whether an Open of the channel is under way or expected.
func (n *Node) opening(id protocol.ChannelID) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	_, ok := n.mu.opening[id]
	return ok || n.mu.expected[id]
}

// Register registers the peer API on s (the node's gRPC server).
func (n *Node) Register(s grpc.ServiceRegistrar) {
	peerpb.RegisterPeerServer(s, &peerService{n: n})
}

// Address returns the node's member address.
func (n *Node) Address() protocol.Address { return n.cfg.Key.Address() }

// Start opens every channel that has data under DataDir: a restarted node
// comes back with its data and catches up from the leader.
func (n *Node) Start(ctx context.Context) error {
	ents, err := os.ReadDir(filepath.Join(n.cfg.DataDir, "channels"))
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("start: %w", err)
	}
	for _, e := range ents {
		if !e.IsDir() {
			continue
		}
		id, err := protocol.ParseChannelID(e.Name())
		if err != nil {
			continue
		}
		if _, err := n.Open(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// Open hosts a channel this node is a member of on chain. A channel with
// local data restarts from it. A new one is bootstrapped here when the
// chain names no leader yet (this node claims it and becomes the first
// leader) or names this node. Otherwise another member leads (it may have
// claimed first): Open asks the member nodes whose addresses the chain
// lists, the leader's first, to add this node, and returns once one did or
// ctx ends (DESIGN §9).
func (n *Node) Open(ctx context.Context, id protocol.ChannelID) (*Channel, error) {
	c, err := n.host(ctx, id, true)
	if err != nil {
		return nil, err
	}
	if _, retired := c.Retired(); retired || c.hasState() || c.isVoterOrLeader() {
		return c, nil
	}
	if err := c.requestJoin(ctx, nil); err != nil {
		return nil, err
	}
	return c, nil
}

// host opens a channel once, however many callers ask at a time, and
// starts it. A new channel may be bootstrapped here only with mayBootstrap.
func (n *Node) host(ctx context.Context, id protocol.ChannelID, mayBootstrap bool) (*Channel, error) {
	// Opening reads the chain: do it outside the lock, so that the peer
	// API of the other channels is not held up; a second Open of the same
	// channel waits for the first.
	for {
		n.mu.Lock()
		if n.mu.closed {
			n.mu.Unlock()
			return nil, ErrClosed
		}
		if c, ok := n.mu.channels[id]; ok {
			n.mu.Unlock()
			return c, nil
		}
		wait, busy := n.mu.opening[id]
		if !busy {
			n.mu.opening[id] = make(chan struct{})
			n.mu.Unlock()
			break
		}
		n.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	c, err := n.open(ctx, id, mayBootstrap)
	n.mu.Lock()
	close(n.mu.opening[id])
	delete(n.mu.opening, id)
	delete(n.mu.expected, id)
	if err == nil && n.mu.closed {
		err = ErrClosed
	}
	if err != nil {
		n.mu.Unlock()
		if c != nil {
			c.Close()
		}
		return nil, err
	}
	n.mu.channels[id] = c
	n.mu.Unlock()
	if reason, ok := retiredOnDisk(c.dir); ok {
		c.openRetired(reason)
		return c, nil
	}
	c.start()
	n.logger.Info("hosting channel", "channel", id)
	return c, nil
}

func (n *Node) open(ctx context.Context, id protocol.ChannelID, mayBootstrap bool) (*Channel, error) {
	c, err := openChannel(n, id)
	if err != nil {
		return nil, err
	}
	if _, retired := retiredOnDisk(c.dir); !retired {
		if c.hasState() {
			c.republishAddress(ctx)
		} else if err := c.maybeBootstrap(ctx, mayBootstrap); err != nil {
			return c, err
		}
	}
	return c, nil
}

// maybeBootstrap prepares a channel this node has no data of: it publishes
// the node's address on chain, so that the other members' nodes can find
// it, and then, with mayBootstrap, starts a new Raft group when this node
// is or becomes the chain's first leader. Only one claim on a leaderless
// channel succeeds, so only one member ever bootstraps; a node told to join
// through peers never claims (mayBootstrap false), so it never starts a
// group of its own beside the one it was sent to.
func (c *Channel) maybeBootstrap(ctx context.Context, mayBootstrap bool) error {
	rec, err := c.cfg.Chain.Channel(ctx, c.id)
	if err != nil {
		return fmt.Errorf("open channel %s: %w", c.id, err)
	}
	m, ok := rec.Member(c.me())
	if !ok {
		return fmt.Errorf("open channel %s: %w: %s", c.id, ErrNotMember, c.me())
	}
	c.view.update(&rec.Channel)
	// Before any claim: whoever loses the claim finds the winner by the
	// address the winner published first.
	if err := c.publishAddress(ctx, m.NodeAddress); err != nil {
		return fmt.Errorf("open channel %s: %w", c.id, err)
	}
	if !mayBootstrap {
		return nil
	}
	won, err := c.claimFirst(ctx, &rec.Channel)
	if err != nil || !won {
		return err
	}
	return c.bootstrap()
}

// claimFirst claims a channel no one leads yet and reports whether this
// node is its leader now. A failed claim is a loss only when the chain
// names another leader: a claim that failed for any other reason (the
// chain busy, ctx ended after the tx went in) is decided by reading the
// channel again and, while no one leads, claiming again; else no member
// would ever bootstrap.
func (c *Channel) claimFirst(ctx context.Context, rec *contract.Channel) (bool, error) {
	bo := backoff.New(backoff.Policy{Initial: 50 * time.Millisecond, Max: time.Second})
	for {
		switch {
		case rec.Leader == c.me():
			c.logger.Info("the chain names this node leader; bootstrapping the channel", "epoch", rec.Epoch)
			return true, nil
		case !rec.Leader.IsZero():
			c.logger.Info("another member leads the channel; joining its node", "leader", rec.Leader, "epoch", rec.Epoch)
			return false, nil
		}
		_, err := c.cfg.Chain.ClaimLeader(ctx, c.id, rec.Epoch, nil)
		if err == nil {
			c.logger.Info("claimed the channel as its first leader; bootstrapping it")
			return true, nil
		}
		info, rerr := c.cfg.Chain.Channel(ctx, c.id)
		if rerr != nil {
			return false, fmt.Errorf("open channel %s: claim: %w (then reading the channel: %v)", c.id, err, rerr)
		}
		c.view.update(&info.Channel)
		if !info.Leader.IsZero() && info.Leader != c.me() {
			c.logger.Info("another member claimed the channel first; joining its node", "leader", info.Leader, "epoch", info.Epoch)
			return false, nil
		}
		if info.Leader.IsZero() {
			c.logger.Warn("claiming the channel failed and no one leads it; claiming again", "error", err)
			if !bo.Wait(ctx) {
				return false, fmt.Errorf("open channel %s: claim: %w", c.id, err)
			}
		}
		rec = &info.Channel
	}
}

// Join makes this node a member of a channel (DESIGN §9): it joins on chain
// if it is not a member there yet (backed by its stake, or its shared pool
// deposit with usePool), opens the channel without ever bootstrapping it,
// publishes the node's address on chain, and asks the peers (any member
// nodes), then the nodes whose addresses the chain lists, to add it; the
// request reaches the leader. Peers may be empty: the chain's list is
// enough. It returns once the leader has added the node to Raft; the node
// then catches up.
func (n *Node) Join(ctx context.Context, id protocol.ChannelID, peers []string, usePool bool) (*Channel, error) {
	if _, retired := retiredOnDisk(channelDir(n.cfg.DataDir, id)); retired {
		// This node left the channel, or the channel closed: it serves
		// its final state read-only and never joins again by itself.
		return n.Open(ctx, id)
	}
	rec, err := n.cfg.Chain.Channel(ctx, id)
	if err != nil {
		return nil, fmt.Errorf("join channel %s: %w", id, err)
	}
	if _, member := rec.Member(n.Address()); !member {
		seq, err := n.cfg.Chain.Join(ctx, id, usePool)
		if err != nil && !errors.Is(err, contract.ErrAlreadyMember) {
			return nil, fmt.Errorf("join channel %s on chain: %w", id, err)
		}
		n.logger.Info("joined on chain", "channel", id, "join_seq", seq)
	}
	c, err := n.host(ctx, id, false)
	if err != nil {
		return nil, err
	}
	if c.isVoterOrLeader() {
		return c, nil
	}
	if err := c.requestJoin(ctx, peers); err != nil {
		return nil, err
	}
	return c, nil
}

// isVoterOrLeader reports whether this node is in its own Raft
// configuration already.
func (c *Channel) isVoterOrLeader() bool {
	_, ok := c.raftServer(c.me())
	return ok
}

// Channel returns a hosted channel.
func (n *Node) Channel(id protocol.ChannelID) (*Channel, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	c, ok := n.mu.channels[id]
	return c, ok
}

// Channels returns the hosted channels ordered by id.
func (n *Node) Channels() []*Channel {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]*Channel, 0, len(n.mu.channels))
	for _, c := range n.mu.channels {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return string(out[i].id[:]) < string(out[j].id[:]) })
	return out
}

// Close closes every channel, then the chain feed. It is safe to call more
// than once.
func (n *Node) Close() error {
	var errs []error
	n.closeOnce.Do(func() {
		n.mu.Lock()
		n.mu.closed = true
		chs := make([]*Channel, 0, len(n.mu.channels))
		for _, c := range n.mu.channels {
			chs = append(chs, c)
		}
		n.mu.Unlock()
		for _, c := range chs {
			if err := c.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		n.feed.close()
		if err := n.unlock(); err != nil {
			errs = append(errs, err)
		}
	})
	return errors.Join(errs...)
}
