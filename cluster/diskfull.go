package cluster

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/internal/backoff"
)

// A member whose disk fills up cannot append to its Raft log. Raft
// handles a follower so by itself: the append fails, the leader retries
// with backoff, and the follower catches up once it can write again. A
// leader is another matter: Raft steps it down at the failed write, but
// the chain still names it, the other members vote for no one else, and
// it wins every election only to fail its first write again, so the
// channel stalls. This file makes the failure visible (Status.StoreError,
// not ready) and has a chain leader that cannot write hand the chain's
// lead to the member that has applied the most (handOffForDisk), as a
// planned transfer does; the others then elect that member in Raft.

// storeWatch is the channel's Raft log store, remembering whether its
// last write failed. Raft calls it from its own goroutines; the channel
// reads failure from any.
type storeWatch struct {
	raft.LogStore
	mu struct {
		sync.Mutex
		err   error
		since time.Time
	}
}

func (s *storeWatch) StoreLog(l *raft.Log) error { return s.note(s.LogStore.StoreLog(l)) }

func (s *storeWatch) StoreLogs(ls []*raft.Log) error { return s.note(s.LogStore.StoreLogs(ls)) }

// note records a write's outcome and returns err.
func (s *storeWatch) note(err error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case err == nil:
		s.mu.err = nil
	case s.mu.err == nil:
		s.mu.err, s.mu.since = err, time.Now()
	default:
		s.mu.err = err
	}
	return err
}

// failure returns since when writes fail and the error of the last one
// when it failed; a nil error when the last write succeeded.
func (s *storeWatch) failure() (since time.Time, err error) {
	if s == nil {
		return time.Time{}, nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.since, s.mu.err
}

// diskHandOffEvery is how often a chain leader that cannot write its Raft
// log tries again to hand the lead over.
const diskHandOffEvery = time.Second

// handOffForDisk starts, unless it runs already, handing the chain's lead
// from this node, which cannot write its Raft log, to the member that
// may lead and has applied the most: the chain names it for a new epoch
// (transfer_leader), and this node, no longer the chain's leader, signs
// nothing more. It stops once the chain names another leader, the log
// store writes again, or the channel closes.
func (c *Channel) handOffForDisk() {
	if !c.diskHandOff.CompareAndSwap(false, true) {
		return
	}
	c.loops.start(c.ctx, func(ctx context.Context) {
		defer c.diskHandOff.Store(false)
		for ctx.Err() == nil {
			since, cause := c.disk.failure()
			leader, epoch, _ := c.view.current()
			if cause == nil || leader != c.me() {
				return
			}
			_, to, err := c.bestSuccessor(ctx)
			if err == nil {
				var newEpoch uint64
				if newEpoch, err = c.cfg.Chain.TransferLeader(ctx, c.id, epoch, to); err == nil {
					c.logger.Warn("the Raft log cannot be written: handed the lead to another member", "to", to, "epoch", newEpoch,
						"failing_for", time.Since(since).Round(time.Millisecond), "error", cause)
					if err := c.refreshChain(); err != nil {
						c.logger.Debug("chain read failed", "error", err)
					}
					return
				}
			}
			c.logger.Error("the Raft log cannot be written and the lead cannot be handed over yet", "error", cause, "hand_off_error", err)
			backoff.Sleep(ctx, diskHandOffEvery)
		}
	})
}
