package transport

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"

	"github.com/scraft/scraft/protocol"
)

// Config configures a Server: its gRPC server, its connections to peers and
// the Raft transports of its channels. Zero fields are not filled in: start
// from DefaultConfig and change what you need.
type Config struct {
	// AdvertiseAddr is the "host:port" peers dial to reach this node, and so
	// the raft.ServerAddress of every channel transport on it. Default ""
	// means the listener's address, right for tests on 127.0.0.1:0.
	AdvertiseAddr string

	// DialTimeout bounds establishing a connection to a peer (gRPC's minimum
	// connect timeout). Default 2s.
	DialTimeout time.Duration

	// ReconnectMaxDelay caps the backoff between reconnection attempts to a
	// peer that went away. gRPC's own default (120s) would keep a restarted
	// peer unreachable far longer than a Raft election. Default 1s.
	ReconnectMaxDelay time.Duration

	// RPCTimeout is the deadline of each AppendEntries, RequestVote,
	// RequestPreVote and TimeoutNow call, and how long a pipelined
	// AppendEntries may wait for its response before the pipeline is torn
	// down. Default 5s.
	RPCTimeout time.Duration

	// SnapshotTimeoutScale scales the InstallSnapshot deadline with the
	// snapshot size, as raft's NetworkTransport does: the deadline is
	// RPCTimeout for every SnapshotTimeoutScale bytes, and at least
	// RPCTimeout. Default 256 KiB. Unit: bytes.
	SnapshotTimeoutScale int64

	// SnapshotChunkSize is the number of snapshot bytes per stream message;
	// it is also, roughly, the memory a snapshot transfer holds per side.
	// Default 256 KiB; must be below MaxMessageSize. Unit: bytes.
	SnapshotChunkSize int

	// MaxInFlight bounds the pipelined AppendEntries requests one pipeline
	// has sent without a response yet. 2 overlaps preparing and sending the
	// next batch with waiting for the previous answer, which is what raft's
	// NetworkTransport does by default; more helps only on high-latency
	// links (hashicorp/raft #541). Default 2, minimum 2.
	MaxInFlight int

	// MaxMessageSize is the largest gRPC message sent or received, so it
	// bounds one AppendEntries request: raft sends up to MaxAppendEntries
	// (default 64) entries per request, so entries must stay below
	// MaxMessageSize/MaxAppendEntries. Default 64 MiB. Unit: bytes.
	MaxMessageSize int

	// MaxConnections bounds the connections the server holds open at once,
	// from peers and clients together; one more is closed as soon as it is
	// accepted (and counted in ConnStats), so a flood of connections costs
	// the node no more than this many. Peers and the client SDK reconnect
	// with backoff. Default 2048.
	MaxConnections int

	// MaxConcurrentStreams bounds the streams (calls) one connection may
	// have open at once, announced in HTTP/2 SETTINGS: gRPC clients wait
	// for a slot, others get REFUSED_STREAM. One peer connection carries a
	// pipeline per channel shared with that peer, plus the peer API and the
	// client streams it dialed. Default 1024.
	MaxConcurrentStreams uint32

	// KeepaliveTime is how long a connection to a peer may stay silent
	// before this side pings it; KeepaliveTimeout how long it waits for the
	// ping's answer before closing the connection. A dead peer behind a
	// silent network is found within KeepaliveTime + KeepaliveTimeout even
	// with no RPC in progress. Defaults 10s and 5s.
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration

	// KeepaliveMinTime is the most frequent client ping the server accepts;
	// clients pinging more often are disconnected (gRPC's "too_many_pings").
	// It must not exceed KeepaliveTime so that our own peers are accepted.
	// Default 5s.
	KeepaliveMinTime time.Duration

	// ShutdownTimeout bounds the graceful stop of Close: in-flight calls get
	// this long to finish before the server stops hard. Default 2s.
	ShutdownTimeout time.Duration

	// Key is the node's member key. When set, the port speaks TLS 1.3
	// only: the node presents a self-signed certificate whose key is Key
	// (protocol/tlsid), dials its peers presenting it too, and serves a
	// Raft RPC only to a caller that presented a member certificate of its
	// own (see Server.SetAuthorizer for who may call). Clients of the
	// client API need no certificate. Default nil: plaintext, for tests of
	// the transport alone.
	Key *protocol.Key

	// Registerer, when set, receives the transport's metrics:
	// scraft_rpc_denied_total{rpc}. Default nil: not registered.
	Registerer prometheus.Registerer

	// Faults, when set, injects network faults on the sending side of every
	// RPC. Tests share one Faults between their in-process nodes. Default
	// nil: no faults.
	Faults *Faults

	// Logger receives the transport's logs. Default: a null logger.
	Logger hclog.Logger

	// ServerOptions are appended to the gRPC server options this package
	// sets (message sizes, keepalive), e.g. credentials or interceptors for
	// the services others register. Default none.
	ServerOptions []grpc.ServerOption

	// DialOptions are appended to the options of every connection to a
	// peer. Default none (TLS with Key when it is set, else plaintext).
	DialOptions []grpc.DialOption
}

// DefaultConfig returns a Config with every default filled in.
func DefaultConfig() Config {
	return Config{
		DialTimeout:          2 * time.Second,
		ReconnectMaxDelay:    time.Second,
		RPCTimeout:           5 * time.Second,
		SnapshotTimeoutScale: 256 << 10,
		SnapshotChunkSize:    256 << 10,
		MaxInFlight:          2,
		MaxMessageSize:       64 << 20,
		MaxConnections:       2048,
		MaxConcurrentStreams: 1024,
		KeepaliveTime:        10 * time.Second,
		KeepaliveTimeout:     5 * time.Second,
		KeepaliveMinTime:     5 * time.Second,
		ShutdownTimeout:      2 * time.Second,
		Logger:               hclog.NewNullLogger(),
	}
}

// Validate reports the first field that is out of range.
func (c *Config) Validate() error {
	switch {
	case c.DialTimeout <= 0:
		return fmt.Errorf("transport: DialTimeout (%s) must be positive", c.DialTimeout)
	case c.ReconnectMaxDelay <= 0:
		return fmt.Errorf("transport: ReconnectMaxDelay (%s) must be positive", c.ReconnectMaxDelay)
	case c.RPCTimeout <= 0:
		return fmt.Errorf("transport: RPCTimeout (%s) must be positive", c.RPCTimeout)
	case c.SnapshotTimeoutScale <= 0:
		return fmt.Errorf("transport: SnapshotTimeoutScale (%d) must be positive", c.SnapshotTimeoutScale)
	case c.MaxMessageSize < 64<<10:
		return fmt.Errorf("transport: MaxMessageSize (%d) must be at least 64 KiB", c.MaxMessageSize)
	case c.SnapshotChunkSize <= 0 || c.SnapshotChunkSize > c.MaxMessageSize-1024:
		return fmt.Errorf("transport: SnapshotChunkSize (%d) must be positive and below MaxMessageSize (%d) minus 1 KiB of framing",
			c.SnapshotChunkSize, c.MaxMessageSize)
	case c.MaxInFlight < 2:
		return fmt.Errorf("transport: MaxInFlight (%d) must be at least 2", c.MaxInFlight)
	case c.MaxConnections < 1:
		return fmt.Errorf("transport: MaxConnections (%d) must be at least 1", c.MaxConnections)
	case c.MaxConcurrentStreams < 1:
		return fmt.Errorf("transport: MaxConcurrentStreams (%d) must be at least 1", c.MaxConcurrentStreams)
	case c.KeepaliveTime <= 0 || c.KeepaliveTimeout <= 0:
		return fmt.Errorf("transport: KeepaliveTime (%s) and KeepaliveTimeout (%s) must be positive",
			c.KeepaliveTime, c.KeepaliveTimeout)
	case c.KeepaliveMinTime <= 0 || c.KeepaliveMinTime > c.KeepaliveTime:
		return fmt.Errorf("transport: KeepaliveMinTime (%s) must be positive and not above KeepaliveTime (%s)",
			c.KeepaliveMinTime, c.KeepaliveTime)
	case c.ShutdownTimeout < 0:
		return fmt.Errorf("transport: ShutdownTimeout (%s) cannot be negative", c.ShutdownTimeout)
	case c.Logger == nil:
		return fmt.Errorf("transport: Logger is nil")
	}
	return nil
}
