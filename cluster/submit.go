package cluster

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/backoff"
	"github.com/scraft/scraft/protocol"
)

// submission is one entry waiting to be ordered and applied. done is closed
// once out or err is set.
type submission struct {
	entry protocol.Entry
	hash  protocol.Hash
	start time.Time
	done  chan struct{}
	once  sync.Once
	out   *protocol.Outcome
	err   error
	// shared is set for txs: the inflight map holds it and other
	// submitters of the same tx wait on it.
	shared bool
}

func newSubmission(en protocol.Entry) *submission {
	return &submission{entry: en, hash: en.Hash(), start: time.Now(), done: make(chan struct{})}
}

// finish answers the submission; only the first answer counts.
func (s *submission) finish(out *protocol.Outcome, err error) {
	s.once.Do(func() {
		s.out, s.err = out, err
		close(s.done)
	})
}

// Submit orders a signed tx in the channel and waits until it is committed
// and applied, then returns this member's outcome of it (height, status,
// output, change set). On a follower it forwards the tx to the leader. It is
// idempotent by tx hash: a tx submitted again returns its first outcome and
// is never executed twice. It retries through elections until ctx ends.
func (c *Channel) Submit(ctx context.Context, tx *protocol.SignedTx) (*protocol.Outcome, error) {
	return c.submit(ctx, tx, 0)
}

func (c *Channel) submit(ctx context.Context, tx *protocol.SignedTx, hops uint32) (*protocol.Outcome, error) {
	if tx == nil {
		return nil, fmt.Errorf("%w: nil tx", ErrBadTx)
	}
	if tx.Tx.Channel != c.id {
		return nil, fmt.Errorf("%w: tx for channel %s", ErrBadTx, tx.Tx.Channel)
	}
	if reason, ok := c.Retired(); ok && reason == RetiredClosed {
		if out, ok := c.knownOutcome(tx.Hash()); ok {
			return out, nil
		}
		return nil, fmt.Errorf("%w: %s", ErrChannelClosed, c.id)
	}
	h := tx.Hash()
	bo := backoff.New(backoff.Policy{Initial: 5 * time.Millisecond, Max: 100 * time.Millisecond})
	for {
		if out, ok := c.knownOutcome(h); ok {
			return out, nil
		}
		_, _, named := c.view.current()
		out, err := c.submitOnce(ctx, tx, h, hops)
		if err == nil || !retryable(err) || hops > 0 {
			return out, err
		}
		if !c.waitRetry(ctx, bo, named) {
			if ctx.Err() == nil {
				return nil, ErrClosed
			}
			return nil, fmt.Errorf("submit tx %s: %w (last error: %v)", h, ctx.Err(), err)
		}
	}
}

// waitRetry waits bo's next delay before a submission is tried again, or
// only until the chain names another leader (named is closed): a
// failover's new leader leads right after its claim, and a tx waiting out
// the rest of a long delay would reach it late. It reports false when ctx
// or the channel ends first.
func (c *Channel) waitRetry(ctx context.Context, bo *backoff.Backoff, named <-chan struct{}) bool {
	t := time.NewTimer(bo.Next())
	defer t.Stop()
	select {
	case <-t.C:
	case <-named:
		bo.Reset()
	case <-ctx.Done():
		return false
	case <-c.ctx.Done():
		return false
	}
	return true
}

// retryable errors are those of a leader change (ErrNotLeader,
// ErrNoLeader, ErrLeadershipLost, here or on the node the tx was
// forwarded to, or a leader that cannot be reached): the tx may be
// submitted again (to the next leader) safely.
func retryable(err error) bool {
	return protocol.CodeOf(err) == protocol.CodeUnavailable
}

func (c *Channel) submitOnce(ctx context.Context, tx *protocol.SignedTx, h protocol.Hash, hops uint32) (*protocol.Outcome, error) {
	if c.ctx.Err() != nil {
		return nil, ErrClosed
	}
	if run := c.leader.Load(); run != nil {
		return c.submitLocal(ctx, run, tx, h)
	}
	if hops > 0 && (hops > 1 || !c.relaysFor()) {
		// A candidate passes its delegators' txs on to the leader; no
		// one else forwards a forwarded tx.
		return nil, ErrNotLeader
	}
	addr, id := c.raft.LeaderWithID()
	if src := c.relaySource(); addr == "" && hops == 0 && src != "" {
		// A delegator sends its txs through the candidate it is
		// relayed from.
		addr, id = raft.ServerAddress(src), ""
	}
	if addr == "" || string(id) == c.cfg.Key.Address().String() {
		// No Raft leader, or it is us and leader work has not started
		// (barrier, chain claim): wait.
		return nil, ErrNoLeader
	}
	led, err := c.fwd.forward(ctx, string(addr), tx, hops+1)
	if err != nil || led == nil {
		return led, err
	}
	return c.ownOutcome(ctx, h, led)
}

// ownOutcome answers a tx this follower forwarded with its own outcome of
// it, once it has applied it, not with the leader's: a leader's answer is
// only its word. A leader that lied at an earlier height has its later
// batches held here (punish.go) and never applied, so the caller waits
// until its deadline and tries again elsewhere, and the tx is ordered again
// once the chain has judged. A member whose history differs from the
// leader's answer at that height says so with ErrNotReady: the client
// tries the next node.
func (c *Channel) ownOutcome(ctx context.Context, h protocol.Hash, led *protocol.Outcome) (*protocol.Outcome, error) {
	for {
		c.subs.Lock()
		if c.applied == nil {
			c.applied = make(chan struct{})
		}
		next := c.applied
		c.subs.Unlock()
		if out, ok := c.knownOutcome(h); ok {
			return out, nil
		}
		var height uint64
		c.fsm.machine(func(m *fsm.Machine) {
			if m != nil {
				height = m.Height()
			}
		})
		if height >= led.Height {
			// Applied past it, its outcome no longer cached: the digest
			// there says whether this member's history is the leader's.
			if d, ok := c.Digest(led.Height); ok && d == led.Digest {
				return led, nil
			}
			return nil, fmt.Errorf("%w: the leader answered height %d with digest %s, which this member's history does not have",
				ErrNotReady, led.Height, led.Digest)
		}
		select {
		case <-next:
		case <-ctx.Done():
			return nil, fmt.Errorf("%w: the leader ordered the tx at height %d; this member has applied up to %d: %v",
				ErrNotReady, led.Height, height, ctx.Err())
		case <-c.ctx.Done():
			return nil, ErrClosed
		}
	}
}

// submitLocal queues a tx with the running leader, or joins the wait of
// the same tx submitted before.
func (c *Channel) submitLocal(ctx context.Context, run *leaderRun, tx *protocol.SignedTx, h protocol.Hash) (*protocol.Outcome, error) {
	c.inflight.Lock()
	s, ok := c.inflight.m[h]
	c.inflight.Unlock()
	if ok {
		return c.wait(ctx, s)
	}
	if err := c.admit(tx); err != nil {
		if out, ok := c.knownOutcome(h); ok {
			return out, nil // applied since the caller looked
		}
		return nil, err
	}
	if c.censored(tx) {
		<-ctx.Done() // a test's censoring leader: never ordered, never answered
		return nil, ctx.Err()
	}
	if run.suffixFull.Load() {
		// Settlements are failing: order nothing new (settle.go).
		c.metrics.busy.Inc()
		return nil, ErrBusy
	}
	c.inflight.Lock()
	if s, ok = c.inflight.m[h]; !ok {
		s = newSubmission(protocol.Entry{Kind: protocol.EntryCall, Call: tx})
		s.hash, s.shared = h, true
		if !run.enqueue(s) {
			c.inflight.Unlock()
			c.metrics.busy.Inc()
			return nil, ErrBusy
		}
		c.inflight.m[h] = s
	}
	c.inflight.Unlock()
	return c.wait(ctx, s)
}

// submitSystem orders a system entry (join, leave) as the leader and waits
// for its outcome.
func (c *Channel) submitSystem(ctx context.Context, en protocol.Entry) (*protocol.Outcome, error) {
	run := c.leader.Load()
	if run == nil {
		return nil, ErrNotLeader
	}
	s := newSubmission(en)
	if !run.enqueue(s) {
		return nil, ErrBusy
	}
	return c.wait(ctx, s)
}

func (c *Channel) wait(ctx context.Context, s *submission) (*protocol.Outcome, error) {
	select {
	case <-s.done:
		return s.out, s.err
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-c.ctx.Done():
		return nil, ErrClosed
	}
}

// answer completes a submission and forgets it in the inflight map.
func (c *Channel) answer(s *submission, out *protocol.Outcome, err error) {
	if s.shared {
		c.inflight.Lock()
		if c.inflight.m[s.hash] == s {
			delete(c.inflight.m, s.hash)
		}
		c.inflight.Unlock()
	}
	if err == nil {
		c.metrics.commitLatency.Observe(time.Since(s.start).Seconds())
	}
	s.finish(out, err)
}

// failInflight answers every waiting tx with err.
func (c *Channel) failInflight(err error) {
	c.inflight.Lock()
	m := c.inflight.m
	c.inflight.m = make(map[protocol.Hash]*submission)
	c.inflight.Unlock()
	for _, s := range m {
		s.finish(nil, err)
	}
}

// admit is the leader's cheap check of a tx before it is queued: the
// sender must be a member and the nonce unused (counting the batches in
// flight), so that junk takes no height. The signature is verified by the
// batcher, for all txs of a batch at once, before the batch is proposed
// (leaderRun.verify).
func (c *Channel) admit(tx *protocol.SignedTx) error {
	var err error
	c.fsm.machine(func(m *fsm.Machine) {
		switch {
		case m == nil:
			err = ErrNoLeader
		case !isMember(m, tx.Tx.Sender):
			err = fmt.Errorf("%w: %s", ErrNotMember, tx.Tx.Sender)
		case m.Closing() != 0:
			err = fmt.Errorf("%w: closing since height %d", ErrChannelClosed, m.Closing())
		case tx.Tx.Nonce <= m.PendingNonce(tx.Tx.Sender):
			err = fmt.Errorf("%w: nonce %d (last %d)", ErrStaleNonce, tx.Tx.Nonce, m.PendingNonce(tx.Tx.Sender))
		}
	})
	return err
}

func isMember(m *fsm.Machine, a protocol.Address) bool {
	_, ok := m.Member(a)
	return ok
}
