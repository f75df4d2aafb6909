package cluster

import (
	"context"
	"fmt"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
)

// chainFacts is the applier's factSource: the settlement chain's history,
// as this channel reads it. Every answer is a fact that does not change
// once the chain has it (the leader of an epoch, who got a join seq, when
// a membership ended), so members that ask at different times, or replay
// the log after a restart, hand their machines the same facts.
type chainFacts struct{ c *Channel }

// known adds the leader of b's epoch when the view has it: no I/O, so the
// batches of an epoch the view saw need no chain read at all.
func (f chainFacts) known(b *protocol.Batch, facts *fsm.Facts) {
	c := f.c
	if a, ok := c.view.leaderOf(b.Epoch); ok {
		facts.SetLeader(b.Epoch, a)
	} else if c.view.isUnrecorded(b.Epoch) {
		facts.SetLeaderUnrecorded(b.Epoch)
	}
}

// resolve waits for the chain to decide every fact need names. It runs
// without the machine lock; it fails only when ctx ends (shutdown).
func (f chainFacts) resolve(ctx context.Context, need *fsm.NeedFactsError, facts *fsm.Facts) error {
	c := f.c
	epoch := need.Epoch
	if need.Leader {
		leader, unrecorded, err := c.awaitLeader(ctx, epoch)
		if err != nil {
			return err
		}
		if unrecorded {
			facts.SetLeaderUnrecorded(epoch)
		} else {
			facts.SetLeader(epoch, leader)
		}
	}
	for _, j := range need.Joins {
		refusal, err := c.awaitChain(ctx, epoch, "join", j.Member, func(ctx context.Context) (bool, error) {
			return c.chainJoined(ctx, j)
		}, func() error {
			return fmt.Errorf("the chain has not given join seq %d yet", j.JoinSeq)
		})
		if err != nil {
			return err
		}
		facts.SetJoin(j, refusal)
	}
	for _, m := range need.Leaves {
		refusal, err := c.awaitChain(ctx, epoch, "leave", m.Address, func(ctx context.Context) (bool, error) {
			return c.chainEnded(ctx, m, epoch)
		}, func() error {
			return fmt.Errorf("the chain has not ended its membership (join seq %d) in epoch %d", m.JoinSeq, epoch)
		})
		if err != nil {
			return err
		}
		facts.SetLeave(m, epoch, refusal)
	}
	return nil
}
