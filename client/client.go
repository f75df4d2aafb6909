package client

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	grpcbackoff "google.golang.org/grpc/backoff"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"

	"github.com/scraft/scraft/clientapi"
	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/internal/backoff"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/protocol/tlsid"
)

// ErrClosed is returned by a Client or Subscription after Close.
var ErrClosed = errors.New("client: closed")

// ErrMaybeCommitted means a call was sent more than once (the connection
// or the leader was lost on the way) and the node no longer knows the
// outcome of its tx, whose nonce is used: it may have committed. Call does
// not sign it again, which could run it twice; look at the channel's state
// or subscribe to learn what happened.
var ErrMaybeCommitted = errors.New("client: call may have committed")

// ErrInconsistent means a node sent outcomes that do not chain: a height
// gap, or a digest that does not follow from the previous one and the
// outcome's own result. The subscription ends with it.
var ErrInconsistent = errors.New("client: node sent inconsistent outcomes")

// Client reaches channels through the client API of one node at a time. It
// keeps one bound stream open; when the stream breaks it re-binds, to the
// next node in its list if the node is gone, and carries on: calls are
// retried with the same signed tx (the node returns the first outcome of a
// tx it has seen), subscriptions resume after the last height they held.
//
// All methods are safe for concurrent use. Calls to one channel from one
// Client are sent one after the other (each tx's nonce follows the
// previous one's, so they must commit in order); use several Clients, or
// channels, for parallelism.
type Client struct {
	cfg   Config
	key   *protocol.Key
	addrs []string

	nextID atomic.Uint64

	// dialMu makes one goroutine (re)connect at a time.
	dialMu sync.Mutex
	mu     struct {
		sync.Mutex
		link   *link
		next   int // index in addrs of the next node to try
		conns  map[string]*grpc.ClientConn
		closed bool
	}
	closed    chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	nonces struct {
		sync.Mutex
		m map[protocol.ChannelID]*nonceState
	}
}

// Dial connects to the first of addrs that answers ("host:port" of nodes'
// gRPC ports, as the nodes advertise them) and binds a stream with key. It
// uses DefaultConfig with NodeKeys set to nodeKeys: the member addresses of
// the nodes at addrs.
func Dial(ctx context.Context, key *protocol.Key, nodeKeys []protocol.Address, addrs ...string) (*Client, error) {
	cfg := DefaultConfig()
	cfg.NodeKeys = nodeKeys
	return cfg.Dial(ctx, key, addrs...)
}

// Dial connects like the package's Dial with this configuration.
func (cfg Config) Dial(ctx context.Context, key *protocol.Key, addrs ...string) (*Client, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if key == nil {
		return nil, errors.New("client: nil key")
	}
	if len(addrs) == 0 {
		return nil, errors.New("client: no node address")
	}
	for _, a := range addrs {
		if err := checkNodeAddr(a); err != nil {
			return nil, err
		}
	}
	c := &Client{cfg: cfg, key: key, addrs: append([]string(nil), addrs...), closed: make(chan struct{})}
	c.mu.conns = make(map[string]*grpc.ClientConn)
	c.nonces.m = make(map[protocol.ChannelID]*nonceState)
	if _, err := c.linkRound(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// Address returns the client's address: the sender of its txs.
func (c *Client) Address() protocol.Address { return c.key.Address() }

// Node returns the address of the node the client is bound to now, "" when
// it is not connected.
func (c *Client) Node() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.link == nil {
		return ""
	}
	return c.mu.link.addr
}

// Close ends the stream, closes the connections and waits for the client's
// goroutines. Requests in progress fail with ErrClosed. It is safe to call
// more than once.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.mu.Lock()
		c.mu.closed = true
		l := c.mu.link
		conns := c.mu.conns
		c.mu.conns = nil
		c.mu.Unlock()
		if l != nil {
			l.fail(ErrClosed)
		}
		for addr, conn := range conns {
			if c.cfg.Pool != nil {
				c.cfg.Pool.release(addr, conn)
			} else {
				_ = conn.Close()
			}
		}
		c.wg.Wait()
	})
	return nil
}

func (c *Client) conn(addr string) (*grpc.ClientConn, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, ErrClosed
	}
	if conn, ok := c.mu.conns[addr]; ok {
		return conn, nil
	}
	dial := c.dial
	if c.cfg.Pool != nil {
		dial = func(addr string) (*grpc.ClientConn, error) { return c.cfg.Pool.acquire(addr, c.dial) }
	}
	conn, err := dial(addr)
	if err != nil {
		return nil, err
	}
	c.mu.conns[addr] = conn
	return conn, nil
}

// dial makes a connection of this client's own to addr.
func (c *Client) dial(addr string) (*grpc.ClientConn, error) {
	bo := grpcbackoff.DefaultConfig
	bo.BaseDelay = 50 * time.Millisecond
	bo.MaxDelay = time.Second
	creds := insecure.NewCredentials()
	if !c.cfg.Plaintext {
		tcfg, err := tlsid.ClientConfig(nil, tlsid.Pinned(c.cfg.NodeKeys...))
		if err != nil {
			return nil, err
		}
		creds = credentials.NewTLS(tcfg)
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: c.cfg.DialTimeout}),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(c.cfg.MaxMessageSize)),
		// A fixed receive window. gRPC's default grows the window by BDP
		// estimation, which answers the first message after each quiet
		// spell with a window update and a ping (and the node with a ping
		// ack): on a subscription's stream, where updates come one at a
		// time, that is most messages, and it doubles the system calls per
		// update at both ends.
		grpc.WithInitialWindowSize(receiveWindow),
		grpc.WithInitialConnWindowSize(receiveWindow),
		// A node that hangs keeps its connection open: only a ping that
		// goes unanswered tells, and the stream then breaks and fails over.
		grpc.WithKeepaliveParams(keepalive.ClientParameters{Time: c.cfg.KeepaliveTime, Timeout: c.cfg.KeepaliveTimeout}),
	}
	conn, err := grpc.NewClient(addr, append(opts, c.cfg.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("client: connect to %s: %w", addr, err)
	}
	return conn, nil
}

// receiveWindow is the HTTP/2 flow-control window of a client's stream and
// connection: what a node may send before the client acknowledges it.
// 4 MiB a round trip is ample for a snapshot (48 MiB at most by default),
// and small updates need a window update only every few thousand. Unit:
// bytes.
const receiveWindow = 4 << 20

// forget drops a failed link so that the next request makes a new one.
func (c *Client) forget(l *link) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.link == l {
		c.mu.link = nil
	}
}

// current returns the live link, nil if none.
func (c *Client) current() (*link, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.mu.closed {
		return nil, ErrClosed
	}
	if l := c.mu.link; l != nil && !l.failed() {
		return l, nil
	}
	return nil, nil
}

// link returns the live link, connecting (and failing over between the
// nodes, with backoff) until one binds or ctx ends.
func (c *Client) link(ctx context.Context) (*link, error) {
	if l, err := c.current(); l != nil || err != nil {
		return l, err
	}
	bo := c.backoff()
	for {
		l, err := c.linkRound(ctx)
		if l != nil || errors.Is(err, ErrClosed) {
			return l, err
		}
		if ctx.Err() != nil {
			return nil, fmt.Errorf("client: no node reachable: %w (last error: %v)", ctx.Err(), err)
		}
		if !bo.Wait(ctx, c.closed) {
			return nil, fmt.Errorf("client: no node reachable: %w (last error: %v)", context.Cause(ctx), err)
		}
	}
}

// linkRound tries each node once, starting after the last one used.
func (c *Client) linkRound(ctx context.Context) (*link, error) {
	c.dialMu.Lock()
	defer c.dialMu.Unlock()
	if l, err := c.current(); l != nil || err != nil {
		return l, err
	}
	c.mu.Lock()
	start := c.mu.next
	c.mu.Unlock()
	var errs []error
	for i := range c.addrs {
		idx := (start + i) % len(c.addrs)
		l, err := c.connect(ctx, c.addrs[idx])
		if err != nil {
			c.cfg.Logger.Debug("cannot bind", "node", c.addrs[idx], "error", err)
			errs = append(errs, err)
			if ctx.Err() != nil {
				break
			}
			continue
		}
		c.mu.Lock()
		if c.mu.closed {
			c.mu.Unlock()
			l.fail(ErrClosed)
			return nil, ErrClosed
		}
		c.mu.link = l
		c.mu.next = (idx + 1) % len(c.addrs)
		c.mu.Unlock()
		return l, nil
	}
	return nil, errors.Join(errs...)
}

// failover ends l so that the next request binds to the next node.
func (c *Client) failover(l *link, why error) {
	c.cfg.Logger.Debug("failing over", "node", l.addr, "reason", why)
	l.fail(fmt.Errorf("%w: %v", errLinkLost, why))
}

// backoff starts a retry loop with the client's delays; its Wait ends
// when ctx ends or the client closes.
func (c *Client) backoff() *backoff.Backoff {
	return backoff.New(backoff.Policy{Initial: c.cfg.RetryDelay, Max: c.cfg.MaxRetryDelay})
}

// do sends a request and returns the answer, trying again on a new stream
// when the stream breaks and after a pause when the node answers with a
// retryable code (protocol.Code.Retryable), on the next node when there
// are several. m must be safe to send more than once (calls carry the
// same signed tx every time).
func (c *Client) do(ctx context.Context, m *clientpb.ClientMessage) (*clientpb.ServerMessage, error) {
	return c.doCounted(ctx, m, nil)
}

// doCounted is do that counts in *sends how many times m went out (when
// sends is not nil): a call sent more than once may have committed on an
// earlier try even if the last answer says otherwise.
func (c *Client) doCounted(ctx context.Context, m *clientpb.ClientMessage, sends *int) (*clientpb.ServerMessage, error) {
	bo := c.backoff()
	for {
		l, err := c.link(ctx)
		if err != nil {
			return nil, err
		}
		if sends != nil {
			*sends++
		}
		r, err := l.roundTrip(ctx, m)
		if err != nil {
			if errors.Is(err, errLinkLost) && ctx.Err() == nil {
				continue
			}
			var te *protocol.Error
			if errors.As(err, &te) && te.Code.Retryable() && ctx.Err() == nil {
				continue // the node ended the stream, e.g. shutting down
			}
			return nil, err
		}
		e := clientapi.ErrorFromPB(r.GetError())
		if e == nil || !e.Code.Retryable() {
			return r, nil
		}
		if len(c.addrs) > 1 {
			c.failover(l, e)
		}
		if !bo.Wait(ctx, c.closed) {
			if ctx.Err() != nil {
				return nil, fmt.Errorf("%w (last answer: %v)", ctx.Err(), e)
			}
			return nil, ErrClosed
		}
	}
}
