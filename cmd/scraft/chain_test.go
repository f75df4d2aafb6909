package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
	"github.com/scraft/scraft/vm"
	"github.com/scraft/scraft/vm/meter"
)

// runChain is run with the chain commands reset first.
func runChain(t *testing.T, args ...string) (string, error) {
	t.Helper()
	resetChainCommands()
	return run(t, args...)
}

// resetChainCommands puts every flag of the chain commands back at its
// default and forgets their contexts: cobra keeps both between executions
// in one process, and an earlier ExecuteContext's context may be canceled.
func resetChainCommands() {
	var reset func(c *cobra.Command)
	reset = func(c *cobra.Command) {
		c.SetContext(nil) //nolint:staticcheck // the next Execute sets it
		c.Flags().VisitAll(func(f *pflag.Flag) {
			if sv, ok := f.Value.(pflag.SliceValue); ok {
				sv.Replace(nil)
			} else {
				f.Value.Set(f.DefValue)
			}
			f.Changed = false
		})
		for _, sub := range c.Commands() {
			reset(sub)
		}
	}
	rootCmd.SetContext(nil) //nolint:staticcheck // the next Execute sets it
	for _, c := range rootCmd.Commands() {
		if c.Name() == "chain" {
			reset(c)
		}
	}
}

// testChainKey is the key the test chains present; the commands pin it
// with --chain-key, or on first contact next to their --key.
var testChainKey = func() *protocol.Key {
	k, err := protocol.GenerateKey(nil)
	if err != nil {
		panic(err)
	}
	return k
}()

// startTestChain serves an in-process dev chain over TLS (testChainKey) on
// a loopback port.
func startTestChain(t *testing.T) string {
	t.Helper()
	cfg := devchain.DefaultConfig(t.TempDir())
	cfg.BlockInterval, cfg.NoSync = 5*time.Millisecond, true
	c, err := devchain.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g, err := devchain.NewGRPCServer(c, testChainKey)
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(l)
	t.Cleanup(g.Stop)
	return l.Addr().String()
}

func newChainKeyFile(t *testing.T, name string) (string, *protocol.Key) {
	t.Helper()
	k, err := protocol.GenerateKey(nil)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), name+".key")
	if err := protocol.SaveKey(path, k); err != nil {
		t.Fatal(err)
	}
	return path, k
}

func TestChainCommands(t *testing.T) {
	addr := startTestChain(t)
	aliceKey, alice := newChainKeyFile(t, "alice")
	conn := []string{"--chain", addr, "--key", aliceKey}

	out, err := runChain(t, append([]string{"chain", "create-channel", "--contract", "chat", "--label", "world_address=0x01",
		"--label", "server_address=127.0.0.1:7000", "--tick", "50ms", "--gas", "100000", "--min-stake", "10"}, conn...)...)
	if err != nil {
		t.Fatal(err, out)
	}
	id, err := protocol.ParseChannelID(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("create-channel printed %q: %v", out, err)
	}
	wasm := filepath.Join(t.TempDir(), "mine.wasm")
	if err := os.WriteFile(wasm, []byte("\x00asm\x01\x00\x00\x00"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runChain(t, append([]string{"chain", "create-channel", "--contract", wasm}, conn...)...); err == nil {
		t.Fatal("a module the sandbox cannot load made a channel")
	}
	if out, err := runChain(t, append([]string{"chain", "create-channel", "--contract", wasm, "--no-init"}, conn...)...); err != nil {
		t.Fatal(err, out)
	}
	if _, err := runChain(t, append([]string{"chain", "create-channel", "--contract", "nosuch"}, conn...)...); !errors.Is(err, contracts.ErrUnknownContract) {
		t.Fatalf("unknown contract: %v", err)
	}
	over := strconv.FormatUint(contract.MaxGasLimit+1, 10)
	if _, err := runChain(t, append([]string{"chain", "create-channel", "--contract", "chat", "--gas", over}, conn...)...); !errors.Is(err, contract.ErrTooLarge) {
		t.Fatalf("gas limit over the ceiling: %v", err)
	}
	for _, args := range [][]string{
		{"chain", "stake", id.String(), "5"},
		{"chain", "deposit", "20"},
	} {
		if out, err := runChain(t, append(args, conn...)...); err != nil {
			t.Fatal(args, err, out)
		}
	}
	out, err = runChain(t, append([]string{"chain", "join", id.String(), "--pool"}, conn...)...)
	if err != nil || !strings.Contains(out, "join sequence number 1") {
		t.Fatalf("join printed %q, %v", out, err)
	}
	if _, err := runChain(t, append([]string{"chain", "stake", id.String(), "zero"}, conn...)...); err == nil {
		t.Fatal("bad amount accepted")
	}

	out, err = runChain(t, "chain", "show", id.String(), "--chain", addr, "--chain-key", testChainKey.Address().String())
	if err != nil {
		t.Fatal(err)
	}
	// The channel may be named with --channel, as the node commands do.
	if flagOut, err := runChain(t, "chain", "show", "--channel", id.String(), "--chain", addr, "--chain-key", testChainKey.Address().String()); err != nil ||
		!strings.Contains(flagOut, id.String()) {
		t.Fatalf("chain show --channel: %v\n%s", err, flagOut)
	}
	if _, err := runChain(t, "chain", "show", "--chain", addr, "--chain-key", testChainKey.Address().String()); err == nil ||
		!strings.Contains(err.Error(), "--channel") {
		t.Fatalf("chain show without a channel: %v, want an error naming --channel", err)
	}
	for _, want := range []string{"members (1)", alice.Address().String(), "pool", "server_address=127.0.0.1:7000", "tick 50ms, gas 100000",
		fmt.Sprintf("vm %d, gas table %d", vm.Version, meter.DefaultConfig().Costs.Version)} {
		if !strings.Contains(out, want) {
			t.Fatalf("show lacks %q:\n%s", want, out)
		}
	}
	out, err = runChain(t, "chain", "show", id.String(), "--chain", addr, "--chain-key", testChainKey.Address().String(), "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v chainChannelView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if v.Channel != id || v.Contract != "chat" || len(v.Members) != 1 || v.Members[0].Address != alice.Address() ||
		v.Members[0].Collateral != "pool" || v.Labels["world_address"] != "0x01" || v.Leader != nil {
		t.Fatalf("show --json: %+v", v)
	}
	// chat's init function made the initial state: its ChatGroup resource.
	if len(v.SettledState) == 0 || v.SettledState[0].Type != "chat::ChatGroup" {
		t.Fatalf("initial state from init: %+v", v.SettledState)
	}
}

func TestChainServe(t *testing.T) {
	dir := t.TempDir()
	addr := testutil.FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	resetChainCommands()
	rootCmd.SetArgs([]string{"chain", "--data", dir, "--listen", addr, "--block-interval", "10ms", "--log-level", "warn",
		"--heartbeat-ttl", "3s", "--ban", "4s", "--vote-window", "5s", "--complaint-window", "2s"})
	go func() { done <- rootCmd.ExecuteContext(ctx) }()

	// The chain made its key in dir; the client pins it on first contact.
	k, _ := protocol.GenerateKey(nil)
	pin := filepath.Join(t.TempDir(), chainPinName)
	c, err := devchain.Dial(addr, k, devchain.WithPinFile(pin))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testutil.WaitFor(t, 10*time.Second, func() error {
		_, err := c.Head(ctx)
		return err
	})
	chainKey, err := protocol.LoadKey(filepath.Join(dir, chainKeyName))
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := c.ChainKey(); !ok || got != chainKey.Address() {
		t.Fatalf("chain presented %s (%v), its key file holds %s", got, ok, chainKey.Address())
	}
	if b, err := os.ReadFile(pin); err != nil || !strings.Contains(string(b), chainKey.Address().String()) {
		t.Fatalf("pin file: %v:\n%s", err, b)
	}
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	if _, err := c.CreateChannel(cctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("x")}); err != nil {
		t.Fatal(err)
	}
	// The settings given at creation, the rest the defaults.
	want := contract.DefaultParams()
	want.HeartbeatTTL, want.BanDuration, want.VoteWindow, want.CensorshipWindow = 3*time.Second, 4*time.Second, 5*time.Second, 2*time.Second
	if p, err := c.Params(cctx); err != nil || p != want {
		t.Fatalf("chain settings %+v, %v; want %+v", p, err, want)
	}
	// An open watch stream must not hold up the shutdown.
	w, err := c.Watch(context.Background(), settlement.EventID{})
	if err != nil {
		t.Fatal(err)
	}
	if ev, err := w.Recv(); err != nil || ev.Kind != contract.EventChannelCreated {
		t.Fatalf("first event %+v, %v", ev, err)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("serve returned %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop")
	}
	if _, err := os.Stat(filepath.Join(dir, "chain.db")); err != nil {
		t.Fatal(err)
	}
	if out, err := runChain(t, "chain", "key", "--data", dir); err != nil || strings.TrimSpace(out) != chainKey.Address().String() {
		t.Fatalf("chain key: %q, %v; want %s", out, err, chainKey.Address())
	}
}

// Settings that make no sense are refused before anything is opened; a
// chain's settings are its genesis's, so a restart naming others is
// refused, and one naming none (or the same) keeps them.
func TestChainSettingsFlags(t *testing.T) {
	dir := t.TempDir()
	for _, args := range [][]string{
		{"--heartbeat-ttl", "0s"},
		{"--heartbeat-ttl", "-5s"},
		{"--heartbeat-ttl", "500ms"},
		{"--heartbeat-ttl", "10s", "--ban", "5s"},
		{"--vote-window", "1s"},
		{"--complaint-window", "0s"},
		{"--report-cooldown", "1.5ms"},
	} {
		_, err := runChain(t, append([]string{"chain", "--data", dir, "--listen", "127.0.0.1:0"}, args...)...)
		if !errors.Is(err, contract.ErrBadParams) {
			t.Fatalf("%v: %v", args, err)
		}
	}
	if _, err := os.Stat(filepath.Join(dir, "chain.db")); err == nil {
		t.Fatal("a chain was opened with bad settings")
	}
	_, err := runChain(t, "chain", "--engine", "comet", "--home", dir, "--heartbeat-ttl", "3s")
	if err == nil || !strings.Contains(err.Error(), "genesis") {
		t.Fatalf("comet with setting flags: %v", err)
	}

	cfg := devchain.DefaultConfig(dir)
	cfg.NoSync, cfg.Params = true, contract.DefaultParams()
	cfg.Params.HeartbeatTTL = 3 * time.Second
	c, err := devchain.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	_, err = runChain(t, "chain", "--data", dir, "--listen", "127.0.0.1:0", "--heartbeat-ttl", "4s")
	if !errors.Is(err, devchain.ErrParamsDiffer) || !strings.Contains(err.Error(), "fixed when it is created") {
		t.Fatalf("restart with other settings: %v", err)
	}
}

func TestChainCreateWithInitialState(t *testing.T) {
	addr := startTestChain(t)
	keyFile, _ := newChainKeyFile(t, "carol")
	state := filepath.Join(t.TempDir(), "state.json")
	acc := protocol.Address{0xab}
	js := `[{"account":"` + acc.String() + `","type":"chat::ChatGroup","value":"0102"}]`
	if err := os.WriteFile(state, []byte(js), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := runChain(t, "chain", "create-channel", "--contract", "editor", "--initial-state", state, "--chain", addr, "--key", keyFile)
	if err != nil {
		t.Fatal(err, out)
	}
	out, err = runChain(t, "chain", "show", strings.TrimSpace(out), "--chain", addr, "--chain-key", testChainKey.Address().String(), "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v chainChannelView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if v.Contract != "editor" || len(v.SettledState) != 1 || v.SettledState[0].Account != acc || v.SettledState[0].Value != "0102" {
		t.Fatalf("show --json: %+v", v)
	}
	if err := os.WriteFile(state, []byte(`[{"account":"bad"}]`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := runChain(t, "chain", "create-channel", "--contract", "chat", "--initial-state", state, "--chain", addr, "--key", keyFile); err == nil {
		t.Fatal("bad state file accepted")
	}

	// The state file scraft contract run writes is read as it is.
	run := filepath.Join(t.TempDir(), "run.json")
	if err := os.WriteFile(run, []byte(`{"resources":[{"account":"`+acc.String()+`","type":"chat::ChatGroup","value_hex":"0a0b"}]}`), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err = runChain(t, "chain", "create-channel", "--contract", "editor", "--initial-state", run, "--chain", addr, "--key", keyFile)
	if err != nil {
		t.Fatal(err, out)
	}
	out, err = runChain(t, "chain", "show", strings.TrimSpace(out), "--chain", addr, "--chain-key", testChainKey.Address().String(), "--json")
	if err != nil {
		t.Fatal(err)
	}
	v = chainChannelView{}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.SettledState) != 1 || v.SettledState[0].Value != "0a0b" {
		t.Fatalf("initial state from contract run's format: %+v", v.SettledState)
	}
}

func TestChainCalls(t *testing.T) {
	addr := startTestChain(t)
	aliceKey, _ := newChainKeyFile(t, "alice")
	bobKey, _ := newChainKeyFile(t, "bob")
	as := func(key string, args ...string) (string, error) {
		return runChain(t, append(append([]string{"chain"}, args...), "--chain", addr, "--key", key)...)
	}
	out, err := as(aliceKey, "create-channel", "--contract", "chat")
	if err != nil {
		t.Fatal(err, out)
	}
	id := strings.TrimSpace(out)
	// The default minimum stake: joining without it is refused.
	if _, err := as(bobKey, "join", id); !errors.Is(err, contract.ErrInsufficientStake) {
		t.Fatalf("join without stake: %v", err)
	}
	for _, k := range []string{aliceKey, bobKey} {
		if out, err := as(k, "stake", id, strconv.Itoa(defaultMinStake)); err != nil {
			t.Fatal(err, out)
		}
		if out, err := as(k, "join", id); err != nil {
			t.Fatal(err, out)
		}
	}
	out, err = runChain(t, "chain", "show", id, "--chain", addr, "--chain-key", testChainKey.Address().String(), "--json")
	if err != nil {
		t.Fatal(err, out)
	}
	var v chainChannelView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if v.MinStake != defaultMinStake || v.Fine != defaultMinStake/defaultFineDivisor {
		t.Fatalf("defaults: min stake %d, fine %d", v.MinStake, v.Fine)
	}
	steps := []struct {
		key  string
		args []string
		want error
	}{
		{aliceKey, []string{"keep-alive", id}, nil},
		{aliceKey, []string{"vote", id, "1", "for"}, contract.ErrNoProposal},
		{aliceKey, []string{"execute", id, "1"}, contract.ErrNoProposal},
		{bobKey, []string{"leave", id}, nil},
		{bobKey, []string{"leave", id}, contract.ErrLeaving},
		{aliceKey, []string{"close", id}, nil},
		{aliceKey, []string{"keep-alive", id}, contract.ErrChannelClosed},
	}
	for _, s := range steps {
		_, err := as(s.key, s.args...)
		if (s.want == nil && err != nil) || (s.want != nil && !errors.Is(err, s.want)) {
			t.Fatalf("%v: %v, want %v", s.args, err, s.want)
		}
	}
	if _, err := as(aliceKey, "vote", id, "1", "maybe"); err == nil {
		t.Fatal("bad vote option accepted")
	}
}

// TestChainShowHistory: `scraft chain show` lists who led each epoch and
// the memberships that ended, as the chain keeps them.
func TestChainShowHistory(t *testing.T) {
	addr := startTestChain(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	as := func(k *protocol.Key) *devchain.Client {
		c, err := devchain.Dial(addr, k, devchain.WithChainKeys(testChainKey.Address()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	_, alice := newChainKeyFile(t, "alice")
	_, bob := newChainKeyFile(t, "bob")
	ca, cb := as(alice), as(bob)
	id, err := ca.CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("x"), Config: contract.ChannelConfig{MinStake: 100}})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*devchain.Client{ca, cb} {
		if err := c.Stake(ctx, id, 100); err != nil {
			t.Fatal(err)
		}
		if _, err := c.Join(ctx, id, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := ca.ClaimLeader(ctx, id, 0, nil); err != nil {
		t.Fatal(err)
	}
	// Bob leaves; the next settlement lets him go.
	if err := cb.Leave(ctx, id); err != nil {
		t.Fatal(err)
	}
	pid, err := ca.CreateProposal(ctx, id, protocol.ProposalSettlement, protocol.Marshal(&protocol.Settlement{From: 1, To: 3}))
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []*devchain.Client{ca, cb} {
		if err := c.Vote(ctx, id, pid, protocol.VoteFor); err != nil {
			t.Fatal(err)
		}
	}
	if err := ca.ExecuteProposal(ctx, id, pid); err != nil {
		t.Fatal(err)
	}

	out, err := runChain(t, "chain", "show", id.String(), "--chain", addr, "--chain-key", testChainKey.Address().String(), "--json")
	if err != nil {
		t.Fatal(err)
	}
	var v chainChannelView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(v.Epochs) != 2 || v.Epochs[0].Epoch != 0 || v.Epochs[0].Leader != nil ||
		v.Epochs[1].Epoch != 1 || v.Epochs[1].Leader == nil || *v.Epochs[1].Leader != alice.Address() || v.Epochs[1].Height == 0 {
		t.Fatalf("epochs: %+v", v.Epochs)
	}
	if len(v.Departures) != 1 || v.Departures[0].JoinSeq != 2 || v.Departures[0].Address != bob.Address() || v.Departures[0].Epoch != 1 {
		t.Fatalf("departures: %+v", v.Departures)
	}
	out, err = runChain(t, "chain", "show", id.String(), "--chain", addr, "--chain-key", testChainKey.Address().String())
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"epochs (2 shown)", "departures (1 shown)", bob.Address().String()} {
		if !strings.Contains(out, want) {
			t.Fatalf("show lacks %q:\n%s", want, out)
		}
	}
	out, err = runChain(t, "chain", "show", id.String(), "--chain", addr, "--chain-key", testChainKey.Address().String(), "--json", "--epochs", "1", "--departures", "0")
	if err != nil {
		t.Fatal(err)
	}
	v = chainChannelView{}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatal(err)
	}
	if len(v.Epochs) != 1 || v.Epochs[0].Epoch != 1 || len(v.Departures) != 0 {
		t.Fatalf("with limits: epochs %+v, departures %+v", v.Epochs, v.Departures)
	}
}

// chainPunishment returns a punish payload against target: a batch it
// signed in epoch at height whose claimed result differs from the honest one.
func chainPunishment(id protocol.ChannelID, target *protocol.Key, epoch, height uint64, reason string) []byte {
	honest := protocol.Result{Status: protocol.StatusOK, GasUsed: 5, ChangeSet: protocol.ChangeSet{}.Hash()}
	claimed := honest
	claimed.GasUsed = 6
	tx := protocol.SignTx(target, protocol.Tx{Channel: id, Nonce: height, Function: "chat::send"})
	b := &protocol.Batch{Channel: id, Epoch: epoch, FirstHeight: height, Entries: []protocol.Entry{{Kind: protocol.EntryCall, Call: tx}}, Results: []protocol.Result{claimed}}
	b.Sign(target)
	return protocol.Marshal(&protocol.Punish{Target: target.Address(), Height: height, Batch: b.Bytes(), Honest: honest, Reason: reason})
}

// TestChainShowAccountability: `scraft chain show` lists proposals with
// their state, votes, votes needed and deadline, and the complaints,
// punishments and bans among them.
func TestChainShowAccountability(t *testing.T) {
	addr := startTestChain(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	names := []string{"alice", "bob", "carol", "dave"}
	keys := map[string]*protocol.Key{}
	cl := map[string]*devchain.Client{}
	for _, n := range names {
		_, k := newChainKeyFile(t, n)
		c, err := devchain.Dial(addr, k, devchain.WithChainKeys(testChainKey.Address()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		keys[n], cl[n] = k, c
	}
	id, err := cl["alice"].CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("x"), Config: contract.ChannelConfig{MinStake: 100, Fine: 50}})
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range names {
		if err := cl[n].Stake(ctx, id, 100); err != nil {
			t.Fatal(err)
		}
		if _, err := cl[n].Join(ctx, id, false); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := cl["alice"].ClaimLeader(ctx, id, 0, nil); err != nil {
		t.Fatal(err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	// Case 1: bob reports alice, both others agree (2 of 3 would do): she is out, fined
	// and banned, bob leads in epoch 2.
	p1, err := cl["bob"].CreateProposal(ctx, id, protocol.ProposalPunish, chainPunishment(id, keys["alice"], 1, 3, "gas differs"))
	must(err)
	must(cl["carol"].Vote(ctx, id, p1, protocol.VoteFor))
	must(cl["dave"].Vote(ctx, id, p1, protocol.VoteFor))
	must(cl["dave"].ExecuteProposal(ctx, id, p1))
	// Case 2: carol reports bob, dave disagrees: failed.
	p2, err := cl["carol"].CreateProposal(ctx, id, protocol.ProposalPunish, chainPunishment(id, keys["bob"], 2, 9, "digest differs\x1b[2J"))
	must(err)
	must(cl["dave"].Vote(ctx, id, p2, protocol.VoteAgainst))
	// A complaint against bob, open.
	tx := protocol.SignTx(keys["dave"], protocol.Tx{Channel: id, Nonce: 1, Function: "chat::send"})
	p3, err := cl["dave"].CreateProposal(ctx, id, protocol.ProposalCensorship, protocol.Marshal(&protocol.Censorship{Accused: keys["bob"].Address(), Tx: *tx}))
	must(err)

	out, err := runChain(t, "chain", "show", id.String(), "--chain", addr, "--chain-key", testChainKey.Address().String(), "--json")
	if err != nil {
		t.Fatal(err, out)
	}
	var v chainChannelView
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("%v:\n%s", err, out)
	}
	if len(v.Proposals) != 3 {
		t.Fatalf("proposals %+v", v.Proposals)
	}
	for i, want := range []chainProposalView{
		{ID: p1, Kind: "punish", State: "executed", For: 3, Needed: 2, Voters: 3},
		{ID: p2, Kind: "punish", State: "failed", For: 1, Against: 1, Needed: 2, Voters: 2},
		{ID: p3, Kind: "censorship", State: "open"},
	} {
		got := v.Proposals[i]
		if got.ID != want.ID || got.Kind != want.Kind || got.State != want.State || got.For != want.For ||
			got.Against != want.Against || got.Needed != want.Needed || got.Voters != want.Voters || got.DeadlineMs == 0 {
			t.Fatalf("proposal %d: %+v, want %+v", i, got, want)
		}
	}
	if len(v.Punishments) != 2 || len(v.Complaints) != 1 || len(v.Bans) != 1 {
		t.Fatalf("punishments %+v complaints %+v bans %+v", v.Punishments, v.Complaints, v.Bans)
	}
	if pu := v.Punishments[0]; pu.Target != keys["alice"].Address() || pu.Reporter != keys["bob"].Address() || pu.Epoch != 1 ||
		pu.Height != 3 || pu.Fine != 50 || pu.BanUntilMs <= v.ChainTimeMs || pu.Reason != "gas differs" {
		t.Fatalf("punishment 1: %+v", pu)
	}
	if pu := v.Punishments[1]; pu.Target != keys["bob"].Address() || pu.State != "failed" || pu.Fine != 0 || pu.BanUntilMs != 0 {
		t.Fatalf("punishment 2: %+v", pu)
	}
	if b := v.Bans[0]; b.Address != keys["alice"].Address() || b.Proposal != p1 || b.UntilMs != v.Punishments[0].BanUntilMs {
		t.Fatalf("ban %+v", b)
	}
	if c := v.Complaints[0]; c.Accused != keys["bob"].Address() || c.Complainer != keys["dave"].Address() || c.Tx != tx.Hash().String() || c.State != "open" {
		t.Fatalf("complaint %+v", c)
	}

	out, err = runChain(t, "chain", "show", id.String(), "--chain", addr, "--chain-key", testChainKey.Address().String())
	if err != nil {
		t.Fatal(err, out)
	}
	for _, want := range []string{"NEEDED", "DEADLINE", "complaints (1)", "punishments (2)", "bans (1)",
		"gas differs", "digest differs?[2J", keys["alice"].Address().String()} {
		if !strings.Contains(out, want) {
			t.Fatalf("show lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "\x1b") {
		t.Fatal("show printed a reporter's escape sequence")
	}
}
