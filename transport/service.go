package transport

import (
	"context"
	"io"

	"github.com/hashicorp/raft"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scraft/scraft/transport/raftpb"
)

// raftService serves the Raft service of a Server: it finds the channel
// transport an RPC names and delivers the RPC to its Consumer.
type raftService struct {
	raftpb.UnimplementedRaftServer
	srv *Server
}

func badResponse(resp any) error {
	return status.Errorf(grpccodes.Internal, "transport: raft answered with %T", resp)
}

func (s *raftService) AppendEntries(ctx context.Context, req *raftpb.AppendEntriesRequest) (*raftpb.AppendEntriesResponse, error) {
	c, err := s.srv.lookup(req.GetChannel())
	if err != nil {
		return nil, err
	}
	if err := s.admitAppend(ctx, req); err != nil {
		return nil, err
	}
	resp, err := c.deliver(ctx, decodeAppendEntriesRequest(req), nil)
	if err != nil {
		return nil, err
	}
	r, ok := resp.(*raft.AppendEntriesResponse)
	if !ok {
		return nil, badResponse(resp)
	}
	return encodeAppendEntriesResponse(r), nil
}

func (s *raftService) RequestVote(ctx context.Context, req *raftpb.RequestVoteRequest) (*raftpb.RequestVoteResponse, error) {
	c, err := s.srv.lookup(req.GetChannel())
	if err != nil {
		return nil, err
	}
	if err := s.srv.authorize(ctx, RaftCall{RPC: "RequestVote", Channel: req.GetChannel(), Term: req.GetTerm(), LeadershipTransfer: req.GetLeadershipTransfer()}, req.GetHeader(), req.GetCandidate()); err != nil {
		return nil, err
	}
	resp, err := c.deliver(ctx, decodeRequestVoteRequest(req), nil)
	if err != nil {
		return nil, err
	}
	r, ok := resp.(*raft.RequestVoteResponse)
	if !ok {
		return nil, badResponse(resp)
	}
	return encodeRequestVoteResponse(r), nil
}

func (s *raftService) RequestPreVote(ctx context.Context, req *raftpb.RequestPreVoteRequest) (*raftpb.RequestPreVoteResponse, error) {
	c, err := s.srv.lookup(req.GetChannel())
	if err != nil {
		return nil, err
	}
	if err := s.srv.authorize(ctx, RaftCall{RPC: "RequestPreVote", Channel: req.GetChannel(), Term: req.GetTerm()}, req.GetHeader(), nil); err != nil {
		return nil, err
	}
	resp, err := c.deliver(ctx, decodeRequestPreVoteRequest(req), nil)
	if err != nil {
		return nil, err
	}
	r, ok := resp.(*raft.RequestPreVoteResponse)
	if !ok {
		return nil, badResponse(resp)
	}
	return encodeRequestPreVoteResponse(r), nil
}

func (s *raftService) TimeoutNow(ctx context.Context, req *raftpb.TimeoutNowRequest) (*raftpb.TimeoutNowResponse, error) {
	c, err := s.srv.lookup(req.GetChannel())
	if err != nil {
		return nil, err
	}
	if err := s.srv.authorize(ctx, RaftCall{RPC: "TimeoutNow", Channel: req.GetChannel()}, req.GetHeader(), nil); err != nil {
		return nil, err
	}
	resp, err := c.deliver(ctx, decodeTimeoutNowRequest(req), nil)
	if err != nil {
		return nil, err
	}
	r, ok := resp.(*raft.TimeoutNowResponse)
	if !ok {
		return nil, badResponse(resp)
	}
	return encodeTimeoutNowResponse(r), nil
}

// admitAppend authorizes an AppendEntries request, plain or pipelined,
// and checks its shape before raft sees it.
func (s *raftService) admitAppend(ctx context.Context, req *raftpb.AppendEntriesRequest) error {
	if err := s.srv.authorize(ctx, RaftCall{RPC: "AppendEntries", Channel: req.GetChannel(), Term: req.GetTerm()}, req.GetHeader(), req.GetLeader()); err != nil {
		return err
	}
	if err := checkAppendEntries(req); err != nil {
		s.srv.denied.WithLabelValues("AppendEntries").Inc()
		s.srv.logger.Warn("malformed AppendEntries refused", "channel", req.GetChannel(), "error", err)
		return err
	}
	return nil
}

// AppendEntriesPipeline handles one pipeline: requests are delivered to
// raft one at a time, in stream order, and each response is sent before the
// next request is delivered, so responses come back in request order.
func (s *raftService) AppendEntriesPipeline(stream raftpb.Raft_AppendEntriesPipelineServer) error {
	first, err := stream.Recv()
	if err != nil {
		return endOfStream(err)
	}
	c, err := s.srv.lookup(first.GetChannel())
	if err != nil {
		return err
	}
	ctx := stream.Context()
	// Receive in a goroutine so that the handler can leave as soon as the
	// channel closes, rather than when the peer next sends.
	reqs := make(chan *raftpb.AppendEntriesRequest)
	recvErr := make(chan error, 1)
	s.srv.handlers.Add(1)
	go func() {
		defer s.srv.handlers.Done()
		for {
			req, err := stream.Recv()
			if err != nil {
				recvErr <- err
				return
			}
			select {
			case reqs <- req:
			case <-ctx.Done():
				return
			}
		}
	}()

	req := first
	for {
		if req.GetChannel() != c.id {
			return status.Errorf(grpccodes.InvalidArgument, "transport: pipeline of channel %q carried a request for %q", c.id, req.GetChannel())
		}
		if err := s.admitAppend(ctx, req); err != nil {
			return err
		}
		resp, err := c.deliver(ctx, decodeAppendEntriesRequest(req), nil)
		if err != nil {
			return err
		}
		r, ok := resp.(*raft.AppendEntriesResponse)
		if !ok {
			return badResponse(resp)
		}
		if err := stream.Send(encodeAppendEntriesResponse(r)); err != nil {
			return err
		}
		select {
		case req = <-reqs:
		case err := <-recvErr:
			return endOfStream(err)
		case <-c.ctx.Done():
			return status.Errorf(grpccodes.Unavailable, "transport: channel %q closed on %s", c.id, s.srv.addr)
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		}
	}
}

// endOfStream maps the error that ended a client's stream to the handler's
// result: a clean end is no error.
func endOfStream(err error) error {
	if err == io.EOF {
		return nil
	}
	return err
}

// InstallSnapshot receives the request, then hands raft a reader that pulls
// the data chunks off the stream as raft reads them, so a transfer holds
// about one chunk in memory whatever the snapshot size.
func (s *raftService) InstallSnapshot(stream raftpb.Raft_InstallSnapshotServer) error {
	first, err := stream.Recv()
	if err != nil {
		return endOfStream(err)
	}
	req := first.GetRequest()
	if req == nil {
		return status.Error(grpccodes.InvalidArgument, "transport: InstallSnapshot stream must start with the request")
	}
	if req.GetSize() < 0 {
		return status.Errorf(grpccodes.InvalidArgument, "transport: InstallSnapshot size %d", req.GetSize())
	}
	c, err := s.srv.lookup(req.GetChannel())
	if err != nil {
		return err
	}
	if err := s.srv.authorize(stream.Context(), RaftCall{RPC: "InstallSnapshot", Channel: req.GetChannel(), Term: req.GetTerm(), Configuration: req.GetConfiguration()}, req.GetHeader(), req.GetLeader()); err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	r := &chunkReader{chunks: make(chan []byte, 1), ctx: ctx, closed: c.ctx.Done()}
	s.srv.handlers.Add(1)
	go func() {
		defer s.srv.handlers.Done()
		r.receive(stream)
	}()

	resp, err := c.deliver(ctx, decodeInstallSnapshotRequest(req), io.LimitReader(r, req.GetSize()))
	if err != nil {
		return err
	}
	out, ok := resp.(*raft.InstallSnapshotResponse)
	if !ok {
		return badResponse(resp)
	}
	return stream.SendAndClose(encodeInstallSnapshotResponse(out))
}

// chunkReader is the io.Reader raft reads a snapshot from. receive fills
// chunks from the stream; Read empties it. Read fails once the handler
// returns (ctx) or the channel closes, so raft never waits on a stream that
// has gone.
type chunkReader struct {
	chunks chan []byte
	err    error // why receive stopped: io.EOF at the end; set before chunks is closed
	ctx    context.Context
	closed <-chan struct{}
	buf    []byte
}

func (r *chunkReader) receive(stream raftpb.Raft_InstallSnapshotServer) {
	defer close(r.chunks)
	for {
		msg, err := stream.Recv()
		if err != nil {
			r.err = err
			return
		}
		data, ok := msg.GetPart().(*raftpb.InstallSnapshotChunk_Data)
		if !ok {
			r.err = status.Error(grpccodes.InvalidArgument, "transport: InstallSnapshot request sent twice")
			return
		}
		if len(data.Data) == 0 {
			continue
		}
		select {
		case r.chunks <- data.Data:
		case <-r.ctx.Done():
			r.err = r.ctx.Err()
			return
		}
	}
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for len(r.buf) == 0 {
		select {
		case chunk, ok := <-r.chunks:
			if !ok {
				return 0, r.err
			}
			r.buf = chunk
		case <-r.ctx.Done():
			return 0, r.ctx.Err()
		case <-r.closed:
			return 0, ErrClosed
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
