package main

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/vm"
)

func init() {
	rootCmd.AddCommand(contractCmd())
}

func contractCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "contract",
		Short: "Run and inspect channel contracts locally, in the node's sandbox",
	}
	cmd.AddCommand(contractRunCmd(), contractInspectCmd(), contractNewCmd())
	return cmd
}

// contractSource is the --wasm / --contract pair shared by the subcommands.
type contractSource struct {
	wasmFile string
	name     string
	abiFile  string
}

func (s *contractSource) flags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&s.wasmFile, "wasm", "", "contract module file (.wasm)")
	cmd.Flags().StringVar(&s.name, "contract", "", "embedded demo contract: "+strings.Join(contracts.Names(), "|"))
	cmd.Flags().StringVar(&s.abiFile, "abi", "", "the --wasm module's ABI (abi.json, as scraft contract new writes): --args and outputs in JSON")
}

// load returns the module bytes and, for a demo contract or a module
// given with --abi, its ABI.
func (s *contractSource) load(arg string) ([]byte, *contracts.Contract, error) {
	switch {
	case arg != "" && (s.wasmFile != "" || s.name != ""):
		return nil, nil, errors.New("give the module as an argument, --wasm or --contract, not several")
	case arg != "":
		s.wasmFile = arg
	case s.wasmFile != "" && s.name != "":
		return nil, nil, errors.New("give either --wasm or --contract, not both")
	case s.wasmFile == "" && s.name == "":
		return nil, nil, errors.New("give --wasm FILE or --contract " + strings.Join(contracts.Names(), "|"))
	}
	if s.name != "" && s.abiFile != "" {
		return nil, nil, errors.New("--abi is for a --wasm module; a demo contract comes with its ABI")
	}
	if s.name != "" {
		c, err := contracts.Get(s.name)
		if err != nil {
			return nil, nil, err
		}
		return c.Wasm, c, nil
	}
	b, err := os.ReadFile(s.wasmFile)
	if err != nil {
		return nil, nil, err
	}
	if s.abiFile == "" {
		return b, nil, nil
	}
	abi, err := readABIFile(s.abiFile)
	if err != nil {
		return nil, nil, err
	}
	return b, &contracts.Contract{Name: abi.Name, Wasm: b, ABI: abi}, nil
}

// readABIFile reads an abi.json.
func readABIFile(path string) (*contracts.ABI, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("--abi: %w", err)
	}
	abi, err := contracts.ParseABI(raw)
	if err != nil {
		return nil, fmt.Errorf("--abi %s: %w", path, err)
	}
	return abi, nil
}

// contractStateFile is the JSON form of a state for --state and --write-state:
// resources sorted by account and type, values in hex. "value" is the
// decoded value when the contract's ABI knows the type; it is informational
// on output and, on input, used only when value_hex is absent.
type contractStateFile struct {
	Resources []contractStateResource `json:"resources"`
}

type contractStateResource struct {
	Account  protocol.Address `json:"account"`
	Type     string           `json:"type"`
	ValueHex string           `json:"value_hex"`
	Value    json.RawMessage  `json:"value,omitempty"`
}

func readContractState(path string, c *contracts.Contract) (protocol.State, error) {
	st := protocol.State{}
	if path == "" {
		return st, nil
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var f contractStateFile
	dec := json.NewDecoder(strings.NewReader(string(b)))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&f); err != nil {
		return nil, fmt.Errorf("state %s: %w", path, err)
	}
	for i, r := range f.Resources {
		k := protocol.ResourceKey{Account: r.Account, Type: r.Type}
		if r.Type == "" || len(r.Type) > protocol.MaxTypeLen {
			return nil, fmt.Errorf("state %s: resource %d: type must be 1 to %d bytes", path, i, protocol.MaxTypeLen)
		}
		if _, dup := st[k]; dup {
			return nil, fmt.Errorf("state %s: %s appears twice", path, k)
		}
		var v []byte
		switch {
		case r.ValueHex != "" || r.Value == nil:
			v, err = hex.DecodeString(strings.TrimPrefix(r.ValueHex, "0x"))
		case c != nil:
			res, ok := c.Resource(r.Type)
			if !ok {
				return nil, fmt.Errorf("state %s: %s: the %s ABI has no such resource; give value_hex", path, k, c.Name)
			}
			v, err = c.EncodeValue(res.Value, r.Value)
		default:
			err = errors.New("give value_hex (value needs --contract for its ABI)")
		}
		if err != nil {
			return nil, fmt.Errorf("state %s: %s: %w", path, k, err)
		}
		st[k] = v
	}
	return st, nil
}

func writeContractState(path string, st protocol.State, c *contracts.Contract) error {
	f := contractStateFile{Resources: []contractStateResource{}}
	for _, k := range st.Keys() {
		r := contractStateResource{Account: k.Account, Type: k.Type, ValueHex: hex.EncodeToString(st[k])}
		if c != nil {
			if v, err := c.DecodeResource(k.Type, st[k]); err == nil {
				r.Value = v
			}
		}
		f.Resources = append(f.Resources, r)
	}
	b, err := json.MarshalIndent(f, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(path, append(b, '\n'), 0o644)
}

func contractRunCmd() *cobra.Command {
	var (
		src                contractSource
		function, argsJSON string
		argsHex, sender    string
		stateIn, stateOut  string
		gas, height        uint64
		timestampMs        uint64
		memoryPages        uint32
	)
	cmd := &cobra.Command{
		Use:   "run (--wasm FILE | --contract NAME) --function NAME [flags]",
		Short: "Call one entry function of a contract over a state and print the result",
		Long: `Deploy a contract in the node's sandbox (the same checks, gas metering and
limits a channel uses), call one entry function and print the result as
JSON, with the field names scraft call and scraft subscribe use: function,
height, status, gas_used, output_hex and output, change_set (in the seed's
shape) and events. Exits with status 2 and the reason on stderr when the call did not
succeed.

Args come from --args (JSON, encoded with the demo contract's ABI, or
with --abi FILE for a --wasm module, as scraft contract new writes one) or
--args-hex (raw bytes). The state the call runs on is read from --state, a
JSON file of resources:

  {"resources": [{"account": "0x…", "type": "chat::ChatGroup", "value_hex": "…"}]}

and --write-state writes the state after the call in the same format, so
calls can be chained.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			wasm, c, err := src.load("")
			if err != nil {
				return err
			}
			call := vm.Call{Function: function, Gas: gas, Height: height, TimestampMs: timestampMs}
			if c != nil {
				call.Function = strings.TrimPrefix(function, c.Name+"::")
			}
			switch {
			case argsHex != "" && argsJSON != "":
				return errors.New("give --args or --args-hex, not both")
			case argsHex != "":
				if call.Args, err = hex.DecodeString(strings.TrimPrefix(argsHex, "0x")); err != nil {
					return fmt.Errorf("--args-hex: %w", err)
				}
			case argsJSON != "" && c == nil:
				return errors.New("--args needs --contract, or --abi with --wasm (the ABI encodes the JSON); or use --args-hex")
			case c != nil:
				if call.Args, err = c.EncodeArgs(call.Function, []byte(argsJSON)); err != nil {
					return err
				}
			}
			if sender != "" {
				if call.Sender, err = protocol.ParseAddress(sender); err != nil {
					return fmt.Errorf("--sender: %w", err)
				}
			}
			st, err := readContractState(stateIn, c)
			if err != nil {
				return err
			}
			e, err := vm.NewEngine(ctx, vm.Config{MemoryLimitPages: memoryPages})
			if err != nil {
				return err
			}
			defer e.Close(ctx)
			m, err := e.Deploy(ctx, wasm)
			if err != nil {
				return err
			}
			res := m.Call(ctx, st, call)
			// The same view scraft call and subscribe print.
			name := call.Function
			if c != nil {
				name = c.Name + "::" + call.Function
			}
			out := &apiOutcomeView{
				Height: call.Height, Function: name, Status: res.Status, AbortCode: res.AbortCode, Message: res.Message,
				GasUsed: res.GasUsed, ChangeSet: res.ChangeSet, Events: eventViews(res.Events, c),
			}
			if res.Status == protocol.StatusOK {
				setOutput(out, name, res.Output, c)
			}
			if err := contractPrintJSON(cmd.OutOrStdout(), out); err != nil {
				return err
			}
			if res.Status != protocol.StatusOK {
				msg := res.Status.String()
				if res.Status == protocol.StatusAbort {
					msg += fmt.Sprintf(" %d", res.AbortCode)
				}
				if res.Message != "" {
					msg += ": " + res.Message
				}
				return &exitError{code: 2, err: fmt.Errorf("contract run %s: %s", call.Function, msg)}
			}
			if stateOut != "" {
				if err := st.Apply(res.ChangeSet); err != nil {
					return err
				}
				return writeContractState(stateOut, st, c)
			}
			return nil
		},
	}
	src.flags(cmd)
	f := cmd.Flags()
	f.StringVar(&function, "function", "", "entry function to call, e.g. send or chat::send (required)")
	f.StringVar(&argsJSON, "args", "", `arguments as a JSON object, e.g. '{"text":"hi"}' (needs --contract)`)
	f.StringVar(&argsHex, "args-hex", "", "arguments as raw bytes in hex")
	f.StringVar(&sender, "sender", "", "sender address, 0x + 32 hex digits (default all zeroes)")
	f.StringVar(&stateIn, "state", "", "JSON state file the call runs on (default empty)")
	f.StringVar(&stateOut, "write-state", "", "write the state after a successful call to this JSON file")
	f.Uint64Var(&gas, "gas", 10_000_000, "gas limit")
	f.Uint64Var(&height, "height", 1, "height the contract sees")
	f.Uint64Var(&timestampMs, "timestamp-ms", 0, "leader timestamp the contract sees, in milliseconds")
	f.Uint32Var(&memoryPages, "memory-pages", vm.DefaultConfig().MemoryLimitPages, "memory limit in 64 KiB pages")
	cmd.MarkFlagRequired("function")
	return cmd
}

func contractInspectCmd() *cobra.Command {
	var src contractSource
	cmd := &cobra.Command{
		Use:   "inspect [FILE | --wasm FILE | --contract NAME]",
		Short: "Check a module against the scraft ABI v1 and list its entry functions",
		Long: `Run the checks a channel makes before it accepts contract code (valid
WASM, only scraft ABI v1 imports with their exact types, an exported memory
within the limit, (i32) -> i32 entry functions, no floats, no state that
outlives a call) and print the code hash and the entry functions as JSON.
Exits with status 2 and the reason when the module is refused.`,
		Args: cobra.MaximumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			arg := ""
			if len(args) == 1 {
				arg = args[0]
			}
			wasm, c, err := src.load(arg)
			if err != nil {
				return err
			}
			e, err := vm.NewEngine(ctx, vm.Config{})
			if err != nil {
				return err
			}
			defer e.Close(ctx)
			m, err := e.Deploy(ctx, wasm)
			if err != nil {
				var de *vm.DeployError
				if errors.As(err, &de) {
					return &exitError{code: 2, err: err}
				}
				return err
			}
			type fnView struct {
				Name     string `json:"name"`
				Reserved bool   `json:"reserved,omitempty"`
				Doc      string `json:"doc,omitempty"`
			}
			out := struct {
				CodeHash  protocol.Hash `json:"code_hash"`
				Bytes     int           `json:"bytes"`
				ABI       string        `json:"abi"`
				Functions []fnView      `json:"functions"`
				Missing   []string      `json:"missing_from_module,omitempty"`
			}{CodeHash: m.Hash(), Bytes: len(wasm), ABI: "scraft v1"}
			for _, n := range m.Functions() {
				v := fnView{Name: n, Reserved: protocol.IsReserved(n)}
				if c != nil {
					if f, ok := c.Function(n); ok {
						v.Doc = f.Doc
					}
				}
				out.Functions = append(out.Functions, v)
			}
			if c != nil {
				for _, n := range c.EntryNames() {
					if !m.Has(n) {
						out.Missing = append(out.Missing, n)
					}
				}
			}
			return contractPrintJSON(cmd.OutOrStdout(), out)
		},
	}
	src.flags(cmd)
	return cmd
}

func contractPrintJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(v)
}
