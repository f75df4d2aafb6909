package cluster

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/cluster/peerpb"
	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/backoff"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
)

// handleJoin is the leader's side of a join (DESIGN §9): check the member
// on chain, append its join system tx if the state does not know it yet,
// and add its node to Raft as a non-voter (the leadership loop promotes it
// once it has caught up). A follower passes the request to the leader.
// Joining twice with the same address changes nothing.
func (c *Channel) handleJoin(ctx context.Context, req *peerpb.JoinRequest, member protocol.Address, pub ed25519.PublicKey) (*peerpb.JoinResponse, error) {
	if c.raft.State() != raft.Leader {
		addr, id := c.raft.LeaderWithID()
		if addr == "" || string(id) == c.me().String() {
			return nil, ErrNoLeader
		}
		return c.node.peers.forwardJoin(ctx, string(addr), req)
	}
	if c.leader.Load() == nil {
		return nil, ErrNoLeader
	}
	if req.Address == "" {
		return nil, fmt.Errorf("%w: join without an address", ErrBadTx)
	}
	rec, err := c.cfg.Chain.Channel(ctx, c.id)
	if err != nil {
		return nil, fmt.Errorf("join: read the channel from chain: %w", err)
	}
	var joinSeq uint64
	if m, ok := rec.Member(member); ok {
		joinSeq = m.JoinSeq
	}
	if joinSeq == 0 {
		return nil, fmt.Errorf("%w: %s is not a member on chain", ErrNotMember, member)
	}
	var known bool
	c.fsm.machine(func(m *fsm.Machine) {
		if m != nil {
			_, known = m.Member(member)
		}
	})
	if !known {
		out, err := c.submitSystem(ctx, protocol.Entry{Kind: protocol.EntryJoin, Join: &protocol.MemberJoin{
			Member: member, PublicKey: pub, JoinSeq: joinSeq,
		}})
		if err != nil {
			return nil, fmt.Errorf("join %s: %w", member, err)
		}
		if out.Result.Status != protocol.StatusOK {
			return nil, fmt.Errorf("%w: join %s: %s", ErrRefused, member, out.Message)
		}
		c.logger.Info("member joined", "member", member, "join_seq", joinSeq, "height", out.Height)
	}
	ttl, err := c.heartbeatTTL(ctx)
	if err != nil {
		return nil, err
	}
	if relayed(rec, ttl, member) {
		// A delegator is relayed to by a candidate, not in Raft.
		return &peerpb.JoinResponse{Leader: c.cfg.Address}, nil
	}
	voter, err := c.addServer(member, req.Address)
	if err != nil {
		return nil, err
	}
	return &peerpb.JoinResponse{Leader: c.cfg.Address, Voter: voter}, nil
}

// addServer adds a member's node to Raft as a non-voter, or changes its
// address; one membership change at a time, each against the configuration
// it was decided on.
func (c *Channel) addServer(member protocol.Address, addr string) (voter bool, err error) {
	cf := c.raft.GetConfiguration()
	if err := cf.Error(); err != nil {
		return false, err
	}
	id := raft.ServerID(member.String())
	for _, s := range cf.Configuration().Servers {
		if s.ID != id {
			continue
		}
		if s.Address == raft.ServerAddress(addr) {
			return s.Suffrage == raft.Voter, nil
		}
		c.logger.Info("member's node moved", "member", member, "from", s.Address, "to", addr)
		if err := c.raft.RemoveServer(id, cf.Index(), c.cfg.ApplyTimeout).Error(); err != nil {
			return false, translateRaft(err)
		}
		return c.addServer(member, addr)
	}
	if err := c.raft.AddNonvoter(id, raft.ServerAddress(addr), cf.Index(), c.cfg.ApplyTimeout).Error(); err != nil {
		return false, translateRaft(err)
	}
	c.logger.Info("added non-voter", "member", member, "address", addr)
	return false, nil
}

// translateRaft turns raft's errors into this package's.
func translateRaft(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader):
		return fmt.Errorf("%w: %v", ErrNotLeader, err)
	case errors.Is(err, raft.ErrLeadershipLost), errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return fmt.Errorf("%w: %v", ErrLeadershipLost, err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return fmt.Errorf("%w: %v", ErrClosed, err)
	}
	return err
}

// publishAddress records this node's address on the member's chain record
// unless the record has it already (onChain): a new member, or a node that
// moved. The other members' nodes join the channel there, and a node that
// lost the first claim finds the winner there.
func (c *Channel) publishAddress(ctx context.Context, onChain string) error {
	if onChain == c.cfg.Address {
		return nil
	}
	err := c.cfg.Chain.SetNodeAddress(ctx, c.id, c.cfg.Address)
	switch {
	case err == nil:
		c.logger.Info("published the node address on chain", "address", c.cfg.Address, "was", onChain)
		return nil
	case errors.Is(err, contract.ErrUnknownCall):
		c.logger.Warn("the chain does not keep node addresses; other members' nodes can only join this one through --peer", "error", err)
		return nil
	}
	return fmt.Errorf("publish node address %q on chain: %w", c.cfg.Address, err)
}

// republishAddress publishes the address of a node that restarts with its
// data, in case it moved. It is best effort: the node serves its data
// whatever the chain says, and a later start tries again.
func (c *Channel) republishAddress(ctx context.Context) {
	rec, err := c.cfg.Chain.Channel(ctx, c.id)
	if err == nil {
		m, ok := rec.Member(c.me())
		if !ok {
			return // left or forced out; leave.go retires the channel
		}
		err = c.publishAddress(ctx, m.NodeAddress)
	}
	if err != nil {
		c.logger.Warn("could not publish the node address on chain", "address", c.cfg.Address, "error", err)
	}
}

// chainPeers returns the node addresses the chain lists for the channel's
// other members, the leader's first, and the leader.
func (c *Channel) chainPeers(ctx context.Context) (addrs []string, leader protocol.Address, err error) {
	rec, err := c.cfg.Chain.Channel(ctx, c.id)
	if err != nil {
		return nil, leader, err
	}
	if m, ok := rec.Member(rec.Leader); ok && rec.Leader != c.me() && m.NodeAddress != "" {
		addrs = append(addrs, m.NodeAddress)
	}
	for _, m := range rec.Members {
		if m.Address != c.me() && m.Address != rec.Leader && m.NodeAddress != "" {
			addrs = append(addrs, m.NodeAddress)
		}
	}
	return addrs, rec.Leader, nil
}

// joinWarnEvery is how often requestJoin says, at WARN, that it is still
// not added.
const joinWarnEvery = 5 * time.Second

// requestJoin asks member nodes, in turn, to add this node to the channel's
// Raft group until one succeeds or ctx ends: the given peers first, then
// the nodes whose addresses the chain lists, the chain's leader first. The
// chain's list is read again every round, so that a node that lost the
// first claim reaches the winner, and a node sent to a peer that is not up
// yet reaches whoever is. A node that answers is a member's node; asking
// one that is not the Raft leader passes the request on to the leader.
func (c *Channel) requestJoin(ctx context.Context, peers []string) error {
	// Closing the channel (or the node) ends the asking too.
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(c.ctx, cancel)()
	bo := backoff.New(backoff.Policy{Initial: 50 * time.Millisecond, Max: time.Second})
	start := time.Now()
	warned := start
	var last error
	for round := 0; ; round++ {
		listed, leader, err := c.chainPeers(ctx)
		if err != nil {
			last = fmt.Errorf("read the members' node addresses from chain: %w", err)
		}
		all := append([]string(nil), peers...)
		for _, p := range listed {
			if !slices.Contains(all, p) {
				all = append(all, p)
			}
		}
		if round == 0 {
			c.logger.Info("asking member nodes to add this node to the channel", "peers", peers, "on_chain", listed, "chain_leader", leader)
		}
		if len(all) == 0 && err == nil {
			last = errors.New("no member node address known: none given, none on chain yet")
		}
		for _, p := range all {
			if p == c.cfg.Address {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
			resp, err := c.node.peers.join(rctx, p, c.id, c.cfg.Address)
			cancel()
			if err == nil {
				c.logger.Info("added to the channel", "via", p, "leader", resp.Leader, "voter", resp.Voter, "after", time.Since(start).Round(time.Millisecond))
				return nil
			}
			last = err
			if errors.Is(err, ErrNotMember) {
				return err
			}
			c.logger.Debug("join attempt failed", "peer", p, "error", err)
		}
		if now := time.Now(); now.Sub(warned) >= joinWarnEvery {
			warned = now
			c.logger.Warn("not added to the channel yet; still asking", "peers", all, "chain_leader", leader,
				"waited", now.Sub(start).Round(time.Second), "last_error", last)
		}
		if !bo.Wait(ctx) {
			if c.ctx.Err() != nil {
				return fmt.Errorf("join channel %s: %w", c.id, ErrClosed)
			}
			return fmt.Errorf("join channel %s: %w (last error: %v)", c.id, ctx.Err(), last)
		}
	}
}
