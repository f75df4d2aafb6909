package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/hashicorp/go-hclog"
	"github.com/spf13/cobra"

	"github.com/scraft/scraft/settlement/comet"
)

const cometHelp = `

A comet validator keeps CometBFT's files in DIR (config/config.toml,
genesis.json, keys, data/) and the contract's state in DIR/data/scraft. It
serves the same gRPC API as the development chain, on the address in
DIR/config/scraft.json (--listen overrides), with its key DIR/config/chain.key;
clients pin the keys of all the validators (--chain-key). Blocks follow
the consensus timeouts in config.toml; block time is the validators' BFT
time. SIGINT or SIGTERM stops it; after a kill it replays what it lacks.`

// serveComet runs the validator in home until the command's context ends.
func serveComet(cmd *cobra.Command, home, listen, admin, level string, logJSON bool) error {
	if home == "" {
		return errors.New("chain: --engine comet needs --home DIR (see scraft chain testnet)")
	}
	if !cmd.Flags().Changed("listen") {
		listen = ""
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "scraft", Level: hclog.LevelFromString(level), Output: cmd.ErrOrStderr(), JSONFormat: logJSON})
	cometLevel := ""
	if l := hclog.LevelFromString(level); l <= hclog.Debug && l != hclog.NoLevel {
		cometLevel = "info"
	}
	v, err := comet.Start(comet.Config{Home: home, Listen: listen, Logger: log, CometLogLevel: cometLevel})
	if err != nil {
		return err
	}
	if admin != "" {
		_, stop, err := serveChainAdmin(admin, v.Chain().Head, log)
		if err != nil {
			v.Close()
			return err
		}
		defer stop()
	}
	log.Info("chain serving", "engine", "comet", "addr", v.Addr(), "chain_key", v.ChainKey(), "home", home)
	ctx := cmd.Context()
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case err := <-v.Served():
		v.Close()
		return fmt.Errorf("chain: serve: %w", err)
	}
	return v.Close()
}

func chainTestnetCmd() *cobra.Command {
	var (
		validators int
		out        string
		host       string
		basePort   int
		chainID    string
		pf         *chainParamsFlags // set below, with the flags
	)
	def := comet.DefaultTimeouts()
	timeouts := def
	cmd := &cobra.Command{
		Use:   "testnet --validators N --out DIR",
		Short: "Write the homes of a new CometBFT settlement chain's validators",
		Long: `Write DIR/node0 … DIR/nodeN-1, the homes of the validators of a new chain
on one host (like cometbft testnet): CometBFT's config.toml, the shared
genesis.json and the keys, and each validator's scraft settings and API key.
Validator i listens for its peers on --base-port+2i and serves the chain's
gRPC API on --base-port+2i+1. Start each with

  scraft chain --engine comet --home DIR/nodeI

N validators tolerate (N-1)/3 faulty ones: 4 keep going with one down and
halt with two (until one returns). Clients pin every validator's key:
DIR/chain-keys holds them, one a line, and the command prints the
--chain-key value.` + chainParamsHelp + `
They are written to the genesis's app_state; every validator checks its
state against them when it starts.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if out == "" {
				return errors.New("chain testnet: --out is required")
			}
			if validators < 1 {
				return fmt.Errorf("chain testnet: --validators (%d) must be positive", validators)
			}
			params, err := pf.params()
			if err != nil {
				return fmt.Errorf("chain testnet: %w", err)
			}
			ports := make([][2]int, validators)
			for i := range ports {
				ports[i] = [2]int{basePort + 2*i, basePort + 2*i + 1}
			}
			tn, err := comet.WriteTestnet(comet.TestnetConfig{Dir: out, Validators: validators, ChainID: chainID, Host: host, Ports: ports, Timeouts: timeouts, Params: params})
			if err != nil {
				return err
			}
			keys := make([]string, len(tn.ChainKeys))
			for i, k := range tn.ChainKeys {
				keys[i] = k.String()
			}
			if err := os.WriteFile(filepath.Join(out, "chain-keys"), []byte(strings.Join(keys, "\n")+"\n"), 0o644); err != nil {
				return fmt.Errorf("chain testnet: %w", err)
			}
			w := cmd.OutOrStdout()
			for i, h := range tn.Homes {
				fmt.Fprintf(w, "validator %d: home %s, API %s, key %s\n", i, h, tn.APIs[i], keys[i])
			}
			fmt.Fprintf(w, "clients: --chain %s --chain-key %s\n", strings.Join(tn.APIs, ","), strings.Join(keys, ","))
			return nil
		},
	}
	cmd.Flags().IntVar(&validators, "validators", 4, "number of validators")
	cmd.Flags().StringVar(&out, "out", "", "directory to write the validators' homes in")
	cmd.Flags().StringVar(&host, "host", "127.0.0.1", "address the validators listen and dial on")
	cmd.Flags().IntVar(&basePort, "base-port", 26600, "first port: validator i uses base+2i (peers) and base+2i+1 (API)")
	cmd.Flags().StringVar(&chainID, "chain-id", "scraft-comet", "the chain's id")
	cmd.Flags().DurationVar(&timeouts.Propose, "timeout-propose", def.Propose, "how long a validator waits for a round's proposal")
	cmd.Flags().DurationVar(&timeouts.Vote, "timeout-vote", def.Vote, "how long a validator waits for the rest of the votes once 2/3 are in")
	cmd.Flags().DurationVar(&timeouts.Commit, "timeout-commit", def.Commit, "pause after each block: paces blocks and batches txs (0: the next block as soon as every validator's precommit is in)")
	cmd.Flags().DurationVar(&timeouts.EmptyBlocks, "empty-blocks", def.EmptyBlocks, "an idle chain makes an empty block this often, and proposes a tx as soon as it arrives; block time may lag the clocks by up to this much (0: a block after every --timeout-commit, txs or not)")
	pf = newChainParamsFlags(cmd.Flags())
	return cmd
}
