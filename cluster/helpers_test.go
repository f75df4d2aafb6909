package cluster

import (
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc"

	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
	"github.com/scraft/scraft/transport"
)

// testChain is a devchain in process with a manual clock: blocks every
// 5 ms, chain time moves only when a test advances it.
type testChain struct {
	chain *devchain.Chain
	clock *devchain.ManualClock
}

func newTestChain(t testing.TB) *testChain { return newTestChainWith(t, 5*time.Millisecond, false) }

// newTestChainWith is newTestChain with blocks every interval, and with
// no log at all when quiet.
func newTestChainWith(t testing.TB, interval time.Duration, quiet bool) *testChain {
	clock := devchain.NewManualClock(time.Now())
	cfg := devchain.DefaultConfig(t.TempDir())
	cfg.BlockInterval = interval
	cfg.Clock = clock
	cfg.NoSync = true
	cfg.Logger = hclog.NewNullLogger()
	if !quiet {
		cfg.Logger = testutil.Logger(t, "devchain")
	}
	ch, err := devchain.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ch.Close() })
	return &testChain{chain: ch, clock: clock}
}

func (c *testChain) client(k *protocol.Key) *devchain.Client { return devchain.NewLocal(c.chain, k) }

// counterExec is a tiny deterministic contract "chat": send appends its
// args to the sender's Messages resource and returns the new length.
type counterExec struct{}

func (counterExec) Has(fn string) bool { return fn == "send" }

func (counterExec) Execute(call protocol.Call, st protocol.StateReader) protocol.CallResult {
	if call.Function != "send" {
		return protocol.CallResult{Status: protocol.StatusBadInput, Message: "unknown function"}
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
	return protocol.CallResult{Status: protocol.StatusOK, GasUsed: uint64(len(call.Args)) + 10,
		ChangeSet: protocol.ChangeSet{Changes: []protocol.Change{ch}}, Output: out}
}

// testNode is one in-process node: its gRPC server and its cluster.Node.
type testNode struct {
	mu   sync.Mutex // guards node against the load's goroutines
	key  *protocol.Key
	dir  string
	addr string
	srv  *transport.Server
	node *Node
	cfg  Config
}

type testCluster struct {
	t      testing.TB
	chain  *testChain
	faults *transport.Faults
	id     protocol.ChannelID
	nodes  []*testNode
	users  []*protocol.Key
	nonces map[protocol.Address]uint64
	mu     sync.Mutex
	acked  []*protocol.Outcome
	// transportTune, when set, changes a node's transport settings
	// before it starts (a benchmark counts bytes there).
	transportTune func(nd *testNode, cfg *transport.Config)
}

// newTestCluster creates a channel with n members on an in-process chain
// and starts n nodes: the first bootstraps, the others join through it.
func newTestCluster(t testing.TB, n int, tune func(*Config)) *testCluster {
	return newTestClusterUsers(t, n, 0, tune)
}

// newTestClusterUsers is newTestCluster with extra members on chain that
// run no node: clients that sign txs.
func newTestClusterUsers(t testing.TB, n, users int, tune func(*Config)) *testCluster {
	return newTestClusterSpec(t, n, users, contract.ChannelConfig{SettleEveryTxs: noSettlement}, tune)
}

// noSettlement is a settlement policy that never comes due: tests that
// check every acknowledged tx's digest on every member keep the whole
// journal, which settlement would prune. The settlement tests set their own.
const noSettlement = 1 << 62

// newTestClusterSpec is newTestClusterUsers with the channel's settings.
func newTestClusterSpec(t testing.TB, n, users int, chcfg contract.ChannelConfig, tune func(*Config)) *testCluster {
	t.Helper()
	tc := &testCluster{t: t, chain: newTestChain(t), faults: transport.NewFaults(1), nonces: map[protocol.Address]uint64{}}
	ctx := context.Background()
	creator, _ := protocol.GenerateKey(nil)
	id, err := tc.chain.client(creator).CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("chat code"), InitialState: protocol.State{}, Config: chcfg})
	if err != nil {
		t.Fatal(err)
	}
	tc.id = id
	for i := 0; i < n; i++ {
		k, _ := protocol.GenerateKey(nil)
		if chcfg.MinStake > 0 {
			if err := tc.chain.client(k).Stake(ctx, tc.id, chcfg.MinStake); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := tc.chain.client(k).Join(ctx, tc.id, false); err != nil {
			t.Fatal(err)
		}
		tc.nodes = append(tc.nodes, &testNode{key: k, dir: t.TempDir()})
	}
	tc.users = make([]*protocol.Key, 0, n+users)
	for _, nd := range tc.nodes {
		tc.users = append(tc.users, nd.key)
	}
	for i := 0; i < users; i++ {
		k, _ := protocol.GenerateKey(nil)
		if _, err := tc.chain.client(k).Join(ctx, tc.id, false); err != nil {
			t.Fatal(err)
		}
		tc.users = append(tc.users, k)
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
	if users > 0 {
		tc.expireUsers(n)
	}
	return tc
}

// expireUsers moves chain time past the heartbeat TTL so that members that
// run no node (and so never keep alive) stop counting as valid, and waits
// for the n nodes' heartbeats: only members that can attest count in a
// claim's quorum.
func (tc *testCluster) expireUsers(n int) {
	tc.chain.clock.Advance(contract.DefaultHeartbeatTTL + time.Second)
	cl := tc.chain.client(tc.nodes[0].key)
	testutil.WaitFor(tc.t, 10*time.Second, func() error {
		info, err := cl.Channel(context.Background(), tc.id)
		if err != nil {
			return err
		}
		if v := info.ValidMembers(); v != n {
			return fmt.Errorf("%d valid members, want %d", v, n)
		}
		return nil
	})
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
	tcfg.Key = nd.key
	self := nd.addr
	tcfg.DialOptions = []grpc.DialOption{grpc.WithChainUnaryInterceptor(
		func(ctx context.Context, method string, req, reply any, cc *grpc.ClientConn, invoker grpc.UnaryInvoker, opts ...grpc.CallOption) error {
			if tc.faults.Cut(self, cc.Target()) {
				return transport.ErrFaultInjected
			}
			return invoker(ctx, method, req, reply, cc, opts...)
		})}
	if tc.transportTune != nil {
		tc.transportTune(nd, &tcfg)
	}
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
	if raceEnabled {
		// The race detector makes everything 5-10 times slower on a
		// small machine: heartbeats would be missed under load.
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 1500*time.Millisecond, 1500*time.Millisecond, 750*time.Millisecond
	}
	if tune != nil {
		tune(&cfg)
	}
	nd.cfg = cfg
	node, err := NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	nd.mu.Lock()
	nd.node = node
	nd.mu.Unlock()
	node.Register(srv.GRPC())
	srv.SetAuthorizer(node.RaftAuthorizer())
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
	nd.mu.Lock()
	nd.node, nd.srv = nil, nil
	nd.mu.Unlock()
}

// get returns the node's cluster.Node, nil while it is stopped.
func (nd *testNode) get() *Node {
	nd.mu.Lock()
	defer nd.mu.Unlock()
	return nd.node
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
func (tc *testCluster) checkConverged(acked []*protocol.Outcome, timeout time.Duration) {
	tc.t.Helper()
	var h uint64
	for _, o := range acked {
		h = max(h, o.Height)
	}
	testutil.WaitFor(tc.t, timeout, func() error {
		var want protocol.Hash
		first := true
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
			if first {
				want, first = d, false
			} else if d != want {
				return fmt.Errorf("node %d has digest %s at %d, another %s", i, d, h, want)
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

// load runs one worker per user, each submitting its txs in order through
// the node chosen by pick until stop is closed; it returns the acknowledged
// outcomes.
func (tc *testCluster) load(stop <-chan struct{}, users []*protocol.Key, pick func(i int) *testNode) []*protocol.Outcome {
	var mu sync.Mutex
	var acked []*protocol.Outcome
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; ; j++ {
				select {
				case <-stop:
					return
				default:
				}
				n := pick(i + j).get()
				if n == nil {
					continue
				}
				c, ok := n.Channel(tc.id)
				if !ok {
					continue
				}
				tx := tc.tx(u, fmt.Sprintf("u%d-%d;", i, j))
				for {
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					out, err := c.Submit(ctx, tx)
					cancel()
					if err == nil {
						if out.Result.Status != protocol.StatusOK {
							tc.t.Errorf("user %d tx %d: status %s: %s", i, j, out.Result.Status, out.Message)
						}
						mu.Lock()
						acked = append(acked, out)
						mu.Unlock()
						break
					}
					select {
					case <-stop:
						// The tx may or may not be committed; the next one
						// would need its nonce. Stop this worker.
						return
					default:
					}
					// Retry the same tx through another node.
					j++
					if n = pick(i + j).get(); n == nil {
						continue
					}
					if c, ok = n.Channel(tc.id); !ok {
						return
					}
				}
			}
		}()
	}
	<-stop
	wg.Wait()
	return acked
}

// waitOtherLeader waits for a leader other than old.
func (tc *testCluster) waitOtherLeader(old *testNode, timeout time.Duration) *testNode {
	var l *testNode
	testutil.WaitFor(tc.t, timeout, func() error {
		for _, nd := range tc.nodes {
			if nd == old || nd.get() == nil {
				continue
			}
			if c, ok := nd.get().Channel(tc.id); ok && c.leader.Load() != nil {
				l = nd
				return nil
			}
		}
		return fmt.Errorf("no new leader")
	})
	return l
}

// tryMachine is machine without waiting: it reports false when the FSM is
// busy (a long apply, a genesis loading its code) and fn did not run.
func (f *machineFSM) tryMachine(fn func(m *fsm.Machine)) bool {
	if !f.mu.TryLock() {
		return false
	}
	defer f.mu.Unlock()
	fn(f.m)
	return true
}

// others returns the cluster's nodes but nd.
func (tc *testCluster) others(nd *testNode) []*testNode {
	var out []*testNode
	for _, o := range tc.nodes {
		if o != nd {
			out = append(out, o)
		}
	}
	return out
}

// checkAbandoned checks a channel stopped while an apply waited on the
// chain: its machine is abandoned, takes no snapshot, and nothing from
// height from on reached its subscription feed (closed by the stop).
func (tc *testCluster) checkAbandoned(c *Channel, feed <-chan Applied, from uint64) {
	t := tc.t
	t.Helper()
	if !c.fsm.abandoned.Load() {
		t.Fatal("the machine was not abandoned")
	}
	if _, err := c.fsm.Snapshot(); err == nil {
		t.Fatal("an abandoned machine took a snapshot")
	}
	for a := range feed {
		for _, o := range a.Outcomes {
			if o.Height >= from {
				t.Fatalf("outcome at height %d published from an abandoned apply", o.Height)
			}
		}
	}
}
