package clientapi

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/scraft/scraft/clientapi/clientpb"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/protocol/rpcerr"
)

// Version is the version a Challenge announces.
const Version = 1

// TrailerCode is the trailer key that carries the protocol.Code of a stream ended by
// the node (a failed bind, a malformed message, a bind timeout). It may hold
// several values: the last one counts.
const TrailerCode = "scraft-code"

// Service serves the client API (proto/client.proto) over a
// ChannelAPI: one stream per client, bound to the client's address by a
// signed challenge, carrying join, call, subscribe, unsubscribe, leave,
// close and status requests. CLIENT_API.md describes the protocol.
//
// Memory stays bounded whatever clients send: the node has at most
// MaxStreams client streams; a stream reads one request at a time, and
// until it binds each request is at most MaxUnboundMessageBytes; has at most MaxInFlight requests running and SendQueue
// messages queued; each channel has at most MaxChannelInFlight calls; each
// subscription's buffer is the ChannelAPI's (bounded, it drops a slow
// subscriber). Overload is answered protocol.CodeBusy at once.
//
// All methods are safe for concurrent use.
type Service struct {
	clientpb.UnimplementedClientServer

	api    ChannelAPI
	cfg    Config
	logger hclog.Logger

	ctx       context.Context
	cancel    context.CancelFunc
	wg        sync.WaitGroup
	closeOnce sync.Once

	channels struct {
		sync.Mutex
		inflight map[protocol.ChannelID]int
	}
	// encoded shares the wire encoding of each outcome among the
	// subscribers of its channel.
	encoded outcomeCaches

	streams        atomic.Int64
	streamsRefused atomic.Int64
	calls          atomic.Int64
	subscriptions  atomic.Int64
	busy           atomic.Int64
	dropped        atomic.Int64
}

// Stats counts what the client API is doing, for metrics and tests.
type Stats struct {
	// Streams, Calls and Subscriptions are open now.
	Streams       int64
	Calls         int64
	Subscriptions int64
	// Busy counts requests answered protocol.CodeBusy; Dropped subscriptions ended
	// with protocol.CodeSlowSubscriber; StreamsRefused streams ended at
	// once because MaxStreams were open. All since start.
	Busy           int64
	Dropped        int64
	StreamsRefused int64
}

// NewService returns the client API over api.
func NewService(api ChannelAPI, cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if api == nil {
		return nil, errors.New("clientapi: nil ChannelAPI")
	}
	cfg.Addresses = slices.Clone(cfg.Addresses)
	s := &Service{api: api, cfg: cfg, logger: cfg.Logger.Named("client-api")}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.channels.inflight = make(map[protocol.ChannelID]int)
	return s, nil
}

// Register registers the service on a gRPC server (before it serves).
// Close the service before the server.
func (s *Service) Register(r grpc.ServiceRegistrar) { clientpb.RegisterClientServer(r, s) }

// Stats returns the counters.
func (s *Service) Stats() Stats {
	return Stats{
		Streams: s.streams.Load(), Calls: s.calls.Load(), Subscriptions: s.subscriptions.Load(),
		Busy: s.busy.Load(), Dropped: s.dropped.Load(), StreamsRefused: s.streamsRefused.Load(),
	}
}

// Close ends every stream (with protocol.CodeClosed) and waits for the goroutines
// the service started. It is safe to call more than once.
func (s *Service) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.wg.Wait()
	})
	return nil
}

// acquireChannel takes one of a channel's call slots.
func (s *Service) acquireChannel(ch protocol.ChannelID) bool {
	s.channels.Lock()
	defer s.channels.Unlock()
	if s.channels.inflight[ch] >= s.cfg.MaxChannelInFlight {
		return false
	}
	s.channels.inflight[ch]++
	return true
}

func (s *Service) releaseChannel(ch protocol.ChannelID) {
	s.channels.Lock()
	defer s.channels.Unlock()
	if s.channels.inflight[ch]--; s.channels.inflight[ch] <= 0 {
		delete(s.channels.inflight, ch)
	}
}

// session is one client stream. The handler goroutine owns Send; one
// goroutine receives and dispatches; each running request has its own
// goroutine, at most MaxInFlight (plus the live subscriptions), kept when
// it is done to run a later request (up to maxIdleWorkers wait).
//
// Answers wait in out, a bounded queue. A subscription's messages do not
// queue: updates hands each one to the handler, waiting until the handler
// is free to send it, and meanwhile its next outcomes pile up in the
// ChannelAPI's buffer, to leave in one fuller message. So a busy stream
// (or node) sends fewer, fuller messages, and what a subscriber has been
// handed never waits behind a long queue.
type session struct {
	svc     *Service
	ctx     context.Context
	cancel  context.CancelFunc
	out     chan *clientpb.ServerMessage
	updates chan update
	slots   chan struct{}
	nonce   []byte

	// work hands a request to a worker waiting for one (async); idle
	// counts the waiting workers.
	work chan *request
	idle atomic.Int32

	// bound is set once by the receiving goroutine; addr is written before
	// and never after, so request goroutines (started later) read it freely.
	bound atomic.Bool
	addr  protocol.Address

	endOnce sync.Once
	endErr  *protocol.Error

	mu struct {
		sync.Mutex
		live  map[uint64]context.CancelFunc
		nsubs int
	}
}

// Stream implements clientpb.ClientServer: it serves one client's stream
// until the client goes, the stream fails, or the service closes.
func (s *Service) Stream(st clientpb.Client_StreamServer) error {
	// The slot is taken before anything is allocated for the stream, so
	// a flood of streams costs the node no more than MaxStreams sessions.
	if n := s.streams.Add(1); n > int64(s.cfg.MaxStreams) {
		s.streams.Add(-1)
		s.streamsRefused.Add(1)
		e := &protocol.Error{Code: protocol.CodeBusy, Message: fmt.Sprintf("clientapi: %d client streams open on this node", s.cfg.MaxStreams)}
		st.SetTrailer(metadata.Pairs(TrailerCode, fmt.Sprint(uint32(e.Code))))
		return rpcerr.Err(e)
	}
	defer s.streams.Add(-1)
	ss, err := s.newSession(st.Context())
	if err != nil {
		return status.Errorf(codes.Internal, "clientapi: %v", err)
	}
	defer ss.cancel()
	ctx := ss.ctx

	// gRPC itself ends a stream whose message is not valid protobuf, with
	// status INTERNAL and the trailer set so far: say it was a bad request.
	// Every later end sets the trailer again; readers take the last value.
	st.SetTrailer(metadata.Pairs(TrailerCode, fmt.Sprint(uint32(protocol.CodeBadRequest))))
	err = st.Send(&clientpb.ServerMessage{Body: &clientpb.ServerMessage_Challenge{Challenge: &clientpb.Challenge{
		Nonce: ss.nonce, NodeAddress: s.cfg.Addresses[0], Version: Version, MaxInFlight: uint32(s.cfg.MaxInFlight),
	}}})
	if err != nil {
		return err
	}
	bindTimer := time.AfterFunc(s.cfg.BindTimeout, func() {
		if !ss.bound.Load() {
			ss.end(&protocol.Error{Code: protocol.CodeNotBound, Message: fmt.Sprintf("clientapi: stream not bound within %s", s.cfg.BindTimeout)})
		}
	})
	defer bindTimer.Stop()

	// The receiver may outlive this handler by a moment: gRPC ends its Recv
	// when the handler returns. Close waits for it.
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		ss.receive(st)
	}()

	for {
		select {
		case m := <-ss.out:
			if err := st.Send(m); err != nil {
				return err
			}
		case u := <-ss.updates:
			// An unsubscribe answered meanwhile has cancelled u.ctx
			// before its Done was queued: nothing follows the Done.
			if u.ctx.Err() != nil {
				continue
			}
			if err := st.Send(u.m); err != nil {
				return err
			}
		case <-ctx.Done():
			return ss.endStatus(st)
		}
	}
}

// update is a subscription's message handed to the stream's sender; ctx is
// the subscription's.
type update struct {
	ctx context.Context
	m   *clientpb.ServerMessage
}

// newSession makes the state of one stream, ended by parent or Close.
func (s *Service) newSession(parent context.Context) (*session, error) {
	ctx, cancelCtx := context.WithCancel(parent)
	stop := context.AfterFunc(s.ctx, cancelCtx)
	cancel := func() {
		stop()
		cancelCtx()
	}
	ss := &session{
		svc:     s,
		ctx:     ctx,
		cancel:  cancel,
		out:     make(chan *clientpb.ServerMessage, s.cfg.SendQueue),
		updates: make(chan update),
		slots:   make(chan struct{}, s.cfg.MaxInFlight),
		work:    make(chan *request),
		nonce:   make([]byte, ChallengeLen),
	}
	ss.mu.live = make(map[uint64]context.CancelFunc)
	if _, err := rand.Read(ss.nonce); err != nil {
		cancel()
		return nil, fmt.Errorf("challenge: %w", err)
	}
	return ss, nil
}

// end ends the stream with err, reported in the gRPC status and trailer.
func (ss *session) end(err *protocol.Error) {
	ss.endOnce.Do(func() { ss.endErr = err })
	ss.cancel()
}

func (ss *session) endStatus(st grpc.ServerStream) error {
	var e *protocol.Error
	ss.endOnce.Do(func() {}) // no later end() may change endErr now
	e = ss.endErr
	if e == nil {
		if ss.svc.ctx.Err() != nil {
			e = &protocol.Error{Code: protocol.CodeClosed, Message: "clientapi: node shutting down"}
		} else {
			return ss.ctx.Err()
		}
	}
	st.SetTrailer(metadata.Pairs(TrailerCode, fmt.Sprint(uint32(e.Code))))
	return rpcerr.Err(e)
}

// receive reads requests one at a time and dispatches them. A request that
// cannot be queued blocks it, so a client that does not read its answers
// stops being read (gRPC flow control pushes back).
//
// Until the stream is bound, a request larger than MaxUnboundMessageBytes
// ends it. gRPC's receive limit is the server's (MaxMessageSize, sized for
// Raft), so the size is checked on the decoded message: the node still
// reads one such message, but a stranger cannot make it do any work with
// one, nor send a second.
func (ss *session) receive(st clientpb.Client_StreamServer) {
	limit := ss.svc.cfg.MaxUnboundMessageBytes
	for {
		m, err := st.Recv()
		if err != nil {
			switch status.Code(err) {
			case codes.Internal:
				ss.end(&protocol.Error{Code: protocol.CodeBadRequest, Message: "clientapi: malformed message: " + status.Convert(err).Message()})
			case codes.ResourceExhausted:
				ss.end(&protocol.Error{Code: protocol.CodeTooLarge, Message: "clientapi: message too large: " + status.Convert(err).Message()})
			default:
				if !errors.Is(err, io.EOF) {
					ss.svc.logger.Debug("stream receive ended", "error", err)
				}
				ss.cancel()
			}
			return
		}
		// dispatch binds on this goroutine: the next message sees it.
		if !ss.bound.Load() {
			if n := proto.Size(m); n > limit {
				ss.end(&protocol.Error{Code: protocol.CodeTooLarge, Message: fmt.Sprintf("clientapi: message of %d bytes before the bind, at most %d", n, limit)})
				return
			}
		}
		ss.dispatch(m)
		if ss.ctx.Err() != nil {
			return
		}
	}
}

// send queues a message, waiting while the queue is full.
func (ss *session) send(m *clientpb.ServerMessage) bool {
	select {
	case ss.out <- m:
		return true
	case <-ss.ctx.Done():
		return false
	}
}

// sendUpdate hands a subscription's message to the stream's sender and
// returns once the sender has taken it: it is then sent before anything
// the subscription hands over later. False when ctx (the subscription's)
// or the stream ended first.
func (ss *session) sendUpdate(ctx context.Context, m *clientpb.ServerMessage) bool {
	select {
	case ss.updates <- update{ctx, m}:
		return true
	case <-ctx.Done():
		return false
	}
}

// fail answers request id with err.
func (ss *session) fail(id uint64, err error) {
	if protocol.CodeOf(err) == protocol.CodeBusy {
		ss.svc.busy.Add(1)
	}
	ss.send(&clientpb.ServerMessage{Id: id, Error: ErrorToPB(err)})
}

func (ss *session) dispatch(m *clientpb.ClientMessage) {
	id := m.GetId()
	if b, ok := m.GetBody().(*clientpb.ClientMessage_Bind); ok {
		ss.bind(id, b.Bind)
		return
	}
	if !ss.bound.Load() {
		ss.fail(id, fmt.Errorf("%w: send a Bind first", protocol.ErrNotBound))
		return
	}
	if id == 0 {
		ss.fail(id, fmt.Errorf("%w: request id 0", protocol.ErrBadRequest))
		return
	}
	switch b := m.GetBody().(type) {
	case *clientpb.ClientMessage_Join:
		ss.join(id, b.Join)
	case *clientpb.ClientMessage_Status:
		ss.status(id, b.Status)
	case *clientpb.ClientMessage_Unsubscribe:
		ss.unsubscribe(id, b.Unsubscribe)
	case *clientpb.ClientMessage_Call:
		ss.async(&request{ss: ss, id: id, call: b.Call})
	case *clientpb.ClientMessage_Subscribe:
		ss.async(&request{ss: ss, id: id, fn: func(ctx context.Context, release func()) { ss.subscribe(ctx, id, b.Subscribe, release) }})
	case *clientpb.ClientMessage_Leave:
		ss.async(&request{ss: ss, id: id, fn: func(ctx context.Context, _ func()) {
			ss.leaveOrClose(ctx, id, b.Leave.GetChannel(), b.Leave.GetTx(), protocol.RequestLeave)
		}})
	case *clientpb.ClientMessage_Close:
		ss.async(&request{ss: ss, id: id, fn: func(ctx context.Context, _ func()) {
			ss.leaveOrClose(ctx, id, b.Close.GetChannel(), b.Close.GetTx(), protocol.RequestClose)
		}})
	default:
		ss.fail(id, fmt.Errorf("%w: empty or unknown request", protocol.ErrBadRequest))
	}
}

func (ss *session) bind(id uint64, b *clientpb.Bind) {
	cfg := &ss.svc.cfg
	switch {
	case ss.bound.Load():
		ss.fail(id, fmt.Errorf("%w: stream already bound to %s", protocol.ErrBadRequest, ss.addr))
		return
	case len(b.GetPublicKey()) != ed25519.PublicKeySize:
		ss.end(&protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("clientapi: bind public key of %d bytes", len(b.GetPublicKey()))})
		return
	case string(b.GetNonce()) != string(ss.nonce):
		ss.end(&protocol.Error{Code: protocol.CodeStaleNonce, Message: "clientapi: bind nonce is not this stream's challenge"})
		return
	case !slices.Contains(cfg.Addresses, b.GetNodeAddress()):
		ss.end(&protocol.Error{Code: protocol.CodeBadRequest, Message: fmt.Sprintf("clientapi: bind for node %q, this node is %q", b.GetNodeAddress(), cfg.Addresses[0])})
		return
	}
	pub := ed25519.PublicKey(b.GetPublicKey())
	if !protocol.Verify(pub, DomainClientBind, BindMessage(ss.nonce, b.GetNodeAddress()), b.GetSignature()) {
		ss.end(&protocol.Error{Code: protocol.CodeBadSignature, Message: "clientapi: bind signature does not verify"})
		return
	}
	ss.addr = protocol.AddressOf(pub)
	ss.bound.Store(true)
	ss.send(&clientpb.ServerMessage{Id: id, Body: &clientpb.ServerMessage_Bound{Bound: &clientpb.Bound{Address: ss.addr.String()}}})
}

// register records a live request id; false when the id is in use.
func (ss *session) register(id uint64, cancel context.CancelFunc) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if _, ok := ss.mu.live[id]; ok {
		return false
	}
	ss.mu.live[id] = cancel
	return true
}

// liveCount returns how many requests and subscriptions are live.
func (ss *session) liveCount() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.mu.live)
}

func (ss *session) unregister(id uint64) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	delete(ss.mu.live, id)
}

// request is one running request of a stream: a call, or fn (a
// subscription, leave or close). Its worker goroutine owns it.
type request struct {
	ss       *session
	id       uint64
	ctx      context.Context
	cancel   context.CancelFunc
	released bool
	call     *clientpb.CallRequest
	fn       func(ctx context.Context, release func())
}

// maxIdleWorkers bounds the goroutines a stream keeps waiting for its next
// request once their own is answered; a burst past it starts goroutines
// that end with their request.
const maxIdleWorkers = 8

// async runs a request on a goroutine of its own if the stream has a free
// slot, and answers protocol.CodeBusy at once otherwise. fn may call
// release to give its slot back early (a subscription, once set up); the
// id stays live until fn returns. A call (fn nil, req.call set) runs under
// the CallTimeout from here, in the one context that unsubscribing its id
// or the stream's end also cancels.
func (ss *session) async(r *request) {
	select {
	case ss.slots <- struct{}{}:
	default:
		ss.fail(r.id, fmt.Errorf("%w: %d requests in flight on this stream", protocol.ErrBusy, cap(ss.slots)))
		return
	}
	if r.call != nil {
		r.ctx, r.cancel = context.WithTimeout(ss.ctx, ss.svc.cfg.CallTimeout)
	} else {
		r.ctx, r.cancel = context.WithCancel(ss.ctx)
	}
	if !ss.register(r.id, r.cancel) {
		<-ss.slots
		r.cancel()
		ss.fail(r.id, fmt.Errorf("%w: request id %d in use", protocol.ErrBadRequest, r.id))
		return
	}
	// A worker waiting from an earlier request takes it; else a new one.
	select {
	case ss.work <- r:
	default:
		ss.svc.wg.Add(1)
		go ss.worker(r)
	}
}

// worker runs r, then the requests handed to it while it waits, until the
// stream ends or maxIdleWorkers others already wait. Reusing it saves a
// goroutine's start (and its stack's growth) per call.
func (ss *session) worker(r *request) {
	defer ss.svc.wg.Done()
	for {
		ss.run(r)
		if ss.idle.Add(1) > maxIdleWorkers {
			ss.idle.Add(-1)
			return
		}
		select {
		case r = <-ss.work:
			ss.idle.Add(-1)
		case <-ss.ctx.Done():
			ss.idle.Add(-1)
			return
		}
	}
}

// run serves r and then frees its id, context and slot.
func (ss *session) run(r *request) {
	defer func() {
		ss.unregister(r.id)
		r.cancel()
		r.release()
	}()
	if r.call != nil {
		ss.call(r.ctx, r.id, r.call)
		return
	}
	r.fn(r.ctx, r.release)
}

// release gives r's slot back, once.
func (r *request) release() {
	if !r.released {
		r.released = true
		<-r.ss.slots
	}
}

// channelFor decodes a channel id and checks that it exists and that the
// bound address is a member.
func (ss *session) channelFor(raw []byte) (protocol.ChannelID, error) {
	ch, err := ChannelFromPB(raw)
	if err != nil {
		return ch, err
	}
	if !ss.svc.api.Exists(ch) {
		return ch, fmt.Errorf("%w: %s", protocol.ErrNoChannel, ch)
	}
	if err := ss.svc.api.CheckMember(ch, ss.addr); err != nil {
		return ch, fmt.Errorf("%s in %s: %w", ss.addr, ch, err)
	}
	return ch, nil
}

func (ss *session) join(id uint64, req *clientpb.JoinRequest) {
	ch, err := ss.channelFor(req.GetChannel())
	if err != nil {
		ss.fail(id, err)
		return
	}
	st, err := ss.svc.api.Status(ch, false)
	if err != nil {
		ss.fail(id, err)
		return
	}
	next, err := ss.svc.api.NextNonce(ch, ss.addr)
	if err != nil {
		ss.fail(id, err)
		return
	}
	ss.send(&clientpb.ServerMessage{Id: id, Body: &clientpb.ServerMessage_Joined{Joined: &clientpb.Joined{
		Status: StatusToPB(st), NextNonce: next,
	}}})
}

func (ss *session) status(id uint64, req *clientpb.StatusRequest) {
	ch, err := ss.channelFor(req.GetChannel())
	if err != nil {
		ss.fail(id, err)
		return
	}
	st, err := ss.svc.api.Status(ch, true)
	if err != nil {
		ss.fail(id, err)
		return
	}
	ss.send(&clientpb.ServerMessage{Id: id, Body: &clientpb.ServerMessage_Status{Status: StatusToPB(st)}})
}

func (ss *session) unsubscribe(id uint64, req *clientpb.UnsubscribeRequest) {
	ss.mu.Lock()
	cancel, ok := ss.mu.live[req.GetSubscriptionId()]
	ss.mu.Unlock()
	if !ok {
		ss.fail(id, fmt.Errorf("%w: no subscription %d", protocol.ErrBadRequest, req.GetSubscriptionId()))
		return
	}
	cancel()
	ss.send(&clientpb.ServerMessage{Id: id, Body: &clientpb.ServerMessage_Done{Done: &clientpb.Done{}}})
}

// call serves a call; ctx carries the CallTimeout (async), so a deadline
// is the call's timeout and a cancel is the stream's end or an
// unsubscribe of id.
func (ss *session) call(ctx context.Context, id uint64, req *clientpb.CallRequest) {
	svc := ss.svc
	raw := req.GetTx()
	if len(raw) > svc.cfg.MaxTxBytes {
		ss.fail(id, fmt.Errorf("%w: tx of %d bytes, at most %d", protocol.ErrTooLarge, len(raw), svc.cfg.MaxTxBytes))
		return
	}
	tx, err := protocol.DecodeSignedTx(raw)
	if err != nil {
		if errors.Is(err, protocol.ErrTooLong) {
			ss.fail(id, fmt.Errorf("%w: %v", protocol.ErrTooLarge, err))
		} else {
			ss.fail(id, fmt.Errorf("%w: %v", protocol.ErrBadRequest, err))
		}
		return
	}
	if tx.Tx.Sender != ss.addr {
		ss.fail(id, fmt.Errorf("%w: tx from %s on a stream bound to %s", protocol.ErrWrongSender, tx.Tx.Sender, ss.addr))
		return
	}
	// The signature is not checked here: the leader verifies the txs of
	// each batch at once before it orders them (and answers a bad one
	// with protocol.ErrBadSignature), which costs half a check here, one by one.
	ch := tx.Tx.Channel
	if _, err := ss.channelFor(ch[:]); err != nil {
		ss.fail(id, err)
		return
	}
	if !svc.acquireChannel(ch) {
		ss.fail(id, fmt.Errorf("%w: %d calls in flight to %s", protocol.ErrBusy, svc.cfg.MaxChannelInFlight, ch))
		return
	}
	defer svc.releaseChannel(ch)
	svc.calls.Add(1)
	defer svc.calls.Add(-1)

	out, err := svc.api.Submit(ctx, tx)
	if err != nil {
		if errors.Is(ctx.Err(), context.Canceled) {
			return // the stream is gone
		}
		ss.fail(id, err)
		return
	}
	m := &clientpb.ServerMessage{Id: id, Body: &clientpb.ServerMessage_Call{Call: OutcomeToPB(out)}}
	if c := protocol.StatusCode(out.Result.Status); c != protocol.CodeOK {
		m.Error = &clientpb.Error{Code: uint32(c), Message: callMessage(out), AbortCode: out.Result.AbortCode}
	}
	ss.send(m)
}

func callMessage(o *protocol.Outcome) string {
	if o.Message != "" {
		return o.Message
	}
	return fmt.Sprintf("tx at height %d: %s", o.Height, o.Result.Status)
}

func (ss *session) subscribe(ctx context.Context, id uint64, req *clientpb.SubscribeRequest, release func()) {
	svc := ss.svc
	ch, err := ss.channelFor(req.GetChannel())
	if err != nil {
		ss.fail(id, err)
		return
	}
	ss.mu.Lock()
	full := ss.mu.nsubs >= svc.cfg.MaxSubscriptions
	if !full {
		ss.mu.nsubs++
	}
	ss.mu.Unlock()
	if full {
		ss.fail(id, fmt.Errorf("%w: %d subscriptions on this stream", protocol.ErrBusy, svc.cfg.MaxSubscriptions))
		return
	}
	defer func() {
		ss.mu.Lock()
		ss.mu.nsubs--
		ss.mu.Unlock()
	}()

	sub, err := svc.api.Subscribe(ctx, ch, req.GetFromHeight())
	if err != nil {
		ss.fail(id, err)
		return
	}
	defer sub.Close()
	svc.subscriptions.Add(1)
	defer svc.subscriptions.Add(-1)

	last := req.GetFromHeight()
	first := &clientpb.Snapshot{Channel: ch[:], Height: last, Resumed: true}
	if snap := sub.Snapshot(); snap != nil {
		first = SnapshotToPB(snap)
		if len(first.State) > svc.cfg.MaxSnapshotBytes {
			ss.fail(id, fmt.Errorf("%w: snapshot of %d bytes, at most %d", protocol.ErrTooLarge, len(first.State), svc.cfg.MaxSnapshotBytes))
			return
		}
		last = snap.Height
	}
	// The snapshot and the updates take the same path to the sender, so
	// that they leave in order.
	if !ss.sendUpdate(ctx, &clientpb.ServerMessage{Id: id, Body: &clientpb.ServerMessage_Snapshot{Snapshot: first}}) {
		return
	}
	release()

	enc := svc.encoded.acquire(ch)
	defer svc.encoded.release(ch)
	for {
		// Next returns everything the subscription buffered while the
		// last message waited for the sender: one message carries it.
		outs, err := sub.Next(ctx)
		for len(outs) > 0 {
			n := min(len(outs), svc.cfg.MaxUpdateOutcomes)
			m, merr := enc.updates(id, outs[:n])
			if merr != nil {
				err = merr
				break
			}
			if !ss.sendUpdate(ctx, m) {
				return
			}
			last = outs[n-1].Height
			outs = outs[n:]
		}
		if err != nil {
			if ctx.Err() != nil {
				return // unsubscribed or the stream is gone
			}
			if errors.Is(err, protocol.ErrSlowSubscriber) {
				svc.dropped.Add(1)
			}
			ss.sendUpdate(ctx, &clientpb.ServerMessage{Id: id, Error: &clientpb.Error{
				Code: uint32(protocol.CodeOf(err)), Message: err.Error(), ResumeHeight: last,
			}})
			return
		}
	}
}

// leaveOrClose serves a leave or close request: the member's signed call
// of function, checked here for its form and sender like a call, ordered
// and waited for by the ChannelAPI.
func (ss *session) leaveOrClose(ctx context.Context, id uint64, rawCh, rawTx []byte, function string) {
	svc := ss.svc
	ch, err := ChannelFromPB(rawCh)
	if err != nil {
		ss.fail(id, err)
		return
	}
	if len(rawTx) > svc.cfg.MaxTxBytes {
		ss.fail(id, fmt.Errorf("%w: tx of %d bytes, at most %d", protocol.ErrTooLarge, len(rawTx), svc.cfg.MaxTxBytes))
		return
	}
	if len(rawTx) == 0 {
		ss.fail(id, fmt.Errorf("%w: the request needs the member's signed %s call", protocol.ErrBadRequest, function))
		return
	}
	tx, err := protocol.DecodeSignedTx(rawTx)
	switch {
	case err != nil:
		ss.fail(id, fmt.Errorf("%w: %v", protocol.ErrBadRequest, err))
		return
	case tx.Tx.Sender != ss.addr:
		ss.fail(id, fmt.Errorf("%w: tx from %s on a stream bound to %s", protocol.ErrWrongSender, tx.Tx.Sender, ss.addr))
		return
	case tx.Tx.Function != function || len(tx.Tx.Args) != 0 || tx.Tx.Channel != ch:
		ss.fail(id, fmt.Errorf("%w: want a %s call without args in channel %s", protocol.ErrBadRequest, function, ch))
		return
	case !svc.api.Exists(ch):
		ss.fail(id, fmt.Errorf("%w: %s", protocol.ErrNoChannel, ch))
		return
	}
	// No membership check here: a member that has left asks again to
	// learn that it is done, and the ChannelAPI tells a stranger.
	cctx, cancel := context.WithTimeout(ctx, svc.cfg.CallTimeout)
	defer cancel()
	if function == protocol.RequestClose {
		err = svc.api.Close(cctx, tx)
	} else {
		err = svc.api.Leave(cctx, tx)
	}
	if err != nil {
		if ctx.Err() == nil {
			ss.fail(id, err)
		}
		return
	}
	ss.send(&clientpb.ServerMessage{Id: id, Body: &clientpb.ServerMessage_Done{Done: &clientpb.Done{}}})
}
