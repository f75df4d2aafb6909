package client

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/scraft/scraft/clientapi"
	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/protocol/rpcerr"
)

// errLinkLost means the stream to a node broke; requests on it are tried
// again on a new stream (maybe to another node).
var errLinkLost = errors.New("client: connection to the node lost")

// link is one bound stream to one node. One goroutine receives and routes
// each message to the request or subscription it answers.
type link struct {
	c      *Client
	addr   string
	stream clientpb.Client_StreamClient
	cancel context.CancelFunc
	// slots bounds the requests in flight to what the node allows.
	slots chan struct{}

	sendMu sync.Mutex

	mu struct {
		sync.Mutex
		pending map[uint64]chan *clientpb.ServerMessage
		subs    map[uint64]*Subscription
	}
	done chan struct{}
	once sync.Once
	err  error // set before done is closed
}

// connect opens a stream to addr and binds it with the client's key.
func (c *Client) connect(ctx context.Context, addr string) (*link, error) {
	conn, err := c.conn(addr)
	if err != nil {
		return nil, err
	}
	sctx, cancel := context.WithCancel(context.Background())
	l := &link{c: c, addr: addr, cancel: cancel, done: make(chan struct{})}
	l.mu.pending = make(map[uint64]chan *clientpb.ServerMessage)
	l.mu.subs = make(map[uint64]*Subscription)

	// The handshake must finish within DialTimeout and ctx; the stream
	// itself lives on until the link fails or the client closes.
	timer := time.AfterFunc(c.cfg.DialTimeout, cancel)
	stop := context.AfterFunc(ctx, cancel)
	ok := false
	defer func() {
		timer.Stop()
		stop()
		if !ok {
			cancel()
		}
	}()

	l.stream, err = clientpb.NewClientClient(conn).Stream(sctx)
	if err != nil {
		return nil, fmt.Errorf("client: open stream to %s: %w", addr, err)
	}
	m, err := l.stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("client: %s: %w", addr, l.streamError(err))
	}
	ch := m.GetChallenge()
	if ch == nil || len(ch.GetNonce()) != clientapi.ChallengeLen {
		return nil, fmt.Errorf("client: %s did not send a challenge", addr)
	}
	bind := &clientpb.Bind{
		PublicKey:   c.key.Public(),
		Nonce:       ch.GetNonce(),
		NodeAddress: addr,
		Signature:   c.key.Sign(clientapi.DomainClientBind, clientapi.BindMessage(ch.GetNonce(), addr)),
	}
	if err := l.stream.Send(&clientpb.ClientMessage{Body: &clientpb.ClientMessage_Bind{Bind: bind}}); err != nil {
		return nil, fmt.Errorf("client: bind to %s: %w", addr, l.streamError(err))
	}
	m, err = l.stream.Recv()
	if err != nil {
		return nil, fmt.Errorf("client: bind to %s: %w", addr, l.streamError(err))
	}
	if e := clientapi.ErrorFromPB(m.GetError()); e != nil {
		return nil, fmt.Errorf("client: bind to %s: %w", addr, e)
	}
	if m.GetBound().GetAddress() != c.key.Address().String() {
		return nil, fmt.Errorf("client: %s bound the stream to %q", addr, m.GetBound().GetAddress())
	}
	l.slots = make(chan struct{}, max(1, int(min(ch.GetMaxInFlight(), 1<<16))))
	ok = true
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		l.receive()
	}()
	c.cfg.Logger.Debug("bound", "node", addr, "address", c.key.Address())
	return l, nil
}

// streamError turns a stream failure into the node's *protocol.Error when
// the node ended the stream with a code, and into errLinkLost otherwise.
func (l *link) streamError(err error) error {
	var md metadata.MD
	if l.stream != nil {
		md = l.stream.Trailer()
	}
	if e, ok := rpcerr.Coded(err); ok {
		return e
	}
	// gRPC itself ends the stream on a message above its limit, and on
	// one that is not protobuf (INTERNAL, the code is in the trailer);
	// nodes before the status detail set only the trailer.
	if status.Code(err) == codes.ResourceExhausted {
		return &protocol.Error{Code: protocol.CodeTooLarge, Message: status.Convert(err).Message()}
	}
	if v := md.Get(clientapi.TrailerCode); len(v) > 0 {
		if code, perr := strconv.ParseUint(v[len(v)-1], 10, 32); perr == nil {
			return &protocol.Error{Code: protocol.Code(code), Message: status.Convert(err).Message()}
		}
	}
	return fmt.Errorf("%w: %v", errLinkLost, err)
}

func (l *link) receive() {
	for {
		m, err := l.stream.Recv()
		if err != nil {
			l.fail(l.streamError(err))
			return
		}
		id := m.GetId()
		l.mu.Lock()
		ch, isReq := l.mu.pending[id]
		if isReq {
			delete(l.mu.pending, id)
		}
		sub := l.mu.subs[id]
		l.mu.Unlock()
		switch {
		case isReq:
			ch <- m // buffered, one answer per request
		case sub != nil:
			sub.deliver(l, id, m)
		}
	}
}

// fail ends the link: waiting requests see done, subscriptions pause and
// resume on the next link.
func (l *link) fail(err error) {
	l.once.Do(func() {
		l.err = err
		close(l.done)
		l.cancel()
		l.mu.Lock()
		subs := make([]*Subscription, 0, len(l.mu.subs))
		for _, s := range l.mu.subs {
			subs = append(subs, s)
		}
		l.mu.subs = nil
		l.mu.Unlock()
		for _, s := range subs {
			s.linkLost(l)
		}
		l.c.forget(l)
	})
}

func (l *link) failed() bool {
	select {
	case <-l.done:
		return true
	default:
		return false
	}
}

func (l *link) send(m *clientpb.ClientMessage) error {
	l.sendMu.Lock()
	defer l.sendMu.Unlock()
	if err := l.stream.Send(m); err != nil {
		l.fail(l.streamError(err))
		return l.err
	}
	return nil
}

// roundTrip sends one request and waits for its answer.
func (l *link) roundTrip(ctx context.Context, m *clientpb.ClientMessage) (*clientpb.ServerMessage, error) {
	select {
	case l.slots <- struct{}{}:
	case <-l.done:
		return nil, l.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	defer func() { <-l.slots }()
	m.Id = l.c.nextID.Add(1)
	ch := make(chan *clientpb.ServerMessage, 1)
	l.mu.Lock()
	l.mu.pending[m.Id] = ch
	l.mu.Unlock()
	if err := l.send(m); err != nil {
		return nil, err
	}
	select {
	case r := <-ch:
		return r, nil
	case <-l.done:
		select {
		case r := <-ch:
			return r, nil
		default:
		}
		return nil, l.err
	case <-ctx.Done():
		l.mu.Lock()
		delete(l.mu.pending, m.Id)
		l.mu.Unlock()
		return nil, ctx.Err()
	}
}

// addSub routes the messages of request id to s; false when the link
// failed.
func (l *link) addSub(id uint64, s *Subscription) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.mu.subs == nil {
		return false
	}
	l.mu.subs[id] = s
	return true
}

func (l *link) removeSub(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.mu.subs, id)
}
