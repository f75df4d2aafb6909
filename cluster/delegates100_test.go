package cluster

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"google.golang.org/grpc"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
	"github.com/scraft/scraft/transport"
	"github.com/scraft/scraft/vm"
)

// mcWorld is a channel running the real MoveCraft contract: every node
// deploys the committed wasm on its own vm.Engine (one compilation cache
// on disk for all, as on one host), and every member is a player,
// spawned by the contract's on_join hook.
type mcWorld struct {
	*testCluster
	mc *contracts.Contract
}

// worldOptions are the settings of newMovecraftWorld.
type worldOptions struct {
	channel contract.ChannelConfig
	// tune changes every node's config after the defaults of the world.
	tune func(*Config)
	// transport, when set, changes a node's transport before it starts.
	transport func(nd *testNode, cfg *transport.Config)
	// quiet drops the nodes' and the chain's logs (benchmarks); otherwise
	// warnings and errors go to the test's log.
	quiet bool
	// blockInterval is the chain's; default 5 ms (newTestChain).
	blockInterval time.Duration
}

// worldChain is newTestChain with the world's block interval and logs.
func worldChain(t testing.TB, o worldOptions) *testChain {
	return newTestChainWith(t, cmp.Or(o.blockInterval, 5*time.Millisecond), o.quiet)
}

// newMovecraftWorld creates a MoveCraft channel of n members (n > 5) with
// a node each: the first opens it, the others join through it. It
// returns once the Raft configuration is the five candidates, all voters,
// and every other member delegates on chain.
func newMovecraftWorld(t testing.TB, n int, o worldOptions) *mcWorld {
	t.Helper()
	mc, err := contracts.Get("movecraft")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	cache := t.TempDir()
	var emu sync.Mutex
	var engines []*vm.Engine
	t.Cleanup(func() { // after the nodes: registered before tc.close
		emu.Lock()
		defer emu.Unlock()
		for _, e := range engines {
			e.Close(context.Background())
		}
	})
	initial := protocol.State{}
	{
		e, err := vm.NewEngine(ctx, vm.Config{CompilationCacheDir: cache})
		if err != nil {
			t.Fatal(err)
		}
		m, err := e.Deploy(ctx, mc.Wasm)
		if err != nil {
			t.Fatal(err)
		}
		r := m.Call(ctx, initial, vm.Call{Function: protocol.FuncInit, Gas: protocol.DefaultGasLimit})
		if r.Status != protocol.StatusOK {
			t.Fatalf("movecraft init: %s %s", r.Status, r.Message)
		}
		if err := initial.Apply(r.ChangeSet); err != nil {
			t.Fatal(err)
		}
		e.Close(ctx)
	}
	tc := &testCluster{t: t, chain: worldChain(t, o), faults: transport.NewFaults(1), nonces: map[protocol.Address]uint64{},
		transportTune: o.transport}
	creator, _ := protocol.GenerateKey(nil)
	tc.id, err = tc.chain.client(creator).CreateChannel(ctx, settlement.ChannelSpec{Contract: "movecraft", Code: mc.Wasm,
		InitialState: initial, Config: o.channel})
	if err != nil {
		t.Fatal(err)
	}
	tc.addMembers(n)
	t.Cleanup(tc.close)
	cfgOf := func(cfg *Config) {
		cfg.Executors = func(_ string, code []byte) (fsm.Executor, error) {
			e, err := vm.NewEngine(context.Background(), vm.Config{CompilationCacheDir: cache})
			if err != nil {
				return nil, err
			}
			emu.Lock()
			engines = append(engines, e)
			emu.Unlock()
			m, err := e.Deploy(context.Background(), code)
			if err != nil {
				return nil, err
			}
			return m, nil
		}
		// A hundred nodes share the machine's cores: the Raft timeouts
		// the race detector gets, so that a busy moment is not taken
		// for a dead leader.
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 1500*time.Millisecond, 1500*time.Millisecond, 750*time.Millisecond
		if o.quiet {
			cfg.Logger = hclog.NewNullLogger()
		} else {
			cfg.Logger.SetLevel(hclog.Warn)
		}
		if o.tune != nil {
			o.tune(cfg)
		}
	}
	tc.startMembers(cfgOf, 120*time.Second, nil)
	tc.waitCandidateVoters(60 * time.Second)
	tc.waitDelegated(60 * time.Second)
	return &mcWorld{testCluster: tc, mc: mc}
}

// joinAll has every member join the game (the members on chain when the
// channel opened are its genesis: no on_join hook spawns them), each
// through its own node, and waits for the players on nd's machine.
func (w *mcWorld) joinAll() {
	w.t.Helper()
	var wg sync.WaitGroup
	for i, u := range w.users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			tx := w.tx(u, "join", fmt.Sprintf(`{"name":"p%d"}`, i))
			err := testutil.Poll(60*time.Second, func() error {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				out, err := w.channel(w.nodes[i]).Submit(ctx, tx)
				if err != nil {
					return err
				}
				if out.Result.Status != protocol.StatusOK {
					return fmt.Errorf("join: %s %s", out.Result.Status, out.Message)
				}
				return nil
			})
			if err != nil {
				w.t.Errorf("player %d: %v", i, err)
			}
		}()
	}
	wg.Wait()
}

// tx makes user u's next signed MoveCraft call.
func (w *mcWorld) tx(u *protocol.Key, fn, jsonArgs string) *protocol.SignedTx {
	w.t.Helper()
	args, err := w.mc.EncodeArgs(fn, []byte(jsonArgs))
	if err != nil {
		w.t.Fatal(err)
	}
	w.mu.Lock()
	w.nonces[u.Address()]++
	n := w.nonces[u.Address()]
	w.mu.Unlock()
	return protocol.SignTx(u, protocol.Tx{Channel: w.id, Nonce: n, Function: "movecraft::" + fn, Args: args})
}

// play is what player i does at its j-th step: walk within a few voxels
// of the centre, and build and dig where it stands (a call the contract
// refuses, out of reach or into an occupied voxel, is an outcome too).
func play(i, j int) (fn, args string) {
	x, y := 56+(i*7+j)%16, 56+(i*3+j*5)%16
	switch j % 3 {
	case 0:
		return "move", xyz(x, y, 10+j%4)
	case 1:
		return "place", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d,"item":3}`, x, y, 10)
	default:
		return "break_block", xyz(x, y, 10)
	}
}

func xyz(x, y, z int) string { return fmt.Sprintf(`{"x":%d,"y":%d,"z":%d}`, x, y, z) }

// play runs one worker per user, each sending its calls in order through
// the node chosen by pick until stop is closed, a call the chain refuses
// retried through another node. It returns the acknowledged outcomes; a
// contract's abort is an outcome, any other status fails the test.
func (w *mcWorld) play(stop <-chan struct{}, users []*protocol.Key, pick func(i int) *testNode) []*protocol.Outcome {
	var mu sync.Mutex
	var acked []*protocol.Outcome
	var wg sync.WaitGroup
	for i, u := range users {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j, k := 0, 0; ; j++ {
				fn, args := play(i, j)
				tx := w.tx(u, fn, args)
				failed := false // a submission of tx ended without an answer
				for {
					select {
					case <-stop:
						// The tx may or may not be committed; the next one
						// would need its nonce. Stop this worker.
						return
					default:
					}
					k++
					n := pick(i + k).get()
					if n == nil {
						continue
					}
					c, ok := n.Channel(w.id)
					if !ok {
						continue
					}
					ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
					out, err := c.Submit(ctx, tx)
					cancel()
					if err != nil {
						failed = true
						continue // the same tx again: it may have committed
					}
					if out.Result.Status == protocol.StatusBadNonce && failed {
						break // an earlier try committed: its outcome is not known here
					}
					if s := out.Result.Status; s != protocol.StatusOK && s != protocol.StatusAbort {
						w.t.Errorf("user %d call %d (%s): status %s: %s", i, j, fn, s, out.Message)
					}
					mu.Lock()
					acked = append(acked, out)
					mu.Unlock()
					break
				}
			}
		}()
	}
	<-stop
	wg.Wait()
	return acked
}

// TestDelegates100Members runs a MoveCraft world of 100 members, 5
// candidates and 95 delegators, each with its node in process, ticks on
// and settlement rounds due every 400 txs:
//
//   - every player moves, builds and digs through its own node; the
//     world's ticks walk them;
//   - a candidate that is not the leader is stopped: its delegators are
//     relayed by other candidates, the chain drops it once its heartbeat
//     lapses, a new candidate is promoted to voter and the delegators
//     move on chain; writes go on;
//   - then the leader's node is stopped: a candidate is elected on chain
//     and writes resume in its epoch;
//   - settlements pass through it all, and every live member applies
//     every batch with the same digest and holds every acknowledged call.
//
// It takes minutes on a small machine: make chaos runs it.
func TestDelegates100Members(t *testing.T) {
	if testing.Short() {
		t.Skip("a channel of 100 in-process nodes: make chaos")
	}
	const n = 100
	w := newMovecraftWorld(t, n, worldOptions{
		channel: contract.ChannelConfig{TickInterval: 200 * time.Millisecond, SettleEveryTxs: 400},
		tune:    func(c *Config) { c.ElectionAfter = 3 * time.Second },
	})
	w.joinAll()
	if got := w.players(w.leader()); got != n {
		t.Fatalf("%d players in the world, want %d", got, n)
	}
	spawn := w.position(w.nodes[0], w.users[0].Address())

	var mu sync.Mutex
	var acked []*protocol.Outcome
	run := func(users []*protocol.Key, pick func(i int) *testNode) func() {
		stop := make(chan struct{})
		done := make(chan struct{})
		go func() {
			defer close(done)
			got := w.play(stop, users, pick)
			mu.Lock()
			acked = append(acked, got...)
			mu.Unlock()
		}()
		return func() { close(stop); <-done }
	}
	grow := func(by uint64) {
		t.Helper()
		var from uint64
		testutil.WaitFor(t, 60*time.Second, func() error {
			l := w.leader()
			if l == nil {
				return errors.New("no leader")
			}
			h := w.channel(l).Status().Height
			if from == 0 {
				from = h
			}
			if h < from+by {
				return fmt.Errorf("at height %d, want %d", h, from+by)
			}
			return nil
		})
	}

	// Phase 1: every player plays through its own node.
	stopLoad := run(w.users, func(i int) *testNode { return w.nodes[i%n] })
	grow(300)

	// Phase 2: a candidate that does not lead and holds delegators stops.
	ln := w.leader()
	info, err := w.chain.client(ln.key).Channel(context.Background(), w.id)
	if err != nil {
		t.Fatal(err)
	}
	var dead *testNode
	for _, a := range w.candidates() {
		if m, ok := info.Member(a); ok && a != ln.key.Address() && m.Delegators > 0 {
			dead = w.nodeOf(a)
			break
		}
	}
	if dead == nil {
		t.Fatal("no candidate with delegators but the leader")
	}
	t.Logf("stopping candidate %s", dead.key.Address())
	w.stopNode(dead)
	grow(100) // writes go on while the chain still names it
	w.ageOut(dead, 4, 5*time.Second)
	testutil.WaitFor(t, 60*time.Second, func() error {
		if slices.Contains(w.candidates(), dead.key.Address()) {
			return errors.New("still a candidate")
		}
		return nil
	})
	w.waitCandidateVoters(60 * time.Second)
	w.waitDelegated(60 * time.Second)
	grow(100)

	// Phase 3: the leader's node stops; writes resume in a later epoch.
	old := w.leader()
	_, e0, _ := w.channel(old).view.current()
	t.Logf("stopping the leader %s (epoch %d)", old.key.Address(), e0)
	w.stopNode(old)
	nl := w.waitOtherLeader(old, 60*time.Second)
	testutil.WaitFor(t, 60*time.Second, func() error {
		if _, e, _ := w.channel(nl).view.current(); e <= e0 {
			return fmt.Errorf("new leader in epoch %d", e)
		}
		return nil
	})
	grow(100)
	w.ageOut(old, 4, 5*time.Second)
	w.waitCandidateVoters(60 * time.Second)
	w.waitDelegated(60 * time.Second)
	s0 := w.settledHeight()
	testutil.WaitFor(t, 120*time.Second, func() error {
		if s := w.settledHeight(); s <= s0 {
			return fmt.Errorf("settled at %d since the leader stopped", s)
		}
		return nil
	})
	stopLoad()

	if len(acked) == 0 {
		t.Fatal("nothing acknowledged")
	}
	ok := 0
	for _, o := range acked {
		if o.Result.Status == protocol.StatusOK {
			ok++
		}
	}
	if ok == 0 {
		t.Fatal("every call was refused by the contract")
	}
	w.checkConvergedSettled(acked, 120*time.Second)
	p := w.executedSettlement()
	live := w.waitOtherLeader(old, 10*time.Second)
	if got := w.position(live, w.users[0].Address()); got == spawn {
		t.Fatalf("player 0 still at its spawn %v: no tick walked it", spawn)
	}
	txs, blocks := w.settlementTxs(p)
	t.Logf("%d calls acknowledged (%d ok); settlement %d: %d for of %d, %d chain txs %v, %d blocks, votes %v",
		len(acked), ok, p.ID, p.For, p.Electorate, total(txs), txs, blocks, w.voteSummary(p))
}

// voteSummary tells who voted on p on chain: each vote tx as the block
// after the proposal's, the sender (c: a candidate now, d: any other),
// the votes it carried and its result code.
func (tc *testCluster) voteSummary(p *settlement.ProposalInfo) []string {
	cands := tc.candidates()
	var who []string
	for _, vt := range tc.voteTxs(p.ID) {
		role := "d"
		if slices.Contains(cands, vt.sender) {
			role = "c"
		}
		who = append(who, fmt.Sprintf("%d:%s%d/%d", vt.height-p.CreatedHeight, role, len(vt.voters), vt.code))
	}
	return who
}

// players returns the world's player count as nd's machine holds it.
func (w *mcWorld) players(nd *testNode) int {
	w.t.Helper()
	var land []byte
	w.channel(nd).Machine(func(m *fsm.Machine) {
		land, _ = m.Get(protocol.ResourceKey{Account: protocol.Address{15: 1}, Type: "movecraft::Land"})
	})
	if len(land) != 10 {
		w.t.Fatalf("land of %d bytes", len(land))
	}
	return int(land[6]) | int(land[7])<<8 | int(land[8])<<16 | int(land[9])<<24
}

// position returns a player's position as nd's machine holds it.
func (w *mcWorld) position(nd *testNode, a protocol.Address) [6]byte {
	w.t.Helper()
	var p []byte
	w.channel(nd).Machine(func(m *fsm.Machine) {
		p, _ = m.Get(protocol.ResourceKey{Account: a, Type: "movecraft::Position"})
	})
	if len(p) != 6 {
		w.t.Fatalf("position of %d bytes", len(p))
	}
	return [6]byte(p)
}

// settlementTxs counts the chain txs about settlement proposal p, by kind,
// from the block that holds the proposal to the one that executes it, and
// the blocks from the one to the other, both counted.
func (tc *testCluster) settlementTxs(p *settlement.ProposalInfo) (map[contract.CallKind]int, uint64) {
	tc.t.Helper()
	txs := map[contract.CallKind]int{}
	tc.chainCalls(p.CreatedHeight, p.ExecutedHeight, func(h uint64, _ protocol.Address, code uint32, call contract.Call) {
		switch c := call.(type) {
		case *contract.CreateProposal:
			if c.Channel == tc.id && c.Type == protocol.ProposalSettlement && h == p.CreatedHeight && code == 0 {
				txs[c.Kind()]++
			}
		case *contract.Vote:
			if c.Channel == tc.id && c.Proposal == p.ID {
				txs[c.Kind()]++
			}
		case *contract.SubmitVotes:
			if c.Channel == tc.id && c.Proposal == p.ID {
				txs[c.Kind()]++
			}
		case *contract.ExecuteProposal:
			if c.Channel == tc.id && c.Proposal == p.ID {
				txs[c.Kind()]++
			}
		}
	})
	return txs, p.ExecutedHeight - p.CreatedHeight + 1
}

func total(m map[contract.CallKind]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// BenchmarkDelegates100 runs the MoveCraft world of 100 members (5
// candidates, 95 delegators, every node in process) under load: one
// worker per player sends its calls through its own node, ticks every
// 200 ms, a settlement due every 400 txs. One op is one acknowledged
// call. It reports the leader's bytes sent per committed call, a
// candidate's and a delegator's (mean), the chain txs of each executed
// settlement and the blocks from its proposal to its execution (worst),
// the heap in use per member after a GC and the CPU per member (the
// process's CPU time over the run divided by the members and the wall
// time, in per cent of a core).
//
// It runs on chain blocks of 5 ms (the cluster tests' chain: a settlement
// spans many blocks, as the nodes take longer than a block to react) and
// of 200 ms (the devchain's benchmarks). The aim is the proposal in block
// B, the candidates' votes in B+1 and the execution in B+2: 3 blocks, once
// the nodes react within a block. And on 1 s blocks, about comet's: the
// setup alone takes minutes there (a chain tx a block for each member's
// join and node address).
func BenchmarkDelegates100(b *testing.B) {
	for _, blocks := range []time.Duration{5 * time.Millisecond, 200 * time.Millisecond, time.Second} {
		b.Run(fmt.Sprintf("blocks=%s", blocks), func(b *testing.B) { benchDelegates100(b, blocks) })
	}
}

func benchDelegates100(b *testing.B, blocks time.Duration) {
	const n = 100
	counters := map[string]*egress{}
	var cmu sync.Mutex
	w := newMovecraftWorld(b, n, worldOptions{
		channel:       contract.ChannelConfig{TickInterval: 200 * time.Millisecond, SettleEveryTxs: 400},
		quiet:         true,
		blockInterval: blocks,
		transport: func(nd *testNode, cfg *transport.Config) {
			e := &egress{}
			cmu.Lock()
			counters[nd.key.Address().String()] = e
			cmu.Unlock()
			cfg.ServerOptions = append(cfg.ServerOptions, grpc.StatsHandler(e))
			cfg.DialOptions = append(cfg.DialOptions, grpc.WithStatsHandler(e))
		},
	})
	w.joinAll()
	ln := w.waitLeader(60 * time.Second)
	lc := w.channel(ln)
	p0 := w.lastProposal()
	sent := func() (leader int64, cands, delegs []int64) {
		cmu.Lock()
		defer cmu.Unlock()
		for _, nd := range w.nodes {
			v := counters[nd.key.Address().String()].n.Load()
			switch {
			case nd == ln:
				leader = v
			case w.channel(nd).delegating():
				delegs = append(delegs, v)
			default:
				cands = append(cands, v)
			}
		}
		return
	}
	l0, c0, d0 := sent()
	h0 := lc.Status().Height
	var acks atomic.Int64
	stop := make(chan struct{})
	done := make(chan struct{})
	b.ResetTimer()
	start, cpu0 := time.Now(), testutil.CPUTime()
	go func() {
		defer close(done)
		acks.Store(int64(len(w.play(stop, w.users, func(i int) *testNode { return w.nodes[i%n] }))))
	}()
	testutil.WaitFor(b, 30*time.Minute, func() error {
		if h := lc.Status().Height; h < h0+uint64(b.N) {
			return fmt.Errorf("at %d", h)
		}
		return nil
	})
	close(stop)
	<-done
	b.StopTimer()
	wall, cpu := time.Since(start), testutil.CPUTime()-cpu0
	txs := lc.Status().Height - h0
	l1, c1, d1 := sent()
	mean := func(a, z []int64) float64 {
		var s int64
		for i := range a {
			s += z[i] - a[i]
		}
		return float64(s) / float64(len(a))
	}
	b.ReportMetric(float64(l1-l0)/float64(txs), "leader-bytes/tx")
	b.ReportMetric(mean(c0, c1)/float64(txs), "candidate-bytes/tx")
	b.ReportMetric(mean(d0, d1)/float64(txs), "delegator-bytes/tx")
	b.ReportMetric(float64(txs)/wall.Seconds(), "tx/s")
	b.ReportMetric(float64(acks.Load()), "acked")
	b.ReportMetric(100*cpu.Seconds()/wall.Seconds()/n, "cpu%/member")
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(ms.HeapInuse)/n/(1<<20), "heap-MiB/member")
	// Settlements executed during the run.
	worstTxs, worstBlocks, settled := 0, uint64(0), 0
	cl := w.chain.client(w.nodes[0].key)
	for id := p0 + 1; ; id++ {
		p, err := cl.Proposal(context.Background(), w.id, id)
		if err != nil {
			break
		}
		if p.Kind != protocol.ProposalSettlement || p.Status != contract.ProposalExecuted {
			continue
		}
		kinds, blocks := w.settlementTxs(p)
		b.Logf("settlement %d: %d for of %d, chain txs %v, blocks %d, votes %v", p.ID, p.For, p.Electorate, kinds, blocks, w.voteSummary(p))
		settled++
		worstTxs, worstBlocks = max(worstTxs, total(kinds)), max(worstBlocks, blocks)
	}
	b.ReportMetric(float64(settled), "settlements")
	b.ReportMetric(float64(worstTxs), "chain-txs/settlement")
	b.ReportMetric(float64(worstBlocks), "blocks/settlement")
}

// lastProposal returns the channel's highest proposal id, 0 if none.
func (tc *testCluster) lastProposal() uint64 {
	cl := tc.chain.client(tc.nodes[0].key)
	var id uint64
	for ; ; id++ {
		if _, err := cl.Proposal(context.Background(), tc.id, id+1); err != nil {
			return id
		}
	}
}

// TestCarryVoteAfterExecution: once a settlement is executed (with
// delegated weight it may pass before its delegators' votes are in), a
// candidate sends no more vote txs for it: a delegator's vote carried
// later is answered as needing no retry, and no vote tx for the proposal
// reaches the chain after its execution.
func TestCarryVoteAfterExecution(t *testing.T) {
	tc := newDelegatedCluster(t, 7, contract.ChannelConfig{SettleEveryTxs: 20}, nil)
	tc.waitDelegated(20 * time.Second)
	// A delegator away while the settlement passes, so that its vote is
	// not on chain.
	var del *testNode
	for _, nd := range tc.nodes {
		if tc.channel(nd).delegating() {
			del = nd
			break
		}
	}
	tc.stopNode(del)
	for i, nd := range tc.nodes {
		if nd != del {
			tc.submitVia(nd, 6, fmt.Sprintf("s%d-", i))
		}
	}
	testutil.WaitFor(t, 30*time.Second, func() error {
		if tc.settledHeight() == 0 {
			return errors.New("not settled")
		}
		return nil
	})
	p := tc.executedSettlement()
	if slices.ContainsFunc(p.Votes, func(r contract.VoteRecord) bool { return r.Voter == del.key.Address() }) {
		t.Fatal("the stopped delegator voted")
	}
	tc.restartNode(del)
	var src string
	testutil.WaitFor(t, 20*time.Second, func() error {
		if src = tc.channel(del).relaySource(); src == "" {
			return errors.New("the delegator is relayed by no candidate")
		}
		return nil
	})
	v := &protocol.Vote{Channel: tc.id, Proposal: p.ID, Option: protocol.VoteFor}
	v.Sign(del.key)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	err := del.node.peers.carryVote(ctx, src, tc.id, v)
	cancel()
	if err != nil {
		t.Fatalf("a vote on an executed proposal: %v, want no retry", err)
	}
	head, err := tc.chain.client(tc.nodes[0].key).Head(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for h := p.ExecutedHeight + 1; h <= head.Height; h++ {
		b, err := tc.chain.chain.Block(h)
		if err != nil {
			t.Fatal(err)
		}
		for _, bt := range b.Txs {
			stx, err := devchain.DecodeTx(bt.Tx, len(bt.Tx))
			if err != nil {
				t.Fatal(err)
			}
			call, err := contract.DecodeCall(stx.Call)
			if err != nil {
				t.Fatal(err)
			}
			switch c := call.(type) {
			case *contract.SubmitVotes:
				if c.Proposal == p.ID && c.Channel == tc.id {
					t.Fatalf("block %d: submit_votes on proposal %d after its execution at %d (code %d)", h, p.ID, p.ExecutedHeight, bt.Code)
				}
			case *contract.Vote:
				if c.Proposal == p.ID && c.Channel == tc.id {
					t.Fatalf("block %d: a vote on proposal %d after its execution at %d (code %d)", h, p.ID, p.ExecutedHeight, bt.Code)
				}
			}
		}
	}
}
