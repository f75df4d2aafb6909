package integration

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/vm"
)

// benchSeconds is how long each benchmark measures (SCRAFT_BENCH_SECONDS,
// default 10). Run with -benchtime 1x: one measurement per run.
func benchSeconds() time.Duration {
	if s, err := strconv.Atoi(os.Getenv("SCRAFT_BENCH_SECONDS")); err == nil && s > 0 {
		return time.Duration(s) * time.Second
	}
	return 10 * time.Second
}

// BenchmarkCommit: a 3-node chat channel in three processes and a chain
// process; each client is a member that sends signed chat messages one
// after the other through the client API. Reports committed tx/s and the
// p50/p99 commit latency seen by clients. Each client has connections of
// its own (conns=own), as separate applications would, or the clients
// share one connection per node through a client.Pool (conns=pooled), as
// many clients in one process can. SCRAFT_BENCH_RATE=N paces the clients
// to N calls per second together, to read the latency at a given load.
func BenchmarkCommit(b *testing.B) {
	verify, exec := txCost(b)
	// The CPU-bound limit: every member verifies and executes every tx,
	// and the machine's cores are all there is.
	limit := float64(runtime.NumCPU()) / (3 * (verify + exec).Seconds())
	b.Logf("per tx and member: verification %s, execution %s: CPU-bound limit %.0f tx/s on %d cores",
		verify, exec, limit, runtime.NumCPU())
	rate, _ := strconv.Atoi(os.Getenv("SCRAFT_BENCH_RATE"))
	for _, tc := range commitCases() {
		clients := tc.clients
		var pool *client.Pool
		if tc.pooled {
			pool = client.NewPool()
		}
		b.Run(tc.name(), func(b *testing.B) {
			withLogStore(b, tc.store)
			pc := newProcCluster(b, 3, clients)
			l := pc.startPacedLoad(pc.users, rate, pool)
			// Warm up: every client has joined the chat.
			testutil.Eventually(b, 60*time.Second, "warm-up", func() bool { return l.count() >= 2*clients })
			from := l.count()
			cpu0 := pc.nodesCPU()
			leader, cpus0 := pc.leader(), pc.nodeCPUs()
			self0 := testutil.CPUTime()
			start := time.Now()
			profiles := pc.profile(b, benchSeconds())
			<-time.After(benchSeconds()) // the measurement window
			cpu := pc.nodesCPU() - cpu0
			cpus1 := pc.nodeCPUs()
			self := testutil.CPUTime() - self0
			acks := l.end()
			elapsed := time.Since(start)
			profiles()
			window := acks[from:]
			var lat []time.Duration
			for _, a := range window {
				if a.at.Before(start.Add(elapsed)) {
					lat = append(lat, a.latency)
				}
			}
			slices.Sort(lat)
			b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "tx/s")
			b.ReportMetric(float64(len(lat))/elapsed.Seconds()/limit, "of-cpu-limit")
			b.ReportMetric(float64(verify.Nanoseconds())/1000, "verify-µs/tx")
			b.ReportMetric(float64(exec.Nanoseconds())/1000, "exec-µs/tx")
			if len(lat) > 0 {
				// CPU time of the three node processes (and of this
				// process: the clients) per committed tx.
				b.ReportMetric(float64(cpu.Microseconds())/float64(len(lat)), "node-cpu-µs/tx")
				b.ReportMetric(float64(self.Microseconds())/float64(len(lat)), "client-cpu-µs/tx")
				pc.reportRoleCPU(b, leader, cpus0, cpus1, len(lat))
			}
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
				b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds())/1000, "p99-ms")
			}
		})
	}
}

// BenchmarkFailover kills the leader process with SIGKILL under load, N
// times (SCRAFT_BENCH_KILLS, default 3), and reports the gap between the
// kill and the first commit of a tx sent after it (mean and max), and
// where the time went (failoverSteps, from the nodes' logs). With
// SCRAFT_BENCH_VALIDATORS=N the chain is N CometBFT validator processes
// instead of one `scraft chain`.
func BenchmarkFailover(b *testing.B) {
	kills := 3
	if s, err := strconv.Atoi(os.Getenv("SCRAFT_BENCH_KILLS")); err == nil && s > 0 {
		kills = s
	}
	validators, _ := strconv.Atoi(os.Getenv("SCRAFT_BENCH_VALIDATORS"))
	pc := newProcClusterSpec(b, 3, 0, clusterSpec{contract: "chat", validators: validators,
		config: contract.ChannelConfig{SettleEveryTxs: 1 << 62}})
	l := pc.startLoad(pc.nodeKeys())
	var gaps []time.Duration
	var steps []failoverSteps
	for k := 0; k < kills; k++ {
		testutil.Eventually(b, 60*time.Second, "writes", func() bool { return l.count() >= 30*(k+1) })
		old := pc.waitLeader(30 * time.Second)
		killed := time.Now()
		old.p.kill()
		testutil.Eventually(b, 30*time.Second, "writes after the kill", func() bool { return l.lastSent().After(killed) })
		var first time.Time
		l.mu.Lock()
		for _, a := range l.acks {
			// A write sent after the kill: one sent before may have been
			// committed by the old leader and only answered late.
			if a.sent.After(killed) && (first.IsZero() || a.at.Before(first)) {
				first = a.at
			}
		}
		l.mu.Unlock()
		gaps = append(gaps, first.Sub(killed))
		st := failoverStepsOf(pc.nodeLogs(b, killed), killed, first)
		steps = append(steps, st)
		b.Logf("kill %d: writes resumed after %s: %s", k+1, first.Sub(killed), st)
		pc.restart(old)
		pc.waitVoters(3, 60*time.Second)
	}
	l.end()
	var sum time.Duration
	for _, g := range gaps {
		sum += g
	}
	slices.Sort(gaps)
	b.ReportMetric(float64(sum.Milliseconds())/float64(len(gaps)), "mean-gap-ms")
	b.ReportMetric(float64(gaps[len(gaps)/2].Milliseconds()), "median-gap-ms")
	b.ReportMetric(float64(gaps[len(gaps)-1].Milliseconds()), "max-gap-ms")
	reportFailoverSteps(b, steps)
}

// nodesCPU is the CPU time (user + system) the node processes have used.
func (pc *procCluster) nodesCPU() time.Duration {
	var sum time.Duration
	for _, nd := range pc.nodes {
		sum += testutil.ProcessCPU(nd.p.cmd.Process.Pid)
	}
	return sum
}

// profile starts a CPU profile of each node for d when SCRAFT_BENCH_PROFILE
// names a directory; the returned func waits for them and writes
// node-N.pprof there, an execution trace of the window's first 2 s as
// node-N.trace, each node's metrics as node-N.metrics, its allocations
// since it started as node-N.allocs, and the CPU profile
// of this process (the clients) as clients.pprof.
func (pc *procCluster) profile(b *testing.B, d time.Duration) func() {
	dir := os.Getenv("SCRAFT_BENCH_PROFILE")
	if dir == "" {
		return func() {}
	}
	var wg sync.WaitGroup
	fetch := func(i int, url, file string) {
		defer wg.Done()
		resp, err := http.Get(url)
		if err != nil {
			b.Logf("%s of node %d: %v", file, i, err)
			return
		}
		defer resp.Body.Close()
		body, err := io.ReadAll(resp.Body)
		if err == nil {
			err = os.WriteFile(filepath.Join(dir, fmt.Sprintf("node-%d.%s", i, file)), body, 0o644)
		}
		if err != nil {
			b.Logf("%s of node %d: %v", file, i, err)
		}
	}
	for i, nd := range pc.nodes {
		wg.Add(2)
		go fetch(i, fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", nd.admin, int(d.Seconds())), "pprof")
		go fetch(i, fmt.Sprintf("http://%s/debug/pprof/trace?seconds=2", nd.admin), "trace")
	}
	f, err := os.Create(filepath.Join(dir, "clients.pprof"))
	if err == nil {
		err = pprof.StartCPUProfile(f)
	}
	if err != nil {
		b.Logf("profile of the clients: %v", err)
	}
	return func() {
		pprof.StopCPUProfile()
		f.Close()
		wg.Wait()
		for i, nd := range pc.nodes {
			wg.Add(1)
			fetch(i, "http://"+nd.admin+"/debug/pprof/allocs", "allocs")
			resp, err := http.Get("http://" + nd.admin + "/metrics")
			if err != nil {
				continue
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("node-%d.metrics", i)), body, 0o644)
		}
	}
}

// txCost measures, in this process, the CPU time one member spends on one
// signed chat::send: its share of a batch verification of 256 signatures,
// and its execution in the sandbox.
func txCost(b *testing.B) (verify, exec time.Duration) {
	b.Helper()
	c, err := contracts.Get("chat")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	e, err := vm.NewEngine(ctx, vm.Config{})
	if err != nil {
		b.Fatal(err)
	}
	defer e.Close(ctx)
	m, err := e.Deploy(ctx, c.Wasm)
	if err != nil {
		b.Fatal(err)
	}
	state := protocol.State{}
	k, _ := protocol.GenerateKey(nil)
	height := uint64(0)
	call := func(fn, args string) vm.Result {
		a, err := c.EncodeArgs(fn, []byte(args))
		if err != nil {
			b.Fatal(err)
		}
		height++
		return m.Call(ctx, state, vm.Call{Function: fn, Args: a, Sender: k.Address(), Height: height,
			TimestampMs: 1_700_000_000_000 + height, Gas: 10_000_000})
	}
	for _, fn := range []struct{ name, args string }{{"init", "{}"}, {"join", `{"nick":"bench"}`}} {
		r := call(fn.name, fn.args)
		if r.Status != protocol.StatusOK {
			b.Fatalf("chat::%s: %s %s", fn.name, r.Status, r.Message)
		}
		if err := state.Apply(r.ChangeSet); err != nil {
			b.Fatal(err)
		}
	}
	const n = 20000
	cpu := testutil.CPUTime()
	for i := range n {
		if r := call("send", fmt.Sprintf(`{"text":"message %d from user 1"}`, i)); r.Status != protocol.StatusOK {
			b.Fatalf("chat::send: %s %s", r.Status, r.Message)
		}
	}
	exec = (testutil.CPUTime() - cpu) / n

	txs := make([]*protocol.SignedTx, 256)
	for i := range txs {
		args, _ := c.EncodeArgs("send", []byte(fmt.Sprintf(`{"text":"message %d from user 1"}`, i)))
		txs[i] = protocol.SignTx(k, protocol.Tx{Channel: protocol.ChannelID{1}, Nonce: uint64(i + 1), Function: "chat::send", Args: args})
	}
	const rounds = 32
	cpu = testutil.CPUTime()
	for range rounds {
		for _, err := range protocol.VerifyTxs(txs) {
			if err != nil {
				b.Fatal(err)
			}
		}
	}
	verify = (testutil.CPUTime() - cpu) / (rounds * time.Duration(len(txs)))
	return verify, exec
}
