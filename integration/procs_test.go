package integration

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/comet"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
	"github.com/scraft/scraft/vm"
	"google.golang.org/grpc"
)

// scraftBin is the scraft binary built once for the package by TestMain.
var scraftBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "scraft-integration-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	scraftBin = filepath.Join(dir, "scraft")
	if bin := os.Getenv("SCRAFT_BENCH_BIN"); bin != "" {
		// A binary built elsewhere (another commit), so that benchmarks
		// can compare two builds run by turns in the same hour.
		scraftBin = bin
	} else {
		build := exec.Command("go", "build", "-o", scraftBin, "../cmd/scraft")
		build.Stdout, build.Stderr = os.Stderr, os.Stderr
		if err := build.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "build scraft:", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	misbehave.dir = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is one scraft process.
type proc struct {
	name string
	bin  string   // the binary; scraftBin when empty
	env  []string // added to the test's environment
	args []string
	// netns, when set, is the network namespace the process runs in
	// (ip netns exec NETNS BIN ARGS...; ip execs the binary, so the pid
	// is the process's own).
	netns string
	cmd   *exec.Cmd
	log   *os.File
	done  chan struct{}
}

func startProc(t testing.TB, name string, args ...string) *proc {
	t.Helper()
	return startProcWith(t, name, "", nil, args...)
}

// startProcWith is startProc running bin (scraftBin when empty) with env
// added to the environment.
func startProcWith(t testing.TB, name, bin string, env []string, args ...string) *proc {
	t.Helper()
	return launchProc(t, &proc{name: name, bin: bin, env: env, args: args})
}

// launchProc starts p, with its log in SCRAFT_TEST_LOGS or a temporary
// folder, and kills it when the test ends.
func launchProc(t testing.TB, p *proc) *proc {
	t.Helper()
	name := p.name
	dir := os.Getenv("SCRAFT_TEST_LOGS") // keep the processes' logs there
	if dir == "" {
		dir = t.TempDir()
	}
	logf, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	p.log = logf
	p.start(t)
	t.Cleanup(func() {
		p.kill()
		if t.Failed() {
			b, _ := os.ReadFile(logf.Name())
			if len(b) > 6000 {
				b = b[len(b)-6000:]
			}
			t.Logf("--- %s log (tail) ---\n%s", name, b)
		}
		logf.Close()
	})
	return p
}

func (p *proc) start(t testing.TB) {
	t.Helper()
	bin := p.bin
	if bin == "" {
		bin = scraftBin
	}
	if p.netns != "" {
		p.cmd = exec.Command("ip", append([]string{"netns", "exec", p.netns, bin}, p.args...)...)
	} else {
		p.cmd = exec.Command(bin, p.args...)
	}
	if len(p.env) > 0 {
		p.cmd.Env = append(os.Environ(), p.env...)
	}
	p.cmd.Stdout, p.cmd.Stderr = p.log, p.log
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.done = make(chan struct{})
	go func(c *exec.Cmd, done chan struct{}) { c.Wait(); close(done) }(p.cmd, p.done)
}

// kill sends SIGKILL and waits for the process to end.
func (p *proc) kill() {
	if p.cmd == nil || p.cmd.Process == nil {
		return
	}
	p.cmd.Process.Signal(syscall.SIGCONT)
	p.cmd.Process.Kill()
	<-p.done
}

func (p *proc) signal(s syscall.Signal) { p.cmd.Process.Signal(s) }

// procCluster is a chain process and node processes hosting one chat
// channel, and its users.
type procCluster struct {
	t         testing.TB
	chainAddr string
	chainKey  protocol.Address // the chain's TLS key
	// chainKeys are a validator chain's keys (chainAddr then lists every
	// validator's API); nodes are given them with --chain-key.
	chainKeys []protocol.Address
	// validators are a validator chain's processes.
	validators []*proc
	chain      *proc
	id         protocol.ChannelID
	nodes      []*procNode
	users      []*protocol.Key
	abi        *contracts.Contract
	minStake   uint64 // the channel's minimum stake, staked before joining
	// clientDial, when set, is added to the load's clients' dial options
	// (the dialer of a netLab, whose nodes live in other namespaces).
	clientDial []grpc.DialOption
}

type procNode struct {
	key   *protocol.Key
	dir   string
	addr  string
	admin string
	p     *proc
	// misbehave, when set, is the node's SCRAFT_MISBEHAVE: it runs the
	// scraft_misbehave build (misbehaveBin).
	misbehave string
}

// nodeAddrs returns the member addresses of the cluster's nodes: what a
// client pins (client.Config.NodeKeys).
func (pc *procCluster) nodeAddrs() []protocol.Address {
	out := make([]protocol.Address, 0, len(pc.nodes))
	for _, nd := range pc.nodes {
		out = append(out, nd.key.Address())
	}
	return out
}

// newProcCluster starts `scraft chain`, creates a chat channel with n node
// members and the given number of user members, and starts the nodes: the
// first bootstraps the channel, the others join through it.
func newProcCluster(t testing.TB, n, users int) *procCluster {
	// Never settle: the checks read D(h) of every acknowledged height from
	// every node, and settlement prunes the journal below it.
	return newProcClusterSpec(t, n, users, clusterSpec{contract: "chat", config: contract.ChannelConfig{SettleEveryTxs: 1 << 62}})
}

// clusterSpec is the channel a procCluster creates: a demo contract and
// its chain configuration.
type clusterSpec struct {
	contract string
	// code, when set, is the contract to deploy instead of the embedded
	// one named contract (a test contract read from its folder).
	code   *contracts.Contract
	config contract.ChannelConfig
	// validators, when set, runs the chain on CometBFT with that many
	// validator processes instead of one `scraft chain`.
	validators int
	// misbehave gives nodes (by index) a SCRAFT_MISBEHAVE spec: they run
	// the scraft_misbehave build.
	misbehave map[int]string
	// keys, when set, are the first members' keys (nodes, then users), in
	// order; the rest are generated.
	keys []*protocol.Key
}

// newProcClusterSpec is newProcCluster for the channel spec describes.
func newProcClusterSpec(t testing.TB, n, users int, spec clusterSpec) *procCluster {
	t.Helper()
	pc := &procCluster{t: t, chainAddr: testutil.FreePort(t)}
	if spec.validators > 0 {
		pc.startComet(spec.validators)
	} else {
		pc.chain, pc.chainKey = startChain(t, pc.chainAddr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	abi := spec.code
	if abi == nil {
		var err error
		if abi, err = contracts.Get(spec.contract); err != nil {
			t.Fatal(err)
		}
	}
	pc.abi = abi
	pc.minStake = spec.config.MinStake
	initial := initialState(t, abi.Wasm)
	creator, _ := protocol.GenerateKey(nil)
	cl := pc.dialChain(creator)
	testutil.WaitFor(t, 20*time.Second, func() error {
		_, err := cl.Head(ctx)
		return err
	})
	var err error
	pc.id, err = cl.CreateChannel(ctx, settlement.ChannelSpec{Contract: spec.contract, Code: abi.Wasm, InitialState: initial,
		Config: spec.config})
	if err != nil {
		t.Fatal(err)
	}
	keys := make([]*protocol.Key, n+users)
	for i := range keys {
		if i < len(spec.keys) {
			keys[i] = spec.keys[i]
		} else {
			keys[i], _ = protocol.GenerateKey(nil)
		}
	}
	// The nodes' members join first: in a channel of more than five
	// members only the five best ranked (stake, then join order) may lead,
	// and the users run no node.
	for _, group := range [][]*protocol.Key{keys[:n], keys[n:]} {
		errs := make(chan error, len(group))
		sem := make(chan struct{}, 32)
		for _, k := range group {
			cl := pc.dialChain(k)
			go func() {
				sem <- struct{}{}
				defer func() { <-sem }()
				errs <- pc.joinOnChain(ctx, cl)
			}()
		}
		for range group {
			if err := <-errs; err != nil {
				t.Fatal(err)
			}
		}
	}
	for i, k := range keys {
		if i < n {
			nd := pc.newNode(k)
			nd.misbehave = spec.misbehave[i]
			pc.nodes = append(pc.nodes, nd)
		} else {
			pc.users = append(pc.users, k)
		}
	}
	for i, nd := range pc.nodes {
		var peers []string
		if i > 0 {
			peers = []string{pc.nodes[0].addr}
		}
		pc.startNode(nd, peers)
		if i == 0 {
			pc.waitLeader(30 * time.Second)
		}
	}
	pc.waitVoters(n, 60*time.Second)
	return pc
}

// startComet writes a local CometBFT network of n validators with
// `scraft chain testnet` and starts each with `scraft chain --engine
// comet`; chainAddr becomes every validator's API address.
func (pc *procCluster) startComet(n int) {
	t := pc.t
	dir := t.TempDir()
	base := 0
	for base == 0 {
		// A free block of 2n ports: the testnet numbers them from a base.
		p, _ := strconv.Atoi(strings.Split(testutil.FreePort(t), ":")[1])
		if p+2*n < 65000 {
			base = p
		}
	}
	out, err := exec.Command(scraftBin, "chain", "testnet", "--validators", strconv.Itoa(n), "--out", dir,
		"--base-port", strconv.Itoa(base)).CombinedOutput()
	if err != nil {
		t.Fatalf("scraft chain testnet: %v\n%s", err, out)
	}
	var apis []string
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		// validator I: home DIR, API ADDR, key KEY
		if len(f) == 8 && f[0] == "validator" {
			apis = append(apis, strings.TrimSuffix(f[5], ","))
			k, err := protocol.ParseAddress(f[7])
			if err != nil {
				t.Fatalf("testnet output %q: %v", line, err)
			}
			pc.chainKeys = append(pc.chainKeys, k)
		}
	}
	if len(apis) != n {
		t.Fatalf("scraft chain testnet printed %d validators, want %d:\n%s", len(apis), n, out)
	}
	pc.chainAddr = strings.Join(apis, ",")
	for i := range n {
		pc.validators = append(pc.validators, startProc(t, fmt.Sprintf("validator%d", i), "chain", "--engine", "comet",
			"--home", filepath.Join(dir, fmt.Sprintf("node%d", i))))
	}
}

// startChain starts `scraft chain` on addr with a key of its own, and
// returns the process and the key's address. Clients here pin the key;
// nodes pin it on first contact in their data folders.
func startChain(t testing.TB, addr string) (*proc, protocol.Address) {
	t.Helper()
	dir := t.TempDir()
	k, _ := protocol.GenerateKey(nil)
	keyFile := filepath.Join(dir, "chain.key")
	if err := protocol.SaveKey(keyFile, k); err != nil {
		t.Fatal(err)
	}
	p := startProc(t, "chain", "chain", "--data", filepath.Join(dir, "data"), "--key", keyFile, "--listen", addr, "--block-interval", "20ms")
	return p, k.Address()
}

// joinOnChain stakes the channel's minimum stake with cl's key, if the
// channel has one, and joins that key to the channel on chain.
func (pc *procCluster) joinOnChain(ctx context.Context, cl *devchain.Client) error {
	if pc.minStake > 0 {
		if err := cl.Stake(ctx, pc.id, pc.minStake); err != nil {
			return fmt.Errorf("stake: %w", err)
		}
	}
	_, err := cl.Join(ctx, pc.id, false)
	return err
}

func (pc *procCluster) dialChain(k *protocol.Key) *devchain.Client {
	var cl *devchain.Client
	var err error
	if len(pc.chainKeys) > 0 {
		// A chain of validators: believe what f+1 of them say.
		addrs := strings.Split(pc.chainAddr, ",")
		cl, err = comet.DialQuorum(addrs, k, (len(addrs)-1)/3, devchain.WithChainKeys(pc.chainKeys...))
	} else {
		cl, err = devchain.Dial(pc.chainAddr, k, devchain.WithChainKeys(pc.chainKey))
	}
	if err != nil {
		pc.t.Fatal(err)
	}
	pc.t.Cleanup(func() { cl.Close() })
	return cl
}

func (pc *procCluster) newNode(k *protocol.Key) *procNode {
	dir := pc.t.TempDir()
	keyFile := filepath.Join(dir, "node.key")
	if err := protocol.SaveKey(keyFile, k); err != nil {
		pc.t.Fatal(err)
	}
	return &procNode{key: k, dir: dir, addr: testutil.FreePort(pc.t), admin: testutil.FreePort(pc.t)}
}

func (pc *procCluster) startNode(nd *procNode, peers []string) {
	args := []string{"node", "--data", filepath.Join(nd.dir, "data"), "--listen", nd.addr, "--admin", nd.admin,
		"--chain", pc.chainAddr, "--key", filepath.Join(nd.dir, "node.key"), "--channel", pc.id.String(), "--log-level", "info"}
	for _, p := range peers {
		args = append(args, "--peer", p)
	}
	if len(pc.chainKeys) > 0 {
		var keys []string
		for _, k := range pc.chainKeys {
			keys = append(keys, k.String())
		}
		args = append(args, "--chain-key", strings.Join(keys, ","))
	}
	// SCRAFT_NODE_ARGS: more flags for every node, to compare settings
	// in the benchmarks (e.g. "--batch-in-flight 1").
	args = append(args, strings.Fields(os.Getenv("SCRAFT_NODE_ARGS"))...)
	if nd.misbehave == "" {
		nd.p = startProc(pc.t, "node-"+nd.addr, args...)
		return
	}
	nd.p = startProcWith(pc.t, "node-"+nd.addr, misbehaveBin(pc.t), []string{"SCRAFT_MISBEHAVE=" + nd.misbehave}, args...)
}

// restart starts a killed node again on its data (no --peer: it comes back
// as the member it was).
func (pc *procCluster) restart(nd *procNode) {
	nd.p.start(pc.t)
}

// nodeStatus is the part of cluster.Status the tests read.
type nodeStatus struct {
	Channel   protocol.ChannelID `json:"channel"`
	Height    uint64             `json:"height"`
	Epoch     uint64             `json:"epoch"`
	Leading   bool               `json:"leading"`
	Ready     bool               `json:"ready"`
	Voters    int                `json:"voters"`
	Evidence  uint64             `json:"evidence"`
	Holding   bool               `json:"holding"`
	Diverged  bool               `json:"diverged"`
	RaftState string             `json:"raft_state"`
}

// status reads a node's channel status from its admin listener.
func (nd *procNode) status(id protocol.ChannelID) (*nodeStatus, error) {
	f, err := nd.fullStatus(id)
	if err != nil {
		return nil, err
	}
	return &f.nodeStatus, nil
}

// digest reads D(h) from a node.
func (nd *procNode) digest(id protocol.ChannelID, h uint64) (protocol.Hash, error) {
	hc := http.Client{Timeout: time.Second}
	resp, err := hc.Get(fmt.Sprintf("http://%s/digest?channel=%s&height=%d", nd.admin, id, h))
	if err != nil {
		return protocol.Hash{}, err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return protocol.Hash{}, fmt.Errorf("%s", bytes.TrimSpace(b))
	}
	var v struct {
		Digest string `json:"digest"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return protocol.Hash{}, err
	}
	var d protocol.Hash
	b, err = hex.DecodeString(v.Digest)
	if err != nil || len(b) != len(d) {
		return d, fmt.Errorf("bad digest %q", v.Digest)
	}
	copy(d[:], b)
	return d, nil
}

func (pc *procCluster) leader() *procNode {
	for _, nd := range pc.nodes {
		if st, err := nd.status(pc.id); err == nil && st.Leading {
			return nd
		}
	}
	return nil
}

func (pc *procCluster) waitLeader(timeout time.Duration) *procNode {
	var l *procNode
	testutil.WaitFor(pc.t, timeout, func() error {
		if l = pc.leader(); l == nil {
			return fmt.Errorf("no leader")
		}
		return nil
	})
	return l
}

func (pc *procCluster) waitOtherLeader(old *procNode, timeout time.Duration) *procNode {
	var l *procNode
	testutil.WaitFor(pc.t, timeout, func() error {
		if l = pc.leader(); l == nil || l == old {
			return fmt.Errorf("no new leader")
		}
		return nil
	})
	return l
}

// waitVoters waits until the leader has n voters and every node reports
// the leader and has caught up.
func (pc *procCluster) waitVoters(n int, timeout time.Duration) {
	testutil.WaitFor(pc.t, timeout, func() error {
		l := pc.leader()
		if l == nil {
			return fmt.Errorf("no leader")
		}
		if st, err := l.status(pc.id); err != nil || st.Voters != n {
			return fmt.Errorf("leader has not %d voters yet: %v", n, err)
		}
		ready := 0
		for _, nd := range pc.nodes {
			if st, err := nd.status(pc.id); err == nil && st.Ready {
				ready++
			}
		}
		if ready < n {
			return fmt.Errorf("%d of %d nodes ready", ready, n)
		}
		return nil
	})
}

// acked is one acknowledged tx.
type acked struct {
	height  uint64
	digest  protocol.Hash
	at      time.Time
	latency time.Duration
	sent    time.Time // when the client first sent it
}

// load runs one client per user, each sending chat messages through every
// node (the client fails over between them) until stop is closed.
type load struct {
	mu   sync.Mutex
	acks []acked
	errs int
	stop chan struct{}
	wg   sync.WaitGroup
	// interval, when set, is the time between the starts of one client's
	// calls: the clients together send at len(users) / interval.
	interval time.Duration
	// cfg is the clients' configuration.
	cfg client.Config
}

func (pc *procCluster) startLoad(users []*protocol.Key) *load {
	return pc.startPacedLoad(users, 0, nil)
}

// startPacedLoad is startLoad with the clients together sending at most
// rate calls per second (0: as fast as they commit), sharing the
// connections of pool when it is not nil.
func (pc *procCluster) startPacedLoad(users []*protocol.Key, rate int, pool *client.Pool) *load {
	return pc.startLoadVia(users, rate, pool, pc.nodes)
}

// startLoadVia is startPacedLoad with the clients talking to, and
// trusting, the nodes of via only.
func (pc *procCluster) startLoadVia(users []*protocol.Key, rate int, pool *client.Pool, via []*procNode) *load {
	l := &load{stop: make(chan struct{}), cfg: client.DefaultConfig()}
	l.cfg.Pool = pool
	l.cfg.DialOptions = append(l.cfg.DialOptions, pc.clientDial...)
	if rate > 0 {
		l.interval = time.Duration(len(users)) * time.Second / time.Duration(rate)
	}
	var addrs []string
	for _, nd := range via {
		addrs = append(addrs, nd.addr)
		l.cfg.NodeKeys = append(l.cfg.NodeKeys, nd.key.Address())
	}
	for i, u := range users {
		l.wg.Add(1)
		go func() {
			defer l.wg.Done()
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			go func() { <-l.stop; cancel() }()
			// A node that hangs (SIGSTOP) keeps its connections open: a
			// client whose call times out dials again, starting with the
			// next node.
			attempt := i
			cl, err := l.cfg.Dial(ctx, u, rotate(addrs, attempt)...)
			if err != nil {
				pc.t.Errorf("user %d: dial: %v", i, err)
				return
			}
			defer func() { cl.Close() }()
			// next is when this client's next call is due (paced load):
			// spread over one interval so that the clients do not send in
			// step.
			next := time.Now().Add(time.Duration(i) * l.interval / time.Duration(max(len(users), 1)))
			call := func(fn, args string) {
				b, err := pc.abi.EncodeArgs(fn, []byte(args))
				if err != nil {
					pc.t.Errorf("encode %s: %v", fn, err)
					return
				}
				if l.interval > 0 {
					select {
					case <-time.After(time.Until(next)):
					case <-ctx.Done():
						return
					}
					next = next.Add(l.interval)
					if now := time.Now(); next.Before(now) {
						next = now // behind: do not burst to catch up
					}
				}
				for ctx.Err() == nil {
					cctx, ccancel := context.WithTimeout(ctx, 3*time.Second)
					start := time.Now()
					res, err := cl.Call(cctx, pc.id, "chat::"+fn, b)
					timedOut := cctx.Err() != nil
					ccancel()
					if err == nil || res != nil {
						l.mu.Lock()
						l.acks = append(l.acks, acked{height: res.Height, digest: res.Digest, at: time.Now(), latency: time.Since(start), sent: start})
						if err != nil {
							l.errs++ // ordered with a failure status: acknowledged all the same
						}
						l.mu.Unlock()
						return
					}
					if timedOut && ctx.Err() == nil {
						attempt++
						if ncl, derr := l.cfg.Dial(ctx, u, rotate(addrs, attempt)...); derr == nil {
							cl.Close()
							cl = ncl
						}
					}
				}
			}
			call("join", fmt.Sprintf(`{"nick":"user%d"}`, i))
			for j := 0; ctx.Err() == nil; j++ {
				call("send", fmt.Sprintf(`{"text":"message %d from user %d"}`, j, i))
			}
		}()
	}
	return l
}

func rotate(s []string, i int) []string {
	i %= len(s)
	return append(append([]string(nil), s[i:]...), s[:i]...)
}

// end stops the load and returns what was acknowledged.
func (l *load) end() []acked {
	close(l.stop)
	l.wg.Wait()
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]acked(nil), l.acks...)
}

func (l *load) count() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.acks)
}

// checkAcked waits until every running node has every acknowledged tx with
// the acknowledged digest.
func (pc *procCluster) checkAcked(acks []acked, nodes []*procNode, timeout time.Duration) {
	pc.t.Helper()
	var top uint64
	for _, a := range acks {
		top = max(top, a.height)
	}
	testutil.WaitFor(pc.t, timeout, func() error {
		for _, nd := range nodes {
			st, err := nd.status(pc.id)
			if err != nil {
				return err
			}
			if st.Height < top {
				return fmt.Errorf("node %s at height %d, want %d", nd.addr, st.Height, top)
			}
		}
		return nil
	})
	for _, nd := range nodes {
		for _, a := range acks {
			d, err := nd.digest(pc.id, a.height)
			if err != nil {
				pc.t.Fatalf("node %s: height %d: %v", nd.addr, a.height, err)
			}
			if d != a.digest {
				pc.t.Fatalf("node %s: acknowledged height %d has digest %s, the node %s", nd.addr, a.height, a.digest, d)
			}
		}
	}
}

func initialState(t testing.TB, wasm []byte) protocol.State {
	ctx := context.Background()
	e, err := vm.NewEngine(ctx, vm.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close(ctx)
	m, err := e.Deploy(ctx, wasm)
	if err != nil {
		t.Fatal(err)
	}
	st := protocol.State{}
	if m.Has(protocol.FuncInit) {
		r := m.Call(ctx, st, vm.Call{Function: protocol.FuncInit, Gas: 1 << 40})
		if r.Status != protocol.StatusOK {
			t.Fatalf("init: %s: %s", r.Status, r.Message)
		}
		if err := st.Apply(r.ChangeSet); err != nil {
			t.Fatal(err)
		}
	}
	return st
}

var _ = strings.TrimSpace

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }

func mustKey(t testing.TB) *protocol.Key {
	k, err := protocol.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// lastSent returns when the latest acknowledged tx was first sent.
func (l *load) lastSent() time.Time {
	l.mu.Lock()
	defer l.mu.Unlock()
	var t time.Time
	for _, a := range l.acks {
		if a.sent.After(t) {
			t = a.sent
		}
	}
	return t
}
