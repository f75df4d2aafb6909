package client_test

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/protocol"
)

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestCallAndSubscribe runs chat calls through the stream and checks that a
// subscriber sees a snapshot and then every outcome, in order, with the
// same results the callers got.
func TestCallAndSubscribe(t *testing.T) {
	alice, bob := testKey(t, 1), testKey(t, 2)
	node := newMemNode()
	ch := testChannel(1)
	node.addChannel(t, ch, alice, bob)
	tn := startNode(t, node, nil)
	ctx := ctxT(t)

	ca, cb := dial(t, alice, tn.addr), dial(t, bob, tn.addr)
	info, err := ca.Join(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	if info.NextNonce != 1 || info.Status.Height != 0 || info.Status.Channel != ch {
		t.Fatalf("join: %+v", info)
	}
	st, err := ca.Status(ctx, ch)
	if err != nil || len(st.Members) != 2 {
		t.Fatalf("status: %+v, %v", st, err)
	}
	for _, m := range st.Members {
		if m.Lag != -1 || m.HeartbeatAge != -1 {
			t.Fatalf("member %s: lag %d, heartbeat age %s; this node knows neither", m.Address, m.Lag, m.HeartbeatAge)
		}
	}
	sub, err := cb.Subscribe(ctx, ch, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	u, err := sub.Next(ctx)
	if err != nil || u.Snapshot == nil || u.Snapshot.Height != 0 || len(u.Snapshot.State) == 0 {
		t.Fatalf("first update: %+v, %v", u, err)
	}

	var results []*client.Result
	for _, step := range []struct {
		c      *client.Client
		fn, js string
	}{
		{ca, "join", `{"nick":"alice"}`},
		{cb, "join", `{"nick":"bob"}`},
		{ca, "send", `{"text":"hello"}`},
		{cb, "send", `{"text":"hi alice"}`},
	} {
		r, err := step.c.Call(ctx, ch, "chat::"+step.fn, chatArgs(t, step.fn, step.js))
		if err != nil {
			t.Fatalf("%s: %v", step.fn, err)
		}
		results = append(results, r)
	}
	chat, _ := contracts.Get("chat")
	if id, err := chat.DecodeOutput("send", results[3].Output); err != nil || string(id) != "1" {
		t.Fatalf("second message id %s, %v", id, err)
	}
	for i, r := range results {
		u, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		o := u.Outcome
		if o == nil || o.Height != r.Height || o.Hash != r.TxHash || o.Digest != r.Digest || !o.ChangeSet.Equal(r.ChangeSet) {
			t.Fatalf("update %d: %+v, call result %+v", i, u, r)
		}
	}
	if sub.Height() != 4 {
		t.Fatalf("subscription height %d", sub.Height())
	}

	st, err = ca.Status(ctx, ch)
	if err != nil || st.Height != 4 || st.Leader != alice.Address() || st.Digest != results[3].Digest {
		t.Fatalf("status %+v, %v", st, err)
	}

	// A subscriber resuming from height 2 gets heights 3 and 4, no snapshot.
	sub2, err := cb.Subscribe(ctx, ch, 2)
	if err != nil {
		t.Fatal(err)
	}
	defer sub2.Close()
	for h := uint64(3); h <= 4; h++ {
		u, err := sub2.Next(ctx)
		if err != nil || u.Outcome == nil || u.Outcome.Height != h {
			t.Fatalf("resumed update: %+v, %v", u, err)
		}
	}
}

// TestCallErrors checks that each refusal comes back with its code.
func TestCallErrors(t *testing.T) {
	alice, bob, carol := testKey(t, 1), testKey(t, 2), testKey(t, 3)
	node := newMemNode()
	ch := testChannel(1)
	node.addChannel(t, ch, alice, bob)
	tn := startNode(t, node, nil)
	ctx := ctxT(t)
	ca, cc := dial(t, alice, tn.addr), dial(t, carol, tn.addr)

	if _, err := ca.Call(ctx, ch, "chat::join", chatArgs(t, "join", `{"nick":"alice"}`)); err != nil {
		t.Fatal(err)
	}
	big := protocol.SignTx(alice, protocol.Tx{Channel: ch, Nonce: 2, Function: "chat::send", Args: make([]byte, protocol.MaxArgsLen+1)})
	forged := protocol.SignTx(alice, protocol.Tx{Channel: ch, Nonce: 2, Function: "chat::send", Args: chatArgs(t, "send", `{"text":"x"}`)})
	forged.Signature[0] ^= 1
	otherSender := protocol.SignTx(bob, protocol.Tx{Channel: ch, Nonce: 1, Function: "chat::send", Args: chatArgs(t, "send", `{"text":"x"}`)})

	tests := []struct {
		name  string
		call  func() (*client.Result, error)
		code  protocol.Code
		err   error
		abort uint32
	}{
		{"unknown channel", func() (*client.Result, error) {
			return ca.Call(ctx, testChannel(9), "chat::send", chatArgs(t, "send", `{"text":"x"}`))
		}, protocol.CodeNoChannel, protocol.ErrNoChannel, 0},
		{"not a member", func() (*client.Result, error) {
			return cc.Call(ctx, ch, "chat::send", chatArgs(t, "send", `{"text":"x"}`))
		}, protocol.CodeNotMember, protocol.ErrNotMember, 0},
		{"contract abort", func() (*client.Result, error) {
			return ca.Call(ctx, ch, "chat::send", chatArgs(t, "send", `{"text":""}`))
		}, protocol.CodeAbort, protocol.ErrAbort, 0},
		{"oversized args", func() (*client.Result, error) { return ca.CallTx(ctx, big) }, protocol.CodeTooLarge, protocol.ErrTooLarge, 0},
		{"forged signature", func() (*client.Result, error) { return ca.CallTx(ctx, forged) }, protocol.CodeBadSignature, protocol.ErrBadSignature, 0},
		{"other sender", func() (*client.Result, error) { return ca.CallTx(ctx, otherSender) }, protocol.CodeWrongSender, protocol.ErrWrongSender, 0},
		{"unknown function", func() (*client.Result, error) { return ca.Call(ctx, ch, "chat::nope", nil) }, protocol.CodeExecution, protocol.ErrExecution, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.call()
			var e *protocol.Error
			if !errors.As(err, &e) || e.Code != tc.code || !errors.Is(err, tc.err) {
				t.Fatalf("error %v, want code %d", err, tc.code)
			}
		})
	}
	// The abort carried the contract's code and consumed the nonce; the
	// next call still works.
	r, err := ca.Call(ctx, ch, "chat::send", chatArgs(t, "send", `{"text":""}`))
	var e *protocol.Error
	if !errors.As(err, &e) || e.Code != protocol.CodeAbort || e.AbortCode == 0 || r == nil || r.Status != protocol.StatusAbort {
		t.Fatalf("abort: %v, %+v", err, r)
	}
	if _, err := ca.Call(ctx, ch, "chat::send", chatArgs(t, "send", `{"text":"still fine"}`)); err != nil {
		t.Fatal(err)
	}
}

// TestCallIdempotent submits one signed tx twice: the second answer is the
// first outcome, and the tx ran once.
func TestCallIdempotent(t *testing.T) {
	alice := testKey(t, 1)
	node := newMemNode()
	ch := testChannel(1)
	node.addChannel(t, ch, alice)
	tn := startNode(t, node, nil)
	ctx := ctxT(t)
	ca := dial(t, alice, tn.addr)

	tx := protocol.SignTx(alice, protocol.Tx{Channel: ch, Nonce: 1, Function: "chat::join", Args: chatArgs(t, "join", `{"nick":"a"}`)})
	r1, err := ca.CallTx(ctx, tx)
	if err != nil {
		t.Fatal(err)
	}
	r2, err := ca.CallTx(ctx, tx)
	if err != nil || r2.Height != r1.Height || r2.Digest != r1.Digest {
		t.Fatalf("second submission: %+v, %v; first %+v", r2, err, r1)
	}
	st, err := ca.Status(ctx, ch)
	if err != nil || st.Height != 1 {
		t.Fatalf("status %+v, %v", st, err)
	}
}

// catchingUp is a node that has not caught up with the channel: it knows
// no member yet, and says so with the retryable NotReady.
type catchingUp struct {
	*memNode
	asked atomic.Int64
}

func (n *catchingUp) CheckMember(protocol.ChannelID, protocol.Address) error {
	n.asked.Add(1)
	return fmt.Errorf("%w: catching up", protocol.ErrNotReady)
}

// TestNotReadyTriesNextNode: the first node answers NotReady (a node
// restarted and still catching up); the call goes through the second, as
// `scraft call --node A,B` does, instead of giving up.
func TestNotReadyTriesNextNode(t *testing.T) {
	alice := testKey(t, 1)
	node := newMemNode()
	ch := testChannel(1)
	node.addChannel(t, ch, alice)
	behind := &catchingUp{memNode: node}
	n1 := startNode(t, behind, nil)
	n2 := startNode(t, node, nil)
	ca := dial(t, alice, n1.addr, n2.addr)
	if ca.Node() != n1.addr {
		t.Fatalf("bound to %s, want %s", ca.Node(), n1.addr)
	}
	r, err := ca.Call(ctxT(t), ch, "chat::send", chatArgs(t, "send", `{"text":"hi"}`))
	if err != nil && !errors.Is(err, protocol.ErrAbort) {
		t.Fatal(err)
	}
	if ca.Node() != n2.addr || r.Height != 1 || behind.asked.Load() == 0 {
		t.Fatalf("node %s, height %d, first node asked %d times", ca.Node(), r.Height, behind.asked.Load())
	}
}

// TestFailover runs two nodes over one channel: when the client's node
// stops, calls and the subscription go on through the other, with no gap
// and no duplicate.
func TestFailover(t *testing.T) {
	alice, bob := testKey(t, 1), testKey(t, 2)
	node := newMemNode()
	ch := testChannel(1)
	node.addChannel(t, ch, alice, bob)
	n1 := startNode(t, node, nil)
	n2 := startNode(t, node, nil)
	ctx := ctxT(t)
	ca := dial(t, alice, n1.addr, n2.addr)
	cb := dial(t, bob, n1.addr, n2.addr)
	if ca.Node() != n1.addr {
		t.Fatalf("bound to %s, want %s", ca.Node(), n1.addr)
	}
	sub, err := cb.Subscribe(ctx, ch, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	send := func(text string) *client.Result {
		t.Helper()
		r, err := ca.Call(ctx, ch, "chat::send", chatArgs(t, "send", `{"text":"`+text+`"}`))
		if err != nil && !errors.Is(err, protocol.ErrAbort) {
			t.Fatal(err)
		}
		return r
	}
	send("one")
	n1.stop()
	r := send("two")
	if ca.Node() != n2.addr || r.Height != 2 {
		t.Fatalf("after failover: node %s, height %d", ca.Node(), r.Height)
	}
	want := uint64(0)
	for want < 2 {
		u, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case u.Snapshot != nil:
			want = u.Snapshot.Height
		case u.Outcome.Height != want+1:
			t.Fatalf("outcome at %d after %d", u.Outcome.Height, want)
		default:
			want++
		}
	}
}
