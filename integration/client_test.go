package integration

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/transport"
)

// TestClientAPI drives a real 3-node cluster (node processes, chain
// process) through the client SDK: calls through a follower, a subscriber
// on the leader, the error codes, idempotent resubmission, then SIGKILL of
// the leader: calls go on (the same signed tx is retried), the subscriber
// resumes on another node, and it sees every height once, in order, with
// results equal to what the caller got.
func TestClientAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a chain and three node processes")
	}
	pc := newProcCluster(t, 3, 2)
	alice, bob := pc.users[0], pc.users[1]
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()

	leader := pc.waitLeader(10 * time.Second)
	var addrs []string
	for _, nd := range pc.others(leader) {
		addrs = append(addrs, nd.addr)
	}
	addrs = append(addrs, leader.addr) // calls start on a follower

	ca, err := client.Dial(ctx, alice, addrs...)
	if err != nil {
		t.Fatal(err)
	}
	defer ca.Close()
	cb, err := client.Dial(ctx, bob, rotate(addrs, len(addrs)-1)...) // the leader first
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	subNode := cb.Node()

	sub, err := cb.Subscribe(ctx, pc.id, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()

	// The subscriber records every outcome it sees, in order.
	var mu sync.Mutex
	seen := map[uint64]*transport.Outcome{}
	var last uint64
	subDone := make(chan error, 1)
	go func() {
		for {
			u, err := sub.Next(ctx)
			if err != nil {
				subDone <- err
				return
			}
			mu.Lock()
			switch {
			case u.Snapshot != nil:
				last = u.Snapshot.Height
			case u.Outcome.Height != last+1:
				mu.Unlock()
				subDone <- fmt.Errorf("outcome at %d after %d", u.Outcome.Height, last)
				return
			default:
				last = u.Outcome.Height
				seen[last] = u.Outcome
			}
			mu.Unlock()
		}
	}()

	call := func(fn, args string) *client.Result {
		t.Helper()
		b, err := pc.abi.EncodeArgs(fn, []byte(args))
		if err != nil {
			t.Fatal(err)
		}
		res, err := ca.Call(ctx, pc.id, "chat::"+fn, b)
		if err != nil {
			t.Fatalf("%s %s: %v", fn, args, err)
		}
		return res
	}
	var results []*client.Result
	results = append(results, call("join", `{"nick":"alice"}`))
	for i := 0; i < 10; i++ {
		results = append(results, call("send", fmt.Sprintf(`{"text":"before %d"}`, i)))
	}

	// Codes through the real node.
	empty, _ := pc.abi.EncodeArgs("send", []byte(`{"text":""}`))
	if r, err := ca.Call(ctx, pc.id, "chat::send", empty); !errors.Is(err, transport.ErrAbort) || r == nil || r.Status != protocol.StatusAbort {
		t.Fatalf("empty message: %v", err)
	} else {
		results = append(results, r)
	}
	if _, err := ca.Call(ctx, protocol.ChannelID{9}, "chat::send", empty); transport.CodeOf(err) != transport.CodeNoChannel {
		t.Fatalf("unknown channel: %v", err)
	}
	outsider, _ := protocol.GenerateKey(nil)
	co, err := client.Dial(ctx, outsider, addrs...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := co.Status(ctx, pc.id); transport.CodeOf(err) != transport.CodeNotMember {
		t.Fatalf("outsider status: %v", err)
	}
	co.Close()

	// Idempotent: a signed tx submitted twice has one outcome.
	hello, _ := pc.abi.EncodeArgs("send", []byte(`{"text":"once"}`))
	tx := protocol.SignTx(alice, protocol.Tx{Channel: pc.id, Nonce: uint64(len(results) + 1), Function: "chat::send", Args: hello})
	r1, err := ca.CallTx(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := ca.CallTx(ctx, tx)
	if err != nil || r2.Height != r1.Height || r2.Digest != r1.Digest {
		t.Fatalf("resubmitted tx: %+v, %v; first at %d", r2, err, r1.Height)
	}
	results = append(results, r1)

	// Kill the leader, which is also the subscriber's node, while alice
	// calls through a follower: her calls go on after the failover (the
	// same signed tx is retried) and bob resumes on another node.
	var killed sync.WaitGroup
	killed.Add(1)
	go func() {
		defer killed.Done()
		leader.p.kill()
	}()
	for i := 0; i < 10; i++ {
		results = append(results, call("send", fmt.Sprintf(`{"text":"after %d"}`, i)))
	}
	killed.Wait()

	// Every call has its own height, the nonces were used in order, and the
	// subscriber saw each result as the caller got it.
	heights := map[uint64]bool{}
	for _, r := range results {
		if heights[r.Height] {
			t.Fatalf("two calls at height %d", r.Height)
		}
		heights[r.Height] = true
	}
	want := uint64(len(results) + 1)
	testutil.WaitFor(t, 30*time.Second, func() error { // the node may apply a moment after the commit
		info, err := ca.Join(ctx, pc.id)
		if err != nil {
			return err
		}
		if info.NextNonce != want {
			return fmt.Errorf("next nonce %d, want %d", info.NextNonce, want)
		}
		return nil
	})
	top := results[len(results)-1].Height
	deadline := time.Now().Add(60 * time.Second)
	for {
		mu.Lock()
		l := last
		mu.Unlock()
		if l >= top {
			break
		}
		select {
		case err := <-subDone:
			t.Fatalf("subscription ended at %d: %v", l, err)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("subscriber at height %d, calls reached %d", l, top)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	for _, r := range results {
		o := seen[r.Height]
		if o == nil || o.Hash != r.TxHash || o.Digest != r.Digest || o.Result.Status != r.Status {
			t.Fatalf("height %d: subscriber saw %+v, caller got %+v", r.Height, o, r)
		}
	}
	t.Logf("%d calls, subscriber on %s then %s, heights up to %d", len(results), subNode, cb.Node(), top)
}
