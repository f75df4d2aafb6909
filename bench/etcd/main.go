// Command bench-vs-etcd measures scraft against etcd side by side, in one
// run on the same cores: a 3-member etcd on loopback driven by etcd's own
// benchmark tool (`benchmark put`, 256-byte values, one connection per
// client), plain and with TLS on its client and peer links, alternated
// with scraft's BenchmarkCommit (three node processes, signed chat::send,
// one connection per client) at the same client counts. It prints one table
// with the ratios and writes every run's figures as JSON.
//
// It lives in a module of its own so that etcd and its dependencies never
// enter scraft's go.mod; the etcd version is the one pinned in this
// module's go.mod (the `tool` directives), built once into
// bin/etcd-VERSION of the repository.
//
// Only same-run ratios mean anything on a shared machine: absolute figures
// move by a factor of two between days.
package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

const (
	etcdPkg      = "go.etcd.io/etcd/server/v3"
	benchmarkPkg = "go.etcd.io/etcd/v3/tools/benchmark"
)

type config struct {
	repo     string
	rounds   int
	clients  []int
	seconds  int
	valSize  int
	keySpace int
	jsonPath string
	out      string
	kinds    []string
}

func main() {
	var cfg config
	var clients, kinds string
	var quick bool
	flag.StringVar(&cfg.repo, "repo", "../..", "the scraft repository (its integration suite runs BenchmarkCommit)")
	flag.IntVar(&cfg.rounds, "rounds", 2, "rounds of etcd, scraft, etcd with TLS, scraft per client count")
	flag.StringVar(&clients, "clients", "64,256", "client counts, comma-separated (BenchmarkCommit runs 64 and 256)")
	flag.IntVar(&cfg.seconds, "seconds", 10, "measured seconds of each run (SCRAFT_BENCH_SECONDS for scraft; etcd's total is sized from its warm-up rate)")
	flag.IntVar(&cfg.valSize, "val-size", 256, "etcd put value size in bytes")
	flag.IntVar(&cfg.keySpace, "key-space", 100000, "etcd keys written at random among this many")
	flag.StringVar(&cfg.jsonPath, "json", "", "also write the results as JSON to this file (they always go to the run's folder)")
	flag.StringVar(&cfg.out, "out", "", "folder for the run's logs and results.json (default REPO/bin/bench-vs-etcd/TIME)")
	flag.StringVar(&kinds, "kinds", "etcd,scraft,etcd-tls", "which of etcd, scraft and etcd-tls to run (the others are left out of the table)")
	flag.BoolVar(&quick, "quick", false, "one round of 4 s runs")
	flag.Parse()
	if quick {
		cfg.rounds, cfg.seconds = 1, 4
	}
	for _, s := range strings.Split(clients, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n <= 0 {
			fatalf("bad -clients %q", clients)
		}
		cfg.clients = append(cfg.clients, n)
	}
	for _, k := range strings.Split(kinds, ",") {
		k = strings.TrimSpace(k)
		if k != "etcd" && k != "scraft" && k != "etcd-tls" {
			fatalf("bad -kinds %q", kinds)
		}
		cfg.kinds = append(cfg.kinds, k)
	}
	if cfg.rounds < 1 || cfg.seconds < 1 {
		fatalf("-rounds and -seconds must be at least 1")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, cfg); err != nil {
		fatalf("%v", err)
	}
}

func fatalf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "bench-vs-etcd: "+format+"\n", args...)
	os.Exit(1)
}

func logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "%s "+format+"\n", append([]any{time.Now().Format("15:04:05")}, args...)...)
}

// Run is one measurement: an etcd put run or a BenchmarkCommit sub-benchmark.
type Run struct {
	Kind    string  `json:"kind"` // etcd, etcd-tls or scraft
	Clients int     `json:"clients"`
	Round   int     `json:"round"`
	Load1   float64 `json:"load1_before"`  // load average just before the run
	Ops     int     `json:"ops,omitempty"` // puts measured (etcd)
	Rate    float64 `json:"rate"`          // puts/s or tx/s
	P50ms   float64 `json:"p50_ms"`
	P99ms   float64 `json:"p99_ms"`
	// CPU per op in µs (user + system from /proc): the leader, a
	// follower (the mean of the two), the three members together, and
	// the clients (etcd's benchmark tool; BenchmarkCommit's own process).
	// For scraft the leader's and followers' come from nodeProbe, the
	// others from BenchmarkCommit.
	LeaderCPUus   float64 `json:"leader_cpu_us_per_op,omitempty"`
	FollowerCPUus float64 `json:"follower_cpu_us_per_op,omitempty"`
	MembersCPUus  float64 `json:"members_cpu_us_per_op,omitempty"`
	ClientCPUus   float64 `json:"client_cpu_us_per_op,omitempty"`
	// LeaderChanged: the etcd leader at the end is not the one measured.
	LeaderChanged bool `json:"leader_changed,omitempty"`
	// Metrics: every metric BenchmarkCommit reported, by unit.
	Metrics map[string]float64 `json:"metrics,omitempty"`
	Log     string             `json:"log"`
}

// Results is what results.json holds.
type Results struct {
	EtcdVersion string    `json:"etcd_version"`
	Started     time.Time `json:"started"`
	Seconds     int       `json:"seconds"`
	Rounds      int       `json:"rounds"`
	ValueBytes  int       `json:"value_bytes"`
	Runs        []Run     `json:"runs"`
	// Retried: the errors of runs that failed once and were run again.
	Retried []string  `json:"retried,omitempty"`
	Summary []Summary `json:"summary"`
}

// Summary holds, per client count, the medians of each kind and their ratios.
type Summary struct {
	Clients int                `json:"clients"`
	Median  map[string]Run     `json:"median"`
	Ratios  map[string]float64 `json:"ratios"`
}

func run(ctx context.Context, cfg config) error {
	repo, err := filepath.Abs(cfg.repo)
	if err != nil {
		return err
	}
	if _, err := os.Stat(filepath.Join(repo, "integration", "bench_test.go")); err != nil {
		return fmt.Errorf("-repo %s: not the scraft repository: %w", repo, err)
	}
	modDir, err := os.Getwd()
	if err != nil {
		return err
	}
	version, err := goOutput(ctx, modDir, "list", "-m", "-f", "{{.Version}}", etcdPkg)
	if err != nil {
		return fmt.Errorf("the pinned etcd version (run from bench/etcd): %w", err)
	}
	binDir := filepath.Join(repo, "bin", "etcd-"+version)
	etcdBin, benchBin := filepath.Join(binDir, "etcd"), filepath.Join(binDir, "benchmark")
	for _, b := range []struct{ bin, pkg string }{{etcdBin, etcdPkg}, {benchBin, benchmarkPkg}} {
		if _, err := os.Stat(b.bin); err == nil {
			continue
		}
		logf("building %s@%s into %s (once)", b.pkg, version, binDir)
		if _, err := goOutput(ctx, modDir, "build", "-trimpath", "-o", b.bin, b.pkg); err != nil {
			return err
		}
	}
	out := cfg.out
	if out == "" {
		out = filepath.Join(repo, "bin", "bench-vs-etcd", time.Now().UTC().Format("20060102-150405"))
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "bench-vs-etcd-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	testBin := filepath.Join(work, "integration.test")
	if slices.Contains(cfg.kinds, "scraft") {
		logf("building the integration suite into %s", testBin)
		if _, err := goOutput(ctx, repo, "test", "-c", "-o", testBin, "./integration"); err != nil {
			return err
		}
	}
	certs, err := writeCerts(filepath.Join(work, "certs"), 3)
	if err != nil {
		return err
	}
	res := Results{EtcdVersion: version, Started: time.Now().UTC(), Seconds: cfg.seconds, Rounds: cfg.rounds, ValueBytes: cfg.valSize}
	e := &etcdBench{etcd: etcdBin, bench: benchBin, work: work, out: out, certs: certs, cfg: cfg}
	s := &scraftBench{bin: testBin, dir: filepath.Join(repo, "integration"), out: out, seconds: cfg.seconds}
	for r := 1; r <= cfg.rounds; r++ {
		for _, n := range cfg.clients {
			// etcd, scraft, etcd with TLS, scraft: each kind meets the
			// machine's changing load as often as the other.
			for _, step := range []struct {
				kind string
				run  func() (Run, error)
			}{
				{"etcd", func() (Run, error) { return e.run(ctx, n, false, r) }},
				{"scraft", func() (Run, error) { return s.run(ctx, n, r, 1) }},
				{"etcd-tls", func() (Run, error) { return e.run(ctx, n, true, r) }},
				{"scraft", func() (Run, error) { return s.run(ctx, n, r, 2) }},
			} {
				if !slices.Contains(cfg.kinds, step.kind) {
					continue
				}
				if err := ctx.Err(); err != nil {
					return err
				}
				rn, err := step.run()
				if err != nil && ctx.Err() == nil {
					// A shared machine: another process may take a port
					// between its choice and its use. Once more, then give up.
					logf("round %d, %d clients, %s failed, running it again: %v", r, n, step.kind, err)
					res.Retried = append(res.Retried, err.Error())
					rn, err = step.run()
				}
				if err != nil {
					return err
				}
				logf("round %d, %d clients, %s: %.0f/s, p99 %.1f ms (log %s)", r, n, rn.Kind, rn.Rate, rn.P99ms, rn.Log)
				res.Runs = append(res.Runs, rn)
			}
		}
	}
	res.Summary = summarize(res.Runs, cfg.clients)
	printTable(os.Stdout, res)
	body, _ := json.MarshalIndent(res, "", "  ")
	paths := []string{filepath.Join(out, "results.json")}
	if cfg.jsonPath != "" {
		paths = append(paths, cfg.jsonPath)
	}
	for _, p := range paths {
		if err := os.WriteFile(p, append(body, '\n'), 0o644); err != nil {
			return err
		}
	}
	fmt.Printf("\nevery run: %s\n", paths[0])
	return nil
}

// goOutput runs the go command in dir and returns its trimmed output.
func goOutput(ctx context.Context, dir string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = dir
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	b, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return strings.TrimSpace(string(b)), nil
}

func loadAvg() float64 {
	b, _ := os.ReadFile("/proc/loadavg")
	f := strings.Fields(string(b))
	if len(f) == 0 {
		return 0
	}
	v, _ := strconv.ParseFloat(f[0], 64)
	return v
}

// processCPU is the CPU time, user and system, process pid has used, from
// /proc/PID/stat.
func processCPU(pid int) time.Duration {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces: count from its ')'.
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 13 {
		return 0
	}
	ut, _ := strconv.ParseInt(f[11], 10, 64) // field 14: utime
	st, _ := strconv.ParseInt(f[12], 10, 64) // field 15: stime
	// Linux reports them in USER_HZ ticks, fixed at 100 per second.
	return time.Duration(ut+st) * time.Second / 100
}

// freePorts returns n loopback ports that were free a moment ago.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// etcdBench runs etcd's benchmark tool against a fresh 3-member cluster.
type etcdBench struct {
	etcd, bench string
	work, out   string
	certs       *certFiles
	cfg         config
}

type member struct {
	name      string
	clientURL string
	cmd       *exec.Cmd
	done      chan struct{}
}

func (e *etcdBench) run(ctx context.Context, clients int, useTLS bool, round int) (Run, error) {
	kind := "etcd"
	scheme := "http"
	if useTLS {
		kind, scheme = "etcd-tls", "https"
	}
	rn := Run{Kind: kind, Clients: clients, Round: round}
	dir := filepath.Join(e.work, fmt.Sprintf("%s-%d-r%d", kind, clients, round))
	defer os.RemoveAll(dir)
	ports, err := freePorts(6)
	if err != nil {
		return rn, err
	}
	var initial []string
	ms := make([]*member, 3)
	for i := range ms {
		ms[i] = &member{name: fmt.Sprintf("m%d", i+1), clientURL: fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i])}
		initial = append(initial, fmt.Sprintf("%s=%s://127.0.0.1:%d", ms[i].name, scheme, ports[2*i+1]))
	}
	logName := filepath.Join(e.out, fmt.Sprintf("%s-%d-r%d", kind, clients, round))
	for i, m := range ms {
		peerURL := fmt.Sprintf("%s://127.0.0.1:%d", scheme, ports[2*i+1])
		args := []string{
			"--name", m.name, "--data-dir", filepath.Join(dir, m.name),
			"--listen-client-urls", m.clientURL, "--advertise-client-urls", m.clientURL,
			"--listen-peer-urls", peerURL, "--initial-advertise-peer-urls", peerURL,
			"--initial-cluster", strings.Join(initial, ","), "--initial-cluster-state", "new",
			"--initial-cluster-token", filepath.Base(dir), "--log-level", "warn",
		}
		if useTLS {
			c := e.certs.members[i]
			args = append(args,
				"--cert-file", c.cert, "--key-file", c.key, "--trusted-ca-file", e.certs.ca, "--client-cert-auth",
				"--peer-cert-file", c.cert, "--peer-key-file", c.key, "--peer-trusted-ca-file", e.certs.ca, "--peer-client-cert-auth")
		}
		f, err := os.Create(fmt.Sprintf("%s.%s.log", logName, m.name))
		if err != nil {
			return rn, err
		}
		defer f.Close()
		m.cmd = exec.Command(e.etcd, args...)
		m.cmd.Stdout, m.cmd.Stderr = f, f
		if err := m.cmd.Start(); err != nil {
			return rn, err
		}
		m.done = make(chan struct{})
		go func() { m.cmd.Wait(); close(m.done) }()
	}
	defer stopMembers(ms)
	hc, err := e.httpClient(useTLS)
	if err != nil {
		return rn, err
	}
	leader, err := waitLeader(ctx, hc, ms, 60*time.Second)
	if err != nil {
		return rn, err
	}
	var endpoints []string
	for _, m := range ms {
		endpoints = append(endpoints, strings.TrimPrefix(strings.TrimPrefix(m.clientURL, "https://"), "http://"))
	}
	put := func(total int, log string) (benchOut, time.Duration, error) {
		args := []string{"--endpoints", strings.Join(endpoints, ","),
			"--conns", strconv.Itoa(clients), "--clients", strconv.Itoa(clients),
			"put", "--key-size", "8", "--key-space-size", strconv.Itoa(e.cfg.keySpace),
			"--val-size", strconv.Itoa(e.cfg.valSize), "--total", strconv.Itoa(total)}
		if useTLS {
			args = append([]string{"--cacert", e.certs.ca, "--cert", e.certs.client.cert, "--key", e.certs.client.key}, args...)
		}
		return runBenchmark(ctx, e.bench, args, log)
	}
	// Warm up: every connection dialled once, and the rate that sizes the
	// measured run to about the wanted seconds.
	warm, _, err := put(max(20*clients, 2000), logName+".warmup.log")
	if err != nil {
		return rn, err
	}
	total := max(int(warm.rps*float64(e.cfg.seconds)), 10*clients)
	rn.Load1 = loadAvg()
	cpu0 := make([]time.Duration, len(ms))
	for i, m := range ms {
		cpu0[i] = processCPU(m.cmd.Process.Pid)
	}
	b, clientCPU, err := put(total, logName+".log")
	if err != nil {
		return rn, err
	}
	var members time.Duration
	for i, m := range ms {
		d := processCPU(m.cmd.Process.Pid) - cpu0[i]
		members += d
		if i == leader {
			rn.LeaderCPUus = float64(d.Microseconds()) / float64(b.ok)
		}
	}
	if now, err := waitLeader(ctx, hc, ms, 10*time.Second); err != nil || now != leader {
		rn.LeaderChanged = true
	}
	rn.Ops, rn.Rate, rn.P50ms, rn.P99ms = b.ok, b.rps, b.p50*1000, b.p99*1000
	rn.MembersCPUus = float64(members.Microseconds()) / float64(b.ok)
	rn.FollowerCPUus = (rn.MembersCPUus - rn.LeaderCPUus) / float64(len(ms)-1)
	rn.ClientCPUus = float64(clientCPU.Microseconds()) / float64(b.ok)
	rn.Log = logName + ".log"
	return rn, nil
}

// stopMembers kills the members: their data is thrown away, and a
// graceful stop makes the leader wait to hand its lead to followers that
// are stopping too.
func stopMembers(ms []*member) {
	for _, m := range ms {
		if m.done != nil {
			m.cmd.Process.Kill()
		}
	}
	for _, m := range ms {
		if m.done != nil {
			<-m.done
		}
	}
}

func (e *etcdBench) httpClient(useTLS bool) (*http.Client, error) {
	hc := &http.Client{Timeout: 2 * time.Second}
	if useTLS {
		tc, err := e.certs.clientTLS()
		if err != nil {
			return nil, err
		}
		hc.Transport = &http.Transport{TLSClientConfig: tc}
	}
	return hc, nil
}

// waitLeader polls the members' metrics until exactly one says it leads,
// and returns its index.
func waitLeader(ctx context.Context, hc *http.Client, ms []*member, timeout time.Duration) (int, error) {
	deadline := time.Now().Add(timeout)
	var last error
	for time.Now().Before(deadline) {
		leaders := []int{}
		for i, m := range ms {
			select {
			case <-m.done:
				return -1, fmt.Errorf("etcd member %s exited: %v", m.name, m.cmd.ProcessState)
			default:
			}
			is, err := isLeader(ctx, hc, m.clientURL)
			if err != nil {
				last = err
				continue
			}
			if is {
				leaders = append(leaders, i)
			}
		}
		if len(leaders) == 1 {
			return leaders[0], nil
		}
		select {
		case <-ctx.Done():
			return -1, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
	return -1, fmt.Errorf("no single etcd leader within %s (last error: %v)", timeout, last)
}

func isLeader(ctx context.Context, hc *http.Client, url string) (bool, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/metrics", nil)
	if err != nil {
		return false, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "etcd_server_is_leader "); ok {
			return strings.TrimSpace(v) == "1", nil
		}
	}
	return false, errors.New(url + "/metrics: no etcd_server_is_leader")
}

type benchOut struct {
	ok       int
	rps      float64
	p50, p99 float64 // seconds
}

var (
	reRPS  = regexp.MustCompile(`Requests/sec:\s+([0-9.]+)`)
	rePctl = regexp.MustCompile(`(?m)^\s*([0-9.]+)% in ([0-9.]+) secs`)
	reErr  = regexp.MustCompile(`(?m)^Error distribution:`)
)

// runBenchmark runs etcd's benchmark tool, keeps its output in log, and
// returns its summary and the CPU time the tool itself used.
func runBenchmark(ctx context.Context, bin string, args []string, log string) (benchOut, time.Duration, error) {
	var o benchOut
	cmd := exec.CommandContext(ctx, bin, args...)
	var buf bytes.Buffer
	cmd.Stdout, cmd.Stderr = &buf, &buf
	err := cmd.Run()
	os.WriteFile(log, append([]byte("benchmark "+strings.Join(args, " ")+"\n"), buf.Bytes()...), 0o644)
	if err != nil {
		return o, 0, fmt.Errorf("etcd benchmark: %w (log %s)", err, log)
	}
	text := buf.String()
	if reErr.MatchString(text) {
		return o, 0, fmt.Errorf("etcd benchmark: requests failed (log %s)", log)
	}
	m := reRPS.FindStringSubmatch(text)
	if m == nil {
		return o, 0, fmt.Errorf("etcd benchmark: no Requests/sec in its output (log %s)", log)
	}
	o.rps, _ = strconv.ParseFloat(m[1], 64)
	for _, p := range rePctl.FindAllStringSubmatch(text, -1) {
		v, _ := strconv.ParseFloat(p[2], 64)
		switch p[1] {
		case "50":
			o.p50 = v
		case "99":
			o.p99 = v
		}
	}
	o.ok = argValue(args, "--total") // no error distribution: every put succeeded
	cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
	return o, cpu, nil
}

func argValue(args []string, name string) int {
	i := slices.Index(args, name)
	if i < 0 || i+1 >= len(args) {
		return 0
	}
	n, _ := strconv.Atoi(args[i+1])
	return n
}

// scraftBench runs one BenchmarkCommit sub-benchmark (connections of the
// clients' own) from the compiled integration suite.
type scraftBench struct {
	bin, dir, out string
	seconds       int
}

var reBenchLine = regexp.MustCompile(`^BenchmarkCommit/clients=(\d+)/conns=own(?:-\d+)?\s+\d+\s+(.*)$`)

func (s *scraftBench) run(ctx context.Context, clients, round, turn int) (Run, error) {
	rn := Run{Kind: "scraft", Clients: clients, Round: round}
	log := filepath.Join(s.out, fmt.Sprintf("scraft-%d-r%d-%d.log", clients, round, turn))
	f, err := os.Create(log)
	if err != nil {
		return rn, err
	}
	defer f.Close()
	cmd := exec.CommandContext(ctx, s.bin, "-test.run", "^$",
		"-test.bench", fmt.Sprintf("^BenchmarkCommit$/^clients=%d$/^conns=own$", clients),
		"-test.benchtime", "1x", "-test.v", "-test.timeout", "30m")
	// TestMain builds the scraft binary from ../cmd/scraft.
	cmd.Dir = s.dir
	// Its own process group, so that an interrupted run takes the chain
	// and node processes the benchmark started with it.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.Env = append(os.Environ(), "SCRAFT_BENCH_SECONDS="+strconv.Itoa(s.seconds))
	var buf bytes.Buffer
	cmd.Stdout = io.MultiWriter(f, &buf)
	cmd.Stderr = cmd.Stdout
	fmt.Fprintf(f, "SCRAFT_BENCH_SECONDS=%d %s %s\n", s.seconds, s.bin, strings.Join(cmd.Args[1:], " "))
	rn.Load1 = loadAvg()
	if err := cmd.Start(); err != nil {
		return rn, err
	}
	probe := newNodeProbe(cmd.Process.Pid)
	pctx, stopProbe := context.WithCancel(ctx)
	probed := make(chan struct{})
	go func() { probe.run(pctx); close(probed) }()
	err = cmd.Wait()
	stopProbe()
	<-probed
	if err != nil {
		return rn, fmt.Errorf("BenchmarkCommit at %d clients: %w (log %s)", clients, err, log)
	}
	rn.Log = log
	sc := bufio.NewScanner(&buf)
	for sc.Scan() {
		m := reBenchLine.FindStringSubmatch(strings.TrimSpace(sc.Text()))
		if m == nil {
			continue
		}
		rn.Metrics = map[string]float64{}
		f := strings.Fields(m[2])
		for i := 0; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err == nil {
				rn.Metrics[f[i+1]] = v
			}
		}
	}
	if rn.Metrics == nil || rn.Metrics["tx/s"] == 0 {
		return rn, fmt.Errorf("BenchmarkCommit at %d clients reported no tx/s (log %s)", clients, log)
	}
	rn.Rate, rn.P50ms, rn.P99ms = rn.Metrics["tx/s"], rn.Metrics["p50-ms"], rn.Metrics["p99-ms"]
	rn.MembersCPUus = rn.Metrics["node-cpu-µs/tx"]
	rn.ClientCPUus = rn.Metrics["client-cpu-µs/tx"]
	rn.LeaderCPUus, rn.FollowerCPUus = probe.perTx()
	return rn, nil
}

func median(vs []float64) float64 {
	if len(vs) == 0 {
		return 0
	}
	s := slices.Clone(vs)
	slices.Sort(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func summarize(runs []Run, clients []int) []Summary {
	var out []Summary
	for _, n := range clients {
		s := Summary{Clients: n, Median: map[string]Run{}, Ratios: map[string]float64{}}
		for _, kind := range []string{"etcd", "etcd-tls", "scraft"} {
			var rate, p50, p99, lead, fol, mem, cl []float64
			for _, r := range runs {
				if r.Clients == n && r.Kind == kind {
					rate, p50, p99 = append(rate, r.Rate), append(p50, r.P50ms), append(p99, r.P99ms)
					lead, fol = append(lead, r.LeaderCPUus), append(fol, r.FollowerCPUus)
					mem, cl = append(mem, r.MembersCPUus), append(cl, r.ClientCPUus)
				}
			}
			if len(rate) > 0 {
				s.Median[kind] = Run{Kind: kind, Clients: n, Rate: median(rate), P50ms: median(p50), P99ms: median(p99),
					LeaderCPUus: median(lead), FollowerCPUus: median(fol), MembersCPUus: median(mem), ClientCPUus: median(cl)}
			}
		}
		sc := s.Median["scraft"]
		for _, kind := range []string{"etcd-tls", "etcd"} {
			if e, ok := s.Median[kind]; ok && e.Rate > 0 && e.P99ms > 0 {
				s.Ratios["tx/s scraft/"+kind] = sc.Rate / e.Rate
				s.Ratios["p99 scraft/"+kind] = sc.P99ms / e.P99ms
			}
		}
		out = append(out, s)
	}
	return out
}

// rangeOf formats the runs' figures of one kind as "min–max" (or the one).
func rangeOf(runs []Run, n int, kind string, f func(Run) float64, format string) string {
	var vs []float64
	for _, r := range runs {
		if r.Clients == n && r.Kind == kind {
			vs = append(vs, f(r))
		}
	}
	if len(vs) == 0 {
		return "–"
	}
	lo, hi := slices.Min(vs), slices.Max(vs)
	if fmt.Sprintf(format, lo) == fmt.Sprintf(format, hi) {
		return fmt.Sprintf(format, lo)
	}
	return fmt.Sprintf(format+"–"+format, lo, hi)
}

func printTable(w io.Writer, res Results) {
	rate := func(r Run) float64 { return r.Rate }
	p99 := func(r Run) float64 { return r.P99ms }
	fmt.Fprintf(w, "\netcd %s (3 members, %d-byte puts) against scraft BenchmarkCommit (3 node processes, signed chat::send), one connection per client, %d round(s) of %d s runs; figures are min–max of the runs, ratios of the medians\n\n",
		res.EtcdVersion, res.ValueBytes, res.Rounds, res.Seconds)
	fmt.Fprintln(w, "| clients | etcd puts/s | etcd p99 ms | etcd TLS puts/s | etcd TLS p99 ms | scraft tx/s | scraft p99 ms | tx/s scraft/etcd-TLS | tx/s scraft/etcd | p99 scraft/etcd-TLS | p99 scraft/etcd |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|---|")
	for _, s := range res.Summary {
		n := s.Clients
		ratio := func(name string) string {
			if v, ok := s.Ratios[name]; ok && v > 0 {
				return fmt.Sprintf("%.2f", v)
			}
			return "–"
		}
		fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |\n", n,
			rangeOf(res.Runs, n, "etcd", rate, "%.0f"), rangeOf(res.Runs, n, "etcd", p99, "%.1f"),
			rangeOf(res.Runs, n, "etcd-tls", rate, "%.0f"), rangeOf(res.Runs, n, "etcd-tls", p99, "%.1f"),
			rangeOf(res.Runs, n, "scraft", rate, "%.0f"), rangeOf(res.Runs, n, "scraft", p99, "%.1f"),
			ratio("tx/s scraft/etcd-tls"), ratio("tx/s scraft/etcd"),
			ratio("p99 scraft/etcd-tls"), ratio("p99 scraft/etcd"))
	}
	fmt.Fprintln(w, "\nCPU per committed put or tx, µs (user + system from /proc; medians; scraft's leader and follower sampled each second at full load)")
	fmt.Fprintln(w)
	fmt.Fprintln(w, "| clients | kind | leader | a follower | 3 members | clients |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|")
	us := func(v float64) string {
		if v == 0 {
			return "–"
		}
		return fmt.Sprintf("%.0f", v)
	}
	for _, s := range res.Summary {
		for _, kind := range []string{"etcd", "etcd-tls", "scraft"} {
			if m, ok := s.Median[kind]; ok {
				fmt.Fprintf(w, "| %d | %s | %s | %s | %s | %s |\n", s.Clients, kind,
					us(m.LeaderCPUus), us(m.FollowerCPUus), us(m.MembersCPUus), us(m.ClientCPUus))
			}
		}
	}
	var changed []string
	for _, r := range res.Runs {
		if r.LeaderChanged {
			changed = append(changed, fmt.Sprintf("%s %d clients round %d", r.Kind, r.Clients, r.Round))
		}
	}
	if len(changed) > 0 {
		fmt.Fprintf(w, "\netcd's leader changed during: %s (its leader CPU is the first leader's)\n", strings.Join(changed, ", "))
	}
	for _, e := range res.Retried {
		fmt.Fprintf(w, "\nrun again after: %s\n", e)
	}
	var loads []float64
	for _, r := range res.Runs {
		loads = append(loads, r.Load1)
	}
	if len(loads) > 0 {
		fmt.Fprintf(w, "\nload average before the runs: %.1f–%.1f\n", slices.Min(loads), slices.Max(loads))
	}
}
