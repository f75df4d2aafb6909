package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/transport"
)

// memChain is an in-process settlement chain over the contract's rules:
// every call is a block of its own at the chain's clock.
type memChain struct {
	mu     sync.Mutex
	m      *contract.Machine
	st     contract.MemStore
	height uint64
	nowMs  int64
	// down makes every call of the listed addresses fail, as if the chain
	// were unreachable from them.
	down map[protocol.Address]bool
}

func newMemChain() *memChain {
	return &memChain{m: contract.New(contract.DefaultParams()), st: contract.MemStore{}, nowMs: time.Now().UnixMilli(), down: map[protocol.Address]bool{}}
}

func (c *memChain) advance(d time.Duration) {
	c.mu.Lock()
	c.nowMs += d.Milliseconds()
	c.mu.Unlock()
}

func (c *memChain) apply(k *protocol.Key, call contract.Call) (contract.Receipt, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.down[k.Address()] {
		return contract.Receipt{}, fmt.Errorf("chain unreachable")
	}
	c.height++
	var txh protocol.Hash
	binary.BigEndian.PutUint64(txh[:], c.height)
	return c.m.Apply(c.st, contract.Env{Height: c.height, TimeMs: c.nowMs, Sender: k.Address(), SenderKey: k.Public(), TxHash: txh}, call)
}

// client is the chain as one key sees it.
func (c *memChain) client(k *protocol.Key) *memChainClient { return &memChainClient{c: c, k: k} }

type memChainClient struct {
	c *memChain
	k *protocol.Key
}

func (m *memChainClient) read(fn func(st contract.Store) error) error {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	if m.c.down[m.k.Address()] {
		return fmt.Errorf("chain unreachable")
	}
	return fn(m.c.st)
}

func (m *memChainClient) Channel(ctx context.Context, id protocol.ChannelID) (ch *contract.Channel, err error) {
	err = m.read(func(st contract.Store) error { ch, err = contract.GetChannel(st, id); return err })
	return ch, err
}

func (m *memChainClient) Members(ctx context.Context, id protocol.ChannelID) (ms []contract.Member, err error) {
	err = m.read(func(st contract.Store) error { ms, err = contract.GetMembers(st, id); return err })
	return ms, err
}

func (m *memChainClient) Code(ctx context.Context, h protocol.Hash) (code []byte, err error) {
	err = m.read(func(st contract.Store) error { code, err = contract.GetCode(st, h); return err })
	return code, err
}

func (m *memChainClient) InitialState(ctx context.Context, id protocol.ChannelID) (s protocol.State, err error) {
	err = m.read(func(st contract.Store) error { s, err = contract.GetInitialState(st, id); return err })
	return s, err
}

func (m *memChainClient) NowMs(ctx context.Context) (int64, error) {
	m.c.mu.Lock()
	defer m.c.mu.Unlock()
	return m.c.nowMs, nil
}

func (m *memChainClient) Join(ctx context.Context, id protocol.ChannelID, usePool bool) (uint64, error) {
	rc, err := m.c.apply(m.k, &contract.Join{Channel: id, UsePool: usePool})
	return rc.JoinSeq, err
}

func (m *memChainClient) KeepAlive(ctx context.Context, id protocol.ChannelID) error {
	_, err := m.c.apply(m.k, &contract.KeepAlive{Channel: id})
	return err
}

func (m *memChainClient) ClaimLeader(ctx context.Context, id protocol.ChannelID, epoch uint64, atts []protocol.Attestation) (uint64, error) {
	rc, err := m.c.apply(m.k, &contract.ClaimLeader{Channel: id, Epoch: epoch, Attestations: atts})
	return rc.Epoch, err
}

// counterExec is a tiny deterministic contract "chat": send appends its
// args to the sender's Messages resource and returns the new length.
type counterExec struct{}

func (counterExec) Has(fn string) bool { return fn == "send" }

func (counterExec) Execute(call fsm.Call, st fsm.StateReader) fsm.ExecResult {
	if call.Function != "send" {
		return fsm.ExecResult{Status: protocol.StatusBadInput, Message: "unknown function"}
	}
	key := protocol.ResourceKey{Account: call.Sender, Type: "chat::Messages"}
	old, ok := st.Get(key)
	nw := append(append([]byte(nil), old...), call.Args...)
	ch := protocol.Change{Key: key, Kind: protocol.OpNew, New: nw}
	if ok {
		ch = protocol.Change{Key: key, Kind: protocol.OpModify, Old: old, New: nw}
	}
	out := make([]byte, 8)
	binary.LittleEndian.PutUint64(out, uint64(len(nw)))
	return fsm.ExecResult{Status: protocol.StatusOK, GasUsed: uint64(len(call.Args)) + 10,
		ChangeSet: protocol.ChangeSet{Changes: []protocol.Change{ch}}, Output: out}
}

// testNode is one in-process node: its gRPC server and its cluster.Node.
type testNode struct {
	key  *protocol.Key
	dir  string
	addr string
	srv  *transport.Server
	node *Node
	cfg  Config
}

type testCluster struct {
	t      *testing.T
	chain  *memChain
	faults *transport.Faults
	id     protocol.ChannelID
	nodes  []*testNode
	users  []*protocol.Key
	nonces map[protocol.Address]uint64
	mu     sync.Mutex
}

// newTestCluster creates a channel with n members on an in-process chain
// and starts n nodes: the first bootstraps, the others join through it.
func newTestCluster(t *testing.T, n int, tune func(*Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, chain: newMemChain(), faults: transport.NewFaults(1), nonces: map[protocol.Address]uint64{}}
	creator, _ := protocol.GenerateKey(nil)
	rc, err := tc.chain.apply(creator, &contract.CreateChannel{Contract: "chat", Code: []byte("chat code"), InitialState: protocol.State{}})
	if err != nil {
		t.Fatal(err)
	}
	tc.id = rc.Channel
	for i := 0; i < n; i++ {
		k, _ := protocol.GenerateKey(nil)
		if _, err := tc.chain.apply(k, &contract.Join{Channel: tc.id}); err != nil {
			t.Fatal(err)
		}
		tc.nodes = append(tc.nodes, &testNode{key: k, dir: t.TempDir()})
	}
	tc.users = make([]*protocol.Key, 0, n)
	for _, nd := range tc.nodes {
		tc.users = append(tc.users, nd.key)
	}
	for i, nd := range tc.nodes {
		tc.startNode(nd, tune)
		if i == 0 {
			if _, err := nd.node.Open(context.Background(), tc.id); err != nil {
				t.Fatal(err)
			}
			tc.waitLeader(10 * time.Second)
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := nd.node.Join(ctx, tc.id, []string{tc.nodes[0].addr}, false)
		cancel()
		if err != nil {
			t.Fatalf("node %d join: %v", i, err)
		}
	}
	t.Cleanup(tc.close)
	tc.waitVoters(n, 20*time.Second)
	return tc
}

// startNode starts (or restarts) a node's server and cluster.Node, on its
// old address when it had one.
func (tc *testCluster) startNode(nd *testNode, tune func(*Config)) {
	t := tc.t
	laddr := "127.0.0.1:0"
	if nd.addr != "" {
		laddr = nd.addr
	}
	var ln net.Listener
	err := testutil.Poll(5*time.Second, func() error {
		var err error
		ln, err = net.Listen("tcp", laddr)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	nd.addr = ln.Addr().String()
	tcfg := transport.DefaultConfig()
	tcfg.Faults = tc.faults
	tcfg.Logger = testutil.Logger(t, "transport")
	self := nd.addr
	tcfg.DialOptions = []grpc.DialOption{grpc.WithChainUnaryInterceptor(
		func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if tc.faults.Cut(self, cc.Target()) {
				return transport.ErrFaultInjected
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		})}
	srv, err := transport.NewServer(ln, tcfg)
	if err != nil {
		t.Fatal(err)
	}
	nd.srv = srv
	cfg := DefaultConfig()
	cfg.DataDir = nd.dir
	cfg.Key = nd.key
	cfg.Address = nd.addr
	cfg.Chain = tc.chain.client(nd.key)
	cfg.Executors = func(string, []byte) (fsm.Executor, error) { return counterExec{}, nil }
	cfg.RaftTransport = func(id string) (raft.Transport, error) { return srv.Transport(id) }
	cfg.Dial = srv.Conn
	cfg.Logger = testutil.Logger(t, "node"+nd.addr[len(nd.addr)-5:])
	cfg.KeepAliveInterval = time.Second
	if tune != nil {
		tune(&cfg)
	}
	nd.cfg = cfg
	node, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nd.node = node
	node.Register(srv.GRPC())
	go srv.Serve()
}

// stopNode closes a node and its server (a clean stop; data stays).
func (tc *testCluster) stopNode(nd *testNode) {
	if nd.node != nil {
		nd.node.Close()
	}
	if nd.srv != nil {
		nd.srv.Close()
	}
}

// restartNode starts a stopped node again on its data and address.
func (tc *testCluster) restartNode(nd *testNode) {
	tc.startNode(nd, nil)
	if err := nd.node.Start(context.Background()); err != nil {
		tc.t.Fatal(err)
	}
}

func (tc *testCluster) close() {
	for _, nd := range tc.nodes {
		tc.stopNode(nd)
	}
}

func (tc *testCluster) channel(nd *testNode) *Channel {
	c, ok := nd.node.Channel(tc.id)
	if !ok {
		tc.t.Fatalf("node %s does not host the channel", nd.addr)
	}
	return c
}

// leader returns the node that leads (signs batches), or nil.
func (tc *testCluster) leader() *testNode {
	for _, nd := range tc.nodes {
		if nd.node == nil {
			continue
		}
		if c, ok := nd.node.Channel(tc.id); ok && c.leader.Load() != nil {
			return nd
		}
	}
	return nil
}

func (tc *testCluster) waitLeader(timeout time.Duration) *testNode {
	var l *testNode
	testutil.WaitFor(tc.t, timeout, func() error {
		if l = tc.leader(); l == nil {
			return fmt.Errorf("no leader")
		}
		return nil
	})
	return l
}

func (tc *testCluster) waitVoters(n int, timeout time.Duration) {
	testutil.WaitFor(tc.t, timeout, func() error {
		l := tc.leader()
		if l == nil {
			return fmt.Errorf("no leader")
		}
		cf := tc.channel(l).raft.GetConfiguration()
		if err := cf.Error(); err != nil {
			return err
		}
		v := 0
		for _, s := range cf.Configuration().Servers {
			if s.Suffrage == raft.Voter {
				v++
			}
		}
		if v != n {
			return fmt.Errorf("%d voters, want %d", v, n)
		}
		return nil
	})
}

// tx makes the next signed chat tx of user u.
func (tc *testCluster) tx(u *protocol.Key, msg string) *protocol.SignedTx {
	tc.mu.Lock()
	tc.nonces[u.Address()]++
	n := tc.nonces[u.Address()]
	tc.mu.Unlock()
	return protocol.SignTx(u, protocol.Tx{Channel: tc.id, Nonce: n, Function: "chat::send", Args: []byte(msg)})
}

// checkConverged waits until every running node applied height h at
// least and all agree on D(h), and checks every acknowledged outcome is in
// every member's history.
func (tc *testCluster) checkConverged(acked []*fsm.Outcome, timeout time.Duration) {
	tc.t.Helper()
	var h uint64
	for _, o := range acked {
		h = max(h, o.Height)
	}
	testutil.WaitFor(tc.t, timeout, func() error {
		var want protocol.Hash
		for i, nd := range tc.nodes {
			if nd.node == nil {
				continue
			}
			c, ok := nd.node.Channel(tc.id)
			if !ok {
				return fmt.Errorf("node %d does not host the channel", i)
			}
			d, ok := c.Digest(h)
			if !ok {
				return fmt.Errorf("node %d has not applied height %d (at %d)", i, h, c.Status().Height)
			}
			if i == 0 {
				want = d
			} else if d != want {
				return fmt.Errorf("node %d has digest %s at %d, node 0 %s", i, d, h, want)
			}
			for _, o := range acked {
				if d, ok := c.Digest(o.Height); !ok || d != o.Digest {
					return fmt.Errorf("node %d: acknowledged tx at height %d has digest %s, node has %s", i, o.Height, o.Digest, d)
				}
			}
		}
		return nil
	})
}
