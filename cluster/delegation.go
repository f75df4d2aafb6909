package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/delegate"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// A channel of more than delegate.Seats members runs through five
// candidates (docs/DESIGN.md §10, delegate/DESIGN.md): only they are Raft
// voters and only they may lead; every other member, a delegator, is not
// in the Raft configuration at all, delegates its vote on chain to a
// candidate it chooses by latency, and receives the committed batches
// through a candidate (relay.go). The policy is package delegate's; this
// file applies it to the chain's records:
//
//   - layouts: the candidate set as the chain's next call will see it
//     (contract.CandidatesAt), read by the delegation loop and kept in
//     Channel.deleg for the others;
//   - leadership: a node that is not a candidate never claims
//     (mayLead), and the Raft leader makes the configuration follow the
//     candidates, promoting a new candidate to voter before it removes
//     anyone (reconcileServers);
//   - delegation: a delegator measures its latency to each candidate and
//     records the candidate delegate.Choose picks when it differs from its
//     record (runDelegation).

// layout is a channel's delegate arrangement as this node last read it.
type layout struct {
	// info is the channel with its members as read; nil before the first
	// read.
	info *settlement.ChannelInfo
	// candidates are the candidates the next chain call will find, best
	// ranked first; empty when the channel has at most delegate.Seats
	// members.
	candidates []protocol.Address
	// prefs ranks the candidates by this node's measured latency to their
	// nodes, best first; candidates that did not answer are left out.
	prefs []protocol.Address
}

// delegated reports whether the channel runs through candidates.
func (l *layout) delegated() bool { return l != nil && len(l.candidates) > 0 }

// seated reports whether every seat is filled. While fewer than
// delegate.Seats members are valid (heartbeats that lapsed for a moment,
// as when the chain's clock jumps), the set is short and says little of
// who should leave: the Raft configuration shrinks, and a leader yields,
// only for a full set.
func (l *layout) seated() bool { return l != nil && len(l.candidates) == delegate.Seats }

// isCandidate reports whether a may lead and be a Raft voter: every member
// of a channel without candidates, else a candidate.
func (l *layout) isCandidate(a protocol.Address) bool {
	return !l.delegated() || slices.Contains(l.candidates, a)
}

// seatless reports whether a, a channel's chain leader, lost its seat:
// every seat is filled and a holds none. The chain lets it keep its epoch
// only until a candidate claims (contract.claimLeader), so it stands for
// no Raft election and a candidate may take the Raft lead from it.
func (l *layout) seatless(a protocol.Address) bool {
	return l.seated() && !l.isCandidate(a)
}

// nodeAddress returns where a member's node serves, from the chain's record.
func (l *layout) nodeAddress(a protocol.Address) string {
	if l == nil || l.info == nil {
		return ""
	}
	if m, ok := l.info.Member(a); ok {
		return m.NodeAddress
	}
	return ""
}

// delegatedTo returns a's delegation on record (zero: none).
func (l *layout) delegatedTo(a protocol.Address) protocol.Address {
	if l == nil || l.info == nil {
		return protocol.Address{}
	}
	if m, ok := l.info.Member(a); ok {
		return m.DelegatedTo
	}
	return protocol.Address{}
}

// layoutOf computes the layout of a channel read with its members, on a
// chain whose heartbeats last ttl.
func layoutOf(info *settlement.ChannelInfo, ttl time.Duration) (*layout, error) {
	ms := make([]contract.Member, len(info.Members))
	for i := range info.Members {
		ms[i] = info.Members[i].Member
	}
	cands, err := contract.CandidatesAt(&info.Channel, ms, info.AtMs, ttl)
	if err != nil {
		return nil, err
	}
	return &layout{info: info, candidates: cands}, nil
}

// delegation is the channel's share of the delegate machinery.
type delegation struct {
	// cur is the last layout read; nil before the first.
	cur atomic.Pointer[layout]
	// path is this node's route to the leader as last measured (path.go);
	// nil before the first measurement.
	path atomic.Pointer[path]
}

// layout returns the last layout read, nil before the first.
func (c *Channel) layout() *layout { return c.deleg.cur.Load() }

// mayLead reports whether this node may claim the channel's leadership:
// the chain refuses a claim by a member that is not a candidate
// (contract.ErrNotCandidate), so such a node does not send one. Before the
// first read of the layout it may: the chain decides.
func (c *Channel) mayLead() bool {
	return c.layout().isCandidate(c.me())
}

// delegating reports whether this node is a delegator: the channel runs
// through candidates and this node's member is not one.
func (c *Channel) delegating() bool {
	l := c.layout()
	return l.delegated() && !l.isCandidate(c.me())
}

// readLayout publishes the layout of the channel read with its members:
// the view's last read when it has one newer than the layout's (the chain
// feed rereads the channel on each of its events), else a read of its
// own. It keeps the latency preferences measured so far.
func (c *Channel) readLayout(ctx context.Context, own bool) (*layout, error) {
	info := c.view.members()
	if old := c.layout(); own || info == nil || (old != nil && old.info == info) {
		ctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
		defer cancel()
		var err error
		if info, err = c.cfg.Chain.Channel(ctx, c.id); err != nil {
			return nil, err
		}
	}
	ttl, err := c.heartbeatTTL(ctx)
	if err != nil {
		return nil, err
	}
	l, err := layoutOf(info, ttl)
	if err != nil {
		return nil, err
	}
	old := c.layout()
	if old != nil {
		l.prefs = old.prefs
	}
	if !slices.Equal(old.candidatesOrNil(), l.candidates) {
		c.logger.Info("delegate candidates", "candidates", l.candidates, "members", len(info.Members),
			"capacity", delegate.Capacity(uint32(len(info.Members))))
	}
	c.deleg.cur.Store(l)
	return l, nil
}

func (l *layout) candidatesOrNil() []protocol.Address {
	if l == nil {
		return nil
	}
	return l.candidates
}

// delegationEvery is how often the delegation loop rereads the chain when
// the chain feed brought no news of the channel (a heartbeat that lapses
// is no event), and measureEvery how often a node measures its latency
// to the leader and, on a delegator, to the candidates (path.go).
const (
	delegationEvery = 2 * time.Second
	measureEvery    = 5 * time.Second
)

// runDelegation keeps the layout current and, on a delegator, its
// delegation on chain: it takes the channel from the chain view when the
// view takes in a record, reads it itself when the feed is quiet for
// delegationEvery, measures its route to the leader and (a delegator) its
// latency to the candidates' nodes every measureEvery and when the chain
// names another leader (measurePath), and sends a delegate call when
// delegate.Choose, with those measurements, picks another candidate than
// the one on record. A call the chain refuses (a race for the last place
// of a candidate, a set that changed meanwhile) is chosen again from the
// next read.
func (c *Channel) runDelegation(ctx context.Context) {
	var measured time.Time
	var measuredFor protocol.Address
	own := true
	for {
		refreshed := c.view.refreshed()
		l, err := c.readLayout(ctx, own)
		switch {
		case err != nil:
			if ctx.Err() == nil {
				c.logger.Debug("delegation: chain read failed", "error", err)
			}
		case l.delegated():
			leader, _, _ := c.view.current()
			delegator := !l.isCandidate(c.me())
			if time.Since(measured) >= measureEvery || leader != measuredFor || (delegator && len(l.prefs) == 0) {
				measured, measuredFor = time.Now(), leader
				c.measurePath(ctx, l)
				c.deleg.cur.Store(l)
			}
			if delegator {
				c.delegate(ctx, l)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-refreshed:
			own = false
			// Let a burst of news settle into one layout.
			select {
			case <-ctx.Done():
				return
			case <-time.After(c.cfg.ReconcileInterval):
			}
		case <-time.After(delegationEvery):
			own = true
		}
	}
}

// delegate records on chain the candidate delegate.Choose picks for this
// node, when it differs from the one on record.
func (c *Channel) delegate(ctx context.Context, l *layout) {
	info := l.info
	ms := make([]delegate.Member, len(info.Members))
	for i := range info.Members {
		m := &info.Members[i]
		ms[i] = delegate.Member{Address: m.Address, Stake: m.Locked, JoinSeq: m.JoinSeq,
			Valid: m.Valid && !m.Leaving(), DelegatedTo: m.DelegatedTo}
		if m.Address == c.me() {
			ms[i].Prefs = l.prefs
		}
	}
	want, err := delegate.Choose(ms, l.candidates, delegate.Capacity(uint32(len(ms))), c.me())
	if err != nil {
		c.logger.Warn("delegation: cannot choose a candidate", "error", err)
		return
	}
	have := l.delegatedTo(c.me())
	if want == have || want.IsZero() {
		return
	}
	cctx, cancel := context.WithTimeout(ctx, c.cfg.ApplyTimeout)
	defer cancel()
	err = c.cfg.Chain.Delegate(cctx, c.id, want)
	switch {
	case err == nil:
		c.logger.Info("delegated", "to", want, "was", have, "prefs", l.prefs)
		_, _ = c.readLayout(ctx, true)
	case errors.Is(err, contract.ErrNoCapacity), errors.Is(err, contract.ErrNotCandidate), errors.Is(err, contract.ErrNotEligible):
		c.logger.Info("delegation refused by the chain; choosing again", "to", want, "error", err)
	default:
		if ctx.Err() == nil {
			c.logger.Warn("delegation failed", "to", want, "error", err)
		}
	}
}

// reconcileServers is the leader's membership work each reconcile: in a
// channel without candidates it promotes caught-up non-voters; with
// candidates it makes the Raft configuration follow them, one change at a
// time: a candidate not in the configuration is added (as a non-voter),
// a caught-up candidate non-voter is promoted, and only when every
// candidate that answers is a voter, and the voting candidates are a
// majority of the five, is a server that is no candidate removed, and
// only while all five seats are filled (seated).
// Promotion comes first so that the group never has fewer voters than it
// needs, and a leadership transfer (handOver) only ever targets a voter.
func (c *Channel) reconcileServers(st *leadershipState) {
	l := c.layout()
	if !l.delegated() {
		c.promoteNonVoters(st)
		return
	}
	if time.Since(st.lastPromote) < c.cfg.ReconcileInterval {
		return
	}
	st.lastPromote = time.Now()
	cf := c.raft.GetConfiguration()
	if cf.Error() != nil {
		return
	}
	servers := cf.Configuration().Servers
	find := func(a protocol.Address) (raft.Server, bool) {
		i := slices.IndexFunc(servers, func(s raft.Server) bool { return string(s.ID) == a.String() })
		if i < 0 {
			return raft.Server{}, false
		}
		return servers[i], true
	}
	voting, pending := 0, false
	for _, a := range l.candidates {
		s, ok := find(a)
		if ok && s.Suffrage == raft.Voter {
			voting++
			continue
		}
		addr := l.nodeAddress(a)
		if !ok {
			if addr == "" || !c.IsMember(a) {
				continue // no node yet, or its join not applied: nothing to add
			}
			if _, err := c.addServer(a, addr); err != nil {
				c.logger.Warn("cannot add a candidate's node", "candidate", a, "error", err)
			}
			return
		}
		ctx, cancel := context.WithTimeout(c.ctx, c.cfg.ElectionTimeout)
		resp, err := c.node.peers.status(ctx, string(s.Address), c.id)
		cancel()
		if err != nil {
			continue // a candidate that does not answer is not waited for
		}
		if resp.AppliedIndex+uint64(c.cfg.BatchMaxTxs) < c.raft.CommitIndex() {
			pending = true
			continue
		}
		if err := c.raft.AddVoter(s.ID, s.Address, cf.Index(), c.cfg.ApplyTimeout).Error(); err != nil {
			c.logger.Warn("cannot promote a candidate", "candidate", a, "error", err)
			return
		}
		c.logger.Info("candidate promoted to voter", "candidate", a, "address", s.Address)
		return
	}
	if pending || voting <= len(l.candidates)/2 || !l.seated() {
		return
	}
	for _, s := range servers {
		var a protocol.Address
		if err := a.UnmarshalText([]byte(s.ID)); err != nil || a == c.me() || l.isCandidate(a) {
			continue
		}
		if err := c.raft.RemoveServer(s.ID, cf.Index(), c.cfg.ApplyTimeout).Error(); err != nil {
			c.logger.Warn("cannot remove a server that is no candidate", "server", s.ID, "error", err)
			return
		}
		c.logger.Info("removed from raft: not a candidate, it is relayed to", "server", s.ID, "was", s.Suffrage)
		return
	}
}

// relayed reports whether member's node joins as a delegator: the channel
// (read with its members, on a chain whose heartbeats last ttl) runs
// through candidates and member is none.
func relayed(info *settlement.ChannelInfo, ttl time.Duration, member protocol.Address) bool {
	l, err := layoutOf(info, ttl)
	return err == nil && l.delegated() && !l.isCandidate(member)
}

// heartbeatTTL is the chain's heartbeat TTL, read once: a chain's
// settings are fixed at its genesis.
func (c *Channel) heartbeatTTL(ctx context.Context) (time.Duration, error) {
	if ttl := c.ttl.Load(); ttl > 0 {
		return time.Duration(ttl), nil
	}
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
	defer cancel()
	p, err := c.cfg.Chain.Params(ctx)
	if err != nil {
		return 0, fmt.Errorf("read the chain's settings: %w", err)
	}
	c.ttl.Store(int64(p.HeartbeatTTL))
	return p.HeartbeatTTL, nil
}

// yieldToCandidate hands Raft leadership to a candidate when this node
// leads but is no longer one of the chain's candidates (a richer member
// took its seat): the chain keeps it leader of its epoch, so the channel
// never goes without one, but it is to be replaced. The best ranked
// candidate that is a voter and answers gets the lead and, as Raft leader
// and a candidate, claims the chain's leadership.
func (c *Channel) yieldToCandidate(st *leadershipState) {
	l := c.layout()
	if c.mayLead() || !l.seated() || time.Since(st.lastClaim) < c.cfg.ElectionTimeout {
		return
	}
	st.lastClaim = time.Now()
	for _, a := range l.candidates {
		if s, ok := c.raftServer(a); ok && s.Suffrage == raft.Voter {
			c.logger.Info("no longer a candidate: handing the lead to one", "to", a)
			if c.handOver(a) {
				return
			}
		}
	}
}
