package cluster

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

// TestProposeReadsChainOutsideTheLock: the leader's chain read for a join
// entry of its own runs without the machine lock. While that read hangs on
// a chain that does not answer, the leader's client reads answer at once
// and a tx a follower forwards is admitted (the admission check runs under
// the lock); once the chain answers, the join and the tx are applied on
// every member.
func TestProposeReadsChainOutsideTheLock(t *testing.T) {
	outage := newChainOutage()
	tc := newTestCluster(t, 2, func(c *Config) {
		c.Chain = outage.wrap(c.Chain)
		// The batcher's read lasts as long as the outage, not PeerTimeout.
		c.PeerTimeout = time.Minute
	})
	t.Cleanup(outage.end) // before the cluster closes
	leader := tc.waitLeader(10 * time.Second)
	lc := tc.channel(leader)
	follower := tc.others(leader)[0]
	fc := tc.channel(follower)
	user := tc.users[0]
	warm := tc.submitVia(follower, 1, "warm")
	tc.checkConverged([]*protocol.Outcome{warm}, 10*time.Second)

	// A member that joined on chain after the channel was loaded.
	newcomer, _ := protocol.GenerateKey(nil)
	seq, err := tc.chain.client(newcomer).Join(context.Background(), tc.id, false)
	if err != nil {
		t.Fatal(err)
	}

	outage.start()
	type answer struct {
		out *protocol.Outcome
		err error
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	joined := make(chan answer, 1)
	go func() {
		out, err := lc.submitSystem(ctx, protocol.Entry{Kind: protocol.EntryJoin, Join: &protocol.MemberJoin{
			Member: newcomer.Address(), PublicKey: newcomer.Public(), JoinSeq: seq,
		}})
		joined <- answer{out, err}
	}()
	reading := func() error {
		if run := lc.leader.Load(); run == nil || run.chainReads.Load() == 0 {
			return errors.New("the batcher is not reading the chain")
		}
		return nil
	}
	testutil.WaitFor(t, 10*time.Second, reading)

	const prompt = 2 * time.Second
	within(t, prompt, "the leader's reads", func() error {
		if n := lc.NextNonce(user.Address()); n < 2 {
			return fmt.Errorf("next nonce %d", n)
		}
		if !lc.IsMember(user.Address()) || lc.IsMember(newcomer.Address()) {
			return errors.New("membership")
		}
		if st := lc.Status(); st.Height < warm.Height {
			return fmt.Errorf("status at height %d", st.Height)
		}
		return nil
	})
	tx := tc.tx(user, "meanwhile;")
	submitted := make(chan answer, 1)
	go func() {
		out, err := fc.Submit(ctx, tx)
		submitted <- answer{out, err}
	}()
	testutil.WaitFor(t, 10*time.Second, func() error {
		lc.inflight.Lock()
		_, ok := lc.inflight.m[tx.Hash()]
		lc.inflight.Unlock()
		if !ok {
			return errors.New("the forwarded tx is not admitted yet")
		}
		return nil
	})
	if err := reading(); err != nil {
		t.Fatalf("the read ended while the chain did not answer: %v", err)
	}

	outage.end()
	var acked []*protocol.Outcome
	for what, ch := range map[string]chan answer{"join": joined, "forwarded tx": submitted} {
		var a answer
		select {
		case a = <-ch:
		case <-ctx.Done():
			t.Fatalf("%s: no answer once the chain answered", what)
		}
		if a.err != nil {
			t.Fatalf("%s: %v", what, a.err)
		}
		if a.out.Result.Status != protocol.StatusOK {
			t.Fatalf("%s: status %s (%s)", what, a.out.Result.Status, a.out.Message)
		}
		acked = append(acked, a.out)
	}
	tc.checkConverged(acked, 10*time.Second)
	for i, nd := range tc.nodes {
		if !tc.channel(nd).IsMember(newcomer.Address()) {
			t.Fatalf("node %d does not know the newcomer", i)
		}
	}
}

// TestAwaitSlotGathers: while every batch slot is taken, the submissions
// that arrive join the batch waiting for a slot, up to BatchMaxTxs; a call
// among them with a forged signature is answered ErrBadSignature and left
// out (the leader never signs it), and a leadership that ends meanwhile
// answers the whole batch.
func TestAwaitSlotGathers(t *testing.T) {
	key, err := protocol.KeyFromSeed(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	call := func(nonce uint64) *submission {
		tx := protocol.SignTx(key, protocol.Tx{Channel: protocol.ChannelID{1}, Sender: key.Address(), Nonce: nonce, Function: "chat::send"})
		return newSubmission(protocol.Entry{Kind: protocol.EntryCall, Call: tx})
	}
	newRun := func(maxTxs int) *leaderRun {
		cfg := &Config{BatchMaxTxs: maxTxs}
		run := &leaderRun{
			c:     &Channel{cfg: cfg},
			queue: make(chan *submission, 16),
			stop:  make(chan struct{}),
			slots: make(chan struct{}, 1),
		}
		run.slots <- struct{}{} // every slot taken
		return run
	}
	type result struct {
		batch []*submission
		ok    bool
	}
	await := func(run *leaderRun, batch []*submission) chan result {
		done := make(chan result, 1)
		go func() {
			b, ok := run.awaitSlot(batch)
			done <- result{b, ok}
		}()
		return done
	}

	t.Run("gathers and verifies", func(t *testing.T) {
		run := newRun(8)
		first, good, forged, last := call(1), call(2), call(3), call(4)
		forged.entry.Call.Signature = append([]byte(nil), forged.entry.Call.Signature...)
		forged.entry.Call.Signature[0] ^= 1
		done := await(run, []*submission{first})
		for _, s := range []*submission{good, forged, last} {
			run.queue <- s
		}
		testutil.Eventually(t, 10*time.Second, "queue taken", func() bool { return len(run.queue) == 0 })
		<-run.slots // a batch committed
		r := <-done
		if !r.ok {
			t.Fatal("awaitSlot reported the leadership lost")
		}
		if len(r.batch) != 3 || r.batch[0] != first || r.batch[1] != good || r.batch[2] != last {
			t.Fatalf("batch of %d, want first, good, last", len(r.batch))
		}
		<-forged.done
		if !errors.Is(forged.err, ErrBadSignature) {
			t.Fatalf("forged call answered %v, want ErrBadSignature", forged.err)
		}
	})

	t.Run("bounded by BatchMaxTxs", func(t *testing.T) {
		run := newRun(2)
		done := await(run, []*submission{call(1)})
		run.queue <- call(2)
		run.queue <- call(3)
		testutil.Eventually(t, 10*time.Second, "one taken", func() bool { return len(run.queue) == 1 })
		<-run.slots
		if r := <-done; !r.ok || len(r.batch) != 2 {
			t.Fatalf("ok %v, batch of %d, want 2", r.ok, len(r.batch))
		}
		if len(run.queue) != 1 {
			t.Fatalf("%d left in the queue, want 1", len(run.queue))
		}
	})

	t.Run("leadership lost", func(t *testing.T) {
		run := newRun(8)
		first := call(1)
		done := await(run, []*submission{first})
		second := call(2)
		run.queue <- second
		testutil.Eventually(t, 10*time.Second, "queue taken", func() bool { return len(run.queue) == 0 })
		close(run.stop)
		if r := <-done; r.ok {
			t.Fatal("awaitSlot went on after the leadership ended")
		}
		for _, s := range []*submission{first, second} {
			<-s.done
			if !errors.Is(s.err, ErrLeadershipLost) {
				t.Fatalf("answered %v, want ErrLeadershipLost", s.err)
			}
		}
	})
}
