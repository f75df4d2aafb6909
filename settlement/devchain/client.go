package devchain

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain/chainpb"
)

// local reaches an in-process Chain by calling the same methods the gRPC
// server calls.
type local struct{ c *Chain }

func (l local) Submit(ctx context.Context, raw []byte) (Outcome, error) { return l.c.Submit(ctx, raw) }
func (l local) Head(context.Context) (settlement.Head, error)           { return l.c.Head(), nil }
func (l local) Channel(_ context.Context, id protocol.ChannelID) (*settlement.ChannelInfo, error) {
	return l.c.ChannelInfo(id)
}
func (l local) Member(_ context.Context, id protocol.ChannelID, a protocol.Address) (*settlement.MemberInfo, error) {
	return l.c.MemberInfo(id, a)
}
func (l local) Departure(_ context.Context, id protocol.ChannelID, joinSeq uint64) (*contract.Departure, error) {
	return l.c.Departure(id, joinSeq)
}
func (l local) EpochLeader(_ context.Context, id protocol.ChannelID, epoch uint64) (*contract.EpochLeader, error) {
	return l.c.EpochLeader(id, epoch)
}
func (l local) Proposal(_ context.Context, id protocol.ChannelID, pid uint64) (*settlement.ProposalInfo, error) {
	return l.c.ProposalInfo(id, pid)
}
func (l local) Account(_ context.Context, a protocol.Address) (*settlement.AccountInfo, error) {
	return l.c.AccountInfo(a)
}
func (l local) Code(_ context.Context, h protocol.Hash) ([]byte, error) { return l.c.Code(h) }
func (l local) ABI(_ context.Context, id protocol.ChannelID) (*contract.ChannelABI, error) {
	return l.c.ABI(id)
}
func (l local) State(_ context.Context, id protocol.ChannelID, initial bool) (protocol.State, error) {
	return l.c.SettledState(id, initial)
}
func (l local) Watch(ctx context.Context, from settlement.EventID) (settlement.EventStream, error) {
	return l.c.Watch(ctx, from), nil
}
func (l local) Params(context.Context) (contract.Params, error) { return l.c.Params(), nil }
func (l local) Close() error                                    { return nil }

// remote reaches a chain over gRPC.
type remote struct {
	conn *grpc.ClientConn
	api  chainpb.DevChainClient
	pin  *pin

	// params are the chain's settings once read: they never change.
	params struct {
		sync.Mutex
		p  contract.Params
		ok bool
	}
}

// errorFrom rebuilds a chain or contract error from a gRPC status.
func errorFrom(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	for _, d := range st.Details() {
		if info, ok := d.(*errdetails.ErrorInfo); ok && info.Domain == errorDomain {
			if code, e := strconv.ParseUint(info.Reason, 10, 32); e == nil {
				return ErrorOf(uint32(code), st.Message())
			}
		}
	}
	switch st.Code() {
	case 1: // Canceled
		return fmt.Errorf("%w: %s", context.Canceled, st.Message())
	case 4: // DeadlineExceeded
		return fmt.Errorf("%w: %s", context.DeadlineExceeded, st.Message())
	}
	return fmt.Errorf("devchain: %w", err)
}

func decodeRecord(b []byte, v interface{ Decode(*protocol.Decoder) }) error {
	d := protocol.NewDecoder(b)
	v.Decode(d)
	if err := d.Finish(); err != nil {
		return fmt.Errorf("devchain: decode %T: %w", v, err)
	}
	return nil
}

func eventFromPB(e *chainpb.Event) (settlement.Event, error) {
	ev, err := DecodeEvent(e.Event)
	if err != nil {
		return ev, fmt.Errorf("devchain: decode event %d.%d: %w", e.Block, e.Index, err)
	}
	return ev, nil
}

func (r *remote) Submit(ctx context.Context, raw []byte) (Outcome, error) {
	resp, err := r.api.Submit(ctx, &chainpb.SubmitRequest{Tx: raw})
	if err != nil {
		err = errorFrom(err)
		return Outcome{Err: err}, err
	}
	o := Outcome{Block: resp.Block, Index: resp.Index, TimeMs: resp.TimeMs,
		Receipt: Receipt{Proposal: resp.Proposal, JoinSeq: resp.JoinSeq, Epoch: resp.Epoch}}
	copy(o.TxHash[:], resp.TxHash)
	copy(o.Receipt.Channel[:], resp.Channel)
	for _, e := range resp.Events {
		ev, err := eventFromPB(e)
		if err != nil {
			return o, err
		}
		o.Events = append(o.Events, ev)
	}
	o.Err = ErrorOf(resp.Code, resp.Error)
	return o, o.Err
}

func (r *remote) Head(ctx context.Context) (settlement.Head, error) {
	h, err := r.api.GetHead(ctx, &chainpb.GetHeadRequest{})
	if err != nil {
		return settlement.Head{}, errorFrom(err)
	}
	return settlement.Head{Height: h.Height, TimeMs: h.TimeMs}, nil
}

// Params asks the chain for its settings once; a chain server from before
// they were served runs with the defaults.
func (r *remote) Params(ctx context.Context) (contract.Params, error) {
	r.params.Lock()
	defer r.params.Unlock()
	if r.params.ok {
		return r.params.p, nil
	}
	resp, err := r.api.GetParams(ctx, &chainpb.GetParamsRequest{})
	switch {
	case status.Code(err) == codes.Unimplemented:
		r.params.p = contract.DefaultParams()
	case err != nil:
		return contract.Params{}, errorFrom(err)
	default:
		p, err := contract.DecodeParams(resp.Params)
		if err != nil {
			return contract.Params{}, fmt.Errorf("devchain: decode settings: %w", err)
		}
		r.params.p = p
	}
	r.params.ok = true
	return r.params.p, nil
}

func (r *remote) Channel(ctx context.Context, id protocol.ChannelID) (*settlement.ChannelInfo, error) {
	p, err := r.Params(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := r.api.GetChannel(ctx, &chainpb.ChannelRequest{Channel: id[:]})
	if err != nil {
		return nil, errorFrom(err)
	}
	out := &settlement.ChannelInfo{AtMs: resp.AtMs}
	if err := decodeRecord(resp.Channel, &out.Channel); err != nil {
		return nil, err
	}
	for _, b := range resp.Members {
		var m contract.Member
		if err := decodeRecord(b, &m); err != nil {
			return nil, err
		}
		out.Members = append(out.Members, settlement.MemberInfo{Member: m, Valid: m.ValidAt(resp.AtMs, p.HeartbeatTTL)})
	}
	return out, nil
}

func (r *remote) Member(ctx context.Context, id protocol.ChannelID, a protocol.Address) (*settlement.MemberInfo, error) {
	p, err := r.Params(ctx)
	if err != nil {
		return nil, err
	}
	resp, err := r.api.GetMember(ctx, &chainpb.MemberRequest{Channel: id[:], Member: a[:]})
	if err != nil {
		return nil, errorFrom(err)
	}
	var m contract.Member
	if err := decodeRecord(resp.Member, &m); err != nil {
		return nil, err
	}
	return &settlement.MemberInfo{Member: m, Valid: m.ValidAt(resp.AtMs, p.HeartbeatTTL)}, nil
}

func (r *remote) Departure(ctx context.Context, id protocol.ChannelID, joinSeq uint64) (*contract.Departure, error) {
	resp, err := r.api.GetDeparture(ctx, &chainpb.DepartureRequest{Channel: id[:], JoinSeq: joinSeq})
	if err != nil {
		return nil, recordError(err, contract.ErrNoDeparture)
	}
	var dp contract.Departure
	if err := decodeRecord(resp.Departure, &dp); err != nil {
		return nil, err
	}
	return &dp, nil
}

func (r *remote) EpochLeader(ctx context.Context, id protocol.ChannelID, epoch uint64) (*contract.EpochLeader, error) {
	resp, err := r.api.GetEpochLeader(ctx, &chainpb.EpochLeaderRequest{Channel: id[:], Epoch: epoch})
	if err != nil {
		return nil, recordError(err, contract.ErrNoEpochLeader)
	}
	var el contract.EpochLeader
	if err := decodeRecord(resp.EpochLeader, &el); err != nil {
		return nil, err
	}
	return &el, nil
}

// recordError is errorFrom for a query of history records: a chain server
// from before the records were kept does not know the call, and answers
// as a chain that has no such record (none, the not-found error).
func recordError(err, none error) error {
	if status.Code(err) == codes.Unimplemented {
		return fmt.Errorf("%w: the chain serves no such records (%v)", none, err)
	}
	return errorFrom(err)
}

func (r *remote) Proposal(ctx context.Context, id protocol.ChannelID, pid uint64) (*settlement.ProposalInfo, error) {
	resp, err := r.api.GetProposal(ctx, &chainpb.ProposalRequest{Channel: id[:], Proposal: pid})
	if err != nil {
		return nil, errorFrom(err)
	}
	out := &settlement.ProposalInfo{}
	if err := decodeRecord(resp.Proposal, &out.Proposal); err != nil {
		return nil, err
	}
	for _, v := range resp.Votes {
		var rec contract.VoteRecord
		copy(rec.Voter[:], v.Voter)
		rec.Option = protocol.VoteOption(v.Option)
		out.Votes = append(out.Votes, rec)
	}
	return out, nil
}

func (r *remote) Account(ctx context.Context, a protocol.Address) (*settlement.AccountInfo, error) {
	resp, err := r.api.GetAccount(ctx, &chainpb.AccountRequest{Address: a[:]})
	if err != nil {
		return nil, errorFrom(err)
	}
	return &settlement.AccountInfo{
		Account:   contract.Account{Balance: resp.Balance, PoolDeposit: resp.PoolDeposit, PoolLocked: resp.PoolLocked},
		NextNonce: resp.NextNonce,
	}, nil
}

func (r *remote) Code(ctx context.Context, h protocol.Hash) ([]byte, error) {
	resp, err := r.api.GetCode(ctx, &chainpb.CodeRequest{Hash: h[:]})
	if err != nil {
		return nil, errorFrom(err)
	}
	return resp.Code, nil
}

func (r *remote) ABI(ctx context.Context, id protocol.ChannelID) (*contract.ChannelABI, error) {
	resp, err := r.api.GetABI(ctx, &chainpb.ABIRequest{Channel: id[:]})
	if err != nil {
		return nil, recordError(err, contract.ErrNoABI)
	}
	var h protocol.Hash
	if len(resp.Hash) != len(h) || contract.ABIHashOf(resp.Abi) != protocol.Hash(resp.Hash) {
		return nil, fmt.Errorf("devchain: the chain answered an ABI that does not match its hash")
	}
	copy(h[:], resp.Hash)
	return &contract.ChannelABI{Hash: h, JSON: resp.Abi}, nil
}

func (r *remote) State(ctx context.Context, id protocol.ChannelID, initial bool) (protocol.State, error) {
	resp, err := r.api.GetState(ctx, &chainpb.StateRequest{Channel: id[:], Initial: initial})
	if err != nil {
		return nil, errorFrom(err)
	}
	d := protocol.NewDecoder(resp.State)
	st := protocol.DecodeState(d)
	if err := d.Finish(); err != nil {
		return nil, fmt.Errorf("devchain: decode state: %w", err)
	}
	return st, nil
}

func (r *remote) Watch(ctx context.Context, from settlement.EventID) (settlement.EventStream, error) {
	s, err := r.api.Watch(ctx, &chainpb.WatchRequest{FromBlock: from.Block, FromIndex: from.Index})
	if err != nil {
		return nil, errorFrom(err)
	}
	return &remoteStream{s: s, ctx: ctx}, nil
}

func (r *remote) Close() error { return r.conn.Close() }

type remoteStream struct {
	s   chainpb.DevChain_WatchClient
	ctx context.Context
}

func (rs *remoteStream) Recv() (settlement.Event, error) {
	e, err := rs.s.Recv()
	if err != nil {
		if err := rs.ctx.Err(); err != nil {
			return settlement.Event{}, err
		}
		if errors.Is(err, io.EOF) {
			return settlement.Event{}, fmt.Errorf("devchain: watch stream ended: %w", ErrClosed)
		}
		return settlement.Event{}, errorFrom(err)
	}
	return eventFromPB(e)
}

// Client is a settlement.Chain bound to one signing key, in process
// (NewLocal) or over gRPC (Dial). Its txs get consecutive nonces; after a
// tx is refused before execution it re-reads its nonce from the chain.
type Client struct {
	b   Transport
	key *protocol.Key

	mu   sync.Mutex
	next uint64 // the next nonce; 0 means read it from the chain
}

var _ settlement.Chain = (*Client)(nil)

// NewLocal returns a Client of the in-process chain c signing with key.
func NewLocal(c *Chain, key *protocol.Key) *Client { return &Client{b: local{c}, key: key} }

// Dial returns a Client of the chain at addr (host:port) signing with key.
// The link is TLS 1.3 and the chain's key must be one opts pin
// (WithChainKeys, WithPinFile); without either Dial fails with
// ErrNoChainKey. The connection is made lazily; calls fail until the chain
// answers, and with ErrChainKey while the chain's key is not a pinned one.
func Dial(addr string, key *protocol.Key, opts ...DialOption) (*Client, error) {
	creds, p, err := chainCredentials(addr, opts)
	if err != nil {
		return nil, err
	}
	conn, err := grpc.NewClient(addr, append(creds,
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(64<<20), grpc.MaxCallSendMsgSize(64<<20)))...)
	if err != nil {
		return nil, fmt.Errorf("devchain: dial %s: %w", addr, err)
	}
	return &Client{b: &remote{conn: conn, api: chainpb.NewDevChainClient(conn), pin: p}, key: key}, nil
}

// ChainKey returns the address of the key the chain presented on the last
// connection the client accepted; false before one, and always for an
// in-process client.
func (cl *Client) ChainKey() (protocol.Address, bool) {
	if r, ok := cl.b.(*remote); ok {
		return r.pin.seen()
	}
	return protocol.Address{}, false
}

// Close releases the connection of a dialed Client.
func (cl *Client) Close() error { return cl.b.Close() }

// Address implements settlement.Chain.
func (cl *Client) Address() protocol.Address { return cl.key.Address() }

// Key returns the key the client signs with.
func (cl *Client) Key() *protocol.Key { return cl.key }

// Send signs call with the next nonce and submits it, waiting for its block.
// If the nonce was used meanwhile (the key also signs elsewhere), it reads
// the nonce again and retries once.
func (cl *Client) Send(ctx context.Context, call contract.Call) (Outcome, error) {
	o, err := cl.send(ctx, call)
	if errors.Is(err, ErrBadNonce) && o.Block == 0 {
		o, err = cl.send(ctx, call)
	}
	return o, err
}

func (cl *Client) send(ctx context.Context, call contract.Call) (Outcome, error) {
	cl.mu.Lock()
	if cl.next == 0 {
		acc, err := cl.b.Account(ctx, cl.key.Address())
		if err != nil {
			cl.mu.Unlock()
			return Outcome{Err: err}, err
		}
		cl.next = acc.NextNonce
	}
	nonce := cl.next
	cl.next++
	cl.mu.Unlock()

	o, err := cl.b.Submit(ctx, NewTx(cl.key, nonce, call).Bytes())
	if err != nil && o.Block == 0 {
		// Refused before execution, or abandoned: the nonce may be unused.
		// Read it again next time; the chain counts txs still pending.
		cl.mu.Lock()
		cl.next = 0
		cl.mu.Unlock()
	}
	return o, err
}

// Head implements settlement.Chain.
func (cl *Client) Head(ctx context.Context) (settlement.Head, error) { return cl.b.Head(ctx) }

// Params implements settlement.Chain.
func (cl *Client) Params(ctx context.Context) (contract.Params, error) { return cl.b.Params(ctx) }

// Channel implements settlement.Chain.
func (cl *Client) Channel(ctx context.Context, id protocol.ChannelID) (*settlement.ChannelInfo, error) {
	return cl.b.Channel(ctx, id)
}

// Member implements settlement.Chain.
func (cl *Client) Member(ctx context.Context, id protocol.ChannelID, a protocol.Address) (*settlement.MemberInfo, error) {
	return cl.b.Member(ctx, id, a)
}

// Departure implements settlement.Chain.
func (cl *Client) Departure(ctx context.Context, id protocol.ChannelID, joinSeq uint64) (*contract.Departure, error) {
	return cl.b.Departure(ctx, id, joinSeq)
}

// EpochLeader implements settlement.Chain.
func (cl *Client) EpochLeader(ctx context.Context, id protocol.ChannelID, epoch uint64) (*contract.EpochLeader, error) {
	return cl.b.EpochLeader(ctx, id, epoch)
}

// SettledState implements settlement.Chain.
func (cl *Client) SettledState(ctx context.Context, id protocol.ChannelID) (protocol.State, error) {
	return cl.b.State(ctx, id, false)
}

// InitialState implements settlement.Chain.
func (cl *Client) InitialState(ctx context.Context, id protocol.ChannelID) (protocol.State, error) {
	return cl.b.State(ctx, id, true)
}

// Code implements settlement.Chain.
func (cl *Client) Code(ctx context.Context, h protocol.Hash) ([]byte, error) {
	return cl.b.Code(ctx, h)
}

// ABI implements settlement.Chain.
func (cl *Client) ABI(ctx context.Context, id protocol.ChannelID) (*contract.ChannelABI, error) {
	return cl.b.ABI(ctx, id)
}

// Proposal implements settlement.Chain.
func (cl *Client) Proposal(ctx context.Context, id protocol.ChannelID, pid uint64) (*settlement.ProposalInfo, error) {
	return cl.b.Proposal(ctx, id, pid)
}

// Account implements settlement.Chain.
func (cl *Client) Account(ctx context.Context, a protocol.Address) (*settlement.AccountInfo, error) {
	return cl.b.Account(ctx, a)
}

// Watch implements settlement.Chain.
func (cl *Client) Watch(ctx context.Context, from settlement.EventID) (settlement.EventStream, error) {
	return cl.b.Watch(ctx, from)
}

func (cl *Client) do(ctx context.Context, call contract.Call) error {
	_, err := cl.Send(ctx, call)
	return err
}

// CreateChannel implements settlement.Chain.
func (cl *Client) CreateChannel(ctx context.Context, spec settlement.ChannelSpec) (protocol.ChannelID, error) {
	o, err := cl.Send(ctx, &spec)
	return o.Receipt.Channel, err
}

// Stake implements settlement.Chain.
func (cl *Client) Stake(ctx context.Context, id protocol.ChannelID, amount uint64) error {
	return cl.do(ctx, &contract.Stake{Channel: id, Amount: amount})
}

// Deposit implements settlement.Chain.
func (cl *Client) Deposit(ctx context.Context, amount uint64) error {
	return cl.do(ctx, &contract.Deposit{Amount: amount})
}

// Withdraw implements settlement.Chain.
func (cl *Client) Withdraw(ctx context.Context, amount uint64) error {
	return cl.do(ctx, &contract.Withdraw{Amount: amount})
}

// Join implements settlement.Chain.
func (cl *Client) Join(ctx context.Context, id protocol.ChannelID, usePool bool) (uint64, error) {
	o, err := cl.Send(ctx, &contract.Join{Channel: id, UsePool: usePool})
	return o.Receipt.JoinSeq, err
}

// Leave implements settlement.Chain.
func (cl *Client) Leave(ctx context.Context, id protocol.ChannelID) error {
	return cl.do(ctx, &contract.Leave{Channel: id})
}

// KeepAlive implements settlement.Chain.
func (cl *Client) KeepAlive(ctx context.Context, id protocol.ChannelID) error {
	return cl.do(ctx, &contract.KeepAlive{Channel: id})
}

// SetNodeAddress implements settlement.Chain.
func (cl *Client) SetNodeAddress(ctx context.Context, id protocol.ChannelID, addr string) error {
	return cl.do(ctx, &contract.SetNodeAddress{Channel: id, Address: addr})
}

// ClaimLeader implements settlement.Chain.
func (cl *Client) ClaimLeader(ctx context.Context, id protocol.ChannelID, epoch uint64, atts []protocol.Attestation) (uint64, error) {
	o, err := cl.Send(ctx, &contract.ClaimLeader{Channel: id, Epoch: epoch, Attestations: atts})
	return o.Receipt.Epoch, err
}

// TransferLeader implements settlement.Chain.
func (cl *Client) TransferLeader(ctx context.Context, id protocol.ChannelID, epoch uint64, to protocol.Address) (uint64, error) {
	o, err := cl.Send(ctx, &contract.TransferLeader{Channel: id, Epoch: epoch, To: to})
	return o.Receipt.Epoch, err
}

// CreateProposal implements settlement.Chain.
func (cl *Client) CreateProposal(ctx context.Context, id protocol.ChannelID, kind protocol.ProposalKind, data []byte) (uint64, error) {
	o, err := cl.Send(ctx, &contract.CreateProposal{Channel: id, Type: kind, Data: data})
	return o.Receipt.Proposal, err
}

// Vote implements settlement.Chain.
func (cl *Client) Vote(ctx context.Context, id protocol.ChannelID, pid uint64, opt protocol.VoteOption) error {
	return cl.do(ctx, &contract.Vote{Channel: id, Proposal: pid, Option: opt})
}

// SubmitVotes implements settlement.Chain.
func (cl *Client) SubmitVotes(ctx context.Context, id protocol.ChannelID, pid uint64, votes []protocol.Vote) error {
	return cl.do(ctx, &contract.SubmitVotes{Channel: id, Proposal: pid, Votes: votes})
}

// ExecuteProposal implements settlement.Chain.
func (cl *Client) ExecuteProposal(ctx context.Context, id protocol.ChannelID, pid uint64) error {
	return cl.do(ctx, &contract.ExecuteProposal{Channel: id, Proposal: pid})
}

// ProveInclusion implements settlement.Chain.
func (cl *Client) ProveInclusion(ctx context.Context, id protocol.ChannelID, pid uint64, batch []byte) error {
	return cl.do(ctx, &contract.ProveInclusion{Channel: id, Proposal: pid, Batch: batch})
}

// Delegate implements settlement.Chain.
func (cl *Client) Delegate(ctx context.Context, id protocol.ChannelID, candidate protocol.Address) error {
	return cl.do(ctx, &contract.Delegate{Channel: id, Candidate: candidate})
}

// CloseChannel implements settlement.Chain.
func (cl *Client) CloseChannel(ctx context.Context, id protocol.ChannelID) error {
	return cl.do(ctx, &contract.Close{Channel: id})
}

// Transport is how a Client reaches the chain: in process (NewLocal), over
// gRPC (Dial), or through an implementation outside this package
// (settlement/comet's Quorum asks several validators and takes only answers
// enough of them agree on). Its methods are those of the settlement.Chain
// reads, plus Submit of an encoded signed tx.
type Transport interface {
	Submit(ctx context.Context, raw []byte) (Outcome, error)
	Head(ctx context.Context) (settlement.Head, error)
	Channel(ctx context.Context, id protocol.ChannelID) (*settlement.ChannelInfo, error)
	Member(ctx context.Context, id protocol.ChannelID, a protocol.Address) (*settlement.MemberInfo, error)
	Departure(ctx context.Context, id protocol.ChannelID, joinSeq uint64) (*contract.Departure, error)
	EpochLeader(ctx context.Context, id protocol.ChannelID, epoch uint64) (*contract.EpochLeader, error)
	Proposal(ctx context.Context, id protocol.ChannelID, pid uint64) (*settlement.ProposalInfo, error)
	Account(ctx context.Context, a protocol.Address) (*settlement.AccountInfo, error)
	Code(ctx context.Context, h protocol.Hash) ([]byte, error)
	ABI(ctx context.Context, id protocol.ChannelID) (*contract.ChannelABI, error)
	State(ctx context.Context, id protocol.ChannelID, initial bool) (protocol.State, error)
	Watch(ctx context.Context, from settlement.EventID) (settlement.EventStream, error)
	Params(ctx context.Context) (contract.Params, error)
	Close() error
}

// NewClient returns a Client that signs with key and reaches the chain
// through t.
func NewClient(t Transport, key *protocol.Key) *Client { return &Client{b: t, key: key} }

// SubmitRaw submits an encoded signed tx as it is and waits for its block.
func (cl *Client) SubmitRaw(ctx context.Context, raw []byte) (Outcome, error) {
	return cl.b.Submit(ctx, raw)
}
