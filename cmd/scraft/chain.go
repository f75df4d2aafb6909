package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
	"github.com/scraft/scraft/vm"
	"github.com/scraft/scraft/vm/meter"
)

func init() {
	rootCmd.AddCommand(chainCmd())
}

// chainCmd is `scraft chain`: with --data it serves the dev chain; its
// subcommands talk to a running one.
func chainCmd() *cobra.Command {
	var (
		data     string
		listen   string
		keyFile  string
		interval time.Duration
		logLevel string
		engine   string
		home     string
		logJSON  bool
		admin    string
		pf       *chainParamsFlags // set below, with the flags
	)
	cmd := &cobra.Command{
		Use:   "chain --data DIR --listen ADDR [--key FILE] | chain --engine comet --home DIR",
		Short: "Run the development settlement chain, or talk to one",
		Long: `Without a subcommand, serve the development settlement chain: the channel
contract's rules in blocks (every --block-interval), stored in DIR/chain.db,
over gRPC on ADDR. SIGINT or SIGTERM stops it cleanly; a kill at any moment
loses no committed block.

The API is served over TLS 1.3 only, with the chain's key: --key FILE, else
DIR/chain.key, made on the first start. Its address is logged at start
("chain_key") and printed by scraft chain key; clients pin it.

The subcommands talk to a running chain with --chain ADDR and sign with
--key FILE (see scraft keygen). They accept the chain only if its key is
--chain-key ADDR[,ADDR...]; without that flag, the key the chain presents on
first contact is pinned in chain.pin next to --key FILE and required from
then on (a command without --key needs --chain-key).

With --engine comet --home DIR, run one validator of a CometBFT chain
instead (see scraft chain testnet): no single party decides its blocks.` + cometHelp + chainParamsHelp + `
A validator takes them from the genesis that scraft chain testnet writes.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			params, err := pf.params()
			if err != nil {
				return fmt.Errorf("chain: %w", err)
			}
			switch engine {
			case "dev":
			case "comet":
				if pf.given() {
					return errors.New("chain: a validator's settings are in its genesis (scraft chain testnet --heartbeat-ttl …), not flags")
				}
				return serveComet(cmd, home, listen, admin, logLevel, logJSON)
			default:
				return fmt.Errorf("chain: --engine %q: dev or comet", engine)
			}
			if data == "" {
				return errors.New("chain: --data is required to serve (or give a subcommand)")
			}
			return serveChain(cmd.Context(), data, listen, admin, keyFile, interval, params, logLevel, logJSON, cmd.ErrOrStderr())
		},
	}
	pf = newChainParamsFlags(cmd.Flags())
	def := devchain.DefaultConfig("")
	cmd.Flags().StringVar(&data, "data", "", "directory of the chain's data (chain.db)")
	cmd.Flags().StringVar(&listen, "listen", "127.0.0.1:7400", "address to serve the chain's gRPC API on (TLS)")
	cmd.Flags().StringVar(&keyFile, "key", "", "the chain's key file: its TLS identity, which clients pin (default: DIR/chain.key, made on the first start)")
	cmd.Flags().DurationVar(&interval, "block-interval", def.BlockInterval, "time between blocks")
	cmd.Flags().StringVar(&logLevel, "log-level", "info", "log level: trace, debug, info, warn, error")
	cmd.Flags().BoolVar(&logJSON, "log-json", false, "log JSON lines instead of text")
	cmd.Flags().StringVar(&admin, "admin", "", "admin HTTP address on loopback for /metrics, /healthz and /readyz (not ready when no block was made for 10 s); PORT or :PORT is 127.0.0.1:PORT (default: none)")
	cmd.Flags().StringVar(&engine, "engine", "dev", "dev: the development chain (one process); comet: a CometBFT validator (--home)")
	cmd.Flags().StringVar(&home, "home", "", "with --engine comet: the validator's home, as scraft chain testnet writes it")
	cmd.AddCommand(chainTestnetCmd(), chainCreateChannelCmd(), chainStakeCmd(), chainDepositCmd(), chainWithdrawCmd(), chainJoinCmd(), chainShowCmd(),
		chainLeaveCmd(), chainKeepAliveCmd(), chainVoteCmd(), chainExecuteCmd(), chainCloseCmd(), chainKeyCmd())
	return cmd
}

// serveChain serves the dev chain in data; params are the settings of a new
// chain (zero: the defaults, or an existing chain's own).
func serveChain(ctx context.Context, data, listen, admin, keyFile string, interval time.Duration, params contract.Params, level string, logJSON bool, logOut io.Writer) error {
	if ctx == nil {
		ctx = context.Background()
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "scraft", Level: hclog.LevelFromString(level), Output: logOut, JSONFormat: logJSON})
	cfg := devchain.DefaultConfig(data)
	cfg.BlockInterval = interval
	cfg.Params = params
	cfg.Logger = log
	if interval <= 0 {
		return fmt.Errorf("chain: --block-interval (%s) must be positive", interval)
	}
	c, err := devchain.Open(cfg)
	if errors.Is(err, devchain.ErrParamsDiffer) {
		return fmt.Errorf("chain: %w (a chain's settings are fixed when it is created: leave the setting flags out)", err)
	}
	if err != nil {
		return err
	}
	defer c.Close()
	key, keyPath, created, err := loadChainKey(data, keyFile)
	if err != nil {
		return fmt.Errorf("chain: key: %w", err)
	}
	if created {
		log.Info("chain key created", "file", keyPath, "chain_key", key.Address())
	}
	g, err := devchain.NewGRPCServer(c, key)
	if err != nil {
		return err
	}
	l, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("chain: listen %s: %w", listen, err)
	}
	served := make(chan error, 1)
	go func() { served <- g.Serve(l) }()
	if admin != "" {
		_, stop, err := serveChainAdmin(admin, c.Head, log)
		if err != nil {
			g.Stop()
			<-served
			return err
		}
		defer stop()
	}
	log.Info("chain serving", append([]any{"addr", l.Addr().String(), "chain_key", key.Address(), "data", data, "block_interval", interval}, chainParamsLog(c.Params())...)...)
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-served:
		return fmt.Errorf("chain: serve: %w", err)
	}
	// Stop taking calls, then close the chain: that ends the watch streams
	// (which never end by themselves) and refuses txs still waiting for a
	// block. Calls that do not finish in time are cut.
	stopped := make(chan struct{})
	go func() { g.GracefulStop(); close(stopped) }()
	err = c.Close()
	select {
	case <-stopped:
	case <-time.After(5 * time.Second):
		g.Stop()
		<-stopped
	}
	<-served
	return err
}

// chainClient holds the flags of the subcommands that talk to a chain.
type chainClient struct {
	addr      string
	chainKeys []string
	keyFile   string
	timeout   time.Duration
	channel   string
}

// flags adds the flags of a subcommand that sends a tx: --key signs it.
func (cc *chainClient) flags(cmd *cobra.Command) {
	cc.commonFlags(cmd)
	cmd.Flags().StringVar(&cc.keyFile, "key", "", "key file to sign with (required)")
	cmd.Flags().DurationVar(&cc.timeout, "timeout", 30*time.Second, "how long to wait for the tx's block")
}

// queryFlags adds the flags of a subcommand that only reads the chain.
func (cc *chainClient) queryFlags(cmd *cobra.Command) {
	cc.commonFlags(cmd)
	cmd.Flags().StringVar(&cc.keyFile, "key", "", "key file whose folder holds the chain's pin (optional; without it give --chain-key)")
	cmd.Flags().DurationVar(&cc.timeout, "timeout", 30*time.Second, "how long to wait for the chain's answer")
}

func (cc *chainClient) commonFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&cc.addr, "chain", "127.0.0.1:7400", "address of the chain's gRPC API; for a chain of validators all their API addresses, comma-separated")
	cmd.Flags().StringSliceVar(&cc.chainKeys, "chain-key", nil, chainKeyHelp+"pinned on first contact in "+chainPinName+" next to --key FILE; required without --key)")
}

// channelFlag lets a subcommand whose first argument is a channel take it
// as --channel too, as the node commands do.
func (cc *chainClient) channelFlag(cmd *cobra.Command) {
	cmd.Flags().StringVar(&cc.channel, "channel", "", "the channel, as the first argument may give it (0x + 32 hex digits)")
}

// channelArgs checks that n arguments were given, the channel first, or
// n-1 and --channel.
func (cc *chainClient) channelArgs(n int) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if cc.channel != "" {
			if len(args) != n-1 {
				return fmt.Errorf("with --channel, %s takes %d more argument(s), got %d", cmd.Name(), n-1, len(args))
			}
			return nil
		}
		if len(args) == 0 {
			return fmt.Errorf("%s needs the channel: give it first or with --channel", cmd.Name())
		}
		return cobra.ExactArgs(n)(cmd, args)
	}
}

// withChannel returns args with --channel first, when it was given.
func (cc *chainClient) withChannel(args []string) []string {
	if cc.channel == "" {
		return args
	}
	return append([]string{cc.channel}, args...)
}

// dial loads the key and connects. Queries need no key: without --key an
// ephemeral one is used, and the chain's key must be given (--chain-key).
func (cc *chainClient) dial(needKey bool) (*devchain.Client, error) {
	var k *protocol.Key
	var err error
	pinDir := ""
	switch {
	case cc.keyFile != "":
		k, err = protocol.LoadKey(cc.keyFile)
		pinDir = filepath.Dir(cc.keyFile)
	case needKey:
		return nil, errors.New("chain: --key is required")
	default:
		k, err = protocol.GenerateKey(nil)
	}
	if err != nil {
		return nil, err
	}
	trust, err := chainTrust(cc.chainKeys, pinDir)
	if err != nil {
		return nil, fmt.Errorf("chain: %w", err)
	}
	return dialChainAt(cc.addr, k, cc.chainKeys, trust)
}

func (cc *chainClient) run(cmd *cobra.Command, needKey bool, fn func(ctx context.Context, c *devchain.Client) error) error {
	c, err := cc.dial(needKey)
	if err != nil {
		return err
	}
	defer c.Close()
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, cc.timeout)
	defer cancel()
	return fn(ctx, c)
}

// chainLoadContract returns the code of a demo contract by name, or of a .wasm
// file, with the contract's name.
func chainLoadContract(arg string) (name string, code []byte, err error) {
	if strings.HasSuffix(arg, ".wasm") || strings.ContainsRune(arg, os.PathSeparator) {
		code, err := os.ReadFile(arg)
		if err != nil {
			return "", nil, fmt.Errorf("contract: %w", err)
		}
		base := arg[strings.LastIndexByte(arg, os.PathSeparator)+1:]
		return strings.TrimSuffix(base, ".wasm"), code, nil
	}
	c, err := contracts.Get(arg)
	if err != nil {
		return "", nil, err
	}
	return c.Name, c.Wasm, nil
}

// Stake and fine of a channel made with `scraft chain create-channel` (and
// `scraft dev`) unless told otherwise: a punishment must cost something,
// and a member must have staked at least what it can be fined. An account
// on a dev chain starts with 1,000,000.
const (
	defaultMinStake = 1000
	// The fine defaults to half the minimum stake (contract rule: at most
	// the minimum stake, so it is always paid in full).
	defaultFineDivisor = 2
)

func chainCreateChannelCmd() *cobra.Command {
	var (
		cc        chainClient
		contr     string
		name      string
		labels    []string
		spec      settlement.ChannelSpec
		stateFile string
		noInit    bool
		abiFile   string
	)
	cmd := &cobra.Command{
		Use:   "create-channel --contract chat|editor|movecraft|FILE.wasm",
		Short: "Create a channel and print its id",
		Long: `Create a channel and print its id.

Members must stake at least --min-stake in the channel (scraft chain stake)
or lock it from the shared pool (scraft chain join --pool) to join. A member
punished for a wrong result is forced out, banned for 5 minutes and, in a
channel of 3 or more, fined --fine for the reporter; the fine cannot be
larger than the minimum stake, so it is always paid in full. A punishment
passes with votes in favour from at least 2/3 of the members other than the
target (docs/DESIGN.md §7).

The contract's ABI is recorded with the code: a demo's own, or --abi FILE
for a .wasm file (at most 64 KiB). scraft call, scraft subscribe and the
console then encode and decode the channel's calls, state and events with
it, with no --abi of their own.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if !cmd.Flags().Changed("fine") {
				spec.Config.Fine = spec.Config.MinStake / defaultFineDivisor
			}
			n, code, err := chainLoadContract(contr)
			if err != nil {
				return err
			}
			spec.Contract, spec.Code = n, code
			if spec.ABI, err = channelABIFile(contr, abiFile); err != nil {
				return err
			}
			if name != "" {
				spec.Contract = name
			}
			if spec.Labels, err = chainParseLabels(labels); err != nil {
				return err
			}
			if stateFile != "" {
				b, err := os.ReadFile(stateFile)
				if err != nil {
					return err
				}
				if t := bytes.TrimSpace(b); len(t) > 0 && t[0] == '{' {
					// The state file of scraft contract run --write-state:
					// values as hex or, for a demo contract, as JSON.
					abi, _ := contracts.Get(spec.Contract)
					spec.InitialState, err = readContractState(stateFile, abi)
				} else {
					spec.InitialState, err = chainParseState(b)
				}
				if err != nil {
					return fmt.Errorf("%s: %w", stateFile, err)
				}
			} else if !noInit {
				// A contract's init function makes its initial state: run it
				// here, once, so every member starts from what the chain holds.
				if spec.InitialState, err = initialState(cmd.Context(), code); err != nil {
					return err
				}
			}
			return cc.run(cmd, true, func(ctx context.Context, c *devchain.Client) error {
				id, err := c.CreateChannel(ctx, spec)
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), id)
				return nil
			})
		},
	}
	cc.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&contr, "contract", "", "demo contract name (chat, editor, movecraft) or a .wasm file (required)")
	f.StringVar(&name, "name", "", "contract name recorded on chain (default: the demo's name or the file's base name)")
	f.StringArrayVar(&labels, "label", nil, "config label key=value (repeatable), e.g. server_address=127.0.0.1:7000")
	f.DurationVar(&spec.Config.TickInterval, "tick", 0, "tick interval (0: no ticks)")
	f.Uint64Var(&spec.Config.GasLimit, "gas", 0, fmt.Sprintf("gas limit per entry function, at most %d (0: the protocol's %d)", contract.MaxGasLimit, protocol.DefaultGasLimit))
	f.Uint32Var(&spec.Config.VMVersion, "vm-version", vm.Version, "VM version every member's node must run (default: this build's)")
	f.Uint32Var(&spec.Config.GasTableVersion, "gas-table-version", meter.DefaultConfig().Costs.Version, "gas cost table version every member's node must run (default: this build's)")
	f.Uint64Var(&spec.Config.SettleEveryTxs, "settle-every", 0, "propose settlement every N txs (0: not by count)")
	f.DurationVar(&spec.Config.SettleInterval, "settle-interval", 0, "propose settlement this often (0: not by time)")
	f.Uint64Var(&spec.Config.MinStake, "min-stake", defaultMinStake, "collateral a member must stake (or lock from the pool) to join")
	f.Uint64Var(&spec.Config.Fine, "fine", 0, "fine for a punished member in channels of 3 or more, paid to the reporter; at most --min-stake (default: half of --min-stake)")
	f.DurationVar(&spec.Config.CensorshipWindow, "censorship-window", 0, "time a leader has to answer a censorship complaint (0: the chain's complaint window, 30s by default)")
	f.StringVar(&stateFile, "initial-state", "", `JSON state file, as scraft contract run --state/--write-state read and write it ({"resources":[{"account":"0x…","type":"chat::ChatGroup","value_hex":"…"}]}, or "value" as JSON for a demo contract); the older [{"account","type","value":"hex"}] list is read too`)
	f.BoolVar(&noInit, "no-init", false, "start from an empty state instead of running the contract's init function")
	f.StringVar(&abiFile, "abi", "", "the contract's ABI (abi.json, as scraft contract new writes), recorded with the code so that call, subscribe and the console decode the channel with it (default: a demo's own; none for a .wasm file)")
	cmd.MarkFlagRequired("contract")
	return cmd
}

func chainParseLabels(kvs []string) ([]contract.Label, error) {
	var out []contract.Label
	for _, kv := range kvs {
		k, v, ok := strings.Cut(kv, "=")
		if !ok || k == "" {
			return nil, fmt.Errorf("label %q: want key=value", kv)
		}
		out = append(out, contract.Label{Key: k, Value: v})
	}
	// Labels are stored sorted by key, each once.
	slices.SortFunc(out, func(a, b contract.Label) int { return strings.Compare(a.Key, b.Key) })
	for i := 1; i < len(out); i++ {
		if out[i-1].Key == out[i].Key {
			return nil, fmt.Errorf("label %q given twice", out[i].Key)
		}
	}
	return out, nil
}

type chainStateEntry struct {
	Account protocol.Address `json:"account"`
	Type    string           `json:"type"`
	Value   string           `json:"value"` // hex
}

func chainParseState(b []byte) (protocol.State, error) {
	var es []chainStateEntry
	if err := json.Unmarshal(b, &es); err != nil {
		return nil, err
	}
	st := protocol.State{}
	for _, e := range es {
		v, err := hex.DecodeString(e.Value)
		if err != nil {
			return nil, fmt.Errorf("%s/%s: %w", e.Account, e.Type, err)
		}
		st[protocol.ResourceKey{Account: e.Account, Type: e.Type}] = v
	}
	return st, nil
}

func chainParseAmount(s string) (uint64, error) {
	v, err := strconv.ParseUint(s, 10, 64)
	if err != nil || v == 0 {
		return 0, fmt.Errorf("amount %q: want a positive integer", s)
	}
	return v, nil
}

func chainStakeCmd() *cobra.Command {
	var cc chainClient
	cmd := &cobra.Command{
		Use:   "stake CHANNEL AMOUNT",
		Short: "Stake AMOUNT in a channel",
		Args:  cc.channelArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			args = cc.withChannel(args)
			id, err := protocol.ParseChannelID(args[0])
			if err != nil {
				return err
			}
			amount, err := chainParseAmount(args[1])
			if err != nil {
				return err
			}
			return cc.run(cmd, true, func(ctx context.Context, c *devchain.Client) error {
				return c.Stake(ctx, id, amount)
			})
		},
	}
	cc.flags(cmd)
	cc.channelFlag(cmd)
	return cmd
}

func chainDepositCmd() *cobra.Command {
	var cc chainClient
	cmd := &cobra.Command{
		Use:   "deposit AMOUNT",
		Short: "Deposit AMOUNT into the shared staking pool",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			amount, err := chainParseAmount(args[0])
			if err != nil {
				return err
			}
			return cc.run(cmd, true, func(ctx context.Context, c *devchain.Client) error {
				return c.Deposit(ctx, amount)
			})
		},
	}
	cc.flags(cmd)
	return cmd
}

func chainWithdrawCmd() *cobra.Command {
	var cc chainClient
	cmd := &cobra.Command{
		Use:   "withdraw AMOUNT",
		Short: "Withdraw unlocked money from the shared staking pool",
		Args:  cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			amount, err := chainParseAmount(args[0])
			if err != nil {
				return err
			}
			return cc.run(cmd, true, func(ctx context.Context, c *devchain.Client) error {
				return c.Withdraw(ctx, amount)
			})
		},
	}
	cc.flags(cmd)
	return cmd
}

func chainJoinCmd() *cobra.Command {
	var (
		cc   chainClient
		pool bool
	)
	cmd := &cobra.Command{
		Use:   "join CHANNEL [--pool]",
		Short: "Join a channel and print the member's join sequence number",
		Args:  cc.channelArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			args = cc.withChannel(args)
			id, err := protocol.ParseChannelID(args[0])
			if err != nil {
				return err
			}
			return cc.run(cmd, true, func(ctx context.Context, c *devchain.Client) error {
				seq, err := c.Join(ctx, id, pool)
				if err != nil {
					return err
				}
				fmt.Fprintf(cmd.OutOrStdout(), "joined channel %s with join sequence number %d\n", id, seq)
				return nil
			})
		},
	}
	cc.flags(cmd)
	cc.channelFlag(cmd)
	cmd.Flags().BoolVar(&pool, "pool", false, "name the shared staking pool as collateral instead of the channel stake")
	return cmd
}
