package cluster

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/scraft/scraft/cluster/peerpb"
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

	closeOnce sync.Once
	mu        struct {
		sync.Mutex
		closed   bool
		channels map[protocol.ChannelID]*Channel
		opening  map[protocol.ChannelID]chan struct{}
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
	unlock, err := lockDir(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	n := &Node{
		cfg:    cfg,
		logger: cfg.logger().With("node", cfg.Key.Address().String()),
		peers:  &peerClient{key: cfg.Key, dial: cfg.Dial},
		unlock: unlock,
	}
	n.metrics = newMetrics(cfg.Registerer)
	n.authz = newAuthorizer(n)
	n.peers.authz = n.authz
	n.mu.channels = make(map[protocol.ChannelID]*Channel)
	n.mu.opening = make(map[protocol.ChannelID]chan struct{})
	return n, nil
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
// leader) or names this node; otherwise the channel waits to be added by
// the leader: call Join with a peer's address.
func (n *Node) Open(ctx context.Context, id protocol.ChannelID) (*Channel, error) {
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
	c, err := n.open(ctx, id)
	n.mu.Lock()
	close(n.mu.opening[id])
	delete(n.mu.opening, id)
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

func (n *Node) open(ctx context.Context, id protocol.ChannelID) (*Channel, error) {
	c, err := openChannel(n, id)
	if err != nil {
		return nil, err
	}
	if _, retired := retiredOnDisk(c.dir); !retired && !c.hasState() {
		if err := c.maybeBootstrap(ctx); err != nil {
			return c, err
		}
	}
	return c, nil
}

// maybeBootstrap starts a new Raft group when this node is or becomes the
// chain's first leader. Only one claim on a leaderless channel succeeds, so
// only one member ever bootstraps.
func (c *Channel) maybeBootstrap(ctx context.Context) error {
	rec, err := c.cfg.Chain.Channel(ctx, c.id)
	if err != nil {
		return fmt.Errorf("open channel %s: %w", c.id, err)
	}
	if _, ok := rec.Member(c.me()); !ok {
		return fmt.Errorf("open channel %s: %w: %s", c.id, ErrNotMember, c.me())
	}
	c.view.update(&rec.Channel)
	switch {
	case rec.Leader == c.me():
	case rec.Leader.IsZero():
		if _, err := c.cfg.Chain.ClaimLeader(ctx, c.id, rec.Epoch, nil); err != nil {
			c.logger.Info("another member claimed first", "error", err)
			return nil
		}
		c.logger.Info("claimed the channel as its first leader")
	default:
		return nil
	}
	return c.bootstrap()
}

// Join makes this node a member of a channel (DESIGN §9): it joins on chain
// if it is not a member there yet (backed by its stake, or its shared pool
// deposit with usePool), opens the channel, and asks the peers (any member
// nodes) to add it; the request reaches the leader. It returns once the
// leader has added the node to Raft; the node then catches up.
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
	c, err := n.Open(ctx, id)
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

// Close closes every channel. It is safe to call more than once.
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
		if err := n.unlock(); err != nil {
			errs = append(errs, err)
		}
	})
	return errors.Join(errs...)
}
