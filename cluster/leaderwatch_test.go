package cluster

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// TestLeaderWatchKeepsLiveLeader: waking a follower's Raft heartbeat
// check while its leader is alive starts no election (Raft still wants a
// full HeartbeatTimeout of silence), the heartbeat timeout is set back
// each time, and the followers look for a silent leader in distinct turns.
func TestLeaderWatchKeepsLiveLeader(t *testing.T) {
	// The lease equal to the heartbeat timeout, as by default: the wake
	// never takes a timeout below it.
	tc := newTestClusterUsers(t, 3, 1, func(c *Config) { c.LeaderLeaseTimeout = c.HeartbeatTimeout })
	defer tc.close()
	leader := tc.waitLeader(10 * time.Second)
	tc.waitVoters(3, 10*time.Second)
	lc := tc.channel(leader)
	term := lc.raft.CurrentTerm()
	_, leaderID := lc.raft.LeaderWithID()

	var ranks []int
	for _, nd := range tc.others(leader) {
		c := tc.channel(nd)
		for range 20 {
			if err := c.wakeRaftTimer(); err != nil {
				t.Fatalf("wake: %v", err)
			}
		}
		if got := c.raft.ReloadableConfig().HeartbeatTimeout; got != c.cfg.HeartbeatTimeout {
			t.Fatalf("heartbeat timeout %s after the wakes, want %s", got, c.cfg.HeartbeatTimeout)
		}
		ranks = append(ranks, c.watchRank(leaderID))
		if addr, _ := c.raft.LeaderWithID(); !c.raftLeaderAnswers(addr) {
			t.Fatalf("follower %s: the live leader does not answer its probe", nd.addr)
		}
	}
	slices.Sort(ranks)
	if !slices.Equal(ranks, []int{0, 1}) {
		t.Fatalf("followers' ranks %v, want 0 and 1", ranks)
	}

	// Writes go on through the same leader in the same term.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 5 {
		if _, err := tc.channel(tc.others(leader)[i%2]).Submit(ctx, tc.tx(tc.users[0], "after the wakes")); err != nil {
			t.Fatalf("submit: %v", err)
		}
	}
	if lc.raft.State() != raft.Leader || lc.raft.CurrentTerm() != term {
		t.Fatalf("leader %s in term %d after the wakes, was leader in term %d", lc.raft.State(), lc.raft.CurrentTerm(), term)
	}
	for _, nd := range tc.others(leader) {
		if _, id := tc.channel(nd).raft.LeaderWithID(); id != leaderID {
			t.Fatalf("follower %s follows %q, want %q", nd.addr, id, leaderID)
		}
	}
}

// TestLeaderWatchOff: without the watch a failover waits for Raft's own
// timer; it still happens.
func TestLeaderWatchOff(t *testing.T) {
	tc := newTestClusterUsers(t, 3, 1, func(c *Config) { c.LeaderWatch = false })
	defer tc.close()
	old := tc.waitLeader(10 * time.Second)
	tc.waitVoters(3, 10*time.Second)
	tc.stopNode(old)
	nl := tc.waitOtherLeader(old, 20*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if _, err := tc.channel(nl).Submit(ctx, tc.tx(tc.users[0], "after the failover")); err != nil {
		t.Fatalf("a write through the new leader: %v", err)
	}
}
