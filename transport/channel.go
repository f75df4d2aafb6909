package transport

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/scraft/scraft/protocol/tlsid"
	"github.com/scraft/scraft/transport/raftpb"
)

// ChannelTransport is the raft.Transport of one channel on a Server. It also
// implements raft.WithClose and raft.WithPreVote. Every method is safe for
// concurrent use.
//
// There is no heartbeat fast path. raft's NetworkTransport hands heartbeats
// to the handler set by SetHeartbeatHandler on the connection's goroutine,
// outside the Consumer channel, so raft processes them concurrently with its
// main loop. hashicorp/raft #695 shows this breaking safety: a heartbeat
// from a newer leader bumps the term and steps an old leader down while the
// old leader's main loop, unaware, writes a client entry under the new term;
// nodes then commit different entries at the same index and term. Here every
// RPC, heartbeats included, reaches raft through Consumer and is handled by
// raft's main loop, one at a time, in the order each stream delivered them.
// SetHeartbeatHandler only records the handler, as the raft.Transport
// contract allows. The price is that a heartbeat waits behind slow disk
// writes of the RPC before it; raft's election timeouts must allow for that.
type ChannelTransport struct {
	srv       *Server
	id        string
	logger    hclog.Logger
	consumeCh chan raft.RPC

	// ctx is cancelled by Close: it aborts outgoing RPCs and incoming
	// deliveries of this channel only.
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once

	mu struct {
		sync.Mutex
		heartbeatFn func(raft.RPC)
		pipelines   map[*pipeline]struct{}
	}
}

var (
	_ raft.Transport   = (*ChannelTransport)(nil)
	_ raft.WithClose   = (*ChannelTransport)(nil)
	_ raft.WithPreVote = (*ChannelTransport)(nil)
)

func newChannelTransport(s *Server, id string) *ChannelTransport {
	c := &ChannelTransport{
		srv:       s,
		id:        id,
		logger:    s.logger.With("channel", id),
		consumeCh: make(chan raft.RPC),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.pipelines = make(map[*pipeline]struct{})
	return c
}

// ChannelID returns the channel this transport carries.
func (c *ChannelTransport) ChannelID() string { return c.id }

// Consumer implements raft.Transport.
func (c *ChannelTransport) Consumer() <-chan raft.RPC { return c.consumeCh }

// LocalAddr implements raft.Transport: the server's address.
func (c *ChannelTransport) LocalAddr() raft.ServerAddress { return raft.ServerAddress(c.srv.addr) }

// EncodePeer implements raft.Transport; an address is its own encoding.
func (c *ChannelTransport) EncodePeer(_ raft.ServerID, addr raft.ServerAddress) []byte {
	return []byte(addr)
}

// DecodePeer implements raft.Transport.
func (c *ChannelTransport) DecodePeer(buf []byte) raft.ServerAddress { return raft.ServerAddress(buf) }

// SetHeartbeatHandler implements raft.Transport. The handler is recorded and
// never called: heartbeats go through Consumer like every other RPC (see the
// type's documentation).
func (c *ChannelTransport) SetHeartbeatHandler(cb func(rpc raft.RPC)) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mu.heartbeatFn = cb
}

// Close implements raft.WithClose: it aborts this channel's outgoing RPCs
// and pipelines, answers its pending incoming RPCs with UNAVAILABLE and
// unregisters the channel from the server. Other channels are unaffected.
// It is safe to call more than once.
func (c *ChannelTransport) Close() error {
	c.closeOnce.Do(func() {
		c.cancel()
		c.mu.Lock()
		pipes := make([]*pipeline, 0, len(c.mu.pipelines))
		for p := range c.mu.pipelines {
			pipes = append(pipes, p)
		}
		c.mu.Unlock()
		for _, p := range pipes {
			_ = p.Close()
		}
		c.srv.forget(c)
	})
	return nil
}

// AppendEntries implements raft.Transport.
func (c *ChannelTransport) AppendEntries(id raft.ServerID, target raft.ServerAddress, args *raft.AppendEntriesRequest, resp *raft.AppendEntriesResponse) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.RPCTimeout)
	defer cancel()
	client, err := c.client(ctx, target)
	if err != nil {
		return c.rpcError("AppendEntries", target, err)
	}
	var p peer.Peer
	out, err := client.AppendEntries(ctx, encodeAppendEntriesRequest(c.id, args), grpc.Peer(&p))
	if err == nil {
		err = c.checkServer(id, target, peer.NewContext(ctx, &p))
	}
	if err != nil {
		return c.rpcError("AppendEntries", target, err)
	}
	decodeAppendEntriesResponse(out, resp)
	return nil
}

// RequestVote implements raft.Transport.
func (c *ChannelTransport) RequestVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestVoteRequest, resp *raft.RequestVoteResponse) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.RPCTimeout)
	defer cancel()
	client, err := c.client(ctx, target)
	if err != nil {
		return c.rpcError("RequestVote", target, err)
	}
	var p peer.Peer
	out, err := client.RequestVote(ctx, encodeRequestVoteRequest(c.id, args), grpc.Peer(&p))
	if err == nil {
		err = c.checkServer(id, target, peer.NewContext(ctx, &p))
	}
	if err != nil {
		return c.rpcError("RequestVote", target, err)
	}
	decodeRequestVoteResponse(out, resp)
	return nil
}

// RequestPreVote implements raft.WithPreVote.
func (c *ChannelTransport) RequestPreVote(id raft.ServerID, target raft.ServerAddress, args *raft.RequestPreVoteRequest, resp *raft.RequestPreVoteResponse) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.RPCTimeout)
	defer cancel()
	client, err := c.client(ctx, target)
	if err != nil {
		return c.rpcError("RequestPreVote", target, err)
	}
	var p peer.Peer
	out, err := client.RequestPreVote(ctx, encodeRequestPreVoteRequest(c.id, args), grpc.Peer(&p))
	if err == nil {
		err = c.checkServer(id, target, peer.NewContext(ctx, &p))
	}
	if err != nil {
		return c.rpcError("RequestPreVote", target, err)
	}
	decodeRequestPreVoteResponse(out, resp)
	return nil
}

// TimeoutNow implements raft.Transport.
func (c *ChannelTransport) TimeoutNow(id raft.ServerID, target raft.ServerAddress, args *raft.TimeoutNowRequest, resp *raft.TimeoutNowResponse) error {
	ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.RPCTimeout)
	defer cancel()
	client, err := c.client(ctx, target)
	if err != nil {
		return c.rpcError("TimeoutNow", target, err)
	}
	var p peer.Peer
	out, err := client.TimeoutNow(ctx, encodeTimeoutNowRequest(c.id, args), grpc.Peer(&p))
	if err == nil {
		err = c.checkServer(id, target, peer.NewContext(ctx, &p))
	}
	if err != nil {
		return c.rpcError("TimeoutNow", target, err)
	}
	decodeTimeoutNowResponse(out, resp)
	return nil
}

// InstallSnapshot implements raft.Transport. It sends the request, then
// data in chunks of Config.SnapshotChunkSize, holding one chunk at a time.
// The deadline grows with args.Size: Config.RPCTimeout per
// Config.SnapshotTimeoutScale bytes, as in raft's NetworkTransport, since the
// follower answers only after restoring the snapshot.
func (c *ChannelTransport) InstallSnapshot(id raft.ServerID, target raft.ServerAddress, args *raft.InstallSnapshotRequest, resp *raft.InstallSnapshotResponse, data io.Reader) error {
	cfg := &c.srv.cfg
	timeout := cfg.RPCTimeout
	if scale := args.Size / cfg.SnapshotTimeoutScale; scale > 1 {
		timeout = time.Duration(min(scale, int64(1<<62)/int64(timeout))) * timeout
	}
	ctx, cancel := context.WithTimeout(c.ctx, timeout)
	defer cancel()
	client, err := c.client(ctx, target)
	if err != nil {
		return c.rpcError("InstallSnapshot", target, err)
	}
	stream, err := client.InstallSnapshot(ctx)
	if err == nil {
		err = c.checkServer(id, target, stream.Context())
	}
	if err != nil {
		return c.rpcError("InstallSnapshot", target, err)
	}
	first := &raftpb.InstallSnapshotChunk{Part: &raftpb.InstallSnapshotChunk_Request{
		Request: encodeInstallSnapshotRequest(c.id, args),
	}}
	if err := stream.Send(first); err != nil {
		return c.rpcError("InstallSnapshot", target, c.streamError(stream, err))
	}
	for {
		// A fresh buffer per chunk: gRPC may still hold a sent message.
		buf := make([]byte, cfg.SnapshotChunkSize)
		n, rerr := io.ReadFull(data, buf)
		if n > 0 {
			chunk := &raftpb.InstallSnapshotChunk{Part: &raftpb.InstallSnapshotChunk_Data{Data: buf[:n]}}
			if err := stream.Send(chunk); err != nil {
				return c.rpcError("InstallSnapshot", target, c.streamError(stream, err))
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			return fmt.Errorf("transport: InstallSnapshot %s to %s: read snapshot: %w", c.id, target, rerr)
		}
	}
	out, err := stream.CloseAndRecv()
	if err != nil {
		return c.rpcError("InstallSnapshot", target, err)
	}
	decodeInstallSnapshotResponse(out, resp)
	return nil
}

// checkServer verifies, with TLS on, that the node that answered for
// target holds the key of the server raft meant: the address of its
// certificate key must be the server's ID (a node's raft server ID is its
// member address). ctx carries the call's peer. A unary call's answer is
// checked before raft sees it; a stream is checked once open, before any
// data goes out.
func (c *ChannelTransport) checkServer(id raft.ServerID, target raft.ServerAddress, ctx context.Context) error {
	if c.srv.cfg.Key == nil {
		return nil
	}
	addr, _, ok := tlsid.FromContext(ctx)
	if !ok {
		return fmt.Errorf("%w: %s presented no member certificate", ErrWrongServer, target)
	}
	if addr.String() != string(id) {
		return fmt.Errorf("%w: %s holds the key of %s, not of %s", ErrWrongServer, target, addr, id)
	}
	return nil
}

// streamError returns the real error of a client stream whose Send failed:
// Send reports io.EOF and the status comes from receiving.
func (c *ChannelTransport) streamError(stream interface{ RecvMsg(any) error }, err error) error {
	if err != io.EOF {
		return err
	}
	if rerr := stream.RecvMsg(new(raftpb.InstallSnapshotResponse)); rerr != nil {
		return rerr
	}
	return err
}

// client applies Faults to a message from this node to target, then returns
// a client on the shared connection to target.
func (c *ChannelTransport) client(ctx context.Context, target raft.ServerAddress) (raftpb.RaftClient, error) {
	if err := c.fault(ctx, target); err != nil {
		return nil, err
	}
	conn, err := c.srv.Conn(string(target))
	if err != nil {
		return nil, err
	}
	return raftpb.NewRaftClient(conn), nil
}

// fault applies Config.Faults to one message to target: it fails with
// ErrFaultInjected or waits the injected delay.
func (c *ChannelTransport) fault(ctx context.Context, target raft.ServerAddress) error {
	if c.srv.cfg.Faults == nil {
		return nil
	}
	return c.srv.cfg.Faults.wait(ctx, c.srv.addr, string(target))
}

// rpcError translates the failure of an outgoing RPC.
func (c *ChannelTransport) rpcError(method string, target raft.ServerAddress, err error) error {
	switch {
	case c.ctx.Err() != nil:
		err = ErrClosed
	case status.Code(err) == grpccodes.NotFound:
		err = fmt.Errorf("%w (%s)", ErrUnknownChannel, status.Convert(err).Message())
	case errors.Is(err, ErrFaultInjected), errors.Is(err, ErrClosed):
	default:
		if st, ok := status.FromError(err); ok {
			err = fmt.Errorf("%s: %s", st.Code(), st.Message())
		}
	}
	return fmt.Errorf("%s %s to %s: %w", method, c.id, target, err)
}

// deliver hands an incoming RPC to raft through Consumer and waits for its
// answer, for as long as the caller's ctx and this transport live. An RPC
// that raft answers with an error fails with status UNKNOWN and the error's
// text.
func (c *ChannelTransport) deliver(ctx context.Context, cmd any, data io.Reader) (any, error) {
	respCh := make(chan raft.RPCResponse, 1)
	rpc := raft.RPC{Command: cmd, Reader: data, RespChan: respCh}
	select {
	case c.consumeCh <- rpc:
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-c.ctx.Done():
		return nil, status.Errorf(grpccodes.Unavailable, "transport: channel %q closed on %s", c.id, c.srv.addr)
	}
	select {
	case resp := <-respCh:
		if resp.Error != nil {
			return nil, status.Error(grpccodes.Unknown, resp.Error.Error())
		}
		return resp.Response, nil
	case <-ctx.Done():
		return nil, status.FromContextError(ctx.Err()).Err()
	case <-c.ctx.Done():
		return nil, status.Errorf(grpccodes.Unavailable, "transport: channel %q closed on %s", c.id, c.srv.addr)
	}
}

func (c *ChannelTransport) addPipeline(p *pipeline) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ctx.Err() != nil {
		return false
	}
	c.mu.pipelines[p] = struct{}{}
	return true
}

func (c *ChannelTransport) removePipeline(p *pipeline) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.mu.pipelines, p)
}
