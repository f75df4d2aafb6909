package clientapi

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

// stuckAPI is the stub channel whose commits never come: Submit waits for
// its context.
type stuckAPI struct{ *stubAPI }

func (a stuckAPI) Submit(ctx context.Context, tx *protocol.SignedTx) (*protocol.Outcome, error) {
	<-ctx.Done()
	return nil, ctx.Err()
}

// TestCallContext holds a call's single context to what the stream
// promised with two: a call past CallTimeout is answered CodeTimeout, a call
// whose id is unsubscribed ends without an answer, and the stream's
// workers wait for requests up to maxIdleWorkers, all ending with it.
func TestCallContext(t *testing.T) {
	k := fuzzKey(t)
	ch := protocol.ChannelID{1}
	cfg := DefaultConfig()
	cfg.Addresses = []string{"n"}
	cfg.CallTimeout = 50 * time.Millisecond
	svc, err := NewService(stuckAPI{newStubAPI(ch, k.Address())}, cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { svc.Close() })
	ss, err := svc.newSession(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ss.addr = k.Address()
	ss.bound.Store(true)
	raw := protocol.SignTx(k, protocol.Tx{Channel: ch, Nonce: 1, Function: "chat::send", Args: []byte("hi")}).Bytes()
	callMsg := func(id uint64) *clientpb.ClientMessage {
		return &clientpb.ClientMessage{Id: id, Body: &clientpb.ClientMessage_Call{Call: &clientpb.CallRequest{Tx: raw}}}
	}

	// A burst of calls: each times out and is answered so.
	n := 2*maxIdleWorkers + 3
	for i := range n {
		ss.dispatch(callMsg(uint64(i + 1)))
	}
	for range n {
		m := <-ss.out
		if protocol.Code(m.GetError().GetCode()) != protocol.CodeTimeout {
			t.Fatalf("call %d answered %v, want a timeout", m.GetId(), m)
		}
	}
	testutil.WaitFor(t, 5*time.Second, func() error {
		if live, idle := ss.liveCount(), ss.idle.Load(); live != 0 || idle != maxIdleWorkers {
			return fmt.Errorf("%d ids live, %d workers wait (want 0, %d)", live, idle, maxIdleWorkers)
		}
		return nil
	})

	// An unsubscribed call ends unanswered; the unsubscribe is answered.
	ss.svc.cfg.CallTimeout = time.Hour
	ss.dispatch(callMsg(100))
	waitLive(t, ss, 1)
	ss.dispatch(&clientpb.ClientMessage{Id: 101, Body: &clientpb.ClientMessage_Unsubscribe{Unsubscribe: &clientpb.UnsubscribeRequest{SubscriptionId: 100}}})
	if m := <-ss.out; m.GetId() != 101 || m.GetDone() == nil {
		t.Fatalf("unsubscribe answered %v", m)
	}
	waitLive(t, ss, 0)
	ss.dispatch(&clientpb.ClientMessage{Id: 102, Body: &clientpb.ClientMessage_Status{Status: &clientpb.StatusRequest{Channel: ch[:]}}})
	if m := <-ss.out; m.GetId() != 102 {
		t.Fatalf("after the cancelled call, the stream answered %v, want the status", m)
	}

	// The stream's end ends its waiting workers.
	ss.cancel()
	testutil.WaitFor(t, 5*time.Second, func() error {
		if n := ss.idle.Load(); n != 0 {
			return fmt.Errorf("%d workers still wait", n)
		}
		return nil
	})
}

func waitLive(t *testing.T, ss *session, want int) {
	t.Helper()
	testutil.WaitFor(t, 5*time.Second, func() error {
		if n := ss.liveCount(); n != want {
			return fmt.Errorf("%d requests live, want %d", n, want)
		}
		return nil
	})
}
