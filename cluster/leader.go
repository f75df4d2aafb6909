package cluster

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
)

// leaderRun is the leader work of one term of leadership in one epoch: the
// batcher, which groups queued entries into batches, executes them
// speculatively (fsm Propose), signs them and hands them to Raft; and the
// completion loop, which waits for Raft in order and answers submitters;
// and the settler, which proposes and executes settlements (settle.go).
// It starts after a Barrier, once this node is both Raft's and the chain's
// leader, and stops as soon as either is lost (fencing).
type leaderRun struct {
	c     *Channel
	epoch uint64
	queue chan *submission
	stop  chan struct{}
	// ctx ends with stop: it bounds the batcher's chain reads.
	ctx    context.Context
	cancel context.CancelFunc
	// slots bounds the batches in Raft at once.
	slots  chan struct{}
	inRaft chan *inRaft
	wg     sync.WaitGroup
	once   sync.Once
	// failed is closed when the run cannot go on (a Raft error): the
	// leadership loop stops it and starts again if still leader.
	failed     chan struct{}
	failedOnce sync.Once

	nextTick   uint64
	lastTickMs uint64
	tickMs     uint64 // the channel's tick interval, 0 for none

	// chainReads counts the batcher's chain reads in progress (the facts
	// of its join and leave entries), which run without the machine lock.
	chainReads atomic.Int32
	// suffixFull says the unsettled suffix is past its hard bound
	// (settle.go): new calls are answered ErrBusy.
	suffixFull atomic.Bool
}

// inRaft is one batch handed to Raft.
type inRaft struct {
	fut   raft.ApplyFuture
	subs  []*submission
	start time.Time
}

func (c *Channel) startLeaderRun(epoch uint64) *leaderRun {
	run := &leaderRun{
		c:      c,
		epoch:  epoch,
		queue:  make(chan *submission, c.cfg.QueueSize),
		stop:   make(chan struct{}),
		slots:  make(chan struct{}, c.cfg.MaxInFlight),
		inRaft: make(chan *inRaft, c.cfg.MaxInFlight),
		failed: make(chan struct{}),
	}
	run.ctx, run.cancel = context.WithCancel(c.ctx)
	c.fsm.machine(func(m *fsm.Machine) {
		if m != nil {
			run.nextTick, run.lastTickMs = m.Tick()
			run.nextTick++
		}
		if g := c.fsm.gen; g != nil {
			run.tickMs = g.TickIntervalMs
		}
	})
	run.wg.Add(3)
	go run.batcher()
	go run.completer()
	go run.settler()
	return run
}

// enqueue offers s to the batcher without blocking.
func (run *leaderRun) enqueue(s *submission) bool {
	select {
	case <-run.stop:
		return false
	default:
	}
	select {
	case run.queue <- s:
		return true
	default:
		return false
	}
}

// halt stops the run and answers everything queued or in flight with
// ErrLeadershipLost; the submitters retry with the next leader.
func (run *leaderRun) halt() {
	run.once.Do(func() {
		close(run.stop)
		run.cancel()
		run.wg.Wait()
		for {
			select {
			case s := <-run.queue:
				run.c.answer(s, nil, ErrLeadershipLost)
				continue
			default:
			}
			break
		}
		// Batches proposed but not applied are void: whoever leads next
		// orders their txs again when they are resubmitted. Kept, for a
		// later run of this epoch to propose again as signed
		// (punish_equivocation.go).
		var dropped []*protocol.Batch
		run.c.fsm.machine(func(m *fsm.Machine) {
			if m != nil {
				dropped = m.DropPending()
			}
		})
		if err := run.c.voided.keep(run.epoch, dropped); err != nil {
			run.c.logger.Error("cannot keep the voided batches on disk", "error", err)
		}
	})
}

func (run *leaderRun) fail() {
	run.failedOnce.Do(func() { close(run.failed) })
}

func (run *leaderRun) batcher() {
	defer run.wg.Done()
	defer close(run.inRaft)
	c := run.c
	var tick <-chan time.Time
	var ticker *time.Ticker
	c.fsm.machine(func(m *fsm.Machine) {
		if g := c.fsm.gen; g != nil && g.TickIntervalMs > 0 {
			ticker = time.NewTicker(time.Duration(g.TickIntervalMs) * time.Millisecond)
			tick = ticker.C
		}
	})
	if ticker != nil {
		defer ticker.Stop()
	}
	if !run.resign() {
		return
	}
	batch := make([]*submission, 0, c.cfg.BatchMaxTxs)
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	for {
		batch = batch[:0]
		select {
		case <-run.stop:
			return
		case s := <-run.queue:
			batch = append(batch, s)
		case now := <-tick:
			batch = append(batch, run.tickEntry(now))
		}
		// Gather more until the batch is full or BatchMaxDelay passed.
		if c.cfg.BatchMaxDelay > 0 {
			timer.Reset(c.cfg.BatchMaxDelay)
		}
	gather:
		for len(batch) < c.cfg.BatchMaxTxs {
			if c.cfg.BatchMaxDelay == 0 {
				select {
				case s := <-run.queue:
					batch = append(batch, s)
					continue
				default:
					break gather
				}
			}
			select {
			case s := <-run.queue:
				batch = append(batch, s)
			case <-timer.C:
				break gather
			case <-run.stop:
				timer.Stop()
				run.answerAll(batch, ErrLeadershipLost)
				return
			}
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		// Every tx is verified before the leader signs a batch with it:
		// one batch verification, while the previous batches commit.
		batch = run.verify(batch)
		if len(batch) == 0 {
			continue
		}
		var ok bool
		if batch, ok = run.awaitSlot(batch); !ok {
			return
		}
		if !run.propose(batch) {
			<-run.slots
		}
	}
}

// awaitSlot waits for a free slot (at most MaxInFlight batches in Raft)
// and returns batch, to which it adds the submissions that arrive
// meanwhile, up to BatchMaxTxs: they would wait for the slot anyway, in
// the next batch, and one fuller batch costs every member less per tx
// than two (one log write and fsync, one AppendEntries, one signature).
// The added calls are verified once the slot is taken. It reports false,
// having answered the batch, when the leadership ended first.
func (run *leaderRun) awaitSlot(batch []*submission) ([]*submission, bool) {
	c := run.c
	verified := len(batch)
wait:
	for {
		// A free slot is taken before any more is gathered: a batch waits
		// for nothing when Raft has room.
		select {
		case run.slots <- struct{}{}:
			break wait
		default:
		}
		if len(batch) >= c.cfg.BatchMaxTxs {
			select {
			case run.slots <- struct{}{}:
				break wait
			case <-run.stop:
				run.answerAll(batch, ErrLeadershipLost)
				return nil, false
			}
		}
		select {
		case run.slots <- struct{}{}:
			break wait
		case s := <-run.queue:
			batch = append(batch, s)
		case <-run.stop:
			run.answerAll(batch, ErrLeadershipLost)
			return nil, false
		}
	}
	if len(batch) > verified {
		kept := run.verify(batch[verified:])
		batch = append(batch[:verified], kept...)
	}
	return batch, true
}

// verify checks the signatures of the calls in subs with one batch
// verification, answers those that fail with ErrBadTx and returns the
// rest, in order. A tx may come from any member node (forwarded), so none
// is trusted unverified: signing a batch with a forged tx would have
// followers hold the batch against this leader.
func (run *leaderRun) verify(subs []*submission) []*submission {
	var txs []*protocol.SignedTx
	var idx []int
	for i, s := range subs {
		if s.entry.Kind == protocol.EntryCall && s.entry.Call != nil {
			txs = append(txs, s.entry.Call)
			idx = append(idx, i)
		}
	}
	if len(txs) == 0 {
		return subs
	}
	errs := protocol.VerifyTxs(txs)
	bad := make([]bool, len(subs))
	n := 0
	for j, err := range errs {
		if err != nil {
			bad[idx[j]] = true
			n++
			run.c.answer(subs[idx[j]], nil, fmt.Errorf("%w: %v", ErrBadSignature, err))
		}
	}
	if n == 0 {
		return subs
	}
	kept := subs[:0]
	for i, s := range subs {
		if !bad[i] {
			kept = append(kept, s)
		}
	}
	return kept
}

// tickEntry makes the next tick. Its timestamp is never less than one
// interval after the previous tick's, which followers check, even when the
// ticker fired late once and on time the next.
func (run *leaderRun) tickEntry(now time.Time) *submission {
	ts := uint64(now.UnixMilli())
	if run.lastTickMs > 0 {
		ts = max(ts, run.lastTickMs+run.tickMs)
	}
	s := newSubmission(protocol.Entry{Kind: protocol.EntryTick, Tick: &protocol.Tick{Number: run.nextTick, TimestampMs: ts}})
	run.nextTick++
	run.lastTickMs = ts
	return s
}

func (run *leaderRun) answerAll(subs []*submission, err error) {
	for _, s := range subs {
		run.c.answer(s, nil, err)
	}
}

// propose executes, signs and hands one batch to Raft. It reports whether
// a batch went to Raft.
//
// The machine lock is held only while the batch executes: when its join
// or leave entries need the chain's verdicts, the machine names them
// (fsm.NeedFactsError) and changes nothing, the batcher reads the chain
// with the lock released (chainFacts.decide, one read each) and proposes
// again with the verdicts as data.
func (run *leaderRun) propose(subs []*submission) bool {
	c := run.c
	subs = run.censored(append([]*submission(nil), subs...))
	facts := &fsm.Facts{}
	// Each round of facts adds one at least, and an entry needs one at most.
	rounds := len(subs)
	for len(subs) > 0 {
		entries := make([]protocol.Entry, len(subs))
		// A batch is stamped no earlier than the ticks it carries.
		ts := uint64(time.Now().UnixMilli())
		for i, s := range subs {
			entries[i] = s.entry
			if s.entry.Kind == protocol.EntryTick {
				ts = max(ts, s.entry.Tick.TimestampMs)
			}
		}
		var b *protocol.Batch
		var err error
		c.fsm.machine(func(m *fsm.Machine) {
			if m == nil {
				err = ErrNoLeader
				return
			}
			b, _, err = m.ProposeFacts(entries, run.epoch, c.cfg.Key, ts, facts)
		})
		var need *fsm.NeedFactsError
		if errors.As(err, &need) {
			if rounds--; rounds >= 0 {
				err = run.decide(need, facts)
			}
			if err == nil {
				continue
			}
			if run.ctx.Err() != nil {
				run.answerAll(subs, ErrLeadershipLost)
				return false
			}
		}
		var ee *fsm.EntryError
		if errors.As(err, &ee) {
			// An entry followers would hold against us: leave it out.
			s := subs[ee.Index]
			c.logger.Warn("entry refused by the state machine", "kind", s.entry.Kind, "error", err)
			if s.entry.Kind == protocol.EntryTick {
				c.fsm.machine(func(m *fsm.Machine) {
					run.nextTick, run.lastTickMs = m.Tick()
					run.nextTick++
				})
			}
			c.answer(s, nil, errors.Join(ErrRefused, err))
			subs = append(subs[:ee.Index], subs[ee.Index+1:]...)
			continue
		}
		if err != nil {
			// A stale epoch or a full pipeline: this run cannot sign.
			c.logger.Warn("cannot propose", "epoch", run.epoch, "error", err)
			run.answerAll(subs, ErrLeadershipLost)
			run.fail()
			return false
		}
		c.metrics.batchSize.Observe(float64(len(subs)))
		c.tamper(b)
		fut := c.raft.Apply(encodeLog(logBatch, b.Bytes()), c.cfg.ApplyTimeout)
		run.inRaft <- &inRaft{fut: fut, subs: subs, start: time.Now()}
		return true
	}
	return false
}

// decide reads from the chain, without the machine lock, the facts a
// proposal needs. It fails when the run stops meanwhile: the verdicts
// read then are not the chain's.
func (run *leaderRun) decide(need *fsm.NeedFactsError, facts *fsm.Facts) error {
	run.chainReads.Add(1)
	defer run.chainReads.Add(-1)
	if err := (chainFacts{run.c}).decide(run.ctx, need, facts); err != nil {
		return err
	}
	return run.ctx.Err()
}

// completer answers submitters as Raft applies their batches, in order.
func (run *leaderRun) completer() {
	defer run.wg.Done()
	c := run.c
	for p := range run.inRaft {
		err := p.fut.Error()
		<-run.slots
		if err != nil {
			c.logger.Warn("batch not committed", "error", err)
			run.answerAll(p.subs, ErrLeadershipLost)
			run.fail()
			if _, cause := c.disk.failure(); cause != nil {
				// This node cannot write its log: Raft stepped it
				// down, and it must not lead again until it can.
				c.handOffForDisk()
			}
			continue
		}
		c.metrics.commitBatch.Observe(time.Since(p.start).Seconds())
		res, _ := p.fut.Response().(*applyResult)
		switch {
		case res == nil:
			run.answerAll(p.subs, ErrLeadershipLost)
		case res.err != nil:
			run.answerAll(p.subs, res.err)
			run.fail()
		default:
			outs := res.applied.Outcomes
			for i, s := range p.subs {
				if i < len(outs) {
					o := outs[i]
					c.answer(s, &o, nil)
				} else {
					c.answer(s, nil, ErrRefused)
				}
			}
		}
	}
}
