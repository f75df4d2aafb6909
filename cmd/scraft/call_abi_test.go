package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// TestCallWithChannelABI creates a channel of a contract that is not a
// demo (contracts/kv) with its abi.json recorded on chain, and calls it
// with JSON arguments and no --abi: call reads the channel's ABI from the
// chain. A channel created without an ABI still takes calls: by the demo
// contract's ABI its functions' prefix names, else --args-hex, with an
// error that says so for --args.
func TestCallWithChannelABI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a chain and a node")
	}
	ctx := context.Background()
	cfg := devchain.DefaultConfig(t.TempDir())
	cfg.BlockInterval, cfg.NoSync = 5*time.Millisecond, true
	cfg.Logger = testutil.Logger(t, "devchain")
	chain, err := devchain.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { chain.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g, err := devchain.NewGRPCServer(chain, testChainKey)
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(l)
	t.Cleanup(g.Stop)
	chainAddr := l.Addr().String()
	chainConn := []string{"--chain", chainAddr, "--chain-key", testChainKey.Address().String()}

	keyFile, key := newChainKeyFile(t, "member")
	kvDir := filepath.Join("..", "..", "contracts", "kv")
	create := func(args ...string) protocol.ChannelID {
		t.Helper()
		args = append(append([]string{"chain", "create-channel", "--contract", filepath.Join(kvDir, "kv.wasm"), "--min-stake", "0", "--fine", "0",
			"--key", keyFile}, chainConn...), args...)
		out, err := runChain(t, args...)
		if err != nil {
			t.Fatalf("create-channel: %v\n%s", err, out)
		}
		id, err := protocol.ParseChannelID(strings.TrimSpace(out))
		if err != nil {
			t.Fatalf("create-channel printed %q: %v", out, err)
		}
		return id
	}
	withABI := create("--abi", filepath.Join(kvDir, "abi.json"))
	without := create()
	// An old channel of a demo contract: created with no ABI on record.
	chat, err := contracts.Get("chat")
	if err != nil {
		t.Fatal(err)
	}
	initial, err := initialState(ctx, chat.Wasm)
	if err != nil {
		t.Fatal(err)
	}
	oldChat, err := devchain.NewLocal(chain, key).CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: chat.Wasm, InitialState: initial})
	if err != nil {
		t.Fatal(err)
	}
	ids := []protocol.ChannelID{withABI, without, oldChat}
	for _, id := range ids {
		if _, err := devchain.NewLocal(chain, key).Join(ctx, id, false); err != nil {
			t.Fatal(err)
		}
	}

	// chain show says which has an ABI, by hash, without printing it.
	raw, err := os.ReadFile(filepath.Join(kvDir, "abi.json"))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		id   protocol.ChannelID
		want chainABIView
	}{
		{withABI, chainABIView{Present: true, Hash: contract.ABIHashOf(raw).String(), Bytes: len(raw)}},
		{without, chainABIView{}},
	} {
		out, err := runChain(t, append([]string{"chain", "show", tc.id.String(), "--json"}, chainConn...)...)
		if err != nil {
			t.Fatal(err, out)
		}
		var v chainChannelView
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("%v:\n%s", err, out)
		}
		if v.ABI != tc.want || strings.Contains(out, `"functions"`) {
			t.Fatalf("show --json of %s: abi %+v, want %+v", tc.id, v.ABI, tc.want)
		}
	}

	r, err := startNode(ctx, nodeOptions{
		DataDir: t.TempDir(), Listen: "127.0.0.1:0", Admin: "127.0.0.1:0", Key: key, Chain: devchain.NewLocal(chain, key),
		Logger: testutil.Logger(t, "node"), Channels: ids,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	testutil.WaitFor(t, 30*time.Second, func() error {
		for _, id := range ids {
			c, ok := r.node.Channel(id)
			if !ok {
				return fmt.Errorf("channel %s not open", id)
			}
			if st := c.Status(); !st.Ready || !st.Leading {
				return fmt.Errorf("channel %s not ready or not leading: %+v", id, st)
			}
		}
		return nil
	})

	t.Cleanup(func() { resetClientFlags("call") })
	type callOut struct {
		Status string          `json:"status"`
		Output json.RawMessage `json:"output"`
	}
	call := func(id protocol.ChannelID, args ...string) (*callOut, string, error) {
		t.Helper()
		resetClientFlags("call")
		args = append(append([]string{"call", "--node", r.srv.Addr(), "--key", keyFile, "--channel", id.String()}, chainConn...), args...)
		out, err := run(t, args...)
		if err != nil {
			return nil, out, err
		}
		var v callOut
		if err := json.Unmarshal([]byte(out), &v); err != nil {
			t.Fatalf("call printed %q: %v", out, err)
		}
		return &v, out, nil
	}

	// The channel's own ABI encodes the arguments and decodes the output.
	if v, out, err := call(withABI, "--function", "kv::put", "--args", `{"key":7,"value":"seven"}`); err != nil || v.Status != "ok" {
		t.Fatalf("kv::put with the channel's ABI: %v\n%s", err, out)
	}
	v, out, err := call(withABI, "--function", "kv::get", "--args", `{"key":7}`)
	if err != nil || string(v.Output) != `"seven"` {
		t.Fatalf("kv::get with the channel's ABI: %v\n%s", err, out)
	}
	// The console's view of the channel decodes with the channel's ABI too.
	testutil.WaitFor(t, 20*time.Second, func() error {
		code, body := httpGet(t, "http://"+r.adminAddr()+"/console/api/channels/"+withABI.String(), nil)
		var snap struct {
			Contract string `json:"contract"`
			View     struct {
				Resources []struct {
					Type  string          `json:"type"`
					Value json.RawMessage `json:"value"`
				} `json:"resources"`
			} `json:"view"`
		}
		if code != http.StatusOK || json.Unmarshal([]byte(body), &snap) != nil {
			return fmt.Errorf("console: %d %s", code, body)
		}
		for _, res := range snap.View.Resources {
			if snap.Contract == "generic" && res.Type == "kv::Entry" && string(res.Value) == `{"value":"seven"}` {
				return nil
			}
		}
		return fmt.Errorf("console view: %s", body)
	})
	// --abi overrides the chain's: here the same file, so the same answer.
	v, out, err = call(withABI, "--function", "kv::get", "--args", `{"key":7}`, "--abi", filepath.Join(kvDir, "abi.json"))
	if err != nil || string(v.Output) != `"seven"` {
		t.Fatalf("kv::get with --abi: %v\n%s", err, out)
	}
	// Bad arguments are refused by the channel's ABI before any call.
	if _, out, err := call(withABI, "--function", "kv::put", "--args", `{"key":"x","value":1}`); err == nil || !strings.Contains(err.Error(), "key") {
		t.Fatalf("kv::put with bad arguments: %v\n%s", err, out)
	}

	// Without an ABI on record: --args is refused with what to do instead,
	// --args-hex works.
	_, out, err = call(without, "--function", "kv::put", "--args", `{"key":7,"value":"seven"}`)
	if err == nil || !strings.Contains(err.Error(), "has none on record") || !strings.Contains(err.Error(), "--args-hex") {
		t.Fatalf("kv::put on a channel without an ABI: %v\n%s", err, out)
	}
	kvABI, err := contracts.ParseABI(raw)
	if err != nil {
		t.Fatal(err)
	}
	enc, err := kvABI.EncodeArgs("put", []byte(`{"key":1,"value":"one"}`))
	if err != nil {
		t.Fatal(err)
	}
	if v, out, err := call(without, "--function", "kv::put", "--args-hex", fmt.Sprintf("%x", enc)); err != nil || v.Status != "ok" {
		t.Fatalf("kv::put with --args-hex: %v\n%s", err, out)
	}
	// A chain that does not answer: the nodes pinned by --node-key still
	// take the call, and --args is refused naming the chain's failure.
	_, out, err = call(withABI, "--function", "kv::put", "--args", `{"key":7,"value":"x"}`, "--chain", "127.0.0.1:1",
		"--node-key", key.Address().String(), "--timeout", "3s")
	if err == nil || !strings.Contains(err.Error(), "the chain did not give") || !strings.Contains(out, "no ABI from the chain") {
		t.Fatalf("kv::put without the chain: %v\n%s", err, out)
	}
	// A demo contract's old channel: the function's prefix names the ABI.
	if v, out, err := call(oldChat, "--function", "chat::join", "--args", `{"nick":"ann"}`); err != nil || v.Status != "ok" {
		t.Fatalf("chat::join on an old channel: %v\n%s", err, out)
	}
}

// resetClientFlags is resetFlags for a command with slice flags (--node,
// --chain-key), which take their default as an empty list, not as "[]".
func resetClientFlags(name string) {
	for _, c := range rootCmd.Commands() {
		if c.Name() == name {
			c.SetContext(nil) //nolint:staticcheck // the next Execute sets it
			c.Flags().VisitAll(func(f *pflag.Flag) {
				if sv, ok := f.Value.(pflag.SliceValue); ok {
					sv.Replace(nil)
				} else {
					_ = f.Value.Set(f.DefValue)
				}
				f.Changed = false
			})
		}
	}
}

// TestCreateChannelRefusesBadABIFile: a malformed ABI, one that is JSON but
// not an ABI, and one over the chain's bound are refused by create-channel
// with the file and the reason, before anything is sent.
func TestCreateChannelRefusesBadABIFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	huge := `{"name":"kv","structs":[],"functions":[{"name":"put","doc":"` + strings.Repeat("x", contract.MaxABILen) + `","args":[]}],"resources":[],"events":[]}`
	for _, tc := range []struct {
		file string
		want string
	}{
		{write("cut.json", `{"name":"kv",`), "cut.json"},
		{write("other.json", `{"name":"kv","functions":[{"name":"put","args":[{"name":"k","type":"nosuch"}]}]}`), "nosuch"},
		{write("huge.json", huge), "at most 65536"},
		{filepath.Join(dir, "missing.json"), "--abi"},
	} {
		// No chain is listening: a refusal must come before any call.
		out, err := runChain(t, "chain", "create-channel", "--contract", filepath.Join("..", "..", "contracts", "kv", "kv.wasm"),
			"--abi", tc.file, "--chain", "127.0.0.1:1", "--chain-key", testChainKey.Address().String(), "--key", filepath.Join(dir, "none.key"))
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("create-channel --abi %s: %v %s, want an error naming %q", filepath.Base(tc.file), err, out, tc.want)
		}
	}
}

// TestSubscribeDecodesWithChannelABI: subscribe's lines decode a
// contract's resources and events with the ABI it was given (the channel's
// from the chain, or --abi), and those of no known contract stay hex.
func TestSubscribeDecodesWithChannelABI(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("..", "..", "contracts", "kv", "abi.json"))
	if err != nil {
		t.Fatal(err)
	}
	a, err := contracts.ParseABI(raw)
	if err != nil {
		t.Fatal(err)
	}
	kv := &contracts.Contract{Name: a.Name, ABI: a}
	val, err := a.EncodeValue("Entry", []byte(`{"value":"v"}`))
	if err != nil {
		t.Fatal(err)
	}
	st := protocol.State{
		{Account: protocol.Address{1}, Type: "kv::Entry"}:    val,
		{Account: protocol.Address{2}, Type: "other::Thing"}: []byte{1, 2},
	}
	for _, tc := range []struct {
		abi  *contracts.Contract
		want string
	}{
		{kv, `{"value":"v"}`},
		{nil, ""},
	} {
		b, err := json.Marshal(snapshotLine(client.Update{Snapshot: &protocol.Snapshot{State: st}}, tc.abi))
		if err != nil {
			t.Fatal(err)
		}
		var line struct {
			Snapshot struct {
				Resources []struct {
					Type     string          `json:"type"`
					ValueHex string          `json:"value_hex"`
					Value    json.RawMessage `json:"value"`
				} `json:"resources"`
			} `json:"snapshot"`
		}
		if err := json.Unmarshal(b, &line); err != nil {
			t.Fatal(err)
		}
		rs := line.Snapshot.Resources
		if len(rs) != 2 || rs[0].Type != "kv::Entry" || string(rs[0].Value) != tc.want || rs[1].Value != nil || rs[1].ValueHex != "0102" {
			t.Fatalf("with ABI %v: %s", tc.abi != nil, b)
		}
	}
}

// TestDemoChannelABI: a demo contract's channel records the demo's own ABI,
// one that parses back to it and fits the chain's bound; a .wasm file
// without --abi records none.
func TestDemoChannelABI(t *testing.T) {
	for _, n := range contracts.Names() {
		raw, err := channelABIFile(n, "")
		if err != nil {
			t.Fatal(err)
		}
		a, err := contracts.ParseABI(raw)
		if err != nil || a.Name != n || len(raw) > contract.MaxABILen {
			t.Fatalf("%s: %d bytes, %v", n, len(raw), err)
		}
		c, _ := contracts.Get(n)
		if got, want := a.EntryNames(), c.EntryNames(); fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("%s: functions %v, want %v", n, got, want)
		}
	}
	if raw, err := channelABIFile(filepath.Join("..", "..", "contracts", "kv", "kv.wasm"), ""); raw != nil || err != nil {
		t.Fatalf("a .wasm file without --abi: %q, %v", raw, err)
	}
}
