package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// runLeaderWatch has a follower's Raft look for its leader as soon as the
// leader has been silent for a HeartbeatTimeout (plus a stagger by rank,
// below), rather than whenever Raft's own timer next fires.
//
// Raft's follower checks its last contact on a timer of one to two
// HeartbeatTimeouts that contact does not reset, so it notices a dead
// leader between one and three HeartbeatTimeouts after the last contact.
// And a member grants a pre-vote only once it has noticed by itself: while
// it still knows a leader it refuses. In a channel of three the new leader
// is so elected only when the later of the two followers notices: measured
// under load, a median of 459 ms from the kill to the first notice and
// 220 ms more to the election (docs/BENCHMARKS.md).
//
// The watch changes no threshold: Raft still turns candidate only after a
// full HeartbeatTimeout without contact, checked by Raft itself, and the
// other members grant their votes by the same rule (and the leader rule of
// liar.go). It only has Raft look when the timeout is due, and only when
// the leader's node does not answer a probe either (raftLeaderAnswers): a
// leader that is only slow, on an overloaded machine, is left to Raft's
// own timer as before, so the watch adds no election under load.
//
// Followers that noticed at the same moment would both win their pre-votes
// and split the vote; Raft's random timers keep that rare, and so does the
// stagger here: the voters other than the leader look one after the other,
// watchStep apart, in the order of watchRank. The first candidate's
// pre-vote fails (the others still know the leader); the next one's
// succeeds, since the first no longer knows a leader, so a channel of
// three elects one watchStep after the leader's timeout, and one of n
// voters about (n-1)/2 watchSteps after it.
//
// Config.LeaderWatch false turns it off (Raft's own timer alone).
func (c *Channel) runLeaderWatch(ctx context.Context) {
	if !c.cfg.LeaderWatch {
		return
	}
	ht := c.cfg.HeartbeatTimeout
	step := watchStep(ht)
	var (
		rankOf raft.ServerID // the silent leader the rank was found for
		rank   int
		alive  bool // it answered this node's probe
	)
	t := time.NewTimer(ht)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		wait := ht / 4
		if c.raft.State() == raft.Follower {
			if addr, id := c.raft.LeaderWithID(); id != "" {
				silent := time.Since(c.raft.LastContact())
				if silent < ht {
					rankOf = "" // heard from: rank again at the next silence
				} else if rankOf != id {
					rankOf = id
					var wg sync.WaitGroup
					wg.Add(1)
					go func() {
						defer wg.Done()
						rank = c.watchRank(id)
					}()
					alive = c.raftLeaderAnswers(addr)
					wg.Wait()
					silent = time.Since(c.raft.LastContact())
				}
				due := ht + time.Duration(rank)*step
				switch {
				case silent < ht:
					wait = ht - silent
				case alive:
					// Slow, not gone (a starved process, a long
					// fsync): Raft's own timer judges it, as without
					// the watch. Probe again shortly.
					rankOf, wait = "", ht/2
				case silent >= due:
					c.logger.Debug("leader silent: waking Raft's heartbeat check", "leader", id, "silent", silent.Round(time.Millisecond), "rank", rank)
					if err := c.wakeRaftTimer(); err != nil {
						c.logger.Warn("cannot wake Raft's heartbeat check", "error", err)
					}
					wait = ht
				default:
					wait = due - silent
				}
			}
		}
		t.Reset(max(wait, time.Millisecond))
	}
}

// raftLeaderAnswers reports whether the Raft leader's node answers a Status
// probe within half a heartbeat timeout. A node killed or cut off does
// not (a killed one's port refuses at once); one that is only slow to
// send its appends, starved of CPU on a loaded machine, mostly does.
func (c *Channel) raftLeaderAnswers(addr raft.ServerAddress) bool {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.HeartbeatTimeout/2)
	defer cancel()
	_, err := c.node.peers.status(ctx, string(addr), c.id)
	return err == nil
}

// watchStep is the time between two followers' looks for a silent leader:
// a fifth of the heartbeat timeout, well above the spread of the
// followers' last contacts with one leader under load.
func watchStep(heartbeat time.Duration) time.Duration { return heartbeat / 5 }

// watchRank is this node's turn among the voters other than leader to
// look for the silent leader: the voters ordered by the last index of their
// Raft logs, then by server ID. The last to look wins the election (the
// ones before no longer know a leader and grant it their votes), and Raft
// grants a vote only to a log at least as long as the voter's own, so the
// longest log goes last: were a shorter one last, the longer would refuse
// it and the election would wait for a candidate's election timeout. Each
// voter tells its last index in a Status answer, asked now (the leader is
// silent, so the logs no longer grow), within half a watchStep; a voter
// that does not answer is placed by its ID alone. A member that lies about
// its log only moves its own turn: it can win an election no more than
// it could by asking for votes itself, and it still leads nothing until the
// chain names it (DESIGN.md, "A lying member").
func (c *Channel) watchRank(leader raft.ServerID) int {
	cf := c.raft.GetConfiguration()
	if cf.Error() != nil {
		return 0
	}
	me := raft.ServerID(c.me().String())
	type turn struct {
		id       raft.ServerID
		last     uint64
		answered bool
	}
	var others []*turn
	for _, s := range cf.Configuration().Servers {
		if s.Suffrage == raft.Voter && s.ID != leader && s.ID != me {
			others = append(others, &turn{id: s.ID})
		}
	}
	addrs := make(map[raft.ServerID]raft.ServerAddress, len(others))
	for _, s := range cf.Configuration().Servers {
		addrs[s.ID] = s.Address
	}
	ctx, cancel := context.WithTimeout(c.ctx, watchStep(c.cfg.HeartbeatTimeout)/2)
	defer cancel()
	var wg sync.WaitGroup
	for _, o := range others {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if resp, err := c.node.peers.status(ctx, string(addrs[o.id]), c.id); err == nil {
				o.last, o.answered = resp.GetLastIndex(), true
			}
		}()
	}
	wg.Wait()
	last := c.raft.LastIndex()
	rank := 0
	for _, o := range others {
		before := o.id < me
		if o.answered {
			before = o.last < last || (o.last == last && o.id < me)
		}
		if before {
			rank++
		}
	}
	return rank
}

// wakeRaftTimer makes a follower's Raft check its leader's last contact
// now: Raft wakes its follower's timer when ReloadConfig lowers the
// heartbeat timeout. The timeout goes up by a millisecond (the election
// timeout with it, which may not be shorter) and back, so no timeout is
// ever below the configured one nor the leader lease, which Raft would
// refuse; the check itself still asks for a full HeartbeatTimeout of
// silence (a millisecond more, if it runs in between).
func (c *Channel) wakeRaftTimer() error {
	rc := c.raft.ReloadableConfig()
	up := rc
	up.HeartbeatTimeout += time.Millisecond
	up.ElectionTimeout = max(up.ElectionTimeout, up.HeartbeatTimeout)
	if err := c.raft.ReloadConfig(up); err != nil {
		return err
	}
	return c.raft.ReloadConfig(rc)
}
