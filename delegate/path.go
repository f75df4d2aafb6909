package delegate

import (
	"fmt"
	"math"
	"time"

	"github.com/scraft/scraft/protocol"
)

// Unreachable is the latency of a link or route that does not work.
// Any negative latency means the same.
const Unreachable time.Duration = -1

// PathConfig is the hysteresis of BestPath. It is a node's own setting:
// a route is a node's choice, costs no chain tx, and no other member needs
// to agree with it.
type PathConfig struct {
	// MinGain is the least improvement, in time, for which a member leaves
	// a working route for a better one. Default 2 ms.
	MinGain time.Duration
	// MinGainPercent is the least improvement, in percent of the current
	// route's latency, for which a member leaves a working route. Both
	// margins must be cleared. Default 10.
	MinGainPercent int
}

// DefaultPathConfig returns the defaults: switch only for a route more
// than 2 ms and more than 10% faster, so that measurement noise (a few
// hundred µs of jitter on a LAN, a few percent on a WAN) moves nobody.
func DefaultPathConfig() PathConfig {
	return PathConfig{MinGain: 2 * time.Millisecond, MinGainPercent: 10}
}

// Validate checks the fields.
func (c PathConfig) Validate() error {
	if c.MinGain < 0 {
		return fmt.Errorf("delegate: MinGain (%s) cannot be negative", c.MinGain)
	}
	if c.MinGainPercent < 0 || c.MinGainPercent >= 100 {
		return fmt.Errorf("delegate: MinGainPercent (%d) must be in [0, 100)", c.MinGainPercent)
	}
	return nil
}

// Peer is what a member knows of one peer for routing to the leader.
type Peer struct {
	Address protocol.Address
	// RTT is this member's measured latency to the peer; negative when the
	// peer does not answer.
	RTT time.Duration
	// ToLeader is the peer's best latency to the leader, from its last
	// heartbeat; negative when it has no route.
	ToLeader time.Duration
	// Via is the peer's own next hop to the leader (zero: direct). A peer
	// that routes through this member is no route for it.
	Via protocol.Address
}

// Route is a way to the leader: direct when Via is zero, else through the
// peer Via. Latency is its total; negative when there is no route.
type Route struct {
	Via     protocol.Address
	Latency time.Duration
}

// Direct reports whether r goes straight to the leader.
func (r Route) Direct() bool { return r.Via.IsZero() }

// OK reports whether r reaches the leader.
func (r Route) OK() bool { return r.Latency >= 0 }

// BestPath chooses how self reaches the leader: direct (latency direct,
// negative when the leader does not answer it) or through one of peers,
// at the peer's RTT plus its reported ToLeader. current is the route in
// use (a Route that is not OK when there is none); its latency is worked
// out again from the inputs.
//
// The fastest route wins (on a tie: direct, then the lowest address), but
// a working current route is kept unless the winner is faster by more
// than cfg.MinGain and by more than cfg.MinGainPercent: routes do not
// flap on noise. A current route that no longer works is left at once.
// Peers that route through self are skipped, so two members never route
// through each other.
func BestPath(cfg PathConfig, self protocol.Address, direct time.Duration, peers []Peer, current Route) Route {
	best := Route{Latency: Unreachable}
	if direct >= 0 {
		best = Route{Latency: direct}
	}
	cur := Route{Via: current.Via, Latency: Unreachable}
	if current.OK() && current.Direct() {
		cur.Latency = best.Latency
	}
	for _, p := range peers {
		if p.Address.IsZero() || p.Address == self || p.Via == self || p.RTT < 0 || p.ToLeader < 0 {
			continue
		}
		r := Route{Via: p.Address, Latency: addSat(p.RTT, p.ToLeader)}
		if current.OK() && !current.Direct() && p.Address == current.Via && (!cur.OK() || r.Latency < cur.Latency) {
			cur.Latency = r.Latency // the best report, should a peer appear twice
		}
		if better(r, best) {
			best = r
		}
	}
	if !cur.OK() || !best.OK() || best.Via == cur.Via {
		return best
	}
	gain := cur.Latency - best.Latency
	if gain > cfg.MinGain && gain > percentOf(cur.Latency, cfg.MinGainPercent) {
		return best
	}
	return cur
}

// better reports whether r beats b: it works and b does not, or it is
// faster, or as fast and direct, or as fast through a lower address.
func better(r, b Route) bool {
	switch {
	case !r.OK():
		return false
	case !b.OK():
		return true
	case r.Latency != b.Latency:
		return r.Latency < b.Latency
	case r.Direct() != b.Direct():
		return r.Direct()
	}
	return r.Via.Compare(b.Via) < 0
}

// addSat adds two non-negative durations, saturating instead of wrapping.
func addSat(a, b time.Duration) time.Duration {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// percentOf returns p percent of d (d ≥ 0, 0 ≤ p < 100) without overflow.
func percentOf(d time.Duration, p int) time.Duration {
	return d/100*time.Duration(p) + d%100*time.Duration(p)/100
}
