package cluster

import (
	"context"
	"crypto/ed25519"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/scraft/scraft/cluster/peerpb"
	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/protocol/rpcerr"
	"github.com/scraft/scraft/protocol/tlsid"
)

// The peer API (cluster/proto/peer.proto): what members ask each other.
// Every request is signed by the calling node (Caller) and arrives on a
// mutual TLS connection whose client certificate key is the calling node's
// member key. A node answers only a TLS caller that is a member of the
// channel on chain and whose key is the request's signer (Join excepted:
// see admitJoin).

const (
	domainPeer = "scraft/peer/v1"
	// maxSkew bounds the difference between a request's signing time and
	// the callee's clock.
	maxSkew = 5 * time.Minute
)

// authMessage is what a Caller signs: method, time and the request's
// fields in a fixed order.
func authMessage(method string, unixMs int64, parts ...[]byte) []byte {
	e := protocol.NewEncoder(128)
	e.String(method)
	e.I64(unixMs)
	for _, p := range parts {
		e.Bytes(p)
	}
	return e.Out()
}

func signCaller(k *protocol.Key, method string, parts ...[]byte) *peerpb.Caller {
	now := time.Now().UnixMilli()
	return &peerpb.Caller{
		PublicKey: k.Public(),
		UnixMs:    now,
		Signature: k.Sign(domainPeer, authMessage(method, now, parts...)),
	}
}

// verifyCaller returns the address of a request's signer.
func verifyCaller(c *peerpb.Caller, method string, parts ...[]byte) (protocol.Address, ed25519.PublicKey, error) {
	if c == nil {
		return protocol.Address{}, nil, fmt.Errorf("%w: no caller", ErrUnauthenticated)
	}
	if d := time.Since(time.UnixMilli(c.UnixMs)); d > maxSkew || d < -maxSkew {
		return protocol.Address{}, nil, fmt.Errorf("%w: request signed %s away from now", ErrUnauthenticated, d)
	}
	if !protocol.Verify(c.PublicKey, domainPeer, authMessage(method, c.UnixMs, parts...), c.Signature) {
		return protocol.Address{}, nil, fmt.Errorf("%w: bad signature", ErrUnauthenticated)
	}
	return protocol.AddressOf(c.PublicKey), c.PublicKey, nil
}

// peerService serves the peer API of a Node.
type peerService struct {
	peerpb.UnimplementedPeerServer
	n *Node
}

// admit checks the TLS caller of a peer API call for channel raw: it is
// the request's signer and a member of the channel on chain.
func (p *peerService) admit(ctx context.Context, raw []byte, signer protocol.Address) error {
	tlsCaller, _, ok := tlsid.FromContext(ctx)
	if !ok {
		return rpcerr.Err(fmt.Errorf("%w: the peer API needs a member certificate", ErrNotMember))
	}
	if tlsCaller != signer {
		return rpcerr.Err(fmt.Errorf("%w: request signed by %s on the connection of %s", ErrNotMember, signer, tlsCaller))
	}
	return p.onChain(ctx, raw, tlsCaller)
}

// onChain checks that a is a member of channel raw on chain.
func (p *peerService) onChain(ctx context.Context, raw []byte, a protocol.Address) error {
	var id protocol.ChannelID
	if len(raw) != len(id) {
		return rpcerr.Err(fmt.Errorf("%w: channel id", ErrBadTx))
	}
	copy(id[:], raw)
	member, _, err := p.n.authz.onChain(ctx, id, a)
	if err != nil {
		return rpcerr.Err(err)
	}
	if !member {
		return rpcerr.Err(fmt.Errorf("%w: %s is not a member of channel %s on chain", ErrNotMember, a, id))
	}
	return nil
}

// admitJoin checks the TLS caller of a Join: a member of the channel on
// chain that is either the joiner (the request's signer) or a node of the
// receiver's Raft configuration passing on a join it received, unchanged
// (the joiner's signature still binds it).
func (p *peerService) admitJoin(ctx context.Context, raw []byte, joiner protocol.Address) error {
	tlsCaller, _, ok := tlsid.FromContext(ctx)
	if !ok {
		return rpcerr.Err(fmt.Errorf("%w: the peer API needs a member certificate", ErrNotMember))
	}
	if err := p.onChain(ctx, raw, tlsCaller); err != nil {
		return err
	}
	if tlsCaller == joiner {
		return nil
	}
	var id protocol.ChannelID
	copy(id[:], raw)
	if c, ok := p.n.Channel(id); ok {
		if _, ok := c.raftServer(tlsCaller); ok {
			return nil
		}
	}
	return rpcerr.Err(fmt.Errorf("%w: join of %s passed on by %s, not a node of the channel here", ErrNotMember, joiner, tlsCaller))
}

// channelFor returns a hosted channel whose member the caller is.
func (p *peerService) channelFor(raw []byte, caller protocol.Address) (*Channel, error) {
	var id protocol.ChannelID
	if len(raw) != len(id) {
		return nil, rpcerr.Err(fmt.Errorf("%w: channel id", ErrBadTx))
	}
	copy(id[:], raw)
	c, ok := p.n.Channel(id)
	if !ok {
		return nil, rpcerr.Err(ErrUnknownChannel)
	}
	if !c.isMember(caller) {
		return nil, rpcerr.Err(ErrNotMember)
	}
	return c, nil
}

// isMember reports whether a is a member of the channel: in the state, or
// a server of its Raft configuration.
func (c *Channel) isMember(a protocol.Address) bool {
	if _, ok := c.raftServer(a); ok {
		return true
	}
	var ok bool
	c.fsm.machine(func(m *fsm.Machine) {
		if m != nil {
			_, ok = m.Member(a)
		}
	})
	return ok
}

// maxForwardTxs and maxForwardBytes bound one ForwardTxs request.
const (
	maxForwardTxs   = 512
	maxForwardBytes = 2 << 20
)

func (p *peerService) ForwardTxs(ctx context.Context, req *peerpb.ForwardTxsRequest) (*peerpb.ForwardTxsResponse, error) {
	if len(req.Txs) > maxForwardTxs {
		return nil, rpcerr.Err(fmt.Errorf("%w: cluster: %d txs in one request, at most %d", protocol.ErrTooLarge, len(req.Txs), maxForwardTxs))
	}
	caller, _, err := verifyCaller(req.Caller, "ForwardTxs", forwardAuth(req.Channel, req.Hops, req.Txs)...)
	if err != nil {
		return nil, rpcerr.Err(err)
	}
	if err := p.admit(ctx, req.Channel, caller); err != nil {
		return nil, err
	}
	c, err := p.channelFor(req.Channel, caller)
	if err != nil {
		return nil, err
	}
	results := make([]*peerpb.ForwardedTx, len(req.Txs))
	var wg sync.WaitGroup
	for i, raw := range req.Txs {
		tx, err := protocol.DecodeSignedTx(raw)
		if err != nil {
			results[i] = forwardedError(fmt.Errorf("%w: %v", ErrBadTx, err))
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			out, err := c.submit(ctx, tx, max(req.Hops, 1))
			if err != nil {
				results[i] = forwardedError(err)
				return
			}
			results[i] = &peerpb.ForwardedTx{Outcome: outcomeToPB(out)}
		}()
	}
	wg.Wait()
	return &peerpb.ForwardTxsResponse{Results: results}, nil
}

// forwardAuth is what the caller of ForwardTxs signs: the channel, the
// hops and every tx.
func forwardAuth(channel []byte, hops uint32, txs [][]byte) [][]byte {
	parts := make([][]byte, 0, 2+len(txs))
	parts = append(parts, channel, u64bytes(uint64(hops)))
	return append(parts, txs...)
}

// forwardedError is the answer for a forwarded tx that failed: its status
// (rpcerr), and the gRPC code and message for readers of the older
// fields.
func forwardedError(err error) *peerpb.ForwardedTx {
	st := rpcerr.Status(err)
	return &peerpb.ForwardedTx{ErrorCode: uint32(st.Code()), Error: st.Message(), Status: rpcerr.Marshal(err)}
}

func (p *peerService) Join(ctx context.Context, req *peerpb.JoinRequest) (*peerpb.JoinResponse, error) {
	caller, pub, err := verifyCaller(req.Caller, "Join", req.Channel, []byte(req.Address))
	if err != nil {
		return nil, rpcerr.Err(err)
	}
	if err := p.admitJoin(ctx, req.Channel, caller); err != nil {
		return nil, err
	}
	var id protocol.ChannelID
	if len(req.Channel) != len(id) {
		return nil, rpcerr.Err(fmt.Errorf("%w: channel id", ErrBadTx))
	}
	copy(id[:], req.Channel)
	c, ok := p.n.Channel(id)
	if !ok {
		return nil, rpcerr.Err(ErrUnknownChannel)
	}
	resp, err := c.handleJoin(ctx, req, caller, pub)
	if err != nil {
		return nil, rpcerr.Err(err)
	}
	return resp, nil
}

func (p *peerService) Attest(ctx context.Context, req *peerpb.AttestRequest) (*peerpb.AttestResponse, error) {
	caller, _, err := verifyCaller(req.Caller, "Attest", req.Channel, u64bytes(req.Epoch))
	if err != nil {
		return nil, rpcerr.Err(err)
	}
	if err := p.admit(ctx, req.Channel, caller); err != nil {
		return nil, err
	}
	c, err := p.channelFor(req.Channel, caller)
	if err != nil {
		return nil, err
	}
	a, err := c.attest(caller, req.Epoch)
	if err != nil {
		return nil, rpcerr.Err(err)
	}
	return &peerpb.AttestResponse{Attestation: protocol.Marshal(a)}, nil
}

func (p *peerService) Status(ctx context.Context, req *peerpb.StatusRequest) (*peerpb.StatusResponse, error) {
	caller, _, err := verifyCaller(req.Caller, "Status", req.Channel)
	if err != nil {
		return nil, rpcerr.Err(err)
	}
	if err := p.admit(ctx, req.Channel, caller); err != nil {
		return nil, err
	}
	c, err := p.channelFor(req.Channel, caller)
	if err != nil {
		return nil, err
	}
	// The leader asks non-voters for their status to decide a promotion:
	// answer at once even while the FSM is busy.
	st := c.Status()
	resp := &peerpb.StatusResponse{
		Height: st.Height, Digest: st.Digest[:], Leader: st.Leader.String(), Epoch: st.Epoch,
		RaftState: st.RaftState, AppliedIndex: st.AppliedIndex, CommitIndex: st.CommitIndex, LastIndex: st.LastIndex,
	}
	c.pathReport(resp)
	return resp, nil
}

func u64bytes(v uint64) []byte {
	e := protocol.NewEncoder(8)
	e.U64(v)
	return e.Out()
}

func outcomeToPB(o *protocol.Outcome) *peerpb.TxOutcome {
	return &peerpb.TxOutcome{
		Height:    o.Height,
		Result:    protocol.Marshal(&o.Result),
		Digest:    o.Digest[:],
		Message:   o.Message,
		Output:    o.Output,
		ChangeSet: o.ChangeSet.Bytes(),
	}
}

func outcomeFromPB(tx *protocol.SignedTx, r *peerpb.TxOutcome) (*protocol.Outcome, error) {
	o := &protocol.Outcome{Height: r.Height, Kind: protocol.EntryCall, Hash: tx.Hash(), Message: r.Message, Output: r.Output}
	if err := protocol.Unmarshal(r.Result, &o.Result); err != nil {
		return nil, fmt.Errorf("cluster: forwarded tx result: %w", err)
	}
	if len(r.Digest) != len(o.Digest) {
		return nil, errors.New("cluster: forwarded tx digest")
	}
	copy(o.Digest[:], r.Digest)
	cs, err := protocol.DecodeChangeSet(r.ChangeSet)
	if err != nil {
		return nil, fmt.Errorf("cluster: forwarded tx change set: %w", err)
	}
	o.ChangeSet = cs
	return o, nil
}

// peerClient calls other nodes' peer API.
type peerClient struct {
	key  *protocol.Key
	dial func(addr string) (*grpc.ClientConn, error)
	// authz, when set, checks that the node that answered a call is a
	// member of the channel on chain (checkServer).
	authz *authorizer
}

// checkServer checks the node that answered a call for channel id: with
// TLS, its certificate key must be a member's of the channel on chain, so
// a node that is no member cannot answer in a member's place. Without TLS
// (no certificate at all) there is nothing to check.
func (p *peerClient) checkServer(ctx context.Context, addr string, id protocol.ChannelID, pr *peer.Peer) error {
	if p.authz == nil {
		return nil
	}
	pub, ok := tlsid.FromPeer(pr)
	if !ok {
		if _, isTLS := pr.AuthInfo.(credentials.TLSInfo); isTLS {
			return fmt.Errorf("%w: %s presented no member certificate", ErrNotMember, addr)
		}
		return nil
	}
	a := protocol.AddressOf(pub)
	member, _, err := p.authz.onChain(ctx, id, a)
	if err != nil {
		return err
	}
	if !member {
		return fmt.Errorf("%w: the node at %s holds the key of %s, not a member of channel %s", ErrNotMember, addr, a, id)
	}
	return nil
}

func (p *peerClient) client(addr string) (peerpb.PeerClient, error) {
	conn, err := p.dial(addr)
	if err != nil {
		return nil, err
	}
	return peerpb.NewPeerClient(conn), nil
}

// forwardTxs sends txs (raw: their encodings) to the leader at addr in one
// request and returns one outcome or error per tx. An error of the request
// itself is every tx's.
func (p *peerClient) forwardTxs(ctx context.Context, addr string, id protocol.ChannelID, txs []*protocol.SignedTx, raw [][]byte, hops uint32) ([]*protocol.Outcome, []error) {
	outs := make([]*protocol.Outcome, len(txs))
	errs := make([]error, len(txs))
	all := func(err error) ([]*protocol.Outcome, []error) {
		for i := range errs {
			errs[i] = err
		}
		return outs, errs
	}
	cl, err := p.client(addr)
	if err != nil {
		return all(fmt.Errorf("%w: %v", ErrNoLeader, err))
	}
	var pr peer.Peer
	resp, err := cl.ForwardTxs(ctx, &peerpb.ForwardTxsRequest{
		Channel: id[:], Txs: raw, Hops: hops,
		Caller: signCaller(p.key, "ForwardTxs", forwardAuth(id[:], hops, raw)...),
	}, grpc.Peer(&pr))
	if err != nil {
		return all(rpcerr.From(err))
	}
	if err := p.checkServer(ctx, addr, id, &pr); err != nil {
		return all(fmt.Errorf("%w: %v", ErrNoLeader, err))
	}
	if len(resp.Results) != len(txs) {
		return all(fmt.Errorf("%w: %d results for %d forwarded txs", ErrNoLeader, len(resp.Results), len(txs)))
	}
	for i, r := range resp.Results {
		switch {
		case r.GetOutcome() != nil:
			outs[i], errs[i] = outcomeFromPB(txs[i], r.Outcome)
		case len(r.Status) > 0:
			errs[i] = rpcerr.Unmarshal(r.Status)
		case r.ErrorCode == uint32(codes.OK):
			errs[i] = fmt.Errorf("%w: forwarded tx without outcome or error", ErrNoLeader)
		default:
			errs[i] = rpcerr.From(status.Error(codes.Code(r.ErrorCode), r.Error))
		}
	}
	return outs, errs
}

func (p *peerClient) join(ctx context.Context, addr string, id protocol.ChannelID, self string) (*peerpb.JoinResponse, error) {
	cl, err := p.client(addr)
	if err != nil {
		return nil, err
	}
	var pr peer.Peer
	resp, err := cl.Join(ctx, &peerpb.JoinRequest{
		Channel: id[:], Address: self, Caller: signCaller(p.key, "Join", id[:], []byte(self)),
	}, grpc.Peer(&pr))
	if err != nil {
		return nil, rpcerr.From(err)
	}
	if err := p.checkServer(ctx, addr, id, &pr); err != nil {
		return nil, err
	}
	return resp, nil
}

// forwardJoin passes a join request on unchanged: the caller's signature
// stays valid.
func (p *peerClient) forwardJoin(ctx context.Context, addr string, req *peerpb.JoinRequest) (*peerpb.JoinResponse, error) {
	cl, err := p.client(addr)
	if err != nil {
		return nil, err
	}
	var pr peer.Peer
	resp, err := cl.Join(ctx, req, grpc.Peer(&pr))
	if err != nil {
		return nil, rpcerr.From(err)
	}
	var id protocol.ChannelID
	copy(id[:], req.Channel)
	if err := p.checkServer(ctx, addr, id, &pr); err != nil {
		return nil, err
	}
	return resp, nil
}

func (p *peerClient) attest(ctx context.Context, addr string, id protocol.ChannelID, epoch uint64) (*protocol.Attestation, error) {
	cl, err := p.client(addr)
	if err != nil {
		return nil, err
	}
	var pr peer.Peer
	resp, err := cl.Attest(ctx, &peerpb.AttestRequest{
		Channel: id[:], Epoch: epoch, Caller: signCaller(p.key, "Attest", id[:], u64bytes(epoch)),
	}, grpc.Peer(&pr))
	if err != nil {
		return nil, rpcerr.From(err)
	}
	if err := p.checkServer(ctx, addr, id, &pr); err != nil {
		return nil, err
	}
	a := new(protocol.Attestation)
	if err := protocol.Unmarshal(resp.Attestation, a); err != nil {
		return nil, err
	}
	return a, nil
}

func (p *peerClient) status(ctx context.Context, addr string, id protocol.ChannelID) (*peerpb.StatusResponse, error) {
	cl, err := p.client(addr)
	if err != nil {
		return nil, err
	}
	var pr peer.Peer
	resp, err := cl.Status(ctx, &peerpb.StatusRequest{Channel: id[:], Caller: signCaller(p.key, "Status", id[:])}, grpc.Peer(&pr))
	if err != nil {
		return nil, rpcerr.From(err)
	}
	if err := p.checkServer(ctx, addr, id, &pr); err != nil {
		return nil, err
	}
	return resp, nil
}

// snapshotChunk is the size of one chunk of a streamed snapshot.
const snapshotChunk = 256 << 10

// Snapshot streams this node's snapshot of the channel to a member that
// refused the one its leader sent. One stream at a time per node: a
// snapshot costs an encoding of the whole state.
func (p *peerService) Snapshot(req *peerpb.SnapshotRequest, ss peerpb.Peer_SnapshotServer) error {
	ctx := ss.Context()
	caller, _, err := verifyCaller(req.Caller, "Snapshot", req.Channel, u64bytes(req.MinHeight))
	if err != nil {
		return rpcerr.Err(err)
	}
	if err := p.admit(ctx, req.Channel, caller); err != nil {
		return err
	}
	c, err := p.channelFor(req.Channel, caller)
	if err != nil {
		return err
	}
	select {
	case p.n.snapshotSlot <- struct{}{}:
		defer func() { <-p.n.snapshotSlot }()
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	}
	fs, err := c.fsm.Snapshot()
	if err != nil {
		return rpcerr.Err(err)
	}
	s := fs.(*fsmSnapshot)
	if s.snap == nil || s.snap.Height() < req.MinHeight {
		return status.Errorf(codes.FailedPrecondition, "cluster: no snapshot at height %d or above here", req.MinHeight)
	}
	w := &chunkSender{ss: ss, height: s.snap.Height()}
	if err := s.writeTo(w); err != nil {
		return err
	}
	return w.flush()
}

// chunkSender sends what is written to it in chunks of snapshotChunk.
type chunkSender struct {
	ss     peerpb.Peer_SnapshotServer
	height uint64
	buf    []byte
}

func (w *chunkSender) Write(p []byte) (int, error) {
	w.buf = append(w.buf, p...)
	for len(w.buf) >= snapshotChunk {
		if err := w.send(w.buf[:snapshotChunk]); err != nil {
			return 0, err
		}
		w.buf = append(w.buf[:0], w.buf[snapshotChunk:]...)
	}
	return len(p), nil
}

func (w *chunkSender) send(b []byte) error {
	err := w.ss.Send(&peerpb.SnapshotChunk{Height: w.height, Data: b})
	w.height = 0
	return err
}

func (w *chunkSender) flush() error {
	if len(w.buf) == 0 {
		return nil
	}
	return w.send(w.buf)
}

// snapshot fetches the snapshot of channel id of height min at least from
// the member at addr: at most maxRaftSnapshotBytes.
func (p *peerClient) snapshot(ctx context.Context, addr string, id protocol.ChannelID, min uint64) ([]byte, error) {
	cl, err := p.client(addr)
	if err != nil {
		return nil, err
	}
	var pr peer.Peer
	st, err := cl.Snapshot(ctx, &peerpb.SnapshotRequest{
		Channel: id[:], MinHeight: min, Caller: signCaller(p.key, "Snapshot", id[:], u64bytes(min)),
	}, grpc.Peer(&pr))
	if err != nil {
		return nil, rpcerr.From(err)
	}
	var buf []byte
	for {
		chunk, err := st.Recv()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, rpcerr.From(err)
		}
		if len(buf)+len(chunk.Data) > maxRaftSnapshotBytes {
			return nil, fmt.Errorf("%w: snapshot from %s larger than %d bytes", protocol.ErrTooLarge, addr, maxRaftSnapshotBytes)
		}
		buf = append(buf, chunk.Data...)
	}
	if err := p.checkServer(ctx, addr, id, &pr); err != nil {
		return nil, err
	}
	return buf, nil
}
