package clientapi

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
)

// stubAPI is a tiny deterministic ChannelAPI for request handling tests:
// one channel whose members' calls each take the next height, with their
// nonces checked. It exercises the stream, not a contract.
type stubAPI struct {
	ch      protocol.ChannelID
	members map[protocol.Address]bool

	mu     sync.Mutex
	height uint64
	nonces map[protocol.Address]uint64
}

func newStubAPI(ch protocol.ChannelID, members ...protocol.Address) *stubAPI {
	a := &stubAPI{ch: ch, members: map[protocol.Address]bool{}, nonces: map[protocol.Address]uint64{}}
	for _, m := range members {
		a.members[m] = true
	}
	return a
}

func (a *stubAPI) Exists(ch protocol.ChannelID) bool { return ch == a.ch }
func (a *stubAPI) CheckMember(ch protocol.ChannelID, m protocol.Address) error {
	if ch != a.ch || !a.members[m] {
		return protocol.ErrNotMember
	}
	return nil
}

func (a *stubAPI) NextNonce(ch protocol.ChannelID, m protocol.Address) (uint64, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.nonces[m] + 1, nil
}

func (a *stubAPI) Submit(ctx context.Context, tx *protocol.SignedTx) (*protocol.Outcome, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.height++
	o := &protocol.Outcome{Height: a.height, Kind: protocol.EntryCall, Hash: tx.Hash()}
	if tx.Tx.Nonce != a.nonces[tx.Tx.Sender]+1 {
		o.Result.Status = protocol.StatusBadNonce
	} else {
		a.nonces[tx.Tx.Sender]++
		o.Output = tx.Tx.Args
	}
	o.Result.Output = protocol.OutputHash(o.Output)
	return o, nil
}

func (a *stubAPI) Subscribe(ctx context.Context, ch protocol.ChannelID, from uint64) (protocol.Subscription, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if from > a.height {
		return nil, protocol.ErrNotReady
	}
	return &stubSub{snap: &protocol.Snapshot{Channel: ch, Height: a.height, State: protocol.State{}}, end: make(chan struct{})}, nil
}

func (a *stubAPI) Status(ch protocol.ChannelID, members bool) (*protocol.ChannelStatus, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return &protocol.ChannelStatus{Channel: ch, Height: a.height, Ready: true}, nil
}

func (a *stubAPI) Leave(ctx context.Context, tx *protocol.SignedTx) error {
	return nil
}
func (a *stubAPI) Close(ctx context.Context, tx *protocol.SignedTx) error {
	return protocol.ErrBusy
}

type stubSub struct {
	snap *protocol.Snapshot
	end  chan struct{}
	once sync.Once
}

func (s *stubSub) Snapshot() *protocol.Snapshot { return s.snap }
func (s *stubSub) Next(ctx context.Context) ([]protocol.Outcome, error) {
	select {
	case <-s.end:
		return nil, protocol.ErrChannelClosed
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
func (s *stubSub) Close() { s.once.Do(func() { close(s.end) }) }

func fuzzKey(t testing.TB) *protocol.Key {
	k, err := protocol.KeyFromSeed(make([]byte, 32))
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// FuzzClientRequest feeds arbitrary bytes to the stream's request handling,
// on bound and unbound streams: whatever they are, the node answers with a
// known code or a result, never panics, and lets every request finish.
func FuzzClientRequest(f *testing.F) {
	k := fuzzKey(f)
	ch := protocol.ChannelID{1}
	tx := protocol.SignTx(k, protocol.Tx{Channel: ch, Nonce: 1, Function: "chat::send", Args: []byte("hi")})
	for _, m := range []*clientpb.ClientMessage{
		{Id: 1, Body: &clientpb.ClientMessage_Call{Call: &clientpb.CallRequest{Tx: tx.Bytes()}}},
		{Id: 2, Body: &clientpb.ClientMessage_Join{Join: &clientpb.JoinRequest{Channel: ch[:]}}},
		{Id: 3, Body: &clientpb.ClientMessage_Subscribe{Subscribe: &clientpb.SubscribeRequest{Channel: ch[:]}}},
		{Id: 4, Body: &clientpb.ClientMessage_Unsubscribe{Unsubscribe: &clientpb.UnsubscribeRequest{SubscriptionId: 3}}},
		{Id: 5, Body: &clientpb.ClientMessage_Leave{Leave: &clientpb.LeaveRequest{Channel: ch[:]}}},
		{Id: 6, Body: &clientpb.ClientMessage_Close{Close: &clientpb.CloseRequest{Channel: ch[:]}}},
		{Id: 7, Body: &clientpb.ClientMessage_Status{Status: &clientpb.StatusRequest{Channel: ch[:]}}},
		{Id: 8, Body: &clientpb.ClientMessage_Bind{Bind: &clientpb.Bind{PublicKey: k.Public(), Nonce: make([]byte, 32), NodeAddress: "n"}}},
		{Id: 9},
	} {
		b, err := proto.Marshal(m)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, true)
		f.Add(b, false)
	}
	f.Add([]byte{0xff, 0x01, 0x02}, true)

	cfg := DefaultConfig()
	cfg.Addresses = []string{"n"}
	cfg.CallTimeout = time.Second
	svc, err := NewService(newStubAPI(ch, k.Address()), cfg)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { svc.Close() })

	f.Fuzz(func(t *testing.T, raw []byte, bound bool) {
		var m clientpb.ClientMessage
		if err := proto.Unmarshal(raw, &m); err != nil {
			return // gRPC refuses it before the handler: the stream ends with protocol.CodeBadRequest
		}
		ss, err := svc.newSession(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		defer ss.cancel()
		if bound {
			ss.addr = k.Address()
			ss.bound.Store(true)
		}
		// Play the stream's sender for what subscriptions hand over.
		updates := make(chan *clientpb.ServerMessage, 16)
		go func() {
			for {
				select {
				case u := <-ss.updates:
					select {
					case updates <- u.m:
					case <-ss.ctx.Done():
						return
					}
				case <-ss.ctx.Done():
					return
				}
			}
		}()
		ss.dispatch(&m)
		// A subscription lives until cancelled: end it once it has answered.
		if _, ok := m.GetBody().(*clientpb.ClientMessage_Subscribe); ok {
			testutil.WaitFor(t, 5*time.Second, func() error {
				if len(ss.out) == 0 && len(updates) == 0 && ss.liveCount() > 0 {
					return errors.New("subscription not answered")
				}
				return nil
			})
			ss.mu.Lock()
			for _, cancel := range ss.mu.live {
				cancel()
			}
			ss.mu.Unlock()
		}
		// Let every request started finish, then check the answers.
		testutil.WaitFor(t, 5*time.Second, func() error {
			if n := ss.liveCount(); n > 0 {
				return fmt.Errorf("%d requests still running", n)
			}
			return nil
		})
		for {
			var out *clientpb.ServerMessage
			select {
			case out = <-ss.out:
			case out = <-updates:
			default:
				if ss.ctx.Err() != nil && ss.endErr == nil {
					t.Fatalf("stream ended without a code")
				}
				return
			}
			if out.GetId() != m.GetId() {
				t.Fatalf("answer to id %d for request %d", out.GetId(), m.GetId())
			}
			if e := ErrorFromPB(out.GetError()); e != nil && errors.Is(e.Code.Err(), protocol.ErrInternal) {
				t.Fatalf("internal error for %v: %v", &m, e)
			}
			if out.GetError() == nil && out.GetBody() == nil {
				t.Fatalf("empty answer for %v", &m)
			}
		}
	})
}
