package delegate_test

import (
	"fmt"
	"time"

	"github.com/scraft/scraft/delegate"
	"github.com/scraft/scraft/protocol"
)

func name(i byte) protocol.Address { return protocol.Address{15: i} }

// Seven members, all heartbeating: the five richest are candidates, each
// holds at most ⌈7/5⌉ − 1 = 1 delegator, and the other two delegate to
// the candidate they reach fastest.
func ExamplePlan() {
	members := []delegate.Member{
		{Address: name(1), Stake: 500, JoinSeq: 1, Valid: true},
		{Address: name(2), Stake: 400, JoinSeq: 2, Valid: true},
		{Address: name(3), Stake: 300, JoinSeq: 3, Valid: true},
		{Address: name(4), Stake: 200, JoinSeq: 4, Valid: true},
		{Address: name(5), Stake: 100, JoinSeq: 5, Valid: true},
		{Address: name(6), Stake: 50, JoinSeq: 6, Valid: true, Prefs: []protocol.Address{name(3), name(1)}},
		{Address: name(7), Stake: 50, JoinSeq: 7, Valid: true, Prefs: []protocol.Address{name(3), name(4)}},
	}
	l, err := delegate.Plan(members, nil)
	if err != nil {
		panic(err)
	}
	fmt.Println("capacity", l.Capacity)
	for _, a := range l.Assignments {
		fmt.Printf("%x → %x\n", a.Delegator[15], a.Candidate[15])
	}
	// Output:
	// capacity 1
	// 6 → 3
	// 7 → 4
}

// A member reaches the leader in 40 ms directly, or in 30 ms through a
// peer: 10 ms better, and more than 10%, so it routes through the peer.
func ExampleBestPath() {
	peers := []delegate.Peer{{Address: name(2), RTT: 10 * time.Millisecond, ToLeader: 20 * time.Millisecond}}
	current := delegate.Route{Latency: 40 * time.Millisecond} // direct
	r := delegate.BestPath(delegate.DefaultPathConfig(), name(1), 40*time.Millisecond, peers, current)
	fmt.Printf("via %x in %s\n", r.Via[15], r.Latency)
	// Output: via 2 in 30ms
}
