package cluster

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/scraft/scraft/cluster/peerpb"
	"github.com/scraft/scraft/delegate"
	"github.com/scraft/scraft/protocol"
)

// Best path (docs/DESIGN.md §10): in a channel with candidates, every node
// measures its latency to the channel's leader and tells its peers in its
// Status answers, and a delegator routes its relay stream and the txs it
// forwards through the candidate that minimises its total latency to the
// leader: its round trip to the candidate plus the candidate's reported
// latency to the leader (delegate.BestPath, with its hysteresis). Routing
// is the node's own choice: it costs no chain tx and leaves the delegation
// on chain (the vote weight) as it is.
//
// The measurements are the delegation loop's timed Status calls, every
// measureEvery and again when the chain names another leader: the leader
// reports a latency of 0, a candidate the round trip of its Status call to
// the leader (it is a Raft voter and sends its traffic to the leader
// direct), and a delegator its route. A delegator routes through the
// leader itself only when no other candidate has a way to it, so that the
// leader's egress does not grow with the members. A candidate that lies
// about its latency draws delegators' streams to itself, and no more: what
// it relays still needs the leader's commit proofs.

// pathConfig is the hysteresis of a delegator's route: it leaves a working
// route only for one more than 2 ms and 10% faster, so that measurement
// noise moves nobody.
var pathConfig = delegate.DefaultPathConfig()

// path is the way this node reaches the channel's leader, as last measured.
type path struct {
	// leader is the chain's leader the route leads to.
	leader protocol.Address
	// route is direct (Via zero: this node is a candidate, the leader, or
	// a delegator relayed by the leader) or through a candidate.
	route delegate.Route
}

// route returns this node's current route to the leader: its way to the
// leader the chain names now, or one that is not OK.
func (c *Channel) route() delegate.Route {
	p := c.deleg.path.Load()
	leader, _, _ := c.view.current()
	if p == nil || p.leader != leader || leader.IsZero() {
		return delegate.Route{Latency: delegate.Unreachable}
	}
	return p.route
}

// routeVia returns the candidate this delegator routes through; zero when
// it has no route or goes to the leader direct.
func (c *Channel) routeVia() protocol.Address {
	r := c.route()
	if !r.OK() {
		return protocol.Address{}
	}
	return r.Via
}

// pathReport fills a Status answer with this node's route to the leader.
func (c *Channel) pathReport(resp *peerpb.StatusResponse) {
	r := c.route()
	if !r.OK() {
		return
	}
	resp.HasRoute, resp.ToLeaderNs = true, int64(r.Latency)
	if !r.Direct() {
		via := r.Via
		resp.Via = via[:]
	}
}

// reportedRoute reads a peer's route to leader from its Status answer:
// its latency and next hop, or a latency that is not OK when it has none,
// names another leader, or says something that does not parse.
func reportedRoute(resp *peerpb.StatusResponse, leader protocol.Address) (time.Duration, protocol.Address) {
	if resp == nil || !resp.HasRoute || resp.ToLeaderNs < 0 || resp.Leader != leader.String() {
		return delegate.Unreachable, protocol.Address{}
	}
	var via protocol.Address
	switch len(resp.Via) {
	case 0:
	case len(via):
		copy(via[:], resp.Via)
	default:
		return delegate.Unreachable, protocol.Address{}
	}
	return time.Duration(resp.ToLeaderNs), via
}

// sample is one timed Status call to a candidate's node.
type sample struct {
	candidate protocol.Address
	rtt       time.Duration
	resp      *peerpb.StatusResponse
}

// timeStatus times one Status call to the node at addr.
func (c *Channel) timeStatus(ctx context.Context, addr string) (time.Duration, *peerpb.StatusResponse, error) {
	ctx, cancel := context.WithTimeout(ctx, c.cfg.PeerTimeout)
	defer cancel()
	start := time.Now()
	resp, err := c.node.peers.status(ctx, addr, c.id)
	return time.Since(start), resp, err
}

// measurePath times a Status call to the nodes this node may route
// through, and keeps its route to the leader (and, on a delegator, its
// latency preferences among the candidates, l.prefs) from the answers.
func (c *Channel) measurePath(ctx context.Context, l *layout) {
	leader, _, _ := c.view.current()
	me := c.me()
	switch {
	case leader.IsZero():
		c.deleg.path.Store(nil)
		return
	case leader == me:
		c.deleg.path.Store(&path{leader: leader, route: delegate.Route{}})
		return
	case l.isCandidate(me):
		r := delegate.Route{Latency: delegate.Unreachable}
		if addr := l.nodeAddress(leader); addr != "" {
			if d, _, err := c.timeStatus(ctx, addr); err == nil {
				r.Latency = d
			}
		}
		c.deleg.path.Store(&path{leader: leader, route: r})
		return
	}
	var samples []sample
	for _, a := range l.candidates {
		addr := l.nodeAddress(a)
		if addr == "" {
			continue
		}
		d, resp, err := c.timeStatus(ctx, addr)
		if err != nil {
			c.logger.Debug("candidate does not answer", "candidate", a, "address", addr, "error", err)
			continue
		}
		samples = append(samples, sample{a, d, resp})
	}
	l.prefs = prefsOf(samples)
	r := bestRoute(pathConfig, me, leader, samples, c.route())
	if old := c.route(); old.OK() != r.OK() || old.Via != r.Via {
		c.logger.Info("route to the leader", "leader", leader, "via", r.Via, "latency", r.Latency, "was", old.Via)
	}
	c.deleg.path.Store(&path{leader: leader, route: r})
}

// prefsOf ranks the candidates that answered by round trip, fastest first
// (the address breaks ties, so the order is a function of the samples).
func prefsOf(samples []sample) []protocol.Address {
	s := slices.Clone(samples)
	slices.SortFunc(s, func(x, y sample) int {
		if d := cmp.Compare(x.rtt, y.rtt); d != 0 {
			return d
		}
		return x.candidate.Compare(y.candidate)
	})
	out := make([]protocol.Address, len(s))
	for i, x := range s {
		out[i] = x.candidate
	}
	return out
}

// bestRoute is a delegator's route to leader from its samples of the
// candidates: through the candidate (not the leader) with the least round
// trip plus reported latency to the leader, kept against a slightly
// better one by cfg's hysteresis; straight to the leader only when no
// other candidate has a way.
func bestRoute(cfg delegate.PathConfig, me, leader protocol.Address, samples []sample, cur delegate.Route) delegate.Route {
	direct := delegate.Unreachable
	var peers []delegate.Peer
	for _, s := range samples {
		if s.candidate == leader {
			direct = s.rtt
			continue
		}
		to, via := reportedRoute(s.resp, leader)
		peers = append(peers, delegate.Peer{Address: s.candidate, RTT: s.rtt, ToLeader: to, Via: via})
	}
	if cur.OK() && cur.Direct() {
		cur = delegate.Route{Latency: delegate.Unreachable} // the leader is the last resort
	}
	r := delegate.BestPath(cfg, me, delegate.Unreachable, peers, cur)
	if !r.OK() && direct >= 0 {
		r = delegate.Route{Latency: direct}
	}
	return r
}
