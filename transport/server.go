package transport

import (
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/scraft/scraft/protocol/tlsid"
	"github.com/scraft/scraft/transport/raftpb"
)

var (
	// ErrClosed is returned by a Server or channel transport after Close.
	ErrClosed = errors.New("transport: closed")

	// ErrChannelExists is returned by Server.Transport when the channel
	// already has an open transport on this server.
	ErrChannelExists = errors.New("transport: channel already has a transport")

	// ErrUnknownChannel is returned by an RPC whose target node does not host
	// the channel (gRPC status NOT_FOUND on the wire).
	ErrUnknownChannel = errors.New("transport: channel not hosted by the target")

	// ErrWrongServer is returned by an RPC whose target answered with a
	// certificate key other than the raft server's (TLS on only).
	ErrWrongServer = errors.New("transport: the node at the address is not the server raft meant")

	// ErrFaultInjected is returned by an RPC that Faults cut or dropped.
	ErrFaultInjected = errors.New("transport: message dropped by fault injection")
)

// flowWindow is the fixed HTTP/2 flow-control window of every stream and
// connection: large enough for a Raft pipeline of full batches.
const flowWindow = 4 << 20

// Server is a node's single gRPC endpoint. It serves the Raft traffic of
// every channel the node hosts, routed by channel id to the channel's
// transport (see Transport), and any further service registered on GRPC()
// before Serve. It also owns the node's connections to its peers: one
// *grpc.ClientConn per peer address, shared by every channel and service.
//
// All methods are safe for concurrent use.
type Server struct {
	cfg    Config
	logger hclog.Logger
	ln     net.Listener
	addr   string
	grpc   *grpc.Server
	// creds are the TLS credentials of connections to peers; nil without
	// Config.Key.
	creds  credentials.TransportCredentials
	denied *prometheus.CounterVec

	// handlers counts the goroutines handlers leave behind to receive from
	// a stream; Close waits for them.
	handlers  sync.WaitGroup
	closeOnce sync.Once

	mu struct {
		sync.Mutex
		closed   bool
		channels map[string]*ChannelTransport
		conns    map[string]*grpc.ClientConn
		authz    Authorizer
	}
}

// NewServer returns a Server that will serve on ln once Serve is called.
// The Server owns ln from here on.
func NewServer(ln net.Listener, cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	ln = newLimitListener(ln, cfg.MaxConnections)
	s := &Server{
		cfg:    cfg,
		logger: cfg.Logger.Named("transport"),
		ln:     ln,
		addr:   cfg.AdvertiseAddr,
	}
	if s.addr == "" {
		s.addr = ln.Addr().String()
	}
	s.mu.channels = make(map[string]*ChannelTransport)
	s.mu.conns = make(map[string]*grpc.ClientConn)
	s.denied = newDeniedCounter(cfg.Registerer)

	opts := []grpc.ServerOption{
		grpc.MaxRecvMsgSize(cfg.MaxMessageSize),
		grpc.MaxSendMsgSize(cfg.MaxMessageSize),
		grpc.MaxConcurrentStreams(cfg.MaxConcurrentStreams),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			Time:    cfg.KeepaliveTime,
			Timeout: cfg.KeepaliveTimeout,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{
			MinTime:             cfg.KeepaliveMinTime,
			PermitWithoutStream: true,
		}),
		// Fixed flow-control windows: gRPC's default grows them by BDP
		// estimation, which answers the first message after a quiet spell
		// with a window update and a ping (and the peer with a ping ack),
		// a few system calls more per client call or Raft round.
		grpc.InitialWindowSize(flowWindow),
		grpc.InitialConnWindowSize(flowWindow),
	}
	if cfg.Key != nil {
		scfg, err := tlsid.ServerConfig(cfg.Key)
		if err != nil {
			return nil, err
		}
		ccfg, err := tlsid.ClientConfig(cfg.Key, nil)
		if err != nil {
			return nil, err
		}
		opts = append(opts, grpc.Creds(credentials.NewTLS(scfg)))
		s.creds = credentials.NewTLS(ccfg)
	}
	opts = append(opts, s.deniedInterceptors()...)
	if misbehave != nil {
		opts = append(opts, misbehave(s)...)
	}
	s.grpc = grpc.NewServer(append(opts, cfg.ServerOptions...)...)
	raftpb.RegisterRaftServer(s.grpc, &raftService{srv: s})
	return s, nil
}

// GRPC returns the underlying gRPC server so that other packages can
// register their services on the node's port. Register before Serve.
func (s *Server) GRPC() *grpc.Server { return s.grpc }

// Addr returns the address peers reach this node at: Config.AdvertiseAddr,
// or the listener's address. It is the raft.ServerAddress of every channel
// transport of this server.
func (s *Server) Addr() string { return s.addr }

// Serve serves gRPC on the listener until Close. It returns nil after Close
// and the listener's error otherwise.
func (s *Server) Serve() error {
	err := s.grpc.Serve(s.ln)
	if errors.Is(err, grpc.ErrServerStopped) || s.isClosed() {
		return nil
	}
	return err
}

func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.closed
}

// Close closes every channel transport, stops the gRPC server gracefully
// (in-flight calls get Config.ShutdownTimeout to finish, then are cut),
// closes the connections to peers and waits for the goroutines it started.
// It is safe to call more than once.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.mu.closed = true
		channels := make([]*ChannelTransport, 0, len(s.mu.channels))
		for _, c := range s.mu.channels {
			channels = append(channels, c)
		}
		s.mu.Unlock()
		for _, c := range channels {
			_ = c.Close()
		}

		stopped := make(chan struct{})
		go func() {
			s.grpc.GracefulStop()
			close(stopped)
		}()
		timer := time.NewTimer(s.cfg.ShutdownTimeout)
		select {
		case <-stopped:
			timer.Stop()
		case <-timer.C:
			s.logger.Warn("graceful stop timed out, stopping", "timeout", s.cfg.ShutdownTimeout)
			s.grpc.Stop()
			<-stopped
		}
		_ = s.ln.Close() // in case Serve was never called

		s.mu.Lock()
		conns := s.mu.conns
		s.mu.conns = nil
		s.mu.Unlock()
		for addr, conn := range conns {
			if err := conn.Close(); err != nil {
				s.logger.Debug("closing peer connection", "peer", addr, "error", err)
			}
		}
		s.handlers.Wait()
	})
	return nil
}

// Conn returns the shared connection to the peer node at addr ("host:port"
// of its gRPC port), creating it on first use. Connecting happens in the
// background; an RPC on a connection that cannot be established fails after
// Config.DialTimeout. The Server closes its connections on Close: callers
// must not close them.
func (s *Server) Conn(addr string) (*grpc.ClientConn, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return nil, ErrClosed
	}
	if conn, ok := s.mu.conns[addr]; ok {
		return conn, nil
	}
	bo := backoff.DefaultConfig
	bo.BaseDelay = min(100*time.Millisecond, s.cfg.ReconnectMaxDelay)
	bo.MaxDelay = s.cfg.ReconnectMaxDelay
	creds := s.creds
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(creds),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: bo, MinConnectTimeout: s.cfg.DialTimeout}),
		grpc.WithKeepaliveParams(keepalive.ClientParameters{
			Time:                s.cfg.KeepaliveTime,
			Timeout:             s.cfg.KeepaliveTimeout,
			PermitWithoutStream: true,
		}),
		grpc.WithDefaultCallOptions(
			grpc.MaxCallRecvMsgSize(s.cfg.MaxMessageSize),
			grpc.MaxCallSendMsgSize(s.cfg.MaxMessageSize),
		),
		grpc.WithInitialWindowSize(flowWindow),
		grpc.WithInitialConnWindowSize(flowWindow),
	}
	if s.cfg.Faults != nil {
		opts = append(opts, s.cfg.Faults.dialOptions(s.addr)...)
	}
	conn, err := grpc.NewClient(addr, append(opts, s.cfg.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("transport: connect to %s: %w", addr, err)
	}
	s.mu.conns[addr] = conn
	return conn, nil
}

// Transport opens the Raft transport of one channel on this server: RPCs
// from peers naming channelID are delivered to its Consumer, and its
// outgoing RPCs name channelID. A channel has at most one open transport
// per server; after its Close (raft.Raft.Shutdown closes it) the id may be
// opened again.
func (s *Server) Transport(channelID string) (*ChannelTransport, error) {
	if channelID == "" {
		return nil, errors.New("transport: empty channel id")
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.closed {
		return nil, ErrClosed
	}
	if _, ok := s.mu.channels[channelID]; ok {
		return nil, fmt.Errorf("%w: %s", ErrChannelExists, channelID)
	}
	c := newChannelTransport(s, channelID)
	s.mu.channels[channelID] = c
	return c, nil
}

// lookup returns the open transport of a channel, or a NOT_FOUND status.
func (s *Server) lookup(channelID string) (*ChannelTransport, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.mu.channels[channelID]; ok {
		return c, nil
	}
	return nil, status.Errorf(grpccodes.NotFound, "transport: channel %q is not hosted on %s", channelID, s.addr)
}

// forget unregisters a closed channel transport.
func (s *Server) forget(c *ChannelTransport) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.mu.channels[c.id] == c {
		delete(s.mu.channels, c.id)
	}
}
