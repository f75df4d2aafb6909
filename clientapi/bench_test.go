package clientapi

import (
	"context"
	"testing"

	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/protocol"
)

// BenchmarkSessionCall measures what the stream adds to each call: the
// dispatch, the request's slot, context and goroutine, and the answer's
// queueing, over the stub channel (whose Submit answers at once), one call
// in flight at a time as a waiting client makes them. gRPC is left out.
func BenchmarkSessionCall(b *testing.B) {
	k := fuzzKey(b)
	ch := protocol.ChannelID{1}
	cfg := DefaultConfig()
	cfg.Addresses = []string{"n"}
	svc, err := NewService(newStubAPI(ch, k.Address()), cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { svc.Close() })
	ss, err := svc.newSession(context.Background())
	if err != nil {
		b.Fatal(err)
	}
	defer ss.cancel()
	ss.addr = k.Address()
	ss.bound.Store(true)
	raw := protocol.SignTx(k, protocol.Tx{Channel: ch, Nonce: 1, Function: "chat::send", Args: []byte("hi")}).Bytes()
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		ss.dispatch(&clientpb.ClientMessage{Id: uint64(i + 1), Body: &clientpb.ClientMessage_Call{Call: &clientpb.CallRequest{Tx: raw}}})
		if m := <-ss.out; m.GetCall() == nil {
			b.Fatalf("call answered %v", m)
		}
	}
}
