package delegate

import (
	"testing"
	"time"
)

func TestBestPath(t *testing.T) {
	ms := time.Millisecond
	self := addr(1)
	none := Route{Latency: Unreachable}
	direct := func(d time.Duration) Route { return Route{Latency: d} }
	via := func(i int, d time.Duration) Route { return Route{Via: addr(i), Latency: d} }
	peer := func(i int, rtt, toLeader time.Duration) Peer {
		return Peer{Address: addr(i), RTT: rtt, ToLeader: toLeader}
	}
	cases := []struct {
		name    string
		direct  time.Duration
		peers   []Peer
		current Route
		want    Route
	}{
		{"no route at all", Unreachable, nil, none, none},
		{"direct only", 30 * ms, nil, none, direct(30 * ms)},
		{"a relay faster than direct, no route yet: take it", 50 * ms, []Peer{peer(2, 10*ms, 20*ms)}, none, via(2, 30*ms)},
		{"direct when the leader does not answer us", Unreachable, []Peer{peer(2, 10*ms, 20*ms)}, none, via(2, 30*ms)},
		{"keep direct: the relay is 1 ms faster (under 2 ms)", 31 * ms, []Peer{peer(2, 10*ms, 20*ms)}, direct(31 * ms), direct(31 * ms)},
		{"keep direct: the relay is 3 ms faster but under 10%", 33 * ms, []Peer{peer(2, 10*ms, 20*ms)}, direct(33 * ms), direct(33 * ms)},
		{"switch: the relay is over 2 ms and over 10% faster", 40 * ms, []Peer{peer(2, 10*ms, 20*ms)}, direct(40 * ms), via(2, 30*ms)},
		{"keep a relay whose cost grew a little", 31 * ms, []Peer{peer(2, 11*ms, 21*ms)}, via(2, 30*ms), via(2, 32*ms)},
		{"leave a relay that stopped answering", 40 * ms, []Peer{peer(2, Unreachable, 20*ms)}, via(2, 30*ms), direct(40 * ms)},
		{"leave a relay that lost its route", 40 * ms, []Peer{peer(2, 10*ms, Unreachable)}, via(2, 30*ms), direct(40 * ms)},
		{"leave a relay that is gone", 40 * ms, nil, via(2, 30*ms), direct(40 * ms)},
		{"leave direct once the leader stops answering", Unreachable, []Peer{peer(2, 10*ms, 100*ms)}, direct(20 * ms), via(2, 110*ms)},
		{"skip a peer that routes through us", 40 * ms, []Peer{{Address: addr(2), RTT: ms, ToLeader: ms, Via: self}}, none, direct(40 * ms)},
		{"skip ourselves", 40 * ms, []Peer{peer(1, 0, ms)}, none, direct(40 * ms)},
		{"a tie prefers direct", 30 * ms, []Peer{peer(2, 10*ms, 20*ms)}, none, direct(30 * ms)},
		{"a tie between relays prefers the lower address", 50 * ms, []Peer{peer(3, 10*ms, 20*ms), peer(2, 20*ms, 10*ms)}, none, via(2, 30*ms)},
		{"switch between relays past the margin", 90 * ms, []Peer{peer(2, 30*ms, 30*ms), peer(3, 10*ms, 20*ms)}, via(2, 60*ms), via(3, 30*ms)},
		{"huge latencies saturate instead of wrapping", Unreachable, []Peer{peer(2, 1<<62, 1<<62)}, none, via(2, 1<<63-1)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := BestPath(DefaultPathConfig(), self, tc.direct, tc.peers, tc.current)
			if got != tc.want {
				t.Fatalf("BestPath = %+v, want %+v", got, tc.want)
			}
		})
	}
}

func TestPathConfigValidate(t *testing.T) {
	cases := []struct {
		name string
		cfg  PathConfig
		ok   bool
	}{
		{"defaults", DefaultPathConfig(), true},
		{"no hysteresis", PathConfig{}, true},
		{"negative gain", PathConfig{MinGain: -time.Millisecond}, false},
		{"negative percent", PathConfig{MinGainPercent: -1}, false},
		{"a hundred percent never switches", PathConfig{MinGainPercent: 100}, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok=%v", err, tc.ok)
			}
		})
	}
}

// TestBestPathDoesNotFlap: a route chosen under noise stays put while the
// measurements of three routes of about 30 ms wander within ±3% (two
// routes then differ by less than 10%, the margin).
func TestBestPathDoesNotFlap(t *testing.T) {
	r := newRand(t)
	cfg := DefaultPathConfig()
	noisy := func(d time.Duration) time.Duration {
		return d + time.Duration(r.Int64N(int64(d)*6/100+1)) - d*3/100
	}
	cur := Route{Latency: Unreachable}
	changes := 0
	for range 1000 {
		peers := []Peer{
			{Address: addr(2), RTT: noisy(10 * time.Millisecond), ToLeader: noisy(20 * time.Millisecond)},
			{Address: addr(3), RTT: noisy(15 * time.Millisecond), ToLeader: noisy(15 * time.Millisecond)},
		}
		next := BestPath(cfg, addr(1), noisy(31*time.Millisecond), peers, cur)
		if next.Via != cur.Via || next.OK() != cur.OK() {
			changes++
		}
		cur = next
	}
	if changes > 1 {
		t.Fatalf("the route changed %d times on noise alone", changes)
	}
}
