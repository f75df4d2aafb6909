package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/protocol"
)

// Who may call a node (docs/DESIGN.md §13). Every node-to-node connection
// is mutual TLS with the member keys as certificates (protocol/tlsid), so
// each incoming Raft RPC and peer API call arrives with the member address
// of its caller. The transport asks RaftAuthorizer about each Raft RPC
// before raft sees it; the peer API checks its callers in peer.go.

// Timing of the chain roster cache.
const (
	// rosterMaxAge is the age after which a cached roster is read again
	// in the background on the next call.
	rosterMaxAge = 5 * time.Second
	// rosterMinAge is the least time between two reads on behalf of
	// callers the roster does not name: outsiders cannot make a node read
	// the chain more often.
	rosterMinAge = 250 * time.Millisecond
)

// authorizer answers, from memory, whether an address is a member of a
// channel on chain and who the chain's leader is. It keeps one roster per
// channel, read from the chain when first needed, again in the background
// once older than rosterMaxAge, and at once (at most every rosterMinAge)
// when asked about an address it does not name. Safe for concurrent use.
type authorizer struct {
	n *Node

	mu      sync.Mutex
	rosters map[protocol.ChannelID]*roster
	// contact is, per channel and sender, when this node last admitted an
	// AppendEntries or InstallSnapshot from it: contact under the sender's
	// own TLS identity (liar.go).
	contact map[protocol.ChannelID]map[protocol.Address]time.Time
}

// roster is a channel's members and leader as last read from the chain.
type roster struct {
	members map[protocol.Address]bool
	leader  protocol.Address
	read    time.Time
	// loading is closed when the read in progress ends; nil when none.
	loading chan struct{}
}

func newAuthorizer(n *Node) *authorizer {
	return &authorizer{n: n, rosters: make(map[protocol.ChannelID]*roster),
		contact: make(map[protocol.ChannelID]map[protocol.Address]time.Time)}
}

// onChain reports whether a is a member of channel id on chain, and
// returns the chain's leader as the roster knows it. A member the roster
// names is answered from memory. An address it does not name is answered
// after a fresh read: the roster is read again, no sooner than
// rosterMinAge after the last read (the caller waits for it), so a member
// that has just joined on chain is found and outsiders cannot make the node
// read the chain more often.
func (z *authorizer) onChain(ctx context.Context, id protocol.ChannelID, a protocol.Address) (member bool, leader protocol.Address, err error) {
	return z.lookup(ctx, id, a, false)
}

// lookup is onChain; with fresh it answers from a read begun after the
// call even when the roster names a, so that the leader it returns is
// current too.
func (z *authorizer) lookup(ctx context.Context, id protocol.ChannelID, a protocol.Address, fresh bool) (member bool, leader protocol.Address, err error) {
	refreshed := false
	for {
		z.mu.Lock()
		r := z.rosters[id]
		if r == nil {
			r = &roster{}
			z.rosters[id] = r
		}
		if (r.members[a] && !fresh) || (refreshed && !r.read.IsZero()) {
			if time.Since(r.read) > rosterMaxAge {
				z.refreshLocked(id, r) // answer now, read in the background
			}
			member, leader := r.members[a], r.leader
			z.mu.Unlock()
			return member, leader, nil
		}
		if refreshed {
			z.mu.Unlock()
			return false, protocol.Address{}, fmt.Errorf("%w: the channel's members could not be read from chain", ErrNoLeader)
		}
		var wait <-chan struct{}
		var timer *time.Timer
		switch d := time.Until(r.read.Add(rosterMinAge)); {
		case r.loading != nil:
			// A read that may have begun before a's join: wait for it,
			// then for one of our own.
			wait = r.loading
		case r.read.IsZero() || d <= 0:
			wait = z.refreshLocked(id, r)
			refreshed = true
		default:
			timer = time.NewTimer(d)
		}
		z.mu.Unlock()
		if timer != nil {
			select {
			case <-timer.C:
			case <-ctx.Done():
				timer.Stop()
				return false, protocol.Address{}, fmt.Errorf("read the channel's members from chain: %w", ctx.Err())
			}
			continue
		}
		select {
		case <-wait:
		case <-ctx.Done():
			return false, protocol.Address{}, fmt.Errorf("read the channel's members from chain: %w", ctx.Err())
		}
	}
}

// refreshLocked starts a read of the roster unless one is in progress and
// returns a channel closed when it ends.
func (z *authorizer) refreshLocked(id protocol.ChannelID, r *roster) <-chan struct{} {
	if r.loading != nil {
		return r.loading
	}
	done := make(chan struct{})
	r.loading = done
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), z.n.cfg.PeerTimeout)
		defer cancel()
		info, err := z.n.cfg.Chain.Channel(ctx, id)
		z.mu.Lock()
		defer z.mu.Unlock()
		r.loading = nil
		if err != nil {
			z.n.logger.Debug("read channel members", "channel", id, "error", err)
			return
		}
		members := make(map[protocol.Address]bool, len(info.Members))
		for _, m := range info.Members {
			members[m.Address] = true
		}
		r.members, r.leader, r.read = members, info.Leader, time.Now()
	}()
	return done
}

// RaftAuthorizer returns what the node's Raft transport asks before
// delivering a Raft RPC (transport.Authorizer; cmd/scraft wires it).
func (n *Node) RaftAuthorizer() *RaftAuthorizer { return &RaftAuthorizer{z: n.authz} }

// RaftAuthorizer admits a Raft RPC for channel X only when
//   - the identity it claims is its TLS caller's: the header's ID is the
//     caller's member address, and raft's older Leader/Candidate field,
//     when set, is the header's address;
//   - the caller is a member of X on chain;
//   - the caller is a server of the receiver's latest Raft configuration of
//     X, at the address the header gives; or, while the receiver has no
//     configuration yet (a fresh joiner), the caller is X's leader on chain;
//     or the call is an AppendEntries or InstallSnapshot from X's leader on
//     chain (a configuration that predates the leader: a promoted
//     delegator's);
//   - the RPC passes the leader rule (liar.go): members cannot depose a
//     leader the chain backs, nor plant configurations naming outsiders.
//
// While a channel is still opening on this node (raft is running but the
// channel is not registered yet) only the first two checks apply.
type RaftAuthorizer struct{ z *authorizer }

// AuthorizeRaft implements transport.Authorizer.
func (a *RaftAuthorizer) AuthorizeRaft(call protocol.RaftCall) error {
	caller, id, addr, claimed := call.Caller, raft.ServerID(call.ID), raft.ServerAddress(call.Addr), raft.ServerAddress(call.Claimed)
	if string(id) != caller.String() {
		return fmt.Errorf("header names %q, the caller is %s", id, caller)
	}
	if claimed != "" && claimed != addr {
		return fmt.Errorf("the request names %q, its header %q", claimed, addr)
	}
	chID, err := protocol.ParseChannelID(call.Channel)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), a.z.n.cfg.PeerTimeout)
	defer cancel()
	member, leader, err := a.z.onChain(ctx, chID, caller)
	if err != nil {
		return err
	}
	if !member {
		return fmt.Errorf("%s is not a member of channel %s on chain", caller, chID)
	}
	c, ok := a.z.n.Channel(chID)
	if !ok {
		return nil
	}
	servers := c.raft.GetConfiguration().Configuration().Servers
	if len(servers) == 0 {
		if caller != leader {
			// The roster's leader may predate a change of leader: look
			// again in a read begun now (members only reach here).
			if _, leader, err = a.z.lookup(ctx, chID, caller, true); err != nil {
				return err
			}
		}
		if caller != leader {
			return fmt.Errorf("%s is not the chain's leader (%s) and this node has no configuration yet", caller, leader)
		}
		a.z.heard(chID, caller, call.RPC)
		return nil
	}
	found := false
	for _, s := range servers {
		if s.ID == id {
			if s.Address != addr {
				return fmt.Errorf("%s claims address %q, the configuration has %q", caller, addr, s.Address)
			}
			found = true
			break
		}
	}
	if !found {
		// A configuration can predate the chain's leader: a delegator
		// promoted to a candidate seat holds the one it last saw as a
		// voter, which the new leader may not be in. The chain's leader may
		// still feed it entries and snapshots (their configurations are
		// checked as for anyone), or the node could never catch up.
		if call.RPC != "AppendEntries" && call.RPC != "InstallSnapshot" {
			return fmt.Errorf("%s is not in this node's configuration of channel %s", caller, chID)
		}
		if caller != leader {
			if _, leader, err = a.z.lookup(ctx, chID, caller, true); err != nil {
				return err
			}
		}
		if caller != leader {
			return fmt.Errorf("%s is not in this node's configuration of channel %s, nor its leader on chain (%s)", caller, chID, leader)
		}
	}
	if err := a.z.leaderRule(ctx, c, servers, call); err != nil {
		return err
	}
	a.z.heard(chID, caller, call.RPC)
	return nil
}
