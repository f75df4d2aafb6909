package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/internal/backoff"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

func init() {
	d := &cobra.Command{
		Use:   "drill",
		Short: "Fault drills against a channel's nodes",
	}
	d.AddCommand(drillFailoverCmd())
	rootCmd.AddCommand(d)
}

type drillOptions struct {
	local      bool
	nodes      int
	data       string
	api        apiClient
	admins     []string
	adminToken string
	keys       []string
	function   string
	args       string
	rounds     int
	maxGap     time.Duration
	settle     time.Duration
	asJSON     bool
	faults     []string
	mode       string
}

// drillFaults are the faults a round can inject, by --faults name: whom
// (the leader or a follower) and how (crash: SIGKILL or POST /drill/crash,
// then the node is started again; stop: SIGSTOP until writes resume, then
// SIGCONT, for a node the drill started itself; transfer: the leader
// hands its lead over, a planned change that needs no --allow-drills).
var drillFaults = map[string]struct{ leader, stop, transfer bool }{
	"crash-leader":    {leader: true},
	"crash-follower":  {},
	"stop-leader":     {leader: true, stop: true},
	"stop-follower":   {stop: true},
	"transfer-leader": {leader: true, transfer: true},
}

func drillFailoverCmd() *cobra.Command {
	var o drillOptions
	cmd := &cobra.Command{
		Use:   "failover (--local | --node ADDR,... --admin ADDR,... --key FILE[,...] --channel ID) [flags]",
		Short: "Crash (or stop) the leader or a follower round after round under a write load and report the write gaps and any lost write",
		Long: `Run a write load against a channel, crash its leader (or what --faults
names) --rounds times, and report for each round the fault, the leader
before and after and the gap in successful writes (the longest time
without a committed write around the fault), then in total: the median and worst gap, the writes acknowledged,
the acknowledged writes lost (each acknowledged height and digest is
checked on every node: must be 0) and whether the nodes' digests agree.

--local starts its own chain and --nodes node processes (this binary) on
loopback in a temporary folder (--data to keep it and the logs), hosting a
chat channel, crashes the leader with SIGKILL, starts it again on its data,
and tears everything down at the end. --faults names what the rounds do
in turn (default crash-leader): crash-leader, crash-follower, stop-leader
and stop-follower (SIGSTOP until writes resume, then SIGCONT; --local
only), e.g. --faults crash-leader,stop-follower,stop-leader,crash-follower.

--mode transfer (the same as --faults transfer-leader) changes leaders by
planned transfer instead: each round the leader hands its lead to the
member it finds best (POST /transfer, as scraft transfer does), which
running nodes serve without --allow-drills; the gap is that of the
hand-over.

Against running nodes, give their client API addresses (--node) and admin
addresses (--admin, in the same order), member keys for the load (--key,
one client each) and the channel. The leader is crashed through its admin
listener (POST /drill/crash; a follower for crash-follower), which a node
serves only when it runs with --allow-drills; the node's supervisor must start it again: the drill waits
for it before the next round. The load calls --function with --args
({{n}} and {{client}} are replaced per call).

Prints a table, or JSON with --json; a progress line on a terminal
(stderr). Exits 1 when a write was lost, the digests disagree, or a
round's gap exceeds --max-gap.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runDrill(cmd, o) },
	}
	f := cmd.Flags()
	f.BoolVar(&o.local, "local", false, "start a chain and nodes of its own on loopback, and remove them at the end")
	f.IntVar(&o.nodes, "nodes", 3, "with --local: how many nodes")
	f.StringVar(&o.data, "data", "", "with --local: folder for the chain, the nodes and their logs (default: a temporary one, removed at exit)")
	f.StringSliceVar(&o.api.nodes, "node", nil, "client API addresses of the channel's nodes")
	f.StringSliceVar(&o.admins, "admin", nil, "admin addresses of the same nodes, in the same order")
	f.StringVar(&o.adminToken, "admin-token", "", "the nodes' admin token, if they have one (prefer SCRAFT_ADMIN_TOKEN)")
	f.StringSliceVar(&o.keys, "key", nil, "key files of members to write as, one client each")
	f.StringVar(&o.api.channel, "channel", "", "channel id")
	f.StringSliceVar(&o.api.nodeKeys, "node-key", nil, "member address a node's TLS key must have; repeatable (default: any member of the channel on --chain)")
	f.StringVar(&o.api.chainAddr, "chain", "127.0.0.1:7400", "settlement chain gRPC address")
	f.StringSliceVar(&o.api.chainKeys, "chain-key", nil, chainKeyHelp+"pinned on first contact in "+chainPinName+" next to the first key file)")
	f.StringVar(&o.function, "function", "chat::send", "function the load calls")
	f.StringVar(&o.args, "args", `{"text":"drill {{n}}"}`, "the load's arguments as JSON; {{n}} and {{client}} are replaced per call")
	f.IntVar(&o.rounds, "rounds", 5, "how many rounds, one fault each")
	f.StringSliceVar(&o.faults, "faults", []string{"crash-leader"}, "the faults the rounds take in turn: crash-leader, crash-follower, stop-leader, stop-follower (stop: SIGSTOP until writes resume, then SIGCONT; --local only)")
	f.StringVar(&o.mode, "mode", "crash", "how leaders change: crash (the --faults) or transfer (a planned transfer each round, --faults transfer-leader)")
	f.DurationVar(&o.maxGap, "max-gap", 5*time.Second, "a round whose write gap is longer fails the drill")
	f.DurationVar(&o.settle, "round-timeout", time.Minute, "how long a round may take to elect a new leader, resume writes and have the crashed node back")
	f.BoolVar(&o.asJSON, "json", false, "print the report as JSON")
	return cmd
}

// drillNode is one node of the drill: where it serves, and for --local its
// process.
type drillNode struct {
	name  string
	addr  string
	admin string
	proc  *exec.Cmd
	args  []string
	log   string
	done  chan struct{}
}

// drill is a running drill.
type drill struct {
	o      drillOptions
	out    io.Writer
	errw   io.Writer
	nodes  []*drillNode
	ch     protocol.ChannelID
	keys   []*protocol.Key
	pins   []protocol.Address
	token  string
	http   *http.Client
	local  bool
	cancel []func()
	// abi encodes the writes: the channel's ABI recorded on chain, or nil
	// (the demo contracts' ABIs, by the function's prefix).
	abi *contracts.Contract

	mu   sync.Mutex
	acks []drillAck
	errs map[string]int
	tty  bool
}

type drillAck struct {
	at     time.Time
	height uint64
	digest protocol.Hash
}

type drillRound struct {
	Round        int     `json:"round"`
	Fault        string  `json:"fault"`
	Victim       string  `json:"victim"`
	LeaderBefore string  `json:"leader_before"`
	LeaderAfter  string  `json:"leader_after"`
	GapMs        float64 `json:"gap_ms"`
	Writes       int     `json:"writes"`
}

type drillReport struct {
	Rounds       []drillRound   `json:"rounds"`
	GapMedianMs  float64        `json:"gap_median_ms"`
	GapWorstMs   float64        `json:"gap_worst_ms"`
	Acked        int            `json:"acked"`
	Lost         int            `json:"lost"`
	Unchecked    int            `json:"unchecked"` // pruned by a settlement on some node
	DigestsAgree bool           `json:"digests_agree"`
	Errors       map[string]int `json:"errors"`
	// ABI names the ABI the writes were encoded with: "channel", the one
	// recorded on chain with the channel's code, or "demo", the demo
	// contract's of the function's prefix.
	ABI string `json:"abi"`
	OK  bool   `json:"ok"`
}

func runDrill(cmd *cobra.Command, o drillOptions) error {
	if o.rounds < 1 {
		return fmt.Errorf("drill: --rounds %d: at least 1", o.rounds)
	}
	switch o.mode {
	case "crash":
	case "transfer":
		if cmd.Flags().Changed("faults") {
			return errors.New("drill: --mode transfer sets the faults (transfer-leader): give --faults or --mode, not both")
		}
		o.faults = []string{"transfer-leader"}
	default:
		return fmt.Errorf("drill: --mode %q: crash or transfer", o.mode)
	}
	if len(o.faults) == 0 {
		return errors.New("drill: --faults: name at least one fault")
	}
	for _, f := range o.faults {
		k, ok := drillFaults[f]
		switch {
		case !ok:
			return fmt.Errorf("drill: --faults: unknown fault %q (crash-leader, crash-follower, stop-leader, stop-follower, transfer-leader)", f)
		case k.stop && !o.local:
			return fmt.Errorf("drill: --faults %s needs --local: the drill can stop only the node processes it started", f)
		}
	}
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	d := &drill{o: o, out: cmd.OutOrStdout(), errw: cmd.ErrOrStderr(), http: &http.Client{Timeout: 3 * time.Second}, errs: map[string]int{}}
	d.tty = isTerminal(cmd.ErrOrStderr())
	defer func() {
		for i := len(d.cancel) - 1; i >= 0; i-- {
			d.cancel[i]()
		}
	}()
	var err error
	if o.local {
		err = d.startLocal(ctx)
	} else {
		err = d.remote(ctx)
	}
	if err != nil {
		return err
	}
	rep, err := d.run(ctx, cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	if o.asJSON {
		if err := printJSON(d.out, rep); err != nil {
			return err
		}
	} else {
		printDrillReport(d.out, rep)
	}
	if !rep.OK {
		return errors.New("drill failed: see the report")
	}
	return nil
}

// remote sets the drill up against running nodes.
func (d *drill) remote(ctx context.Context) error {
	o := d.o
	if len(o.api.nodes) == 0 || len(o.admins) != len(o.api.nodes) {
		return fmt.Errorf("drill: give --node and --admin for every node, in the same order (%d and %d given), or --local", len(o.api.nodes), len(o.admins))
	}
	if len(o.keys) == 0 {
		return errors.New("drill: give --key FILE (a member to write as), or --local")
	}
	var err error
	if d.ch, err = protocol.ParseChannelID(o.api.channel); err != nil {
		return err
	}
	for _, f := range o.keys {
		k, err := protocol.LoadKey(f)
		if err != nil {
			return err
		}
		d.keys = append(d.keys, k)
	}
	d.token = o.adminToken
	if d.token == "" {
		d.token = os.Getenv("SCRAFT_ADMIN_TOKEN")
	}
	api := o.api
	api.keyFile = o.keys[0]
	if d.pins, err = api.pinned(ctx, d.keys[0], d.ch); err != nil {
		return err
	}
	for i := range o.api.nodes {
		d.nodes = append(d.nodes, &drillNode{name: fmt.Sprintf("node%d", i+1), addr: o.api.nodes[i], admin: o.admins[i]})
	}
	d.abi, _ = api.channelABIFor(ctx, d.errw, d.ch, o.function)
	return nil
}

// startLocal starts a chain and nodes as child processes, creates a chat
// channel (never settled, so that every acknowledged height stays in the
// nodes' journals to be checked) and joins the nodes' members to it.
func (d *drill) startLocal(ctx context.Context) error {
	d.local = true
	o := d.o
	if o.nodes < 3 {
		return fmt.Errorf("drill: --nodes %d: a failover needs at least 3", o.nodes)
	}
	dir := o.data
	if dir == "" {
		tmp, err := os.MkdirTemp("", "scraft-drill-")
		if err != nil {
			return err
		}
		d.cancel = append(d.cancel, func() { os.RemoveAll(tmp) })
		dir = tmp
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	chainKey, _ := protocol.GenerateKey(nil)
	chainKeyFile := filepath.Join(dir, "chain.key")
	if err := protocol.SaveKey(chainKeyFile, chainKey); err != nil {
		return err
	}
	chainAddr, err := pickAddr("127.0.0.1:0")
	if err != nil {
		return err
	}
	chain := &drillNode{name: "chain", log: filepath.Join(dir, "chain.log"), args: []string{"chain", "--data", filepath.Join(dir, "chain"),
		"--key", chainKeyFile, "--listen", chainAddr, "--block-interval", "50ms"}}
	if err := d.spawn(self, chain); err != nil {
		return err
	}
	fmt.Fprintf(d.errw, "drill: chain and %d nodes in %s\n", o.nodes, dir)

	dial := func(k *protocol.Key) (*devchain.Client, error) {
		return devchain.Dial(chainAddr, k, devchain.WithChainKeys(chainKey.Address()))
	}
	creator, _ := protocol.GenerateKey(nil)
	cc, err := dial(creator)
	if err != nil {
		return err
	}
	defer cc.Close()
	chat, err := contracts.Get("chat")
	if err != nil {
		return err
	}
	initial, err := initialState(ctx, chat.Wasm)
	if err != nil {
		return err
	}
	var id protocol.ChannelID
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		if _, err = cc.Head(wctx); err == nil || wctx.Err() != nil {
			break
		}
		if !backoff.Sleep(wctx, 50*time.Millisecond) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("drill: the chain did not start (log %s): %w", chain.log, err)
	}
	abi, err := channelABIFile("chat", "")
	if err != nil {
		return err
	}
	id, err = cc.CreateChannel(wctx, settlement.ChannelSpec{Contract: "chat", Code: chat.Wasm, ABI: abi, InitialState: initial,
		Config: contract.ChannelConfig{SettleEveryTxs: 1 << 62, MinStake: defaultMinStake, Fine: defaultMinStake / defaultFineDivisor}})
	if err != nil {
		return err
	}
	d.ch = id
	if d.abi, err = readChannelABI(wctx, cc, id); err != nil {
		return fmt.Errorf("drill: read the channel's ABI: %w", err)
	}
	if d.abi == nil {
		return fmt.Errorf("drill: channel %s has no ABI on record", id)
	}
	for i := range o.nodes {
		k, _ := protocol.GenerateKey(nil)
		keyFile := filepath.Join(dir, fmt.Sprintf("node%d.key", i+1))
		if err := protocol.SaveKey(keyFile, k); err != nil {
			return err
		}
		c, err := dial(k)
		if err != nil {
			return err
		}
		err = c.Stake(wctx, id, defaultMinStake)
		if err == nil {
			_, err = c.Join(wctx, id, false)
		}
		c.Close()
		if err != nil {
			return fmt.Errorf("drill: join node %d on chain: %w", i+1, err)
		}
		d.keys = append(d.keys, k)
		d.pins = append(d.pins, k.Address())
		addr, err := pickAddr("127.0.0.1:0")
		if err != nil {
			return err
		}
		admin, err := pickAddr("127.0.0.1:0")
		if err != nil {
			return err
		}
		nd := &drillNode{name: fmt.Sprintf("node%d", i+1), addr: addr, admin: admin,
			log: filepath.Join(dir, fmt.Sprintf("node%d.log", i+1)),
			args: []string{"node", "--data", filepath.Join(dir, fmt.Sprintf("node%d", i+1)), "--listen", addr, "--admin", admin,
				"--chain", chainAddr, "--chain-key", chainKey.Address().String(), "--key", keyFile, "--channel", id.String(), "--log-level", "info"}}
		if i > 0 {
			nd.args = append(nd.args, "--peer", d.nodes[0].addr)
		}
		if err := d.spawn(self, nd); err != nil {
			return err
		}
		d.nodes = append(d.nodes, nd)
		if i == 0 {
			if _, err := d.waitLeader(ctx, nil); err != nil {
				return fmt.Errorf("drill: the first node did not lead (log %s): %w", nd.log, err)
			}
		}
	}
	return d.waitReady(ctx, nil)
}

// spawn starts a child process of this binary with n's arguments, its
// output to n.log; it is killed when the drill ends.
func (d *drill) spawn(self string, n *drillNode) error {
	lf, err := os.OpenFile(n.log, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	c := exec.Command(self, n.args...)
	c.Stdout, c.Stderr = lf, lf
	if err := c.Start(); err != nil {
		lf.Close()
		return err
	}
	n.proc, n.done = c, make(chan struct{})
	go func(done chan struct{}) { c.Wait(); lf.Close(); close(done) }(n.done)
	d.cancel = append(d.cancel, func() {
		c.Process.Signal(syscall.SIGCONT) // a stopped node hears no SIGTERM
		c.Process.Signal(syscall.SIGTERM)
		select {
		case <-n.done:
		case <-time.After(10 * time.Second):
			c.Process.Kill()
			<-n.done
		}
	})
	return nil
}

// nodeStatus reads what the drill needs from a node's admin /status.
func (d *drill) nodeStatus(n *drillNode) (leading, ready bool, height uint64, err error) {
	st, err := d.fullStatus(n)
	if err != nil {
		return false, false, 0, err
	}
	return st.Leading, st.Ready, st.Height, nil
}

// drillStatus is the part of a node's admin /status the drill reads.
type drillStatus struct {
	Channel protocol.ChannelID `json:"channel"`
	Leading bool               `json:"leading"`
	Ready   bool               `json:"ready"`
	Height  uint64             `json:"height"`
	Voters  int                `json:"voters"`
}

func (d *drill) fullStatus(n *drillNode) (*drillStatus, error) {
	req, _ := http.NewRequest(http.MethodGet, "http://"+n.admin+"/status", nil)
	if d.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var sts []drillStatus
	if err := json.NewDecoder(resp.Body).Decode(&sts); err != nil {
		return nil, fmt.Errorf("%s /status: %w", n.admin, err)
	}
	for i := range sts {
		if sts[i].Channel == d.ch {
			return &sts[i], nil
		}
	}
	return nil, fmt.Errorf("%s does not host channel %s", n.name, d.ch)
}

// waitLeader waits for a node other than not to lead.
func (d *drill) waitLeader(ctx context.Context, not *drillNode) (*drillNode, error) {
	ctx, cancel := context.WithTimeout(ctx, d.o.settle)
	defer cancel()
	for {
		for _, n := range d.nodes {
			if n == not {
				continue
			}
			if leading, _, _, err := d.nodeStatus(n); err == nil && leading {
				return n, nil
			}
		}
		if !backoff.Sleep(ctx, 20*time.Millisecond) {
			return nil, errors.New("no leader")
		}
	}
}

// waitReady waits until every node but skip answers and is caught up,
// and the leader counts every node a voter: crashing the leader before a
// joined node is promoted would leave no quorum.
func (d *drill) waitReady(ctx context.Context, skip *drillNode) error {
	ctx, cancel := context.WithTimeout(ctx, d.o.settle)
	defer cancel()
	for {
		var last error
		leaders := 0
		for _, n := range d.nodes {
			if n == skip {
				continue
			}
			st, err := d.fullStatus(n)
			switch {
			case err != nil:
				last = err
			case !st.Ready:
				last = fmt.Errorf("%s not caught up", n.name)
			case st.Leading:
				leaders++
				if st.Voters != len(d.nodes) {
					last = fmt.Errorf("the leader %s has %d voters of %d nodes", n.name, st.Voters, len(d.nodes))
				}
			}
		}
		if last == nil && leaders == 0 {
			last = errors.New("no leader")
		}
		if last == nil {
			return nil
		}
		if !backoff.Sleep(ctx, 50*time.Millisecond) {
			return fmt.Errorf("nodes not ready: %w", last)
		}
	}
}

// crash crashes n: SIGKILL for a local node, POST /drill/crash otherwise.
func (d *drill) crash(n *drillNode) error {
	if n.proc != nil {
		n.proc.Process.Kill()
		<-n.done
		return nil
	}
	req, _ := http.NewRequest(http.MethodPost, "http://"+n.admin+"/drill/crash", nil)
	if d.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		// The process may die before it answers.
		return nil
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		return fmt.Errorf("%s: POST /drill/crash: %s: %s", n.name, resp.Status, strings.TrimSpace(string(b)))
	}
	return nil
}

// restart starts a crashed local node again on its data; a remote node's
// supervisor does that.
func (d *drill) restart(n *drillNode) error {
	if n.proc == nil {
		return nil
	}
	self, err := os.Executable()
	if err != nil {
		return err
	}
	args := slices.Clone(n.args)
	// Back as the member it was: no --peer.
	if i := slices.Index(args, "--peer"); i >= 0 {
		args = append(args[:i], args[i+2:]...)
	}
	n.args = args
	return d.spawn(self, n)
}

// load runs one client per key until ctx ends, recording acknowledged
// writes.
func (d *drill) load(ctx context.Context) (func(), error) {
	cfg := client.DefaultConfig()
	cfg.NodeKeys = d.pins
	var addrs []string
	for _, n := range d.nodes {
		addrs = append(addrs, n.addr)
	}
	perCall := strings.Contains(d.o.args, "{{n}}") || strings.Contains(d.o.args, "{{client}}")
	fnABI := d.abi
	if contract, _, _ := strings.Cut(d.o.function, "::"); fnABI != nil && fnABI.Name != contract {
		fnABI = nil // another contract's: the function's own prefix picks
	}
	lctx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	var seqMu sync.Mutex
	seq := 0
	for i, k := range d.keys {
		c, err := cfg.Dial(ctx, k, rotate(addrs, i)...)
		if err != nil {
			stop()
			return nil, fmt.Errorf("drill: client %d: %w", i, err)
		}
		if d.local {
			args, _ := encodeCallArgsWith(d.abi, "chat::join", fmt.Sprintf(`{"nick":"drill%d"}`, i), "")
			jctx, cancel := context.WithTimeout(ctx, 30*time.Second)
			_, err := c.Call(jctx, d.ch, "chat::join", args)
			cancel()
			if err != nil {
				c.Close()
				stop()
				return nil, fmt.Errorf("drill: client %d: chat::join: %w", i, err)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			for lctx.Err() == nil {
				seqMu.Lock()
				seq++
				n := seq
				seqMu.Unlock()
				a := d.o.args
				if perCall {
					a = expandBenchArgs(a, n, i)
				}
				args, err := encodeCallArgsWith(fnABI, d.o.function, a, "")
				if err != nil {
					d.note(err)
					return
				}
				cctx, cancel := context.WithTimeout(lctx, 5*time.Second)
				res, err := c.Call(cctx, d.ch, d.o.function, args)
				cancel()
				if res != nil {
					d.mu.Lock()
					d.acks = append(d.acks, drillAck{at: time.Now(), height: res.Height, digest: res.Digest})
					d.mu.Unlock()
				} else if lctx.Err() == nil {
					d.note(err)
				}
			}
		}()
	}
	return func() { stop(); wg.Wait() }, nil
}

func (d *drill) note(err error) {
	name := callErrorName(err)
	d.mu.Lock()
	d.errs[name]++
	d.mu.Unlock()
}

func (d *drill) ackCount() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.acks)
}

func (d *drill) progress(w io.Writer, format string, args ...any) {
	if d.tty {
		fmt.Fprintf(w, "\r\033[K"+format, args...)
	}
}

func (d *drill) run(ctx context.Context, errw io.Writer) (*drillReport, error) {
	stopLoad, err := d.load(ctx)
	if err != nil {
		return nil, err
	}
	loadStopped := false
	defer func() {
		if !loadStopped {
			stopLoad()
		}
	}()
	rep := &drillReport{ABI: "demo"}
	if contract, _, _ := strings.Cut(d.o.function, "::"); d.abi != nil && d.abi.Name == contract {
		rep.ABI = "channel"
	}
	resumed := func(from int) error {
		rctx, cancel := context.WithTimeout(ctx, d.o.settle)
		defer cancel()
		for d.ackCount() < from+10 {
			if !backoff.Sleep(rctx, 10*time.Millisecond) {
				return errors.New("writes did not resume")
			}
		}
		return nil
	}
	if err := resumed(0); err != nil {
		return nil, fmt.Errorf("drill: no writes before the first round: %w", err)
	}
	for r := 1; r <= d.o.rounds; r++ {
		fault := d.o.faults[(r-1)%len(d.o.faults)]
		kind := drillFaults[fault]
		d.progress(errw, "round %d/%d: finding the leader", r, d.o.rounds)
		leader, err := d.waitLeader(ctx, nil)
		if err != nil {
			return nil, fmt.Errorf("drill: round %d: %w", r, err)
		}
		victim := leader
		if !kind.leader {
			// The followers in turn.
			var fs []*drillNode
			for _, n := range d.nodes {
				if n != leader {
					fs = append(fs, n)
				}
			}
			if len(fs) == 0 {
				return nil, fmt.Errorf("drill: round %d: %s: the channel has no follower", r, fault)
			}
			victim = fs[r%len(fs)]
		}
		before := d.ackCount()
		d.progress(errw, "round %d/%d: %s: %s", r, d.o.rounds, fault, victim.name)
		crashAt := time.Now()
		switch {
		case kind.transfer:
			_, err = d.transfer(ctx, victim)
		case kind.stop:
			err = victim.proc.Process.Signal(syscall.SIGSTOP)
		default:
			err = d.crash(victim)
		}
		if err != nil {
			return nil, fmt.Errorf("drill: round %d: %w", r, err)
		}
		d.progress(errw, "round %d/%d: waiting for writes to resume", r, d.o.rounds)
		if err := resumed(before); err != nil {
			if kind.stop {
				victim.proc.Process.Signal(syscall.SIGCONT)
			}
			return nil, fmt.Errorf("drill: round %d: after %s of %s: %w", r, fault, victim.name, err)
		}
		resumedAt := time.Now()
		// Usually another node; the crashed one again when its supervisor
		// restarted it before the others took over. A stopped node cannot
		// answer: it is not asked.
		var skip *drillNode
		if kind.stop || kind.transfer {
			skip = victim // a transfer hands the lead to another node
		}
		next, err := d.waitLeader(ctx, skip)
		if kind.stop {
			victim.proc.Process.Signal(syscall.SIGCONT)
		}
		if err != nil {
			return nil, fmt.Errorf("drill: round %d: after %s of %s: %w", r, fault, victim.name, err)
		}
		d.progress(errw, "round %d/%d: waiting for %s to be back", r, d.o.rounds, victim.name)
		if !kind.stop && !kind.transfer {
			if err := d.restart(victim); err != nil {
				return nil, err
			}
		}
		if err := d.waitReady(ctx, nil); err != nil {
			return nil, fmt.Errorf("drill: round %d: %s did not come back: %w", r, victim.name, err)
		}
		rep.Rounds = append(rep.Rounds, drillRound{Round: r, Fault: fault, Victim: victim.name, LeaderBefore: leader.name, LeaderAfter: next.name,
			GapMs: ms(d.gap(crashAt, resumedAt)), Writes: d.ackCount() - before})
	}
	stopLoad()
	loadStopped = true
	d.progress(errw, "checking every acknowledged write on every node")
	d.check(ctx, rep)
	d.progress(errw, "")

	gaps := make([]float64, 0, len(rep.Rounds))
	rep.OK = rep.Lost == 0 && rep.DigestsAgree
	for _, r := range rep.Rounds {
		gaps = append(gaps, r.GapMs)
		if r.GapMs > ms(d.o.maxGap) {
			rep.OK = false
		}
	}
	slices.Sort(gaps)
	rep.GapMedianMs, rep.GapWorstMs = gaps[len(gaps)/2], gaps[len(gaps)-1]
	rep.Errors = d.errs
	return rep, nil
}

// gap is the longest time between consecutive acknowledged writes from
// the last one before the crash to the time writes resumed.
func (d *drill) gap(crashAt, resumedAt time.Time) time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	times := make([]time.Time, 0, len(d.acks))
	for _, a := range d.acks {
		times = append(times, a.at)
	}
	slices.SortFunc(times, func(a, b time.Time) int { return a.Compare(b) })
	prev := crashAt
	for _, t := range times {
		if t.Before(crashAt) {
			prev = t
		}
	}
	var worst time.Duration
	for _, t := range times {
		if t.After(prev) && !t.After(resumedAt) {
			worst = max(worst, t.Sub(prev))
			prev = t
		}
	}
	return worst
}

// check counts the acknowledged writes every node has with the
// acknowledged digest, and whether the nodes agree at the lowest height
// they all applied.
func (d *drill) check(ctx context.Context, rep *drillReport) {
	d.mu.Lock()
	acks := slices.Clone(d.acks)
	d.mu.Unlock()
	rep.Acked = len(acks)
	var top uint64
	for _, a := range acks {
		top = max(top, a.height)
	}
	// Every node catches up to the highest acknowledged height first.
	cctx, cancel := context.WithTimeout(ctx, d.o.settle)
	defer cancel()
	low := uint64(0)
	for {
		low = ^uint64(0)
		for _, n := range d.nodes {
			if _, _, h, err := d.nodeStatus(n); err == nil {
				low = min(low, h)
			} else {
				low = 0
			}
		}
		if low >= top || !backoff.Sleep(cctx, 50*time.Millisecond) {
			break
		}
	}
	lost := map[uint64]bool{}
	for _, n := range d.nodes {
		for _, a := range acks {
			dg, status, err := d.digest(n, a.height)
			switch {
			case err != nil || status == http.StatusNotFound && a.height > low:
				lost[a.height] = true
			case status == http.StatusNotFound:
				rep.Unchecked++
			case dg != a.digest:
				lost[a.height] = true
			}
		}
	}
	rep.Lost = len(lost)
	rep.DigestsAgree = true
	var want protocol.Hash
	for i, n := range d.nodes {
		dg, status, err := d.digest(n, low)
		if err != nil || status != http.StatusOK {
			rep.DigestsAgree = false
			continue
		}
		if i == 0 {
			want = dg
		} else if dg != want {
			rep.DigestsAgree = false
		}
	}
}

// digest reads D(h) from a node's admin /digest.
func (d *drill) digest(n *drillNode, h uint64) (protocol.Hash, int, error) {
	var dg protocol.Hash
	req, _ := http.NewRequest(http.MethodGet, fmt.Sprintf("http://%s/digest?channel=%s&height=%d", n.admin, d.ch, h), nil)
	if d.token != "" {
		req.Header.Set("Authorization", "Bearer "+d.token)
	}
	resp, err := d.http.Do(req)
	if err != nil {
		return dg, 0, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return dg, resp.StatusCode, nil
	}
	var v struct {
		Digest string `json:"digest"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&v); err != nil {
		return dg, 0, err
	}
	b, err := hex.DecodeString(v.Digest)
	if err != nil || len(b) != len(dg) {
		return dg, 0, fmt.Errorf("%s: bad digest %q", n.name, v.Digest)
	}
	copy(dg[:], b)
	return dg, http.StatusOK, nil
}

func printDrillReport(w io.Writer, r *drillReport) {
	fmt.Fprintf(w, "%-6s %-16s %-8s %-14s %-14s %10s %8s\n", "ROUND", "FAULT", "OF", "LEADER BEFORE", "LEADER AFTER", "GAP", "WRITES")
	for _, x := range r.Rounds {
		fmt.Fprintf(w, "%-6d %-16s %-8s %-14s %-14s %7.0f ms %8d\n", x.Round, x.Fault, x.Victim, x.LeaderBefore, x.LeaderAfter, x.GapMs, x.Writes)
	}
	fmt.Fprintf(w, "\ngap          median %.0f ms, worst %.0f ms\n", r.GapMedianMs, r.GapWorstMs)
	fmt.Fprintf(w, "writes       %d acknowledged, %d lost", r.Acked, r.Lost)
	if r.Unchecked > 0 {
		fmt.Fprintf(w, " (%d checks skipped: settled and pruned)", r.Unchecked)
	}
	fmt.Fprintln(w)
	agree := "agree"
	if !r.DigestsAgree {
		agree = "DISAGREE"
	}
	fmt.Fprintf(w, "digests      %s\n", agree)
	if len(r.Errors) > 0 {
		names := make([]string, 0, len(r.Errors))
		for k := range r.Errors {
			names = append(names, k)
		}
		slices.Sort(names)
		var parts []string
		for _, k := range names {
			parts = append(parts, fmt.Sprintf("%s %d", k, r.Errors[k]))
		}
		fmt.Fprintf(w, "call errors  %s (retried by the clients)\n", strings.Join(parts, ", "))
	}
	verdict := "ok"
	if !r.OK {
		verdict = "FAILED"
	}
	fmt.Fprintf(w, "result       %s\n", verdict)
}
