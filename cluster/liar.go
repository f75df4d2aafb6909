package cluster

import (
	"context"
	"fmt"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/protocol"
)

// The leader rule (DESIGN.md, "A lying member"). Authentication keeps
// outsiders out; it does not stop a member in the configuration from
// lying in Raft. Stock raft steps down on any higher term, follows any
// AppendEntries of a higher term, grants a vote flagged as a leadership
// transfer even while it has a leader, and campaigns on any TimeoutNow.
// The rule admits those RPCs only from a sender the chain or this node's
// own authenticated contact backs:
//
//   - AppendEntries and InstallSnapshot: from the chain's leader (this
//     node's view of the chain), from the Raft leader this node follows
//     (which the rule admitted before), or, when this node has lost its
//     leader (no admitted contact from the chain's leader nor from its
//     Raft leader for a HeartbeatTimeout: the failover case), from anyone
//     whose term is within maxTermLead of this node's. Otherwise the chain
//     is read again and the sender admitted if it now leads there.
//   - RequestVote and RequestPreVote: from the chain's leader; from
//     another member only when this node has lost its leader and the term
//     is within maxTermLead of its own. A vote flagged as a leadership
//     transfer only for the chain's leader, or while this node's Raft
//     leader is not the chain's leader (a leader handing over or leaving).
//   - TimeoutNow: only from the Raft leader this node follows.
//   - A snapshot's configuration names only members of the channel on
//     chain or servers of this node's latest configuration. An append's
//     configuration entries are not checked so: a follower catching up
//     replays entries naming members that have since left the chain; only
//     a sender the rule admits can append them.

// maxTermLead is how far above this node's term a sender that is not the
// chain's leader may be: honest elections raise the term one at a time
// (pre-vote keeps failed ones from raising it at all), so a larger lead is
// an inflated term.
const maxTermLead = 8

// heard records admitted contact from a sender.
func (z *authorizer) heard(id protocol.ChannelID, from protocol.Address, rpc string) {
	if rpc != "AppendEntries" && rpc != "InstallSnapshot" {
		return
	}
	now := time.Now()
	z.mu.Lock()
	defer z.mu.Unlock()
	m := z.contact[id]
	if m == nil {
		m = make(map[protocol.Address]time.Time)
		z.contact[id] = m
	}
	m[from] = now
}

// lastContact returns when this node last admitted an AppendEntries or
// InstallSnapshot from a, under a's own TLS identity (zero if never).
func (z *authorizer) lastContact(id protocol.ChannelID, a protocol.Address) time.Time {
	z.mu.Lock()
	defer z.mu.Unlock()
	return z.contact[id][a]
}

// leaderLost reports whether channel c has lost its leader as this node
// itself observed it: it is not the Raft leader, and has admitted no
// contact from the chain's leader nor from its Raft leader for a
// HeartbeatTimeout.
func (z *authorizer) leaderLost(c *Channel, chainLeader protocol.Address) bool {
	if c.raft.State() == raft.Leader {
		return false
	}
	last := z.lastContact(c.id, chainLeader)
	if _, rid := c.raft.LeaderWithID(); rid != "" {
		if a, err := protocol.ParseAddress(string(rid)); err == nil {
			if t := z.lastContact(c.id, a); t.After(last) {
				last = t
			}
		}
	}
	return time.Since(last) > c.cfg.HeartbeatTimeout
}

// newLeaderElecting reports whether the chain named chainLeader less than
// claimWindow ago and this node has not heard from it since: the member
// the chain just named (a claim by a follower, a punishment's reporter, a
// passed election) is winning its Raft election, and no other member's
// vote request is admitted meanwhile. Without it a lying member could win
// every round with a claimed longer log and never lead, for as long as it
// lies; with it, the window is what such a member can delay the chain's
// choice. A chain leader that is dead after all costs the others that
// window before they elect among themselves.
//
// The chain's new leader itself grants no other member a vote in that
// window either: it is the one campaigning.
func (z *authorizer) newLeaderElecting(c *Channel, chainLeader protocol.Address) bool {
	if chainLeader.IsZero() {
		return false
	}
	named := c.view.namedAt()
	if named.IsZero() || time.Since(named) > c.cfg.claimWindow() {
		return false
	}
	if chainLeader == c.me() {
		return c.raft.State() != raft.Leader
	}
	if rl, ok := raftLeader(c); ok && rl == chainLeader {
		return false
	}
	return z.lastContact(c.id, chainLeader).Before(named)
}

// raftLeader returns the member this node follows in Raft, if any.
func raftLeader(c *Channel) (protocol.Address, bool) {
	_, rid := c.raft.LeaderWithID()
	if rid == "" {
		return protocol.Address{}, false
	}
	a, err := protocol.ParseAddress(string(rid))
	return a, err == nil
}

// chainLeads reports whether the chain names a as the channel's leader: the
// view first, then, if it does not, a read of the chain begun now.
func (z *authorizer) chainLeads(ctx context.Context, c *Channel, a protocol.Address) bool {
	if leader, _, _ := c.view.current(); leader == a {
		return true
	}
	_, leader, err := z.lookup(ctx, c.id, a, true)
	return err == nil && leader == a
}

// leaderRule applies the leader rule to an RPC from a server of this
// node's configuration servers.
func (z *authorizer) leaderRule(ctx context.Context, c *Channel, servers []raft.Server, call protocol.RaftCall) error {
	if call.RPC == "InstallSnapshot" {
		if err := z.checkConfiguration(ctx, c, servers, call.Configuration); err != nil {
			return err
		}
	}
	from := call.Caller
	chainLeader, _, _ := c.view.current()
	seatless := c.layout().seatless(chainLeader)
	if from == chainLeader {
		if seatless && (call.RPC == "RequestVote" || call.RPC == "RequestPreVote") {
			// Else it wins back every election it hands over.
			return fmt.Errorf("%s %s: it lost its candidate seat and holds its epoch only until a candidate claims", from, call.RPC)
		}
		return nil
	}
	term := c.raft.CurrentTerm()
	within := call.Term <= term+maxTermLead
	switch call.RPC {
	case "AppendEntries", "InstallSnapshot":
		if rl, ok := raftLeader(c); ok && rl == from && c.raft.State() == raft.Follower {
			return nil
		}
		if within && z.leaderLost(c, chainLeader) {
			return nil
		}
		if z.chainLeads(ctx, c, from) {
			return nil
		}
		return fmt.Errorf("%s %s (term %d, this node's %d): neither the chain's leader (%s) nor this node's Raft leader, and the leader is not lost",
			from, call.RPC, call.Term, term, chainLeader)
	case "RequestVote", "RequestPreVote":
		if call.LeadershipTransfer {
			if z.chainLeads(ctx, c, from) {
				return nil
			}
			if rl, ok := raftLeader(c); ok && rl != chainLeader {
				return nil // the Raft leader the chain does not back hands over
			}
			if seatless && c.layout().isCandidate(from) {
				return nil // a chain leader without a seat hands over to a candidate, which claims
			}
			return fmt.Errorf("%s asks a transfer vote and is not the chain's leader (%s)", from, chainLeader)
		}
		if !within {
			if z.chainLeads(ctx, c, from) {
				return nil
			}
			return fmt.Errorf("%s %s with term %d, this node is at %d", from, call.RPC, call.Term, term)
		}
		if z.newLeaderElecting(c, chainLeader) {
			return fmt.Errorf("%s %s while the chain's new leader %s is being elected", from, call.RPC, chainLeader)
		}
		if z.leaderLost(c, chainLeader) {
			return nil
		}
		return fmt.Errorf("%s %s while this node's leader is alive", from, call.RPC)
	case "TimeoutNow":
		if rl, ok := raftLeader(c); ok && rl == from && c.raft.State() == raft.Follower {
			return nil
		}
		return fmt.Errorf("TimeoutNow from %s, not this node's Raft leader", from)
	}
	return nil
}

// checkConfiguration refuses a snapshot's Raft configuration that names a
// server which is neither a member of the channel on chain nor a server of
// this node's latest configuration (a member that left on chain may still
// be in it until it is removed).
func (z *authorizer) checkConfiguration(ctx context.Context, c *Channel, servers []raft.Server, b []byte) error {
	if len(b) == 0 {
		return nil
	}
	known := make(map[raft.ServerID]bool, len(servers))
	for _, s := range servers {
		known[s.ID] = true
	}
	cf, err := decodeConfiguration(b)
	if err != nil {
		return err
	}
	for _, s := range cf.Servers {
		if known[s.ID] {
			continue
		}
		a, err := protocol.ParseAddress(string(s.ID))
		if err != nil {
			return fmt.Errorf("the snapshot's configuration names %q, not a member address", s.ID)
		}
		member, _, err := z.onChain(ctx, c.id, a)
		if err != nil {
			return err
		}
		if !member {
			return fmt.Errorf("the snapshot's configuration names %s, not a member of channel %s on chain", a, c.id)
		}
	}
	return nil
}

// decodeConfiguration is raft.DecodeConfiguration without its panic on
// bad input.
func decodeConfiguration(b []byte) (cf raft.Configuration, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("the configuration does not decode: %v", r)
		}
	}()
	return raft.DecodeConfiguration(b), nil
}
