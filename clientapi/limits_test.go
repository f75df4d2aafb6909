package clientapi

import (
	"context"
	"net"
	"strconv"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/protocol/rpcerr"
)

// limitNode serves the client API over a stub channel on a real gRPC
// server on loopback, as a node does.
type limitNode struct {
	svc  *Service
	addr string
	conn *grpc.ClientConn
	ch   protocol.ChannelID
	key  *protocol.Key
}

func newLimitNode(t *testing.T, tune func(*Config)) *limitNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	n := &limitNode{addr: ln.Addr().String(), ch: protocol.ChannelID{7}, key: fuzzKey(t)}
	cfg := DefaultConfig()
	cfg.Addresses = []string{n.addr}
	cfg.Logger = testutil.Logger(t, "clientapi")
	if tune != nil {
		tune(&cfg)
	}
	n.svc, err = NewService(newStubAPI(n.ch, n.key.Address()), cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(4 << 20))
	n.svc.Register(srv)
	served := make(chan struct{})
	go func() {
		defer close(served)
		srv.Serve(ln)
	}()
	t.Cleanup(func() {
		n.svc.Close()
		srv.Stop()
		<-served
	})
	n.conn, err = grpc.NewClient(n.addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallSendMsgSize(4<<20)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.conn.Close() })
	return n
}

// open opens a stream and reads its first message: the challenge, or the
// error that ended the stream.
func (n *limitNode) open(t *testing.T, ctx context.Context) (clientpb.Client_StreamClient, *clientpb.Challenge, error) {
	t.Helper()
	st, err := clientpb.NewClientClient(n.conn).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	m, err := st.Recv()
	if err != nil {
		return st, nil, err
	}
	return st, m.GetChallenge(), nil
}

// bind binds st to the node's member key.
func (n *limitNode) bind(t *testing.T, st clientpb.Client_StreamClient, c *clientpb.Challenge) {
	t.Helper()
	err := st.Send(&clientpb.ClientMessage{Id: 1, Body: &clientpb.ClientMessage_Bind{Bind: &clientpb.Bind{
		PublicKey: n.key.Public(), Nonce: c.GetNonce(), NodeAddress: n.addr,
		Signature: n.key.Sign(DomainClientBind, BindMessage(c.GetNonce(), n.addr)),
	}}})
	if err != nil {
		t.Fatal(err)
	}
	if m, err := st.Recv(); err != nil || m.GetBound() == nil {
		t.Fatalf("bind: %v %v", m, err)
	}
}

// status asks for the channel's status and expects an answer.
func (n *limitNode) status(t *testing.T, st clientpb.Client_StreamClient, id uint64) {
	t.Helper()
	if err := st.Send(&clientpb.ClientMessage{Id: id, Body: &clientpb.ClientMessage_Status{Status: &clientpb.StatusRequest{Channel: n.ch[:]}}}); err != nil {
		t.Fatal(err)
	}
	m, err := st.Recv()
	if err != nil || m.GetId() != id || m.GetStatus() == nil {
		t.Fatalf("status: %v %v", m, err)
	}
}

// endCode reads st until it ends and returns the code the node ended it
// with (the trailer's last value), checked against the gRPC status.
func endCode(t *testing.T, st clientpb.Client_StreamClient, err error) protocol.Code {
	t.Helper()
	for err == nil {
		_, err = st.Recv()
	}
	vals := st.Trailer().Get(TrailerCode)
	if len(vals) == 0 {
		t.Fatalf("stream ended without %s trailer: %v", TrailerCode, err)
	}
	c, perr := strconv.ParseUint(vals[len(vals)-1], 10, 32)
	if perr != nil {
		t.Fatal(perr)
	}
	pe, ok := rpcerr.Coded(err)
	if !ok || uint64(pe.Code) != c {
		t.Fatalf("status %v does not carry the trailer's code %d", err, c)
	}
	return protocol.Code(c)
}

// TestStreamsCapped opens more streams than MaxStreams: the one too many
// is refused busy (RESOURCE_EXHAUSTED) and counted, the open ones keep
// being served, and a slot freed is taken again.
func TestStreamsCapped(t *testing.T) {
	n := newLimitNode(t, func(c *Config) { c.MaxStreams = 2 })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	ctx1, cancel1 := context.WithCancel(ctx)
	defer cancel1()
	st1, c1, err := n.open(t, ctx1)
	if err != nil {
		t.Fatal(err)
	}
	st2, c2, err := n.open(t, ctx)
	if err != nil {
		t.Fatal(err)
	}
	st3, _, err := n.open(t, ctx)
	if err == nil {
		t.Fatal("third stream got a challenge with MaxStreams 2")
	}
	if status.Code(err) != codes.ResourceExhausted {
		t.Fatalf("refused stream: %v, want RESOURCE_EXHAUSTED", err)
	}
	if c := endCode(t, st3, err); c != protocol.CodeBusy {
		t.Fatalf("refused stream ended with %d, want busy", c)
	}
	if got := n.svc.Stats().StreamsRefused; got != 1 {
		t.Fatalf("StreamsRefused %d, want 1", got)
	}

	// The streams within the cap are served.
	n.bind(t, st1, c1)
	n.bind(t, st2, c2)
	n.status(t, st1, 2)
	n.status(t, st2, 2)

	// Once one goes, a new stream takes its place.
	cancel1()
	testutil.Eventually(t, 10*time.Second, "stream slot freed", func() bool { return n.svc.Stats().Streams < 2 })
	st4, c4, err := n.open(t, ctx)
	if err != nil {
		t.Fatal(err)
	}
	n.bind(t, st4, c4)
	n.status(t, st4, 2)
	n.status(t, st2, 3)
}

// TestUnboundMessageSize sends a 1 MiB message on a stream that has not
// bound: the node ends it with too_large, keeps serving other streams,
// and after a bind lets messages of the normal sizes through.
func TestUnboundMessageSize(t *testing.T) {
	n := newLimitNode(t, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for _, tc := range []struct {
		name string
		m    *clientpb.ClientMessage
	}{
		{"bind", &clientpb.ClientMessage{Body: &clientpb.ClientMessage_Bind{Bind: &clientpb.Bind{
			PublicKey: make([]byte, 1<<20), NodeAddress: n.addr,
		}}}},
		{"call", &clientpb.ClientMessage{Id: 1, Body: &clientpb.ClientMessage_Call{Call: &clientpb.CallRequest{Tx: make([]byte, 1<<20)}}}},
		{"just above the bound", &clientpb.ClientMessage{Id: 1, Body: &clientpb.ClientMessage_Status{Status: &clientpb.StatusRequest{
			Channel: make([]byte, DefaultConfig().MaxUnboundMessageBytes),
		}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			st, _, err := n.open(t, ctx)
			if err != nil {
				t.Fatal(err)
			}
			if err := st.Send(tc.m); err != nil {
				t.Fatal(err)
			}
			if c := endCode(t, st, nil); c != protocol.CodeTooLarge {
				t.Fatalf("stream ended with %d, want too_large", c)
			}
		})
	}

	// Another stream binds and is served; once bound, a message far above
	// the unbound limit is answered for what it is (here a tx too large
	// for MaxTxBytes), not cut off.
	st, c, err := n.open(t, ctx)
	if err != nil {
		t.Fatal(err)
	}
	n.bind(t, st, c)
	n.status(t, st, 2)
	if err := st.Send(&clientpb.ClientMessage{Id: 3, Body: &clientpb.ClientMessage_Call{Call: &clientpb.CallRequest{Tx: make([]byte, 64<<10)}}}); err != nil {
		t.Fatal(err)
	}
	m, err := st.Recv()
	if err != nil || m.GetId() != 3 || m.GetError() == nil {
		t.Fatalf("bound 64 KiB call: %v %v", m, err)
	}
	if got := protocol.Code(m.GetError().GetCode()); got != protocol.CodeBadRequest {
		t.Fatalf("bound 64 KiB call answered %d, want bad_request (a tx of zeros)", got)
	}
	n.status(t, st, 4)
}

// TestBindDeadline: a stream that never binds is closed not_bound after
// BindTimeout.
func TestBindDeadline(t *testing.T) {
	n := newLimitNode(t, func(c *Config) { c.BindTimeout = 100 * time.Millisecond })
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	st, _, err := n.open(t, ctx)
	if err != nil {
		t.Fatal(err)
	}
	if c := endCode(t, st, nil); c != protocol.CodeNotBound {
		t.Fatalf("unbound stream ended with %d, want not_bound", c)
	}
	testutil.Eventually(t, 10*time.Second, "stream released", func() bool { return n.svc.Stats().Streams == 0 })
}
