package main

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/scraft/scraft/cluster"
	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/fsm"
	"github.com/scraft/scraft/internal/backoff"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
	"github.com/scraft/scraft/vm"
)

func init() {
	rootCmd.AddCommand(devCmd())
}

// devCmd is `scraft dev`: everything in one process on loopback.
func devCmd() *cobra.Command {
	var (
		data, logLevel, chainListen, chain string
		players, members                   int
		duration                           time.Duration
		tick                               time.Duration
		logJSON                            bool
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a dev chain and a 3-node MoveCraft channel in one process, with players",
		Long: `Run an embedded development chain and three nodes on loopback that host one
MoveCraft channel, with a small workload of players wandering and laying
trails of blocks, worth watching on the console's map (printed: console
http://ADMIN/).
Every member stakes 1000, the channel's minimum stake; a punished member is
fined 500 (the defaults of scraft chain create-channel).
It prints where the chain and each node listen (client API, admin HTTP) and
the scraft status, subscribe and chain show commands that inspect the world
from another terminal. A status line shows the height, heights per second,
the leader and its epoch, and the settled height: redrawn in place on a
terminal, one line every 5 s otherwise. Ctrl-C stops everything cleanly.

With --data DIR everything stays in DIR (chain, node data, keys/, dev.json)
and running scraft dev --data DIR again resumes the same world.

--chain comet runs the settlement chain as a local network of four
CometBFT validators in this process (blocks every ~0.3-0.5 s) instead of
the embedded devchain; the nodes and players read it through a quorum.

--members N runs N member nodes instead of 3 (a new world only). With more
than 5 members (players count: they are members without a node) the
channel runs through 5 candidates: the status line then shows how many
candidates lead the Raft group and how many nodes are delegators, relayed
by a candidate.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if duration > 0 {
				var cancel context.CancelFunc
				ctx, cancel = context.WithTimeout(ctx, duration)
				defer cancel()
			}
			if data == "" {
				dir, err := os.MkdirTemp("", "scraft-dev-")
				if err != nil {
					return err
				}
				defer os.RemoveAll(dir)
				data = dir
			}
			logger := newLogger("scraft", logLevel, logJSON)
			out := cmd.OutOrStdout()
			if members < 1 || members > maxDevMembers {
				return fmt.Errorf("dev: --members (%d) must be 1 to %d", members, maxDevMembers)
			}
			return runDev(ctx, devOptions{data: data, players: players, members: members, tick: tick, chainListen: chainListen, chain: chain,
				tty: isTerminal(out), logger: logger, out: out})
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "folder for the chain, the nodes' data and the members' keys; run again on it to resume the same world (default: a temporary one, removed at exit)")
	f.StringVar(&chain, "chain", "dev", "settlement chain: dev (the embedded devchain) or comet (a local network of 4 CometBFT validators in this process, read through a quorum)")
	f.StringVar(&chainListen, "chain-listen", "127.0.0.1:0", "address to serve the dev chain's gRPC API on, for scraft chain show and the other CLI commands (port 0: any free port, printed); a resumed world keeps its first address")
	f.IntVar(&players, "players", 6, "number of players")
	f.IntVar(&members, "members", devNodes, "number of member nodes of a new world (more than 5: candidates and delegators)")
	f.DurationVar(&duration, "duration", 0, "stop after this long (default: run until Ctrl-C)")
	f.DurationVar(&tick, "tick", 200*time.Millisecond, "MoveCraft tick interval")
	f.StringVar(&logLevel, "log-level", "error", "log level: trace, debug, info, warn, error")
	f.BoolVar(&logJSON, "log-json", false, "log JSON lines instead of text")
	return cmd
}

type devOptions struct {
	data    string
	players int
	// members is the number of member nodes of a new world.
	members int
	tick    time.Duration
	// chainListen is where the dev chain's gRPC API is served (port 0:
	// any), so that the CLI can inspect the world.
	chainListen string
	// chain is the settlement chain: "dev" (embedded devchain) or
	// "comet" (4 CometBFT validators in this process).
	chain string
	// tty says out is a terminal: the status line is redrawn in place;
	// otherwise one line is printed every statusEvery.
	tty    bool
	logger hclog.Logger
	out    interface{ Write([]byte) (int, error) }
}

// devWorld is what `scraft dev` keeps in its data folder (dev.json), so
// that running it again on the same folder resumes the same world: the
// channel and, in keys/, the members' keys.
type devWorld struct {
	Channel protocol.ChannelID `json:"channel"`
	Nodes   int                `json:"nodes"`
	Players int                `json:"players"`
	// Chain, Listen and Admin are the addresses of the chain's API and of
	// each node's gRPC port and admin listener, picked on the first run
	// and kept: the Raft configuration and the chain's records name the
	// nodes' addresses, and the printed commands stay right.
	Chain  string   `json:"chain"`
	Listen []string `json:"listen"`
	Admin  []string `json:"admin"`
	// Engine is the chain the world runs on: "dev" or "comet".
	Engine string `json:"engine,omitempty"`
}

const (
	devNodes = 3
	// maxDevMembers bounds --members: every node runs in this process.
	maxDevMembers = 100
	devWorldFile  = "dev.json"
	// statusEvery is how often a status line is printed when the output
	// is not a terminal.
	statusEvery = 5 * time.Second
)

func runDev(ctx context.Context, o devOptions) error {
	say := func(format string, args ...any) { fmt.Fprintf(o.out, format+"\n", args...) }
	dc, err := openDevChain(ctx, o, say)
	if err != nil {
		return err
	}
	defer dc.close()

	mc, err := contracts.Get("movecraft")
	if err != nil {
		return err
	}
	w, nodeKeys, playerKeys, created, err := openDevWorld(ctx, o, dc.client, mc)
	if err != nil {
		return err
	}
	id := w.Channel
	if err := dc.serve(w.Chain); err != nil {
		return err
	}
	if created {
		say("channel %s created: movecraft, tick %s, %d nodes and %d players staked and joined", id, o.tick, len(nodeKeys), len(playerKeys))
	} else {
		say("channel %s resumed from %s (%d nodes, %d players)", id, o.data, len(nodeKeys), len(playerKeys))
	}

	var nodes []*runningNode
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	for i, k := range nodeKeys {
		opts := nodeOptions{
			DataDir:  filepath.Join(o.data, fmt.Sprintf("node%d", i+1)),
			Listen:   w.Listen[i],
			Admin:    w.Admin[i],
			Key:      k,
			Chain:    dc.client(k),
			Logger:   o.logger.Named(fmt.Sprintf("node%d", i+1)),
			Channels: []protocol.ChannelID{id},
		}
		if i > 0 && created {
			opts.Peers = []string{nodes[0].srv.Addr()}
		}
		say("starting node%d (%s)", i+1, k.Address())
		n, err := startNode(ctx, opts)
		if err != nil {
			return fmt.Errorf("node %d: %w", i+1, err)
		}
		nodes = append(nodes, n)
	}
	channels := make([]*cluster.Channel, len(nodes))
	for i, n := range nodes {
		channels[i], _ = n.node.Channel(id)
	}
	printDevInspect(o, id, dc.addr, dc.keys, nodes, nodeKeys)

	var committed, failed atomic.Int64
	var wg sync.WaitGroup
	wctx, stopWork := context.WithCancel(ctx)
	defer stopWork()
	for i, k := range playerKeys {
		wg.Add(1)
		go func() {
			defer wg.Done()
			play(wctx, id, mc, k, i, channels, &committed, &failed)
		}()
	}

	// The players are members without a node of their own: they vote on
	// settlement proposals as the nodes judge them, else 3 of 9 members
	// could never settle.
	wg.Add(1)
	go func() {
		defer wg.Done()
		voteAsPlayers(wctx, dc.client, id, playerKeys, channels, o.logger)
	}()

	t := time.NewTicker(time.Second)
	defer t.Stop()
	last := channels[0].Status().Height
	lastAt, printedAt := time.Now(), time.Time{}
	statusLine := func(now time.Time) string {
		st := channels[0].Status()
		for _, c := range channels {
			if s := c.Status(); s.Height > st.Height {
				st = s
			}
		}
		rate := float64(st.Height-last) / now.Sub(lastAt).Seconds()
		last, lastAt, printedAt = st.Height, now, now
		leader := "none"
		for i, c := range channels {
			if c.Status().Leading {
				leader = fmt.Sprintf("node%d", i+1)
			}
		}
		line := fmt.Sprintf("height %8d  %7.0f heights/s  leader %-5s  epoch %3d  settled %6d  players %d",
			st.Height, rate, leader, st.Epoch, st.SettledHeight, len(playerKeys))
		if len(st.Candidates) > 0 {
			delegators, relayed := 0, 0
			for _, c := range channels {
				if s := c.Status(); s.Delegator {
					delegators++
					if s.RelayedBy != "" {
						relayed++
					}
				}
			}
			line += fmt.Sprintf("  candidates %d  delegators %d (%d relayed)", len(st.Candidates), delegators, relayed)
		}
		return line
	}
	for {
		select {
		case <-ctx.Done():
			stopWork()
			wg.Wait()
			if o.tty {
				fmt.Fprintln(o.out)
			} else {
				say("%s", statusLine(time.Now())) // where it ended
			}
			say("stopped: %d txs committed, %d failed", committed.Load(), failed.Load())
			return nil
		case now := <-t.C:
			if !o.tty && now.Sub(printedAt) < statusEvery {
				continue
			}
			line := statusLine(now)
			if o.tty {
				fmt.Fprintf(o.out, "\r%s  ", line)
			} else {
				fmt.Fprintln(o.out, line)
			}
		}
	}
}

// openDevWorld resumes the world described by DIR/dev.json, or creates it:
// the channel on the chain and the members' keys (in DIR/keys), each
// member staked and joined.
func openDevWorld(ctx context.Context, o devOptions, client func(*protocol.Key) *devchain.Client, mc *contracts.Contract) (w devWorld, nodeKeys, playerKeys []*protocol.Key, created bool, err error) {
	keyFile := func(kind string, i int) string {
		return filepath.Join(o.data, "keys", fmt.Sprintf("%s%d.key", kind, i+1))
	}
	worldFile := filepath.Join(o.data, devWorldFile)
	if b, rerr := os.ReadFile(worldFile); rerr == nil {
		if err = json.Unmarshal(b, &w); err != nil {
			return w, nil, nil, false, fmt.Errorf("%s: %w", worldFile, err)
		}
		for i := 0; i < w.Nodes+w.Players; i++ {
			kind, j := "node", i
			if i >= w.Nodes {
				kind, j = "player", i-w.Nodes
			}
			k, err := protocol.LoadKey(keyFile(kind, j))
			if err != nil {
				return w, nil, nil, false, fmt.Errorf("resume the dev world in %s: %w", o.data, err)
			}
			if kind == "node" {
				nodeKeys = append(nodeKeys, k)
			} else {
				playerKeys = append(playerKeys, k)
			}
		}
		engine := w.Engine
		if engine == "" {
			engine = "dev"
		}
		if want := cmp.Or(o.chain, "dev"); engine != want {
			return w, nil, nil, false, fmt.Errorf("the world in %s runs on the %s chain: give --chain %s (or another --data)", o.data, engine, engine)
		}
		if len(w.Listen) != w.Nodes || len(w.Admin) != w.Nodes || w.Chain == "" {
			return w, nil, nil, false, fmt.Errorf("%s: addresses missing: remove the folder to start a new world", worldFile)
		}
		if w.Players != o.players {
			fmt.Fprintf(o.out, "the world in %s has %d players: --players %d applies to a new folder only\n", o.data, w.Players, o.players)
		}
		return w, nodeKeys, playerKeys, false, nil
	} else if !errors.Is(rerr, os.ErrNotExist) {
		return w, nil, nil, false, rerr
	}

	initial, err := initialState(ctx, mc.Wasm)
	if err != nil {
		return w, nil, nil, false, fmt.Errorf("movecraft init: %w", err)
	}
	abi, err := channelABIFile("movecraft", "")
	if err != nil {
		return w, nil, nil, false, err
	}
	creator, _ := protocol.GenerateKey(nil)
	id, err := client(creator).CreateChannel(ctx, settlement.ChannelSpec{
		Contract:     "movecraft",
		Code:         mc.Wasm,
		ABI:          abi,
		InitialState: initial,
		Labels:       []contract.Label{{Key: "world_address", Value: "dev"}},
		Config: contract.ChannelConfig{TickInterval: o.tick, SettleEveryTxs: 2000, SettleInterval: 5 * time.Second,
			MinStake: defaultMinStake, Fine: defaultMinStake / defaultFineDivisor},
	})
	if err != nil {
		return w, nil, nil, false, fmt.Errorf("create channel: %w", err)
	}
	if err := os.MkdirAll(filepath.Join(o.data, "keys"), 0o700); err != nil {
		return w, nil, nil, false, err
	}
	nodes := cmp.Or(o.members, devNodes)
	for i := 0; i < nodes+o.players; i++ {
		k, _ := protocol.GenerateKey(nil)
		kind, j := "node", i
		if i >= nodes {
			kind, j = "player", i-nodes
		}
		if err := protocol.SaveKey(keyFile(kind, j), k); err != nil {
			return w, nil, nil, false, err
		}
		c := client(k)
		if err := c.Stake(ctx, id, defaultMinStake); err != nil {
			return w, nil, nil, false, fmt.Errorf("stake on chain: %w", err)
		}
		if _, err := c.Join(ctx, id, false); err != nil {
			return w, nil, nil, false, fmt.Errorf("join on chain: %w", err)
		}
		if kind == "node" {
			nodeKeys = append(nodeKeys, k)
		} else {
			playerKeys = append(playerKeys, k)
		}
	}
	w = devWorld{Channel: id, Nodes: nodes, Players: o.players, Engine: cmp.Or(o.chain, "dev")}
	if w.Chain, err = pickAddr(o.chainListen); err != nil {
		return w, nil, nil, false, fmt.Errorf("--chain-listen: %w", err)
	}
	for range nodes {
		l, err := pickAddr("127.0.0.1:0")
		if err != nil {
			return w, nil, nil, false, err
		}
		a, err := pickAddr("127.0.0.1:0")
		if err != nil {
			return w, nil, nil, false, err
		}
		w.Listen, w.Admin = append(w.Listen, l), append(w.Admin, a)
	}
	b, _ := json.MarshalIndent(w, "", "  ")
	// Written last: a folder without it is created again from scratch.
	if err := os.WriteFile(worldFile, append(b, '\n'), 0o600); err != nil {
		return w, nil, nil, false, err
	}
	return w, nodeKeys, playerKeys, true, nil
}

// pickAddr returns addr with a free port in place of port 0, for an
// address that must stay the same across runs.
func pickAddr(addr string) (string, error) {
	l, err := net.Listen("tcp", addr)
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// printDevInspect prints where everything listens and the commands that
// inspect the running world.
func printDevInspect(o devOptions, id protocol.ChannelID, chainAddr string, chainKeys []protocol.Address, nodes []*runningNode, keys []*protocol.Key) {
	var b strings.Builder
	var ks []string
	for _, k := range chainKeys {
		ks = append(ks, k.String())
	}
	chainKey := strings.Join(ks, ",")
	fmt.Fprintf(&b, "\nchain   %s  key %s\n", chainAddr, chainKey)
	var addrs []string
	for i, n := range nodes {
		fmt.Fprintf(&b, "node%d   %s  client API %s  admin http://%s\n", i+1, keys[i].Address(), n.srv.Addr(), n.adminAddr())
		addrs = append(addrs, n.srv.Addr())
	}
	key := filepath.Join(o.data, "keys", "node1.key")
	c := fmt.Sprintf("--chain %s --chain-key %s", chainAddr, chainKey)
	fmt.Fprintf(&b, "\ninspect it (from another terminal):\n")
	fmt.Fprintf(&b, "  scraft status --node %s --key %s --channel %s %s\n", strings.Join(addrs, ","), key, id, c)
	fmt.Fprintf(&b, "  scraft subscribe --node %s --key %s --channel %s %s\n", addrs[0], key, id, c)
	fmt.Fprintf(&b, "  scraft chain show %s %s\n", id, c)
	fmt.Fprintf(&b, "  curl http://%s/status\n", nodes[0].adminAddr())
	fmt.Fprintf(&b, "\nconsole  http://%s/  (the world map and the cluster, live; any node's admin address serves it)\n\n", nodes[0].adminAddr())
	fmt.Fprint(o.out, b.String())
}

// play is one player: it spawns, then wanders and builds.
func play(ctx context.Context, id protocol.ChannelID, mc *contracts.Contract, k *protocol.Key, i int, chs []*cluster.Channel, ok, failed *atomic.Int64) {
	rng := rand.New(rand.NewSource(int64(i)))
	// nextNonce is the nonce after the last one the channel applied from
	// this player, as the most advanced node knows it: a resumed world
	// continues where the player's txs stopped.
	nextNonce := func() uint64 {
		var n uint64
		for _, c := range chs {
			n = max(n, c.NextNonce(k.Address()))
		}
		return n
	}
	nonce := nextNonce() - 1
	retry := backoff.Policy{Initial: 50 * time.Millisecond, Max: time.Second}
	send := func(fn, args string) {
		b, err := mc.EncodeArgs(fn, []byte(args))
		if err != nil {
			failed.Add(1)
			return
		}
		nonce++
		tx := protocol.SignTx(k, protocol.Tx{Channel: id, Nonce: nonce, Function: "movecraft::" + fn, Args: b,
			TimestampMs: uint64(time.Now().UnixMilli())})
		wait := backoff.New(retry)
		for ctx.Err() == nil {
			c := chs[rng.Intn(len(chs))]
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := c.Submit(sctx, tx)
			cancel()
			switch {
			case err == nil:
				ok.Add(1)
				return
			case ctx.Err() != nil:
				return
			case errors.Is(err, cluster.ErrStaleNonce):
				// Ordered before (a retry that had committed, or a node
				// that was behind when the player started): go on from
				// the channel's count.
				nonce = max(nonce, nextNonce()-1)
				return
			case !errors.Is(err, cluster.ErrBusy):
				failed.Add(1)
			}
			wait.Wait(ctx)
		}
	}
	send("join", fmt.Sprintf(`{"name":"player%d"}`, i+1))
	wander(ctx, k.Address(), i, rng, chs, send)
}

// wander is a player's walk, made to be watched on the console's map: it
// walks to a spot up to 10 voxels away, within a 64×64 square around the
// centre, and at each stop lays blocks of its own kind beside it (player i
// lays dirt, sand or wood), breaking the oldest again once it has laid
// eight, so that each player leaves a trail that follows it.
func wander(ctx context.Context, me protocol.Address, i int, rng *rand.Rand, chs []*cluster.Channel, send func(fn, args string)) {
	const flyZ, layZ = 12, 11
	item := []int{3, 5, 6}[i%3]
	x, y := 48+rng.Intn(32), 48+rng.Intn(32)
	var laid [][2]int
	for ctx.Err() == nil {
		x = min(max(x+rng.Intn(21)-10, 32), 95)
		y = min(max(y+rng.Intn(21)-10, 32), 95)
		send("move", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d}`, x, y, flyZ))
		// Wait to arrive (a step per tick), or give up after 40 polls.
		for range 40 {
			if px, py, ok := playerAt(chs, me); ok && px == x && py == y {
				break
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(100 * time.Millisecond):
			}
		}
		px, py, ok := playerAt(chs, me)
		if !ok {
			continue
		}
		for _, d := range [][2]int{{1, 0}, {0, 1}} {
			bx, by := px+d[0], py+d[1]
			send("place", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d,"item":%d}`, bx, by, layZ, item))
			laid = append(laid, [2]int{bx, by})
		}
		for len(laid) > 8 {
			// Sand has fallen meanwhile: break whatever tops the column
			// within reach.
			b := laid[0]
			laid = laid[1:]
			for z := layZ; z >= flyZ-5; z-- {
				if blockAt(chs, b[0], b[1], z) != 0 {
					send("break_block", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d}`, b[0], b[1], z))
					break
				}
			}
		}
	}
}

// playerAt reads a player's position from the most advanced node's state.
func playerAt(chs []*cluster.Channel, who protocol.Address) (x, y int, ok bool) {
	var best uint64
	for _, c := range chs {
		c.Machine(func(m *fsm.Machine) {
			if m == nil || m.Height() < best {
				return
			}
			v, found := m.Get(protocol.ResourceKey{Account: who, Type: "movecraft::Position"})
			if !found || len(v) != 6 {
				return
			}
			best, ok = m.Height(), true
			x, y = int(binary.LittleEndian.Uint16(v)), int(binary.LittleEndian.Uint16(v[2:]))
		})
	}
	return x, y, ok
}

// blockAt reads a voxel from the first node's state: 0 (air) when its
// chunk is not stored or unreadable, which is all the caller asks.
func blockAt(chs []*cluster.Channel, x, y, z int) byte {
	var a protocol.Address
	copy(a[:], "mchk")
	binary.LittleEndian.PutUint32(a[4:], uint32(x/16))
	binary.LittleEndian.PutUint32(a[8:], uint32(y/16))
	binary.LittleEndian.PutUint32(a[12:], uint32(z/16))
	var b byte
	chs[0].Machine(func(m *fsm.Machine) {
		if m == nil {
			return
		}
		v, ok := m.Get(protocol.ResourceKey{Account: a, Type: "movecraft::Chunk"})
		if ok && len(v) == 2+4096 {
			b = v[2+((z%16)*16+y%16)*16+x%16]
		}
	})
	return b
}

// voteAsPlayers votes with every player's key on each settlement proposal
// of channel id, as one of the nodes judges it (player i trusts node i mod
// 3), until ctx ends.
func voteAsPlayers(ctx context.Context, client func(*protocol.Key) *devchain.Client, id protocol.ChannelID, players []*protocol.Key, channels []*cluster.Channel, logger hclog.Logger) {
	if len(players) == 0 {
		return
	}
	st, err := client(players[0]).Watch(ctx, settlement.EventID{})
	if err != nil {
		logger.Error("players cannot watch the chain: they will not vote", "error", err)
		return
	}
	for {
		e, err := st.Recv()
		if err != nil {
			return
		}
		if e.Kind != contract.EventProposalCreated || e.Channel != id || e.ProposalKind != protocol.ProposalSettlement {
			continue
		}
		for i, k := range players {
			opt, err := channels[i%len(channels)].JudgeSettlement(ctx, e.Proposal)
			if err != nil {
				continue
			}
			if err := client(k).Vote(ctx, id, e.Proposal, opt); err != nil && ctx.Err() == nil &&
				!errors.Is(err, contract.ErrProposalClosed) {
				logger.Warn("player vote", "player", k.Address(), "proposal", e.Proposal, "error", err)
			}
		}
	}
}

// initialState runs the contract's init function over an empty state: the
// channel's initial state, as the creator puts it on chain.
func initialState(ctx context.Context, wasm []byte) (protocol.State, error) {
	e, err := vm.NewEngine(ctx, vm.DefaultConfig())
	if err != nil {
		return nil, err
	}
	defer e.Close(context.Background())
	m, err := e.Deploy(ctx, wasm)
	if err != nil {
		return nil, err
	}
	st := protocol.State{}
	if !m.Has(protocol.FuncInit) {
		return st, nil
	}
	r := m.Call(ctx, st, vm.Call{Function: protocol.FuncInit, Gas: 1 << 40})
	if r.Status != protocol.StatusOK {
		return nil, fmt.Errorf("init: %s: %s", r.Status, r.Message)
	}
	if err := st.Apply(r.ChangeSet); err != nil {
		return nil, err
	}
	return st, nil
}
