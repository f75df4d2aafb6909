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
		q := f.join(j)
		refusal, err := c.awaitChain(ctx, epoch, "join", j.Member, q.decide, q.undecided)
		if err != nil {
			return err
		}
		facts.SetJoin(j, refusal)
	}
	for _, m := range need.Leaves {
		q := f.leave(m, epoch)
		refusal, err := c.awaitChain(ctx, epoch, "leave", m.Address, q.decide, q.undecided)
		if err != nil {
			return err
		}
		facts.SetLeave(m, epoch, refusal)
	}
	return nil
}

// decide adds the join and leave facts need names as the chain tells them
// now, from one read each (at most PeerTimeout): the leader's verdicts on
// the entries it is about to sign (fsm ProposeFacts). It never waits for
// the chain to decide: an entry the chain cannot tell about yet, or cannot
// be read for, is one the leader must not sign, since its followers would
// wait on it, so it is recorded refused. It runs without the machine lock;
// when ctx ends the verdicts left are ctx's error.
func (f chainFacts) decide(ctx context.Context, need *fsm.NeedFactsError, facts *fsm.Facts) error {
	if need.Leader {
		return fmt.Errorf("a proposal asks for %w", need)
	}
	for _, j := range need.Joins {
		facts.SetJoin(j, f.askNow(ctx, f.join(j)))
	}
	for _, m := range need.Leaves {
		facts.SetLeave(m, need.Epoch, f.askNow(ctx, f.leave(m, need.Epoch)))
	}
	return nil
}

// question is one entry's question to the chain's history: decide answers
// it (decided, with nil for yes or the refusal), or not yet; undecided
// says why not while the chain cannot tell.
type question struct {
	decide    func(context.Context) (decided bool, err error)
	undecided func() error
}

// join asks who got a join entry's seq (chainJoined).
func (f chainFacts) join(j protocol.MemberJoin) question {
	return question{
		decide: func(ctx context.Context) (bool, error) { return f.c.chainJoined(ctx, j) },
		undecided: func() error {
			return fmt.Errorf("the chain has not given join seq %d yet", j.JoinSeq)
		},
	}
}

// leave asks when the membership of m, who did not ask to leave, ended,
// for a batch of epoch (chainEnded).
func (f chainFacts) leave(m fsm.Member, epoch uint64) question {
	return question{
		decide: func(ctx context.Context) (bool, error) { return f.c.chainEnded(ctx, m, epoch) },
		undecided: func() error {
			return fmt.Errorf("the chain has not ended its membership (join seq %d) in epoch %d", m.JoinSeq, epoch)
		},
	}
}

// askNow asks q once, within PeerTimeout, and returns the verdict (nil for
// yes), or why the chain could not decide: q's undecided error when it does
// not know yet, else the read's.
func (f chainFacts) askNow(ctx context.Context, q question) error {
	ctx, cancel := context.WithTimeout(ctx, f.c.cfg.PeerTimeout)
	defer cancel()
	decided, err := q.decide(ctx)
	if !decided && err == nil {
		err = q.undecided()
	}
	return err
}
