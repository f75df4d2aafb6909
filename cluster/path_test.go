package cluster

import (
	"testing"
	"time"

	"github.com/scraft/scraft/cluster/peerpb"
	"github.com/scraft/scraft/delegate"
	"github.com/scraft/scraft/protocol"
)

func testAddr(b byte) protocol.Address {
	var a protocol.Address
	a[0] = b
	return a
}

// TestReportedRoute checks what a delegator takes from a candidate's
// Status answer: a route to the leader it names, and nothing from an
// answer that has none, names another leader or does not parse.
func TestReportedRoute(t *testing.T) {
	leader, via := testAddr(1), testAddr(2)
	tests := []struct {
		name    string
		resp    *peerpb.StatusResponse
		want    time.Duration
		wantVia protocol.Address
	}{
		{"direct", &peerpb.StatusResponse{Leader: leader.String(), HasRoute: true, ToLeaderNs: int64(60 * time.Millisecond)}, 60 * time.Millisecond, protocol.Address{}},
		{"through a peer", &peerpb.StatusResponse{Leader: leader.String(), HasRoute: true, ToLeaderNs: 7, Via: via[:]}, 7, via},
		{"the leader itself", &peerpb.StatusResponse{Leader: leader.String(), HasRoute: true}, 0, protocol.Address{}},
		{"no route", &peerpb.StatusResponse{Leader: leader.String(), ToLeaderNs: 5}, delegate.Unreachable, protocol.Address{}},
		{"another leader", &peerpb.StatusResponse{Leader: testAddr(9).String(), HasRoute: true, ToLeaderNs: 5}, delegate.Unreachable, protocol.Address{}},
		{"negative latency", &peerpb.StatusResponse{Leader: leader.String(), HasRoute: true, ToLeaderNs: -5}, delegate.Unreachable, protocol.Address{}},
		{"short via", &peerpb.StatusResponse{Leader: leader.String(), HasRoute: true, ToLeaderNs: 5, Via: via[:3]}, delegate.Unreachable, protocol.Address{}},
		{"long via", &peerpb.StatusResponse{Leader: leader.String(), HasRoute: true, ToLeaderNs: 5, Via: make([]byte, 100)}, delegate.Unreachable, protocol.Address{}},
		{"nil", nil, delegate.Unreachable, protocol.Address{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, gotVia := reportedRoute(tc.resp, leader)
			if got != tc.want || gotVia != tc.wantVia {
				t.Fatalf("got %s via %s, want %s via %s", got, gotVia, tc.want, tc.wantVia)
			}
		})
	}
}

// TestBestRoute checks a delegator's choice among its samples of the
// candidates: the least total latency to the leader, through a candidate
// other than the leader; the hysteresis against a slightly better route;
// the leader only as a last resort; and a peer that routes through the
// delegator, or lies with a huge latency, never chosen.
func TestBestRoute(t *testing.T) {
	me, leader, c2, c3, c4 := testAddr(10), testAddr(1), testAddr(2), testAddr(3), testAddr(4)
	ms := time.Millisecond
	rep := func(to time.Duration, via protocol.Address) *peerpb.StatusResponse {
		r := &peerpb.StatusResponse{Leader: leader.String(), HasRoute: true, ToLeaderNs: int64(to)}
		if !via.IsZero() {
			r.Via = via[:]
		}
		return r
	}
	none := delegate.Route{Latency: delegate.Unreachable}
	tests := []struct {
		name    string
		samples []sample
		cur     delegate.Route
		want    delegate.Route
	}{
		{"least total", []sample{
			{leader, 150 * ms, rep(0, protocol.Address{})},
			{c2, 1 * ms, rep(150*ms, protocol.Address{})},
			{c3, 60 * ms, rep(10*ms, protocol.Address{})},
		}, none, delegate.Route{Via: c3, Latency: 70 * ms}},
		{"the leader is no relay while a candidate has a way", []sample{
			{leader, 1 * ms, rep(0, protocol.Address{})},
			{c2, 60 * ms, rep(60*ms, protocol.Address{})},
		}, none, delegate.Route{Via: c2, Latency: 120 * ms}},
		{"the leader as a last resort", []sample{
			{leader, 30 * ms, rep(0, protocol.Address{})},
			{c2, 60 * ms, &peerpb.StatusResponse{Leader: leader.String()}},
		}, none, delegate.Route{Latency: 30 * ms}},
		{"off the leader once a candidate has a way", []sample{
			{leader, 1 * ms, rep(0, protocol.Address{})},
			{c2, 60 * ms, rep(60*ms, protocol.Address{})},
		}, delegate.Route{Latency: 1 * ms}, delegate.Route{Via: c2, Latency: 120 * ms}},
		{"kept against a slightly better one", []sample{
			{c2, 50 * ms, rep(50*ms, protocol.Address{})},
			{c3, 48 * ms, rep(47*ms, protocol.Address{})},
		}, delegate.Route{Via: c2, Latency: 100 * ms}, delegate.Route{Via: c2, Latency: 100 * ms}},
		{"left for a much better one", []sample{
			{c2, 50 * ms, rep(50*ms, protocol.Address{})},
			{c3, 10 * ms, rep(10*ms, protocol.Address{})},
		}, delegate.Route{Via: c2, Latency: 100 * ms}, delegate.Route{Via: c3, Latency: 20 * ms}},
		{"left when it stops answering", []sample{
			{c3, 90 * ms, rep(90*ms, protocol.Address{})},
		}, delegate.Route{Via: c2, Latency: 10 * ms}, delegate.Route{Via: c3, Latency: 180 * ms}},
		{"not through a peer that routes through me", []sample{
			{c2, 1 * ms, rep(1*ms, me)},
			{c3, 60 * ms, rep(60*ms, protocol.Address{})},
		}, none, delegate.Route{Via: c3, Latency: 120 * ms}},
		{"a huge claim saturates", []sample{
			{c2, 1 * ms, &peerpb.StatusResponse{Leader: leader.String(), HasRoute: true, ToLeaderNs: 1<<63 - 1}},
			{c4, 60 * ms, rep(60*ms, protocol.Address{})},
		}, none, delegate.Route{Via: c4, Latency: 120 * ms}},
		{"no way at all", nil, none, none},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := bestRoute(delegate.DefaultPathConfig(), me, leader, tc.samples, tc.cur)
			if got.OK() != tc.want.OK() || (got.OK() && got != tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}

// TestPrefsOf checks that candidates rank by round trip, the address
// breaking ties.
func TestPrefsOf(t *testing.T) {
	got := prefsOf([]sample{{testAddr(3), 5, nil}, {testAddr(2), 9, nil}, {testAddr(1), 5, nil}})
	want := []protocol.Address{testAddr(1), testAddr(3), testAddr(2)}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("got %v, want %v", got, want)
		}
	}
}
