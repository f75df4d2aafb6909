package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/protocol"
)

func init() {
	rootCmd.AddCommand(benchCmd())
}

// benchOptions are scraft bench's flags.
type benchOptions struct {
	api       apiClient // nodes, channel, chain and pins; keyFile unused
	keys      []string
	keysDir   string
	function  string
	args      string
	argsHex   string
	duration  time.Duration
	rate      int
	shared    bool
	asJSON    bool
	perClient time.Duration // the call timeout
}

func benchCmd() *cobra.Command {
	var o benchOptions
	cmd := &cobra.Command{
		Use:   "bench --node ADDR[,ADDR] --key FILE[,FILE...] --channel ID --function CONTRACT::NAME [--args JSON] [flags]",
		Short: "Load running nodes with calls and report committed tx/s, latency and errors",
		Long: `Send calls of --function to a channel through the nodes' client APIs for
--duration and report what committed: calls per second, commit latency
(p50, p95, p99, max: from sending a call to its verified outcome), and the
calls that failed, by error code.

Each key (--key, repeatable or comma-separated, and every *.key file in
--keys DIR) is one client, a member of the channel: a client's calls to a
channel commit in nonce order, one at a time, so the clients are what makes
the load parallel. The clients dial the nodes in turn (client i starts at
node i); with --shared-conns they share one connection per node, else each
has its own. --rate caps the calls per second of all clients together
(spread evenly over them); 0 sends each client's next call as soon as the
last one committed (closed loop).

In --args, {{n}} is replaced by the call's number and {{client}} by the
client's, so that calls differ (for example '{"text":"bench {{n}}"}').

A progress line is redrawn on a terminal (stderr). The report is a table,
or JSON with --json. Exits 1 when no call committed.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runBench(cmd, o)
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&o.api.nodes, "node", nil, "client API address of a node, host:port; several (comma-separated or repeated) to spread the clients over (required)")
	f.StringSliceVar(&o.keys, "key", nil, "key file of a member, one per client; repeatable or comma-separated")
	f.StringVar(&o.keysDir, "keys", "", "folder whose *.key files are more clients' keys")
	f.StringVar(&o.api.channel, "channel", "", "channel id, 0x + 32 hex digits (required)")
	f.StringSliceVar(&o.api.nodeKeys, "node-key", nil, "member address (0x + 32 hex) a node's TLS key must have; repeatable (default: any member of the channel on --chain)")
	f.StringVar(&o.api.chainAddr, "chain", "127.0.0.1:7400", "settlement chain gRPC address: without --node-key, a node's TLS key must be a member's of the channel there")
	f.StringSliceVar(&o.api.chainKeys, "chain-key", nil, chainKeyHelp+"pinned on first contact in "+chainPinName+" next to the first key file)")
	f.StringVar(&o.function, "function", "", "function to call, contract::name (required)")
	f.StringVar(&o.args, "args", "", "arguments as JSON, encoded with the demo contract's ABI; {{n}} and {{client}} are replaced per call")
	f.StringVar(&o.argsHex, "args-hex", "", "arguments already encoded, in hex (the same for every call)")
	f.DurationVar(&o.duration, "duration", 10*time.Second, "how long to send calls")
	f.IntVar(&o.rate, "rate", 0, "calls per second of all clients together (0: each client sends its next call when the last committed)")
	f.BoolVar(&o.shared, "shared-conns", false, "clients share one connection per node instead of one each")
	f.BoolVar(&o.asJSON, "json", false, "print the report as JSON")
	f.DurationVar(&o.perClient, "timeout", 30*time.Second, "how long one call may take before it counts as failed")
	cmd.MarkFlagRequired("node")
	cmd.MarkFlagRequired("channel")
	cmd.MarkFlagRequired("function")
	return cmd
}

// benchReport is what scraft bench prints.
type benchReport struct {
	Clients     int            `json:"clients"`
	Nodes       int            `json:"nodes"`
	SharedConns bool           `json:"shared_conns"`
	Rate        int            `json:"target_rate,omitempty"`
	Seconds     float64        `json:"seconds"`
	Committed   int            `json:"committed"`
	Failed      int            `json:"failed"` // committed with a failure status
	Errors      map[string]int `json:"errors"` // not committed (as far as known), by code
	TxPerSecond float64        `json:"tx_per_second"`
	P50Ms       float64        `json:"p50_ms"`
	P95Ms       float64        `json:"p95_ms"`
	P99Ms       float64        `json:"p99_ms"`
	MaxMs       float64        `json:"max_ms"`
}

// benchStats gathers the clients' outcomes.
type benchStats struct {
	mu        sync.Mutex
	latencies []time.Duration
	failed    int
	errors    map[string]int
}

func (s *benchStats) add(lat time.Duration, res *client.Result, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case res != nil:
		s.latencies = append(s.latencies, lat)
		if err != nil {
			s.failed++
		}
	default:
		s.errors[callErrorName(err)]++
	}
}

func (s *benchStats) count() (committed, errs int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, n := range s.errors {
		errs += n
	}
	return len(s.latencies), errs
}

func runBench(cmd *cobra.Command, o benchOptions) error {
	if o.args != "" && o.argsHex != "" {
		return errors.New("bench: give --args or --args-hex, not both")
	}
	if o.rate < 0 {
		return fmt.Errorf("bench: --rate %d: must be 0 or more", o.rate)
	}
	files := slices.Clone(o.keys)
	if o.keysDir != "" {
		m, err := filepath.Glob(filepath.Join(o.keysDir, "*.key"))
		if err != nil {
			return err
		}
		slices.Sort(m)
		files = append(files, m...)
	}
	if len(files) == 0 {
		return errors.New("bench: no client key: give --key FILE (one per client) or --keys DIR")
	}
	keys := make([]*protocol.Key, len(files))
	for i, f := range files {
		k, err := protocol.LoadKey(f)
		if err != nil {
			return fmt.Errorf("bench: key %s: %w", f, err)
		}
		keys[i] = k
	}
	ch, err := protocol.ParseChannelID(o.api.channel)
	if err != nil {
		return err
	}
	// Arguments: encoded once unless they change per call.
	perCall := strings.Contains(o.args, "{{n}}") || strings.Contains(o.args, "{{client}}")
	var fixed []byte
	if !perCall {
		if fixed, err = encodeCallArgs(o.function, o.args, o.argsHex); err != nil {
			return err
		}
	} else if _, err := encodeCallArgs(o.function, expandBenchArgs(o.args, 0, 0), ""); err != nil {
		return err
	}

	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	api := o.api
	api.keyFile = files[0] // where the chain pin lives
	dctx, cancel := context.WithTimeout(ctx, o.perClient)
	pins, err := api.pinned(dctx, keys[0], ch)
	cancel()
	if err != nil {
		return err
	}
	cfg := client.DefaultConfig()
	cfg.NodeKeys = pins
	if o.shared {
		cfg.Pool = client.NewPool()
	}
	clients := make([]*client.Client, len(keys))
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.Close()
			}
		}
	}()
	for i, k := range keys {
		dctx, cancel := context.WithTimeout(ctx, o.perClient)
		clients[i], err = cfg.Dial(dctx, k, rotate(o.api.nodes, i)...)
		cancel()
		if err != nil {
			return fmt.Errorf("bench: client %d (%s): %w", i, k.Address(), err)
		}
	}

	stats := &benchStats{errors: map[string]int{}}
	var interval time.Duration // between one client's calls
	if o.rate > 0 {
		interval = time.Duration(len(keys)) * time.Second / time.Duration(o.rate)
	}
	runCtx, stop := context.WithTimeout(ctx, o.duration)
	defer stop()
	start := time.Now()
	var wg sync.WaitGroup
	var seq sync.Mutex
	n := 0
	for i, c := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			next := start.Add(time.Duration(i) * interval / time.Duration(len(clients)))
			for runCtx.Err() == nil {
				if interval > 0 {
					select {
					case <-time.After(time.Until(next)):
					case <-runCtx.Done():
						return
					}
					next = next.Add(interval)
					if now := time.Now(); next.Before(now) {
						next = now // behind: no burst to catch up
					}
				}
				args := fixed
				if perCall {
					seq.Lock()
					n++
					k := n
					seq.Unlock()
					args, _ = encodeCallArgs(o.function, expandBenchArgs(o.args, k, i), "")
				}
				// A call in flight at the end is let finish: cutting it
				// would count a timeout that is not the node's.
				cctx, cancel := context.WithTimeout(context.Background(), o.perClient)
				t0 := time.Now()
				res, err := c.Call(cctx, ch, o.function, args)
				cancel()
				stats.add(time.Since(t0), res, err)
			}
		}()
	}
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	benchProgress(cmd.ErrOrStderr(), stats, start, o.duration, done)
	elapsed := time.Since(start)

	rep := benchReport{Clients: len(clients), Nodes: len(o.api.nodes), SharedConns: o.shared, Rate: o.rate,
		Seconds: elapsed.Seconds(), Failed: stats.failed, Errors: stats.errors}
	lat := stats.latencies
	slices.Sort(lat)
	rep.Committed = len(lat)
	rep.TxPerSecond = float64(len(lat)) / elapsed.Seconds()
	if len(lat) > 0 {
		q := func(p float64) float64 { return ms(lat[min(len(lat)-1, int(p*float64(len(lat))))]) }
		rep.P50Ms, rep.P95Ms, rep.P99Ms, rep.MaxMs = q(0.50), q(0.95), q(0.99), ms(lat[len(lat)-1])
	}
	if o.asJSON {
		if err := printJSON(cmd.OutOrStdout(), rep); err != nil {
			return err
		}
	} else {
		printBenchReport(cmd.OutOrStdout(), &rep)
	}
	if rep.Committed == 0 {
		return errors.New("bench: no call committed")
	}
	return nil
}

// expandBenchArgs replaces {{n}} and {{client}} in args.
func expandBenchArgs(args string, n, client int) string {
	return strings.NewReplacer("{{n}}", strconv.Itoa(n), "{{client}}", strconv.Itoa(client)).Replace(args)
}

func ms(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 }

// benchProgress redraws a progress line on w every second while the load
// runs, when w is a terminal; it returns when done is closed.
func benchProgress(w io.Writer, s *benchStats, start time.Time, d time.Duration, done <-chan struct{}) {
	tty := isTerminal(w)
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-done:
			if tty {
				fmt.Fprint(w, "\r\033[K")
			}
			return
		case now := <-t.C:
			if !tty {
				continue
			}
			committed, errs := s.count()
			el := now.Sub(start)
			frac := min(1, el.Seconds()/d.Seconds())
			const width = 30
			bar := strings.Repeat("#", int(frac*width)) + strings.Repeat(".", width-int(frac*width))
			fmt.Fprintf(w, "\r[%s] %3.0f%%  %d committed  %.0f tx/s  %d errors ", bar, 100*frac, committed,
				float64(committed)/el.Seconds(), errs)
		}
	}
}

func printBenchReport(w io.Writer, r *benchReport) {
	conns := "own connections"
	if r.SharedConns {
		conns = "shared connections"
	}
	load := "closed loop"
	if r.Rate > 0 {
		load = fmt.Sprintf("target %d calls/s", r.Rate)
	}
	fmt.Fprintf(w, "clients      %d over %d nodes (%s, %s)\n", r.Clients, r.Nodes, conns, load)
	fmt.Fprintf(w, "committed    %d in %.1f s: %.1f tx/s (%d with a failure status)\n", r.Committed, r.Seconds, r.TxPerSecond, r.Failed)
	fmt.Fprintf(w, "latency      p50 %.1f ms  p95 %.1f ms  p99 %.1f ms  max %.1f ms\n", r.P50Ms, r.P95Ms, r.P99Ms, r.MaxMs)
	if len(r.Errors) == 0 {
		fmt.Fprintf(w, "errors       none\n")
		return
	}
	names := make([]string, 0, len(r.Errors))
	for k := range r.Errors {
		names = append(names, k)
	}
	slices.Sort(names)
	for i, k := range names {
		label := ""
		if i == 0 {
			label = "errors"
		}
		fmt.Fprintf(w, "%-12s %s %d\n", label, k, r.Errors[k])
	}
}

// rotate returns s starting at index i (mod len(s)).
func rotate(s []string, i int) []string {
	if len(s) == 0 {
		return s
	}
	i %= len(s)
	return append(slices.Clone(s[i:]), s[:i]...)
}
