package client_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/credentials"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/clientapi"
	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/protocol/tlsid"
	"github.com/scraft/scraft/transport"
	"github.com/scraft/scraft/vm"
)

// memNode is a small in-memory node for the client API: one leader per
// channel that batches submitted txs, runs them through the real fsm and
// the real vm (the chat contract), and fans the verified outcomes out to
// subscribers with bounded buffers. It implements clientapi.ChannelAPI the
// way package cluster does, without Raft.
type memNode struct {
	mu       sync.Mutex
	channels map[protocol.ChannelID]*memChannel
}

// memChannel is one channel of a memNode.
type memChannel struct {
	id     protocol.ChannelID
	leader *protocol.Key
	queue  chan *memSubmission
	stop   chan struct{}
	wg     sync.WaitGroup

	// subBuffer bounds each subscriber's queued batches.
	subBuffer int
	// keep bounds the recent outcomes kept for resuming subscribers.
	keep int
	// onCommit, when set, is told each applied batch's outcomes (under mu).
	onCommit func([]protocol.Outcome)

	mu       sync.Mutex
	m        *fsm.Machine
	closed   bool
	done     map[protocol.Hash]*protocol.Outcome
	inflight map[protocol.Hash]*memSubmission
	recent   []protocol.Outcome
	subs     map[*memSub]struct{}
}

type memSubmission struct {
	entry protocol.Entry
	hash  protocol.Hash
	done  chan struct{}
	out   *protocol.Outcome
	err   error
}

var (
	chatOnce sync.Once
	chatExec fsm.Executor
	chatErr  error
)

// chatExecutor deploys the chat contract once per test binary.
func chatExecutor(t tb) fsm.Executor {
	chatOnce.Do(func() {
		ctx := context.Background()
		eng, err := vm.NewEngine(ctx, vm.DefaultConfig())
		if err != nil {
			chatErr = err
			return
		}
		c, err := contracts.Get("chat")
		if err != nil {
			chatErr = err
			return
		}
		mod, err := eng.Deploy(ctx, c.Wasm)
		if err != nil {
			chatErr = err
			return
		}
		chatExec = mod
	})
	if chatErr != nil {
		t.Fatal(chatErr)
	}
	return chatExec
}

// tb is what the helpers need of a test; examples pass an exampleTB.
type tb interface {
	Helper()
	Fatal(args ...any)
	Cleanup(func())
}

// exampleTB lets examples use the test helpers: it panics on failure and
// runs the cleanups when done.
type exampleTB struct{ cleanups []func() }

func (*exampleTB) Helper()            {}
func (*exampleTB) Fatal(args ...any)  { panic(fmt.Sprint(args...)) }
func (e *exampleTB) Cleanup(f func()) { e.cleanups = append(e.cleanups, f) }
func (e *exampleTB) done() {
	for i := len(e.cleanups) - 1; i >= 0; i-- {
		e.cleanups[i]()
	}
}

type emptyState struct{}

func (emptyState) Get(protocol.ResourceKey) ([]byte, bool) { return nil, false }

func newMemNode() *memNode { return &memNode{channels: make(map[protocol.ChannelID]*memChannel)} }

// addChannel creates a chat channel with members, led by the first.
func (n *memNode) addChannel(t tb, id protocol.ChannelID, members ...*protocol.Key) *memChannel {
	t.Helper()
	exec := chatExecutor(t)
	cfg := fsm.DefaultConfig()
	cfg.Channel, cfg.Contract = id, "chat"
	init := exec.Execute(protocol.Call{Function: "init", Gas: cfg.GasLimit}, emptyState{})
	if init.Status != protocol.StatusOK {
		t.Fatal("chat init: ", init.Status, " ", init.Message)
	}
	cfg.Genesis.State = protocol.State{}
	if err := cfg.Genesis.State.Apply(init.ChangeSet); err != nil {
		t.Fatal(err)
	}
	for i, k := range members {
		cfg.Genesis.Members = append(cfg.Genesis.Members, fsm.Member{Address: k.Address(), PublicKey: k.Public(), JoinSeq: uint64(i + 1)})
	}
	cfg.Genesis.HighestJoinSeq = uint64(len(members))
	m, err := fsm.New(cfg, exec)
	if err != nil {
		t.Fatal(err)
	}
	c := &memChannel{
		id: id, leader: members[0], m: m,
		queue: make(chan *memSubmission, 1024), stop: make(chan struct{}),
		subBuffer: 256, keep: 4096,
		done:     make(map[protocol.Hash]*protocol.Outcome),
		inflight: make(map[protocol.Hash]*memSubmission),
		subs:     make(map[*memSub]struct{}),
	}
	c.wg.Add(1)
	go c.batcher(c.stop)
	t.Cleanup(c.shutdown)
	n.mu.Lock()
	n.channels[id] = c
	n.mu.Unlock()
	return c
}

func (n *memNode) channel(id protocol.ChannelID) (*memChannel, error) {
	n.mu.Lock()
	c := n.channels[id]
	n.mu.Unlock()
	if c == nil {
		return nil, fmt.Errorf("%w: %s", protocol.ErrNoChannel, id)
	}
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, fmt.Errorf("%w: %s", protocol.ErrNoChannel, id)
	}
	return c, nil
}

func (c *memChannel) shutdown() {
	c.mu.Lock()
	if c.stop == nil {
		c.mu.Unlock()
		return
	}
	close(c.stop)
	c.stop = nil
	c.mu.Unlock()
	c.wg.Wait()
}

// batcher proposes and applies what is queued, up to 256 entries at a time.
func (c *memChannel) batcher(stop <-chan struct{}) {
	defer c.wg.Done()
	for {
		var batch []*memSubmission
		select {
		case <-stop:
			return
		case s := <-c.queue:
			batch = append(batch, s)
		}
	gather:
		for len(batch) < 256 {
			select {
			case s := <-c.queue:
				batch = append(batch, s)
			default:
				break gather
			}
		}
		c.run(batch)
	}
}

func (c *memChannel) run(batch []*memSubmission) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for len(batch) > 0 {
		entries := make([]protocol.Entry, len(batch))
		for i, s := range batch {
			entries[i] = s.entry
		}
		b, _, err := c.m.Propose(entries, 1, c.leader, uint64(time.Now().UnixMilli()))
		var ee *fsm.EntryError
		if errors.As(err, &ee) {
			c.finishLocked(batch[ee.Index], nil, fmt.Errorf("%w: %v", protocol.ErrBadRequest, ee))
			batch = append(batch[:ee.Index:ee.Index], batch[ee.Index+1:]...)
			continue
		}
		if err != nil {
			for _, s := range batch {
				c.finishLocked(s, nil, fmt.Errorf("%w: %v", protocol.ErrInternal, err))
			}
			return
		}
		a, err := c.m.Apply(b, nil)
		if err != nil {
			for _, s := range batch {
				c.finishLocked(s, nil, fmt.Errorf("%w: %v", protocol.ErrInternal, err))
			}
			return
		}
		outs := make([]protocol.Outcome, len(a.Outcomes))
		for i := range a.Outcomes {
			outs[i] = protocol.Outcome(a.Outcomes[i])
			c.finishLocked(batch[i], &outs[i], nil)
		}
		c.recent = append(c.recent, outs...)
		if len(c.recent) > 2*c.keep { // amortised: copy once per keep outcomes
			c.recent = append([]protocol.Outcome(nil), c.recent[len(c.recent)-c.keep:]...)
		}
		if c.onCommit != nil {
			c.onCommit(outs)
		}
		for sub := range c.subs {
			sub.push(outs)
		}
		return
	}
}

func (c *memChannel) finishLocked(s *memSubmission, out *protocol.Outcome, err error) {
	s.out, s.err = out, err
	if s.entry.Kind == protocol.EntryCall {
		delete(c.inflight, s.hash)
		if out != nil {
			c.done[s.hash] = out
		}
	}
	close(s.done)
}

func (c *memChannel) submit(ctx context.Context, en protocol.Entry) (*protocol.Outcome, error) {
	h := en.Hash()
	if en.Kind == protocol.EntryCall {
		h = en.Call.Hash()
	}
	c.mu.Lock()
	if out, ok := c.done[h]; ok {
		c.mu.Unlock()
		return out, nil
	}
	s, ok := c.inflight[h]
	if !ok {
		s = &memSubmission{entry: en, hash: h, done: make(chan struct{})}
		select {
		case c.queue <- s:
		default:
			c.mu.Unlock()
			return nil, fmt.Errorf("%w: leader queue full", protocol.ErrBusy)
		}
		if en.Kind == protocol.EntryCall {
			c.inflight[h] = s
		}
	}
	c.mu.Unlock()
	select {
	case <-s.done:
		return s.out, s.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// ChannelAPI.

func (n *memNode) Exists(ch protocol.ChannelID) bool {
	_, err := n.channel(ch)
	return err == nil
}

func (n *memNode) CheckMember(ch protocol.ChannelID, a protocol.Address) error {
	c, err := n.channel(ch)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, ok := c.m.Member(a); !ok {
		return protocol.ErrNotMember
	}
	return nil
}

func (n *memNode) NextNonce(ch protocol.ChannelID, a protocol.Address) (uint64, error) {
	c, err := n.channel(ch)
	if err != nil {
		return 0, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.m.Nonce(a) + 1, nil
}

func (n *memNode) Submit(ctx context.Context, tx *protocol.SignedTx) (*protocol.Outcome, error) {
	c, err := n.channel(tx.Tx.Channel)
	if err != nil {
		return nil, err
	}
	if err := tx.Verify(); err != nil {
		return nil, fmt.Errorf("%w: %v", protocol.ErrBadSignature, err)
	}
	return c.submit(ctx, protocol.Entry{Kind: protocol.EntryCall, Call: tx})
}

func (n *memNode) Subscribe(ctx context.Context, ch protocol.ChannelID, from uint64) (protocol.Subscription, error) {
	c, err := n.channel(ch)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	h := c.m.Height()
	if from > h {
		return nil, fmt.Errorf("%w: height %d, applied %d", protocol.ErrNotReady, from, h)
	}
	sub := &memSub{c: c, ch: make(chan []protocol.Outcome, c.subBuffer), end: make(chan struct{})}
	oldest := h + 1
	if len(c.recent) > 0 {
		oldest = c.recent[0].Height
	}
	switch {
	case from == 0 || from+1 < oldest:
		members := c.m.Members()
		snap := &protocol.Snapshot{Channel: ch, Height: h, Digest: c.m.LastDigest(), State: c.m.Resources()}
		for _, mem := range members {
			snap.Members = append(snap.Members, mem.Address)
		}
		sub.snap = snap
	case from < h:
		i := int(from + 1 - oldest)
		sub.replay = append([]protocol.Outcome(nil), c.recent[i:]...)
	}
	c.subs[sub] = struct{}{}
	return sub, nil
}

func (n *memNode) Status(ch protocol.ChannelID, members bool) (*protocol.ChannelStatus, error) {
	c, err := n.channel(ch)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	st := &protocol.ChannelStatus{Channel: ch, Leader: c.leader.Address(), Epoch: 1, Height: c.m.Height(), Digest: c.m.LastDigest(), Ready: true}
	if !members {
		return st, nil
	}
	for _, mem := range c.m.Members() {
		st.Members = append(st.Members, protocol.MemberStatus{
			Address: mem.Address, Lag: -1, HeartbeatAge: -1, Leader: mem.Address == c.leader.Address(),
		})
	}
	return st, nil
}

func (n *memNode) Leave(ctx context.Context, tx *protocol.SignedTx) error {
	c, err := n.channel(tx.Tx.Channel)
	if err != nil {
		return err
	}
	if _, err := c.submit(ctx, protocol.Entry{Kind: protocol.EntryCall, Call: tx}); err != nil {
		return err
	}
	_, err = c.submit(ctx, protocol.Entry{Kind: protocol.EntryLeave, Leave: &protocol.MemberLeave{Member: tx.Tx.Sender}})
	return err
}

func (n *memNode) Close(ctx context.Context, tx *protocol.SignedTx) error {
	c, err := n.channel(tx.Tx.Channel)
	if err != nil {
		return err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	for sub := range c.subs {
		sub.endLocked(protocol.ErrChannelClosed)
	}
	return nil
}

// memSub is a subscriber with a bounded queue: when it is full the
// subscriber is dropped with ErrSlowSubscriber, never waited for.
type memSub struct {
	c      *memChannel
	snap   *protocol.Snapshot
	replay []protocol.Outcome
	ch     chan []protocol.Outcome
	end    chan struct{}
	err    error // set before end is closed
}

func (s *memSub) Snapshot() *protocol.Snapshot { return s.snap }

// push runs under the channel lock.
func (s *memSub) push(outs []protocol.Outcome) {
	select {
	case s.ch <- outs:
	default:
		s.endLocked(protocol.ErrSlowSubscriber)
	}
}

func (s *memSub) endLocked(err error) {
	if _, ok := s.c.subs[s]; !ok {
		return
	}
	delete(s.c.subs, s)
	s.err = err
	close(s.end)
}

// Next returns the next batch and every batch already waiting behind it,
// up to memSubGather outcomes, as cluster's subscriptions do.
func (s *memSub) Next(ctx context.Context) ([]protocol.Outcome, error) {
	if len(s.replay) > 0 {
		r := s.replay
		s.replay = nil
		return r, nil
	}
	select {
	case outs := <-s.ch:
		return s.gather(outs), nil
	default:
	}
	select {
	case outs := <-s.ch:
		return s.gather(outs), nil
	case <-s.end:
		select {
		case outs := <-s.ch:
			return s.gather(outs), nil
		default:
		}
		return nil, s.err
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// memSubGather bounds the outcomes one memSub.Next gathers.
const memSubGather = 256

// gather appends the batches waiting in the queue to outs. The batches are
// shared with the other subscribers: the result is a new slice.
func (s *memSub) gather(outs []protocol.Outcome) []protocol.Outcome {
	owned := false
	for len(outs) < memSubGather {
		select {
		case next := <-s.ch:
			if !owned {
				outs = append(make([]protocol.Outcome, 0, 2*(len(outs)+len(next))), outs...)
				owned = true
			}
			outs = append(outs, next...)
		default:
			return outs
		}
	}
	return outs
}

func (s *memSub) Close() {
	s.c.mu.Lock()
	defer s.c.mu.Unlock()
	s.endLocked(protocol.ErrChannelClosed)
}

// testNode is a memNode served over real gRPC on 127.0.0.1:0.
type testNode struct {
	*memNode
	addr string
	srv  *transport.Server
	svc  *clientapi.Service
}

func startNode(t tb, api clientapi.ChannelAPI, tune func(*clientapi.Config)) *testNode {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tcfg := transport.DefaultConfig()
	tcfg.Key = nodeKey
	srv, err := transport.NewServer(ln, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg := clientapi.DefaultConfig()
	if tune != nil {
		tune(&cfg)
	}
	cfg.Addresses = append([]string{srv.Addr()}, cfg.Addresses...)
	svc, err := clientapi.NewService(api, cfg)
	if err != nil {
		t.Fatal(err)
	}
	svc.Register(srv.GRPC())
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve()
	}()
	tn := &testNode{addr: srv.Addr(), srv: srv, svc: svc}
	if mn, ok := api.(*memNode); ok {
		tn.memNode = mn
	}
	t.Cleanup(func() {
		tn.stop()
		<-served
	})
	return tn
}

func (tn *testNode) stop() {
	tn.svc.Close()
	tn.srv.Close()
}

// nodeKey is the member key every test node serves TLS with; nodeAddr,
// its address, is what clients pin (Config.NodeKeys).
var (
	nodeKey, _ = protocol.KeyFromSeed(bytes.Repeat([]byte{0x4e}, 32))
	nodeAddr   = nodeKey.Address()
)

// nodeCreds are a raw gRPC client's credentials for a test node: TLS
// without a client certificate, the node's key pinned.
func nodeCreds(t tb) credentials.TransportCredentials {
	cfg, err := tlsid.ClientConfig(nil, tlsid.Pinned(nodeAddr))
	if err != nil {
		t.Fatal(err)
	}
	return credentials.NewTLS(cfg)
}

func testKey(t tb, i int) *protocol.Key {
	t.Helper()
	seed := make([]byte, 32)
	seed[0], seed[1] = byte(i), byte(i>>8)
	seed[31] = 0x5c
	k, err := protocol.KeyFromSeed(seed)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func testChannel(i int) protocol.ChannelID {
	var c protocol.ChannelID
	c[0], c[15] = 0xc4, byte(i)
	return c
}

func chatArgs(t tb, fn, json string) []byte {
	t.Helper()
	c, err := contracts.Get("chat")
	if err != nil {
		t.Fatal(err)
	}
	b, err := c.EncodeArgs(fn, []byte(json))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func dial(t testing.TB, k *protocol.Key, addrs ...string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, k, []protocol.Address{nodeAddr}, addrs...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
