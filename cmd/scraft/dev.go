package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/scraft/scraft/cluster"
	"github.com/scraft/scraft/contracts"
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
		data, logLevel string
		players        int
		duration       time.Duration
		tick           time.Duration
		logJSON        bool
	)
	cmd := &cobra.Command{
		Use:   "dev",
		Short: "Run a dev chain and a 3-node MoveCraft channel in one process, with players",
		Long: `Run an embedded development chain and three nodes on loopback that host one
MoveCraft channel, with a small workload of players moving and building.
Every member stakes 1000, the channel's minimum stake; a punished member is
fined 500 (the defaults of scraft chain create-channel).
A status line shows the height, committed txs per second, the leader and its
epoch, and the settled height. Ctrl-C stops everything cleanly.`,
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
			return runDev(ctx, devOptions{data: data, players: players, tick: tick, logger: logger, out: cmd.OutOrStdout()})
		},
	}
	f := cmd.Flags()
	f.StringVar(&data, "data", "", "data folder (default: a temporary one, removed at exit)")
	f.IntVar(&players, "players", 6, "number of players")
	f.DurationVar(&duration, "duration", 0, "stop after this long (default: run until Ctrl-C)")
	f.DurationVar(&tick, "tick", 200*time.Millisecond, "MoveCraft tick interval")
	f.StringVar(&logLevel, "log-level", "error", "log level: trace, debug, info, warn, error")
	f.BoolVar(&logJSON, "log-json", false, "log JSON lines instead of text")
	return cmd
}

type devOptions struct {
	data    string
	players int
	tick    time.Duration
	logger  hclog.Logger
	out     interface{ Write([]byte) (int, error) }
}

func runDev(ctx context.Context, o devOptions) error {
	cfg := devchain.DefaultConfig(filepath.Join(o.data, "chain"))
	cfg.BlockInterval = 50 * time.Millisecond
	cfg.Logger = o.logger
	chain, err := devchain.Open(cfg)
	if err != nil {
		return err
	}
	defer chain.Close()

	mc, err := contracts.Get("movecraft")
	if err != nil {
		return err
	}
	initial, err := initialState(ctx, mc.Wasm)
	if err != nil {
		return fmt.Errorf("movecraft init: %w", err)
	}
	creator, _ := protocol.GenerateKey(nil)
	id, err := devchain.NewLocal(chain, creator).CreateChannel(ctx, settlement.ChannelSpec{
		Contract:     "movecraft",
		Code:         mc.Wasm,
		InitialState: initial,
		Labels:       []contract.Label{{Key: "world_address", Value: "dev"}},
		Config: contract.ChannelConfig{TickInterval: o.tick, SettleEveryTxs: 2000, SettleInterval: 5 * time.Second,
			MinStake: defaultMinStake, Fine: defaultMinStake / defaultFineDivisor},
	})
	if err != nil {
		return fmt.Errorf("create channel: %w", err)
	}
	var nodeKeys, playerKeys []*protocol.Key
	for i := 0; i < 3+o.players; i++ {
		k, _ := protocol.GenerateKey(nil)
		c := devchain.NewLocal(chain, k)
		if err := c.Stake(ctx, id, defaultMinStake); err != nil {
			return fmt.Errorf("stake on chain: %w", err)
		}
		if _, err := c.Join(ctx, id, false); err != nil {
			return fmt.Errorf("join on chain: %w", err)
		}
		if i < 3 {
			nodeKeys = append(nodeKeys, k)
		} else {
			playerKeys = append(playerKeys, k)
		}
	}
	fmt.Fprintf(o.out, "channel %s (movecraft, tick %s) on the dev chain in %s\n", id, o.tick, o.data)

	var nodes []*runningNode
	defer func() {
		for _, n := range nodes {
			n.Close()
		}
	}()
	for i, k := range nodeKeys {
		opts := nodeOptions{
			DataDir:  filepath.Join(o.data, fmt.Sprintf("node%d", i+1)),
			Listen:   "127.0.0.1:0",
			Key:      k,
			Chain:    devchain.NewLocal(chain, k),
			Logger:   o.logger.Named(fmt.Sprintf("node%d", i+1)),
			Channels: []protocol.ChannelID{id},
		}
		if i > 0 {
			opts.Peers = []string{nodes[0].srv.Addr()}
		}
		n, err := startNode(ctx, opts)
		if err != nil {
			return fmt.Errorf("node %d: %w", i+1, err)
		}
		nodes = append(nodes, n)
		fmt.Fprintf(o.out, "node%d %s at %s\n", i+1, k.Address(), n.srv.Addr())
	}
	channels := make([]*cluster.Channel, len(nodes))
	for i, n := range nodes {
		channels[i], _ = n.node.Channel(id)
	}

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
		voteAsPlayers(wctx, chain, id, playerKeys, channels, o.logger)
	}()

	t := time.NewTicker(time.Second)
	defer t.Stop()
	var last uint64
	lastAt := time.Now()
	for {
		select {
		case <-ctx.Done():
			stopWork()
			wg.Wait()
			fmt.Fprintln(o.out)
			fmt.Fprintf(o.out, "stopped: %d txs committed, %d failed\n", committed.Load(), failed.Load())
			return nil
		case now := <-t.C:
			st := channels[0].Status()
			for _, c := range channels {
				if s := c.Status(); s.Height > st.Height {
					st = s
				}
			}
			rate := float64(st.Height-last) / now.Sub(lastAt).Seconds()
			last, lastAt = st.Height, now
			leader := "none"
			for i, c := range channels {
				if c.Status().Leading {
					leader = fmt.Sprintf("node%d", i+1)
				}
			}
			fmt.Fprintf(o.out, "\rheight %8d  %7.0f tx/s  leader %-5s  epoch %3d  settled %6d  players %d  ",
				st.Height, rate, leader, st.Epoch, st.SettledHeight, len(playerKeys))
		}
	}
}

// play is one player: it spawns, then walks and builds around the centre.
func play(ctx context.Context, id protocol.ChannelID, mc *contracts.Contract, k *protocol.Key, i int, chs []*cluster.Channel, ok, failed *atomic.Int64) {
	rng := rand.New(rand.NewSource(int64(i)))
	var nonce uint64
	send := func(fn, args string) {
		b, err := mc.EncodeArgs(fn, []byte(args))
		if err != nil {
			failed.Add(1)
			return
		}
		nonce++
		tx := protocol.SignTx(k, protocol.Tx{Channel: id, Nonce: nonce, Function: "movecraft::" + fn, Args: b,
			TimestampMs: uint64(time.Now().UnixMilli())})
		for ctx.Err() == nil {
			c := chs[rng.Intn(len(chs))]
			sctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			_, err := c.Submit(sctx, tx)
			cancel()
			if err == nil {
				ok.Add(1)
				return
			}
			if !errors.Is(err, cluster.ErrBusy) && ctx.Err() == nil {
				failed.Add(1)
			}
		}
	}
	send("join", fmt.Sprintf(`{"name":"player%d"}`, i+1))
	for ctx.Err() == nil {
		x, y := 58+rng.Intn(12), 58+rng.Intn(12)
		switch rng.Intn(3) {
		case 0:
			send("move", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d}`, x, y, 16))
		case 1:
			send("place", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d,"item":%d}`, x, y, 10+rng.Intn(8), 3+rng.Intn(4)))
		default:
			send("break_block", fmt.Sprintf(`{"x":%d,"y":%d,"z":%d}`, x, y, 8+rng.Intn(8)))
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(20+rng.Intn(80)) * time.Millisecond):
		}
	}
}

// voteAsPlayers votes with every player's key on each settlement proposal
// of channel id, as one of the nodes judges it (player i trusts node i mod
// 3), until ctx ends.
func voteAsPlayers(ctx context.Context, chain *devchain.Chain, id protocol.ChannelID, players []*protocol.Key, channels []*cluster.Channel, logger hclog.Logger) {
	if len(players) == 0 {
		return
	}
	st, err := devchain.NewLocal(chain, players[0]).Watch(ctx, settlement.EventID{})
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
			if err := devchain.NewLocal(chain, k).Vote(ctx, id, e.Proposal, opt); err != nil && ctx.Err() == nil &&
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
