package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

func init() {
	rootCmd.AddCommand(callCmd())
}

// apiClient holds the flags every client API command shares: which nodes,
// which key, which channel, and how to know the nodes' keys.
type apiClient struct {
	nodes     []string
	keyFile   string
	channel   string
	timeout   time.Duration
	nodeKeys  []string
	chainAddr string
	chainKeys []string
	// complainAfter is --complain-after (call only): the chain client it
	// files with is closed with the client.
	complainAfter time.Duration
	complainVia   *devchain.Client
}

func (a *apiClient) flags(cmd *cobra.Command) {
	cmd.Flags().StringSliceVar(&a.nodes, "node", nil, "client API address of a node, host:port; several (comma-separated or repeated) to fail over (required)")
	cmd.Flags().StringVar(&a.keyFile, "key", "", "key file of the member to act as (see scraft keygen) (required)")
	cmd.Flags().StringVar(&a.channel, "channel", "", "channel id, 0x + 32 hex digits (required)")
	cmd.Flags().DurationVar(&a.timeout, "timeout", 30*time.Second, "how long to wait for the node's answer")
	cmd.Flags().StringSliceVar(&a.nodeKeys, "node-key", nil, "member address (0x + 32 hex) a node's TLS key must have; repeatable (default: any member of the channel on --chain)")
	cmd.Flags().StringVar(&a.chainAddr, "chain", "127.0.0.1:7400", "settlement chain gRPC address: without --node-key, a node's TLS key must be a member's of the channel there")
	cmd.Flags().StringSliceVar(&a.chainKeys, "chain-key", nil, chainKeyHelp+"pinned on first contact in "+chainPinName+" next to --key FILE)")
	cmd.MarkFlagRequired("node")
	cmd.MarkFlagRequired("key")
	cmd.MarkFlagRequired("channel")
}

// dial loads the key, parses the channel and connects to the first node
// that answers.
func (a *apiClient) dial(ctx context.Context) (*client.Client, protocol.ChannelID, error) {
	ch, err := protocol.ParseChannelID(a.channel)
	if err != nil {
		return nil, ch, err
	}
	key, err := protocol.LoadKey(a.keyFile)
	if err != nil {
		return nil, ch, err
	}
	cfg := client.DefaultConfig()
	cfg.DialTimeout = min(cfg.DialTimeout, a.timeout)
	cfg.NodeKeys, err = a.pinned(ctx, key, ch)
	if err != nil {
		return nil, ch, err
	}
	if a.complainAfter > 0 {
		cl, err := a.dialChain(key)
		if err != nil {
			return nil, ch, fmt.Errorf("chain %s (to file complaints with, --complain-after): %w", a.chainAddr, err)
		}
		a.complainVia = cl
		cfg.Chain, cfg.ComplainAfter = cl, a.complainAfter
	}
	c, err := cfg.Dial(ctx, key, a.nodes...)
	if err != nil {
		a.closeChain()
		return nil, ch, err
	}
	return c, ch, nil
}

// closeChain closes the chain client of --complain-after, if any.
func (a *apiClient) closeChain() {
	if a.complainVia != nil {
		a.complainVia.Close()
		a.complainVia = nil
	}
}

// pinned returns the member addresses a node's TLS key may have: those of
// --node-key, or else every member of the channel on the chain (a node is
// its member's; the chain, not the node, says who the members are).
func (a *apiClient) pinned(ctx context.Context, key *protocol.Key, ch protocol.ChannelID) ([]protocol.Address, error) {
	if len(a.nodeKeys) > 0 {
		out := make([]protocol.Address, 0, len(a.nodeKeys))
		for _, s := range a.nodeKeys {
			addr, err := protocol.ParseAddress(s)
			if err != nil {
				return nil, fmt.Errorf("--node-key: %w", err)
			}
			out = append(out, addr)
		}
		return out, nil
	}
	cl, err := a.dialChain(key)
	if err != nil {
		return nil, fmt.Errorf("chain %s (to check the nodes' keys; or give --node-key): %w", a.chainAddr, err)
	}
	defer cl.Close()
	info, err := cl.Channel(ctx, ch)
	if err != nil {
		return nil, fmt.Errorf("read channel %s from chain %s (to check the nodes' keys; or give --node-key): %w", ch, a.chainAddr, err)
	}
	if info.Closed {
		// No member serves it any more: say so rather than that no node
		// key could be pinned.
		return nil, fmt.Errorf("%w: channel %s is closed on chain", protocol.ErrChannelClosed, ch)
	}
	out := make([]protocol.Address, 0, len(info.Members))
	for _, m := range info.Members {
		out = append(out, m.Address)
	}
	return out, nil
}

// dialChain connects to the chain, signing with key: its key must be one
// of --chain-key, else the one pinned next to --key.
func (a *apiClient) dialChain(key *protocol.Key) (*devchain.Client, error) {
	trust, err := chainTrust(a.chainKeys, filepath.Dir(a.keyFile))
	if err != nil {
		return nil, err
	}
	return dialChainAt(a.chainAddr, key, a.chainKeys, trust)
}

// run dials, runs fn with a deadline of --timeout, and closes the client.
func (a *apiClient) run(cmd *cobra.Command, fn func(ctx context.Context, c *client.Client, ch protocol.ChannelID) error) error {
	ctx := cmd.Context()
	if ctx == nil {
		ctx = context.Background()
	}
	ctx, cancel := context.WithTimeout(ctx, a.timeout)
	defer cancel()
	c, ch, err := a.dial(ctx)
	if err != nil {
		return err
	}
	defer a.closeChain()
	defer c.Close()
	return fn(ctx, c, ch)
}

func callCmd() *cobra.Command {
	var (
		api      apiClient
		function string
		args     string
		argsHex  string
		abiFile  string
	)
	cmd := &cobra.Command{
		Use:   "call --node ADDR[,ADDR] --key FILE --channel ID --function CONTRACT::NAME [--args JSON | --args-hex HEX]",
		Short: "Call a channel contract function and print its committed result",
		Long: `Sign a call of a channel contract function with the member's key, submit it
through a node's client API and wait until it is committed and verified.
The node forwards it to the leader; if the node or the leader fails on the
way the same signed tx is sent again (to the next --node), so it runs once.

--args takes JSON and encodes it with the contract's ABI: the one --abi
names (the abi.json of a contract written with scraft contract new), else
the one the channel's creator recorded on chain (--chain) with the code,
else a demo's (chat, editor, movecraft) by the function's prefix;
--args-hex takes the encoded bytes for any contract.

With --complain-after D, a call not committed within D makes the command
file a censorship complaint about it on the settlement chain (--chain),
signed with --key, against the channel's leader; it then keeps waiting
(up to --timeout): the leader must order the tx, or show why it cannot,
within the channel's censorship window, or anyone may execute the
complaint (scraft chain execute), which closes the channel at its last
settled state. The result then names the complaint. See scraft complain.

Prints the result as JSON with the field names of scraft contract run and
scraft subscribe: height, function, hash, status, gas_used, output_hex and
output (decoded with the ABI when possible), change_set, events, digest and
the complaint filed, if any. Exits
2 when the call committed but failed (abort, out of gas, ...), 1 on any
other error.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if args != "" && argsHex != "" {
				return errors.New("call: give --args or --args-hex, not both")
			}
			var abi *contracts.Contract
			if abiFile != "" {
				a, err := readABIFile(abiFile)
				if err != nil {
					return err
				}
				if contract, _, _ := strings.Cut(function, "::"); contract != a.Name {
					return fmt.Errorf("call: --abi %s is the ABI of contract %q, not of %s", abiFile, a.Name, function)
				}
				abi = &contracts.Contract{Name: a.Name, ABI: a}
			}
			if abi != nil || argsHex != "" {
				// Check the arguments before any connection.
				if _, err := encodeCallArgsWith(abi, function, args, argsHex); err != nil {
					return err
				}
			} else if err := protocol.ValidateFunction(function); err != nil {
				return err
			}
			return api.run(cmd, func(ctx context.Context, c *client.Client, ch protocol.ChannelID) error {
				why := ""
				if abiFile == "" {
					abi, why = api.channelABIFor(ctx, cmd.ErrOrStderr(), ch, function)
				}
				if abi == nil && args != "" && argsHex == "" && abiOf(function) == nil {
					contract, _, _ := strings.Cut(function, "::")
					return fmt.Errorf("call: --args needs an ABI: %s and %q is not a demo contract (%s); give --abi FILE, or the encoded arguments with --args-hex",
						why, contract, strings.Join(contracts.Names(), ", "))
				}
				enc, err := encodeCallArgsWith(abi, function, args, argsHex)
				if err != nil {
					return err
				}
				res, err := c.Call(ctx, ch, function, enc)
				if res == nil {
					return err
				}
				if perr := printJSON(cmd.OutOrStdout(), resultView(function, res, abi)); perr != nil {
					return perr
				}
				if err != nil {
					return &exitError{code: 2, err: err}
				}
				return nil
			})
		},
	}
	api.flags(cmd)
	cmd.Flags().StringVar(&function, "function", "", "function to call, contract::name (required)")
	cmd.Flags().StringVar(&args, "args", "", "arguments as JSON, encoded with --abi, the channel's ABI on chain or the demo contract's")
	cmd.Flags().StringVar(&abiFile, "abi", "", "the contract's ABI (abi.json, as scraft contract new writes) for --args and the output, in place of the one on chain")
	cmd.Flags().StringVar(&argsHex, "args-hex", "", "arguments already encoded, in hex")
	cmd.Flags().DurationVar(&api.complainAfter, "complain-after", 0, "file a censorship complaint on --chain when the call is not committed within this long (0: never)")
	cmd.MarkFlagRequired("function")
	return cmd
}

// encodeCallArgs returns the call's argument bytes from --args (JSON, for
// a demo contract) or --args-hex.
func encodeCallArgs(function, argsJSON, argsHex string) ([]byte, error) {
	return encodeCallArgsWith(nil, function, argsJSON, argsHex)
}

// encodeCallArgsWith is encodeCallArgs with abi, when not nil, the ABI of
// function's contract.
func encodeCallArgsWith(abi *contracts.Contract, function, argsJSON, argsHex string) ([]byte, error) {
	if err := protocol.ValidateFunction(function); err != nil {
		return nil, err
	}
	if argsHex != "" {
		b, err := hex.DecodeString(strings.TrimPrefix(argsHex, "0x"))
		if err != nil {
			return nil, fmt.Errorf("call: --args-hex: %w", err)
		}
		return b, nil
	}
	contract, fn, _ := strings.Cut(function, "::")
	if abi == nil {
		var err error
		if abi, err = contracts.Get(contract); err != nil {
			if argsJSON == "" {
				return nil, nil
			}
			return nil, fmt.Errorf("call: --args needs the ABI of a demo contract (%s) or --abi FILE; use --args-hex: %w", strings.Join(contracts.Names(), ", "), err)
		}
	}
	if argsJSON == "" {
		argsJSON = "{}"
	}
	return abi.EncodeArgs(fn, []byte(argsJSON))
}

// abiReader is the chain query of a channel's ABI (settlement.Chain.ABI).
type abiReader interface {
	ABI(ctx context.Context, id protocol.ChannelID) (*contract.ChannelABI, error)
}

// readChannelABI reads the ABI recorded on chain with the channel's code:
// nil and no error when the channel has none on record.
func readChannelABI(ctx context.Context, r abiReader, id protocol.ChannelID) (*contracts.Contract, error) {
	rec, err := r.ABI(ctx, id)
	if errors.Is(err, contract.ErrNoABI) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	a, err := contracts.ParseABI(rec.JSON)
	if err != nil {
		return nil, fmt.Errorf("the ABI of channel %s on chain (%s): %w", id, rec.Hash, err)
	}
	return &contracts.Contract{Name: a.Name, ABI: a}, nil
}

// channelABI reads the channel's ABI from the chain (--chain), nil when it
// has none on record.
func (a *apiClient) channelABI(ctx context.Context, id protocol.ChannelID) (*contracts.Contract, error) {
	key, err := protocol.LoadKey(a.keyFile)
	if err != nil {
		return nil, err
	}
	cl, err := a.dialChain(key)
	if err != nil {
		return nil, fmt.Errorf("chain %s: %w", a.chainAddr, err)
	}
	defer cl.Close()
	return readChannelABI(ctx, cl, id)
}

// channelABIFor returns the channel's ABI from the chain when it describes
// name's contract ("contract::…"), else nil (the demo contracts' ABIs then
// decode by prefix), and why there is none: the channel has none on
// record, or the chain could not say, which is reported on w but not
// fatal, or the ABI is another contract's.
func (a *apiClient) channelABIFor(ctx context.Context, w io.Writer, id protocol.ChannelID, name string) (*contracts.Contract, string) {
	abi, err := a.channelABI(ctx, id)
	if err != nil {
		fmt.Fprintf(w, "scraft: no ABI from the chain (%v); decoding with the demo contracts' ABIs\n", err)
		return nil, fmt.Sprintf("the chain did not give channel %s's ABI (%v)", id, err)
	}
	if abi == nil {
		return nil, fmt.Sprintf("channel %s has none on record", id)
	}
	if contract, _, ok := strings.Cut(name, "::"); ok && contract != abi.Name {
		fmt.Fprintf(w, "scraft: channel %s records the ABI of contract %q, not of %s\n", id, abi.Name, name)
		return nil, fmt.Sprintf("channel %s records the ABI of contract %q", id, abi.Name)
	}
	return abi, ""
}

// abiOf returns the demo contract ABI of a "contract::name" type or
// function, nil when there is none.
func abiOf(name string) *contracts.Contract {
	contract, _, ok := strings.Cut(name, "::")
	if !ok {
		return nil
	}
	c, err := contracts.Get(contract)
	if err != nil {
		return nil
	}
	return c
}

// apiOutcomeView is the JSON shape of a call's result in every command
// that prints one: scraft call, scraft subscribe (an outcome line) and
// scraft contract run, so that a script reads the same names from each.
// Function is the "contract::name" called, when the command knows it (a
// subscription's outcome does not carry it). Hash, Digest and Kind are a
// committed entry's and absent from contract run, which commits nothing;
// Height is the height the call ran at.
type apiOutcomeView struct {
	Height    uint64             `json:"height"`
	Kind      string             `json:"kind,omitempty"`
	Function  string             `json:"function,omitempty"`
	Hash      *protocol.Hash     `json:"hash,omitempty"`
	Status    protocol.Status    `json:"status"`
	AbortCode uint32             `json:"abort_code,omitempty"`
	Message   string             `json:"message,omitempty"`
	GasUsed   uint64             `json:"gas_used"`
	OutputHex string             `json:"output_hex,omitempty"`
	Output    json.RawMessage    `json:"output,omitempty"`
	ChangeSet protocol.ChangeSet `json:"change_set"`
	Events    []apiEventView     `json:"events"`
	Digest    *protocol.Hash     `json:"digest,omitempty"`
	Complaint uint64             `json:"complaint,omitempty"`
}

type apiEventView struct {
	Type    string          `json:"type"`
	DataHex string          `json:"data_hex"`
	Data    json.RawMessage `json:"data,omitempty"`
}

// resultView is the view of a call's result; abi, when not nil, decodes
// the output and events of its own contract (the demo contracts' ABIs are
// known without it).
func resultView(function string, r *client.Result, abi *contracts.Contract) *apiOutcomeView {
	v := &apiOutcomeView{
		Height: r.Height, Function: function, Hash: &r.TxHash, Status: r.Status, AbortCode: r.AbortCode, Message: r.Message,
		GasUsed: r.GasUsed, ChangeSet: r.ChangeSet, Events: eventViews(r.Events, abi), Digest: &r.Digest, Complaint: r.Complaint,
	}
	setOutput(v, function, r.Output, abi)
	return v
}

// abiFor returns abi if it is the ABI of name's contract ("contract::…"),
// else the demo contract's, else nil.
func abiFor(name string, abi *contracts.Contract) *contracts.Contract {
	if contract, _, ok := strings.Cut(name, "::"); ok && abi != nil && contract == abi.Name {
		return abi
	}
	return abiOf(name)
}

func setOutput(v *apiOutcomeView, function string, out []byte, abi *contracts.Contract) {
	if len(out) == 0 {
		return
	}
	v.OutputHex = hex.EncodeToString(out)
	if c := abiFor(function, abi); c != nil {
		_, fn, _ := strings.Cut(function, "::")
		if j, err := c.DecodeOutput(fn, out); err == nil {
			v.Output = j
		}
	}
}

func eventViews(evs []protocol.Event, abi *contracts.Contract) []apiEventView {
	out := make([]apiEventView, len(evs))
	for i, ev := range evs {
		out[i] = apiEventView{Type: ev.Type, DataHex: hex.EncodeToString(ev.Data)}
		if c := abiFor(ev.Type, abi); c != nil {
			if j, err := c.DecodeEvent(ev.Type, ev.Data); err == nil {
				out[i].Data = j
			}
		}
	}
	return out
}

func printJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
