package cluster

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/cluster/peerpb"
	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
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

// requestJoin asks the given peers, in turn, to add this node to the
// channel's Raft group until one succeeds or ctx ends.
func (c *Channel) requestJoin(ctx context.Context, peers []string) error {
	if len(peers) == 0 {
		return errors.New("cluster: join needs at least one peer address")
	}
	wait := 50 * time.Millisecond
	var last error
	for {
		for _, p := range peers {
			if p == c.cfg.Address {
				continue
			}
			rctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
			resp, err := c.node.peers.join(rctx, p, c.id, c.cfg.Address)
			cancel()
			if err == nil {
				c.logger.Info("joined", "via", p, "leader", resp.Leader, "voter", resp.Voter)
				return nil
			}
			last = err
			if errors.Is(err, ErrNotMember) {
				return err
			}
			c.logger.Debug("join attempt failed", "peer", p, "error", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("join channel %s: %w (last error: %v)", c.id, ctx.Err(), last)
		case <-time.After(wait):
		}
		wait = min(2*wait, time.Second)
	}
}
