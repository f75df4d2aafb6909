package transport

import (
	"context"
	"path"

	"github.com/prometheus/client_golang/prometheus"
	"google.golang.org/grpc"
	grpccodes "google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/protocol/tlsid"
	"github.com/scraft/scraft/transport/raftpb"
)

// Authorizer decides whether an incoming Raft RPC may reach raft. The
// transport calls it for every RPC, every request of a pipeline included,
// after the TLS handshake and before raft sees anything; a non-nil error
// refuses the RPC with PERMISSION_DENIED.
//
// It is called from many goroutines at once, on the path of every
// heartbeat and append: it should answer from memory.
type Authorizer interface {
	AuthorizeRaft(call RaftCall) error
}

// RaftCall is what an Authorizer is told of one incoming Raft RPC
// (protocol.RaftCall: it lives in protocol so that the implementer, the
// cluster, need not import this package).
type RaftCall = protocol.RaftCall

// SetAuthorizer makes the server ask a before delivering any Raft RPC.
// Call it before Serve. Without one, every RPC that passed the TLS layer is
// delivered: right for tests of the transport alone, not for a node.
func (s *Server) SetAuthorizer(a Authorizer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.mu.authz = a
}

func (s *Server) authorizer() Authorizer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.mu.authz
}

// authorize checks one incoming Raft RPC: with TLS on the caller must have
// presented a member certificate, and the Authorizer, when set, must
// accept the call.
func (s *Server) authorize(ctx context.Context, call RaftCall, hdr *raftpb.RPCHeader, claimed []byte) error {
	rpc, channel := call.RPC, call.Channel
	caller, _, ok := tlsid.FromContext(ctx)
	if !ok && s.cfg.Key != nil {
		return status.Errorf(grpccodes.PermissionDenied, "transport: %s needs a member certificate", rpc)
	}
	a := s.authorizer()
	if a == nil {
		return nil
	}
	if !ok {
		return status.Errorf(grpccodes.PermissionDenied, "transport: %s from a caller without a certificate", rpc)
	}
	call.Caller, call.ID, call.Addr, call.Claimed = caller, string(hdr.GetId()), string(hdr.GetAddr()), string(claimed)
	err := a.AuthorizeRaft(call)
	if err != nil {
		s.logger.Warn("raft rpc refused", "rpc", rpc, "channel", channel, "caller", caller, "error", err)
		return status.Errorf(grpccodes.PermissionDenied, "transport: %s refused: %v", rpc, err)
	}
	return nil
}

// checkAppendEntries refuses an AppendEntries request raft cannot take
// safely: its entries must follow PrevLogEntry one index at a time, with
// terms that do not decrease and do not pass the request's term. raft
// itself refuses a PrevLogEntry past the end of its log, so entries that
// pass this check never start past lastIndex+1; entries with a gap would
// be stored as they are and make raft panic ("log not found") when
// committed.
func checkAppendEntries(req *raftpb.AppendEntriesRequest) error {
	next, term := req.GetPrevLogEntry()+1, req.GetPrevLogTerm()
	for i, e := range req.GetEntries() {
		switch {
		case e.GetIndex() != next:
			return status.Errorf(grpccodes.InvalidArgument, "transport: AppendEntries entry %d has index %d, want %d", i, e.GetIndex(), next)
		case e.GetTerm() < term || e.GetTerm() > req.GetTerm():
			return status.Errorf(grpccodes.InvalidArgument, "transport: AppendEntries entry %d has term %d, outside [%d, %d]", i, e.GetTerm(), term, req.GetTerm())
		}
		next, term = next+1, e.GetTerm()
	}
	return nil
}

// deniedCounter counts the calls of every service on the port answered
// PERMISSION_DENIED, and refused malformed Raft requests, by method.
func newDeniedCounter(reg prometheus.Registerer) *prometheus.CounterVec {
	c := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "scraft_rpc_denied_total",
		Help: "Calls refused: the caller is not allowed (permission denied) or sent a Raft request raft cannot take, by method.",
	}, []string{"rpc"})
	if reg != nil {
		reg.MustRegister(c)
	}
	return c
}

// deniedInterceptors count the PERMISSION_DENIED answers of every service
// registered on the server (Raft, peer API, client API).
func (s *Server) deniedInterceptors() []grpc.ServerOption {
	count := func(method string, err error) {
		if status.Code(err) == grpccodes.PermissionDenied {
			s.denied.WithLabelValues(path.Base(method)).Inc()
		}
	}
	return []grpc.ServerOption{
		grpc.ChainUnaryInterceptor(func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
			resp, err := handler(ctx, req)
			count(info.FullMethod, err)
			return resp, err
		}),
		grpc.ChainStreamInterceptor(func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
			err := handler(srv, ss)
			count(info.FullMethod, err)
			return err
		}),
	}
}
