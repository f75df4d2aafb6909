package client_test

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/clientapi"
	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

// rawStream is a client stream driven by hand, to send what the SDK never
// would.
type rawStream struct {
	t      testing.TB
	st     clientpb.Client_StreamClient
	nonce  []byte
	cancel context.CancelFunc
}

func openRaw(t testing.TB, addr string, opts ...grpc.CallOption) *rawStream {
	t.Helper()
	// A fixed receive window (no BDP growth) makes a client that does not
	// read push back on the node soon.
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(nodeCreds(t)),
		grpc.WithInitialWindowSize(64<<10), grpc.WithInitialConnWindowSize(64<<10))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	ctx, cancel := context.WithCancel(ctxT(t))
	t.Cleanup(cancel)
	st, err := clientpb.NewClientClient(conn).Stream(ctx, opts...)
	if err != nil {
		t.Fatal(err)
	}
	r := &rawStream{t: t, st: st, cancel: cancel}
	m, err := st.Recv()
	if err != nil || m.GetChallenge() == nil {
		t.Fatalf("challenge: %v, %v", m, err)
	}
	r.nonce = m.GetChallenge().GetNonce()
	return r
}

func (r *rawStream) send(m *clientpb.ClientMessage) {
	r.t.Helper()
	if err := r.st.Send(m); err != nil {
		r.t.Fatal(err)
	}
}

func (r *rawStream) recv() *clientpb.ServerMessage {
	r.t.Helper()
	m, err := r.st.Recv()
	if err != nil {
		r.t.Fatal(err)
	}
	return m
}

func bindMsg(k *protocol.Key, nonce []byte, addr string) *clientpb.ClientMessage {
	return &clientpb.ClientMessage{Id: 1, Body: &clientpb.ClientMessage_Bind{Bind: &clientpb.Bind{
		PublicKey: k.Public(), Nonce: nonce, NodeAddress: addr,
		Signature: k.Sign(clientapi.DomainClientBind, clientapi.BindMessage(nonce, addr)),
	}}}
}

func (r *rawStream) bind(k *protocol.Key, addr string) {
	r.t.Helper()
	r.send(bindMsg(k, r.nonce, addr))
	if m := r.recv(); m.GetBound().GetAddress() != k.Address().String() {
		r.t.Fatalf("bind: %v", m)
	}
}

// endCode waits for the node to end the stream and returns the code in its
// trailer.
func (r *rawStream) endCode() protocol.Code {
	r.t.Helper()
	for {
		_, err := r.st.Recv()
		if err == nil {
			continue
		}
		if v := r.st.Trailer().Get(clientapi.TrailerCode); len(v) > 0 {
			c, _ := strconv.Atoi(v[len(v)-1])
			return protocol.Code(c)
		}
		r.t.Fatalf("stream ended without a code: %v", err)
	}
}

// rawCodec sends bytes as they are, to put malformed protobuf on the wire.
type rawCodec struct{}

func (rawCodec) Marshal(v any) ([]byte, error) {
	if b, ok := v.([]byte); ok {
		return b, nil
	}
	return proto.Marshal(v.(proto.Message))
}
func (rawCodec) Unmarshal(data []byte, v any) error { return proto.Unmarshal(data, v.(proto.Message)) }
func (rawCodec) Name() string                       { return "proto" }

// TestStreamBadInput checks that each kind of bad input gets its code, and
// that a client who behaves meanwhile is not affected.
func TestStreamBadInput(t *testing.T) {
	alice, bob := testKey(t, 1), testKey(t, 2)
	node := newMemNode()
	ch := testChannel(1)
	node.addChannel(t, ch, alice, bob)
	tn := startNode(t, node, nil)
	ctx := ctxT(t)
	good := dial(t, bob, tn.addr)
	goodCall := func() {
		t.Helper()
		if _, err := good.Call(ctx, ch, "chat::join", chatArgs(t, "join", `{"nick":"bob"}`)); err != nil && !errors.Is(err, protocol.ErrAbort) {
			t.Fatalf("well-behaved client: %v", err)
		}
	}

	t.Run("malformed protobuf", func(t *testing.T) {
		conn, err := grpc.NewClient(tn.addr, grpc.WithTransportCredentials(nodeCreds(t)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		desc := &grpc.StreamDesc{StreamName: "Stream", ServerStreams: true, ClientStreams: true}
		st, err := conn.NewStream(ctx, desc, clientpb.Client_Stream_FullMethodName, grpc.ForceCodec(rawCodec{}))
		if err != nil {
			t.Fatal(err)
		}
		var m clientpb.ServerMessage
		if err := st.RecvMsg(&m); err != nil || m.GetChallenge() == nil {
			t.Fatalf("challenge: %v", err)
		}
		if err := st.SendMsg([]byte{0x0a, 0xff, 0xff, 0xff}); err != nil {
			t.Fatal(err)
		}
		err = st.RecvMsg(&m)
		v := st.Trailer().Get(clientapi.TrailerCode)
		if status.Code(err) != codes.Internal || len(v) == 0 || v[len(v)-1] != fmt.Sprint(uint32(protocol.CodeBadRequest)) {
			t.Fatalf("malformed message: %v, trailer %v", err, v)
		}
	})
	t.Run("forged bind signature", func(t *testing.T) {
		r := openRaw(t, tn.addr)
		m := bindMsg(alice, r.nonce, tn.addr)
		m.GetBind().Signature[5] ^= 0x40
		r.send(m)
		if c := r.endCode(); c != protocol.CodeBadSignature {
			t.Fatalf("code %d", c)
		}
	})
	t.Run("replayed bind nonce", func(t *testing.T) {
		first := openRaw(t, tn.addr)
		r := openRaw(t, tn.addr)
		r.send(bindMsg(alice, first.nonce, tn.addr)) // a valid bind of another stream
		if c := r.endCode(); c != protocol.CodeStaleNonce {
			t.Fatalf("code %d", c)
		}
	})
	t.Run("bind for another node", func(t *testing.T) {
		r := openRaw(t, tn.addr)
		r.send(bindMsg(alice, r.nonce, "10.0.0.1:7000"))
		if c := r.endCode(); c != protocol.CodeBadRequest {
			t.Fatalf("code %d", c)
		}
	})
	t.Run("request before bind", func(t *testing.T) {
		r := openRaw(t, tn.addr)
		r.send(&clientpb.ClientMessage{Id: 7, Body: &clientpb.ClientMessage_Status{Status: &clientpb.StatusRequest{Channel: ch[:]}}})
		if m := r.recv(); m.GetId() != 7 || m.GetError().GetCode() != uint32(protocol.CodeNotBound) {
			t.Fatalf("answer %v", m)
		}
		r.bind(alice, tn.addr) // the stream is still usable
	})
	t.Run("malformed fields", func(t *testing.T) {
		r := openRaw(t, tn.addr)
		r.bind(alice, tn.addr)
		tx := protocol.SignTx(alice, protocol.Tx{Channel: ch, Nonce: 1, Function: "chat::send"}).Bytes()
		for i, m := range []*clientpb.ClientMessage{
			{Id: 10, Body: &clientpb.ClientMessage_Status{Status: &clientpb.StatusRequest{Channel: []byte{1, 2}}}},
			{Id: 11, Body: &clientpb.ClientMessage_Call{Call: &clientpb.CallRequest{Tx: tx[:len(tx)-1]}}},
			{Id: 12},
			{Id: 0, Body: &clientpb.ClientMessage_Join{Join: &clientpb.JoinRequest{Channel: ch[:]}}},
			{Id: 13, Body: &clientpb.ClientMessage_Unsubscribe{Unsubscribe: &clientpb.UnsubscribeRequest{SubscriptionId: 99}}},
		} {
			r.send(m)
			if a := r.recv(); a.GetId() != m.GetId() || a.GetError().GetCode() != uint32(protocol.CodeBadRequest) {
				t.Fatalf("request %d: answer %v", i, a)
			}
		}
		goodCall()
	})
}

// TestStreamFlood has one client send far more calls than it may have in
// flight, without reading: every request is answered exactly once (busy
// at once, or with its outcome), the node's counters stay within their
// bounds, and another client's calls go through.
func TestStreamFlood(t *testing.T) {
	alice, bob := testKey(t, 1), testKey(t, 2)
	node := newMemNode()
	ch := testChannel(1)
	node.addChannel(t, ch, alice, bob)
	const maxInFlight = 8
	tn := startNode(t, node, func(c *clientapi.Config) {
		c.MaxInFlight = maxInFlight
		c.SendQueue = 4
	})
	ctx := ctxT(t)

	r := openRaw(t, tn.addr)
	r.bind(alice, tn.addr)
	const n = 400
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 1; i <= n; i++ {
			tx := protocol.SignTx(alice, protocol.Tx{Channel: ch, Nonce: uint64(i), Function: "chat::join", Args: chatArgs(t, "join", `{"nick":"a"}`)})
			if err := r.st.Send(&clientpb.ClientMessage{Id: uint64(100 + i), Body: &clientpb.ClientMessage_Call{Call: &clientpb.CallRequest{Tx: tx.Bytes()}}}); err != nil {
				t.Error(err)
				return
			}
		}
	}()

	good := dial(t, bob, tn.addr)
	if _, err := good.Call(ctx, ch, "chat::join", chatArgs(t, "join", `{"nick":"bob"}`)); err != nil {
		t.Fatalf("other client during the flood: %v", err)
	}

	answered := map[uint64]bool{}
	counts := map[protocol.Code]int{}
	for len(answered) < n {
		m := r.recv()
		if answered[m.GetId()] {
			t.Fatalf("request %d answered twice", m.GetId())
		}
		answered[m.GetId()] = true
		counts[protocol.Code(m.GetError().GetCode())]++
		if st := tn.svc.Stats(); st.Calls > maxInFlight+1 {
			t.Fatalf("%d calls in flight, bound %d per stream", st.Calls, maxInFlight)
		}
	}
	wg.Wait()
	if counts[protocol.CodeBusy] == 0 || counts[protocol.CodeOK]+counts[protocol.CodeAbort] == 0 {
		t.Fatalf("answers by code: %v", counts)
	}
	t.Logf("answers by code: %v", counts)
	// Nothing lost: every committed call is in the channel, the node agrees.
	st, err := good.Status(ctx, ch)
	if err != nil {
		t.Fatal(err)
	}
	committed := uint64(n - counts[protocol.CodeBusy] + 1)
	if st.Height != committed {
		t.Fatalf("height %d, committed %d", st.Height, committed)
	}
}

// TestSlowSubscriber fills a subscriber that does not read: the node drops
// it with CodeSlowSubscriber and the height to resume from, the channel
// goes on, and resuming from that height gives every later outcome.
func TestSlowSubscriber(t *testing.T) {
	if testing.Short() {
		t.Skip("commits a thousand txs")
	}
	alice, bob := testKey(t, 1), testKey(t, 2)
	node := newMemNode()
	ch := testChannel(1)
	mc := node.addChannel(t, ch, alice, bob)
	mc.subBuffer = 2
	tn := startNode(t, node, func(c *clientapi.Config) { c.SendQueue = 1 })
	ctx := ctxT(t)

	slow := openRaw(t, tn.addr)
	slow.bind(bob, tn.addr)
	slow.send(&clientpb.ClientMessage{Id: 5, Body: &clientpb.ClientMessage_Subscribe{Subscribe: &clientpb.SubscribeRequest{Channel: ch[:]}}})

	ca := dial(t, alice, tn.addr)
	subscribed := func() int {
		mc.mu.Lock()
		defer mc.mu.Unlock()
		return len(mc.subs)
	}
	testutil.Eventually(t, 10*time.Second, "subscribed", func() bool { return subscribed() == 1 })
	// Commit until the channel's bounded buffer for the subscriber
	// overflows and it drops the subscriber.
	for i := 0; subscribed() == 1; i++ {
		if i > 20000 {
			t.Fatal("subscriber never dropped")
		}
		if _, err := ca.Call(ctx, ch, "chat::rename", chatArgs(t, "rename", fmt.Sprintf(`{"name":"g%d"}`, i))); err != nil && !errors.Is(err, protocol.ErrAbort) {
			t.Fatal(err)
		}
	}
	last, resume := uint64(0), uint64(0)
	for resume == 0 {
		m := slow.recv()
		switch {
		case m.GetSnapshot() != nil:
			last = m.GetSnapshot().GetHeight()
		case m.GetUpdates() != nil:
			for _, o := range m.GetUpdates().GetOutcomes() {
				if o.GetHeight() != last+1 {
					t.Fatalf("height %d after %d", o.GetHeight(), last)
				}
				last = o.GetHeight()
			}
		case m.GetError() != nil:
			if m.GetError().GetCode() != uint32(protocol.CodeSlowSubscriber) || m.GetError().GetResumeHeight() != last {
				t.Fatalf("end of subscription %v, last height %d", m.GetError(), last)
			}
			resume = last
		}
	}
	slow.send(&clientpb.ClientMessage{Id: 6, Body: &clientpb.ClientMessage_Subscribe{Subscribe: &clientpb.SubscribeRequest{Channel: ch[:], FromHeight: resume}}})
	if m := slow.recv(); !m.GetSnapshot().GetResumed() {
		t.Fatalf("resume answer %v", m)
	}
	st, _ := ca.Status(ctx, ch)
	for last < st.Height {
		m := slow.recv()
		for _, o := range m.GetUpdates().GetOutcomes() {
			if o.GetHeight() != last+1 {
				t.Fatalf("resumed: height %d after %d", o.GetHeight(), last)
			}
			last = o.GetHeight()
		}
	}
}

// TestSubscriptionSlowReader reads an SDK subscription slower than the
// channel moves with a tiny buffer: the SDK pauses and resumes on its own,
// and the reader sees every height once, in order.
func TestSubscriptionSlowReader(t *testing.T) {
	alice, bob := testKey(t, 1), testKey(t, 2)
	node := newMemNode()
	ch := testChannel(1)
	node.addChannel(t, ch, alice, bob)
	tn := startNode(t, node, nil)
	ctx := ctxT(t)
	cfg := client.DefaultConfig()
	cfg.NodeKeys = []protocol.Address{nodeAddr}
	cfg.SubscriptionBuffer = 3
	cb, err := cfg.Dial(ctx, bob, tn.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer cb.Close()
	sub, err := cb.Subscribe(ctx, ch, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer sub.Close()
	ca := dial(t, alice, tn.addr)
	const n = 40
	for i := 0; i < n; i++ {
		if _, err := ca.Call(ctx, ch, "chat::rename", chatArgs(t, "rename", fmt.Sprintf(`{"name":"g%d"}`, i))); err != nil && !errors.Is(err, protocol.ErrAbort) {
			t.Fatal(err)
		}
	}
	var h uint64
	for h < n {
		u, err := sub.Next(ctx)
		if err != nil {
			t.Fatal(err)
		}
		switch {
		case u.Snapshot != nil:
			if u.Snapshot.Height < h {
				t.Fatalf("snapshot at %d after %d", u.Snapshot.Height, h)
			}
			h = u.Snapshot.Height
		case u.Outcome.Height != h+1:
			t.Fatalf("height %d after %d", u.Outcome.Height, h)
		default:
			h++
		}
	}
}
