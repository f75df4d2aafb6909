package devchain

import (
	"context"
	"errors"
	"fmt"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain/chainpb"
)

// errorDomain marks the ErrorInfo detail carrying a chain error code.
const errorDomain = "scraft.devchain"

// Backend is what the gRPC service serves. *Chain is one; a chain whose
// blocks another engine decides serves the same state and differs only in
// how a tx reaches a block (settlement/comet).
type Backend interface {
	Submit(ctx context.Context, raw []byte) (Outcome, error)
	Head() settlement.Head
	AppHash() protocol.Hash
	Block(height uint64) (*Block, error)
	ChannelInfo(id protocol.ChannelID) (*settlement.ChannelInfo, error)
	MemberInfo(id protocol.ChannelID, a protocol.Address) (*settlement.MemberInfo, error)
	Departure(id protocol.ChannelID, joinSeq uint64) (*contract.Departure, error)
	EpochLeader(id protocol.ChannelID, epoch uint64) (*contract.EpochLeader, error)
	ProposalInfo(id protocol.ChannelID, pid uint64) (*settlement.ProposalInfo, error)
	AccountInfo(a protocol.Address) (*settlement.AccountInfo, error)
	Code(hash protocol.Hash) ([]byte, error)
	ABI(id protocol.ChannelID) (*contract.ChannelABI, error)
	SettledState(id protocol.ChannelID, initial bool) (protocol.State, error)
	Watch(ctx context.Context, from settlement.EventID) settlement.EventStream
	Params() contract.Params
}

var _ Backend = (*Chain)(nil)

// Server serves a Backend over gRPC. Every method calls the same Chain
// methods an in-process client does.
type Server struct {
	chainpb.UnimplementedDevChainServer
	c Backend
}

// NewServer returns the gRPC service of c.
func NewServer(c Backend) *Server { return &Server{c: c} }

// Register adds the service to s.
func (s *Server) Register(g *grpc.Server) { chainpb.RegisterDevChainServer(g, s) }

// ServerOptions returns the gRPC options the service needs: messages as
// large as the biggest tx.
func ServerOptions(cfg Config) []grpc.ServerOption {
	return []grpc.ServerOption{grpc.MaxRecvMsgSize(cfg.MaxTxBytes + 4096), grpc.MaxSendMsgSize(64 << 20)}
}

// statusOf turns a chain or contract error into a gRPC status that carries
// its code, so the client can rebuild the sentinel.
func statusOf(err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return status.FromContextError(err).Err()
	}
	code := ErrorCode(err)
	gc := codes.FailedPrecondition
	switch {
	case code == 0:
		gc = codes.Internal
	case errors.Is(err, contract.ErrNoChannel), errors.Is(err, contract.ErrNotMember),
		errors.Is(err, contract.ErrNoProposal), errors.Is(err, contract.ErrNoEpochLeader), errors.Is(err, ErrNotFound):
		gc = codes.NotFound
	case errors.Is(err, contract.ErrMalformed), errors.Is(err, ErrMalformedTx):
		gc = codes.InvalidArgument
	case errors.Is(err, ErrClosed):
		gc = codes.Unavailable
	}
	st := status.New(gc, err.Error())
	if d, e := st.WithDetails(&errdetails.ErrorInfo{Domain: errorDomain, Reason: fmt.Sprint(code)}); e == nil {
		st = d
	}
	return st.Err()
}

func badArg(what string, err error) error {
	return statusOf(fmt.Errorf("%w: %s: %v", contract.ErrMalformed, what, err))
}

func channelID(b []byte) (protocol.ChannelID, error) {
	var id protocol.ChannelID
	if len(b) != len(id) {
		return id, badArg("channel id", fmt.Errorf("%d bytes", len(b)))
	}
	copy(id[:], b)
	return id, nil
}

func address(b []byte) (protocol.Address, error) {
	var a protocol.Address
	if len(b) != len(a) {
		return a, badArg("address", fmt.Errorf("%d bytes", len(b)))
	}
	copy(a[:], b)
	return a, nil
}

func marshal(v interface{ Encode(*protocol.Encoder) }) []byte {
	e := protocol.NewEncoder(128)
	v.Encode(e)
	return e.Out()
}

func eventPB(ev *settlement.Event) *chainpb.Event {
	return &chainpb.Event{Block: ev.ID.Block, Index: ev.ID.Index, TimeMs: ev.TimeMs, Kind: ev.Kind.String(), Event: encodeEvent(ev)}
}

// Submit implements chainpb.DevChainServer.
func (s *Server) Submit(ctx context.Context, req *chainpb.SubmitRequest) (*chainpb.SubmitResponse, error) {
	o, err := s.c.Submit(ctx, req.Tx)
	if err != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)) {
		return nil, status.FromContextError(err).Err()
	}
	resp := &chainpb.SubmitResponse{
		TxHash: o.TxHash[:], Block: o.Block, Index: o.Index, TimeMs: o.TimeMs,
		Code: ErrorCode(err), Channel: o.Receipt.Channel[:], Proposal: o.Receipt.Proposal,
		JoinSeq: o.Receipt.JoinSeq, Epoch: o.Receipt.Epoch,
	}
	if err != nil {
		resp.Error = err.Error()
		if resp.Code == 0 {
			return nil, statusOf(err)
		}
	}
	for i := range o.Events {
		resp.Events = append(resp.Events, eventPB(&o.Events[i]))
	}
	return resp, nil
}

// GetHead implements chainpb.DevChainServer.
func (s *Server) GetHead(context.Context, *chainpb.GetHeadRequest) (*chainpb.Head, error) {
	h := s.c.Head()
	ah := s.c.AppHash()
	return &chainpb.Head{Height: h.Height, TimeMs: h.TimeMs, AppHash: ah[:]}, nil
}

// GetBlock implements chainpb.DevChainServer.
func (s *Server) GetBlock(_ context.Context, req *chainpb.GetBlockRequest) (*chainpb.GetBlockResponse, error) {
	b, err := s.c.Block(req.Height)
	if err != nil {
		return nil, statusOf(err)
	}
	return &chainpb.GetBlockResponse{Block: b.Bytes()}, nil
}

// GetChannel implements chainpb.DevChainServer.
func (s *Server) GetChannel(_ context.Context, req *chainpb.ChannelRequest) (*chainpb.GetChannelResponse, error) {
	id, err := channelID(req.Channel)
	if err != nil {
		return nil, err
	}
	info, err := s.c.ChannelInfo(id)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &chainpb.GetChannelResponse{Channel: marshal(&info.Channel), AtMs: info.AtMs}
	for i := range info.Members {
		resp.Members = append(resp.Members, marshal(&info.Members[i].Member))
	}
	return resp, nil
}

// GetMember implements chainpb.DevChainServer.
func (s *Server) GetMember(_ context.Context, req *chainpb.MemberRequest) (*chainpb.GetMemberResponse, error) {
	id, err := channelID(req.Channel)
	if err != nil {
		return nil, err
	}
	a, err := address(req.Member)
	if err != nil {
		return nil, err
	}
	m, err := s.c.MemberInfo(id, a)
	if err != nil {
		return nil, statusOf(err)
	}
	return &chainpb.GetMemberResponse{Member: marshal(&m.Member), AtMs: s.c.Head().TimeMs}, nil
}

// GetDeparture implements chainpb.DevChainServer.
func (s *Server) GetDeparture(_ context.Context, req *chainpb.DepartureRequest) (*chainpb.GetDepartureResponse, error) {
	id, err := channelID(req.Channel)
	if err != nil {
		return nil, err
	}
	dp, err := s.c.Departure(id, req.JoinSeq)
	if err != nil {
		return nil, statusOf(err)
	}
	return &chainpb.GetDepartureResponse{Departure: marshal(dp)}, nil
}

// GetEpochLeader implements chainpb.DevChainServer.
func (s *Server) GetEpochLeader(_ context.Context, req *chainpb.EpochLeaderRequest) (*chainpb.GetEpochLeaderResponse, error) {
	id, err := channelID(req.Channel)
	if err != nil {
		return nil, err
	}
	el, err := s.c.EpochLeader(id, req.Epoch)
	if err != nil {
		return nil, statusOf(err)
	}
	return &chainpb.GetEpochLeaderResponse{EpochLeader: marshal(el)}, nil
}

// GetProposal implements chainpb.DevChainServer.
func (s *Server) GetProposal(_ context.Context, req *chainpb.ProposalRequest) (*chainpb.GetProposalResponse, error) {
	id, err := channelID(req.Channel)
	if err != nil {
		return nil, err
	}
	p, err := s.c.ProposalInfo(id, req.Proposal)
	if err != nil {
		return nil, statusOf(err)
	}
	resp := &chainpb.GetProposalResponse{Proposal: marshal(&p.Proposal)}
	for _, v := range p.Votes {
		resp.Votes = append(resp.Votes, &chainpb.Vote{Voter: append([]byte(nil), v.Voter[:]...), Option: uint32(v.Option)})
	}
	return resp, nil
}

// GetAccount implements chainpb.DevChainServer.
func (s *Server) GetAccount(_ context.Context, req *chainpb.AccountRequest) (*chainpb.Account, error) {
	a, err := address(req.Address)
	if err != nil {
		return nil, err
	}
	acc, err := s.c.AccountInfo(a)
	if err != nil {
		return nil, statusOf(err)
	}
	return &chainpb.Account{Balance: acc.Balance, PoolDeposit: acc.PoolDeposit, PoolLocked: acc.PoolLocked, NextNonce: acc.NextNonce}, nil
}

// GetCode implements chainpb.DevChainServer.
func (s *Server) GetCode(_ context.Context, req *chainpb.CodeRequest) (*chainpb.Code, error) {
	var h protocol.Hash
	if len(req.Hash) != len(h) {
		return nil, badArg("code hash", fmt.Errorf("%d bytes", len(req.Hash)))
	}
	copy(h[:], req.Hash)
	code, err := s.c.Code(h)
	if err != nil {
		return nil, statusOf(err)
	}
	return &chainpb.Code{Code: code}, nil
}

// GetABI implements chainpb.DevChainServer.
func (s *Server) GetABI(_ context.Context, req *chainpb.ABIRequest) (*chainpb.ABI, error) {
	id, err := channelID(req.Channel)
	if err != nil {
		return nil, err
	}
	abi, err := s.c.ABI(id)
	if err != nil {
		return nil, statusOf(err)
	}
	return &chainpb.ABI{Hash: abi.Hash[:], Abi: abi.JSON}, nil
}

// GetState implements chainpb.DevChainServer.
func (s *Server) GetState(_ context.Context, req *chainpb.StateRequest) (*chainpb.State, error) {
	id, err := channelID(req.Channel)
	if err != nil {
		return nil, err
	}
	st, err := s.c.SettledState(id, req.Initial)
	if err != nil {
		return nil, statusOf(err)
	}
	return &chainpb.State{State: marshal(st)}, nil
}

// GetParams implements chainpb.DevChainServer.
func (s *Server) GetParams(context.Context, *chainpb.GetParamsRequest) (*chainpb.Params, error) {
	return &chainpb.Params{Params: s.c.Params().Bytes()}, nil
}

// Watch implements chainpb.DevChainServer.
func (s *Server) Watch(req *chainpb.WatchRequest, stream chainpb.DevChain_WatchServer) error {
	es := s.c.Watch(stream.Context(), settlement.EventID{Block: req.FromBlock, Index: req.FromIndex})
	for {
		ev, err := es.Recv()
		if err != nil {
			return statusOf(err)
		}
		if err := stream.Send(eventPB(&ev)); err != nil {
			return err
		}
	}
}
