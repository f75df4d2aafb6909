package fsm

import (
	"context"
	"encoding/json"
	"testing"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/vm"
)

// vmExecutor is the adapter package cluster uses: a deployed vm.Module as an
// Executor.
type vmExecutor struct{ mod *vm.Module }

func (x vmExecutor) Has(fn string) bool { return x.mod.Has(fn) }

func (x vmExecutor) Execute(c Call, st StateReader) ExecResult {
	r := x.mod.Call(context.Background(), st, vm.Call(c))
	return ExecResult(r)
}

func deployChat(t *testing.T) (vmExecutor, *contracts.Contract) {
	t.Helper()
	ctx := context.Background()
	eng, err := vm.NewEngine(ctx, vm.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { eng.Close(ctx) })
	c, err := contracts.Get("chat")
	if err != nil {
		t.Fatal(err)
	}
	mod, err := eng.Deploy(ctx, c.Wasm)
	if err != nil {
		t.Fatal(err)
	}
	return vmExecutor{mod}, c
}

// TestChatThroughVM runs the real chat contract: a leader proposes, a
// follower with its own engine re-executes, and both agree byte for byte.
func TestChatThroughVM(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles a contract")
	}
	alice, bob := testKey(t, 0), testKey(t, 1)
	lx, chat := deployChat(t)
	fx, _ := deployChat(t)

	// Genesis: the state init leaves, as the chain would hold it.
	cfg := testConfig(alice, bob)
	cfg.Contract = "chat"
	cfg.GasLimit = 10_000_000
	initRes := lx.Execute(Call{Function: "init", Gas: cfg.GasLimit}, &view{base: &state{}, top: newLayer(meta{})})
	if initRes.Status != protocol.StatusOK {
		t.Fatalf("init: %s %s", initRes.Status, initRes.Message)
	}
	cfg.Genesis.State = protocol.State{}
	if err := cfg.Genesis.State.Apply(initRes.ChangeSet); err != nil {
		t.Fatal(err)
	}

	leader, err := New(cfg, lx)
	if err != nil {
		t.Fatal(err)
	}
	follower, err := New(cfg, fx)
	if err != nil {
		t.Fatal(err)
	}
	chatCall := func(k *protocol.Key, nonce uint64, fn, args string) protocol.Entry {
		enc, err := chat.EncodeArgs(fn, []byte(args))
		if err != nil {
			t.Fatal(err)
		}
		tx := protocol.SignTx(k, protocol.Tx{Channel: testChannel, Nonce: nonce, Function: "chat::" + fn, Args: enc})
		return protocol.Entry{Kind: protocol.EntryCall, Call: tx}
	}
	steps := [][]protocol.Entry{
		{chatCall(alice, 1, "join", `{"nick":"alice"}`), chatCall(bob, 1, "join", `{"nick":"bob"}`)},
		{chatCall(alice, 2, "send", `{"text":"hello"}`), chatCall(bob, 2, "send", `{"text":""}`), chatCall(bob, 3, "send", `{"text":"hi alice"}`)},
		{chatCall(alice, 3, "history", `{"from":0,"limit":10}`), chatCall(bob, 4, "leave", `{}`)},
	}
	var outs []Outcome
	for i, s := range steps {
		b, _, err := leader.Propose(s, 1, alice, uint64(1000+i))
		if err != nil {
			t.Fatal(err)
		}
		fa := mustApply(t, follower, roundTrip(t, b))
		la := mustApply(t, leader, roundTrip(t, b))
		if !la.Reused || fa.Faults != 0 || fa.Digest != la.Digest {
			t.Fatalf("step %d: reused=%v faults=%d", i, la.Reused, fa.Faults)
		}
		outs = append(outs, fa.Outcomes...)
	}
	requireSameState(t, leader, follower)

	want := []protocol.Status{0, 0, 0, protocol.StatusAbort, 0, 0, 0}
	for i, o := range outs {
		if o.Result.Status != want[i] {
			t.Fatalf("entry %d: %s (%s), want %s", i, o.Result.Status, o.Message, want[i])
		}
	}
	if id, _ := chat.DecodeOutput("send", outs[4].Output); string(id) != "1" {
		t.Fatalf("second message id %s", id)
	}
	hist, err := chat.DecodeOutput("history", outs[5].Output)
	if err != nil {
		t.Fatal(err)
	}
	var msgs []struct {
		Text   string `json:"text"`
		Height uint64 `json:"height"`
	}
	if err := json.Unmarshal(hist, &msgs); err != nil || len(msgs) != 2 || msgs[0].Text != "hello" || msgs[0].Height != 3 {
		t.Fatalf("history %s", hist)
	}
	last := outs[6].Events[len(outs[6].Events)-1]
	if last.Type != protocol.EventLeave {
		t.Fatalf("leave events %v", outs[6].Events)
	}
	// The journal merges to the diff from genesis.
	net, err := follower.NetChangeSet(1, follower.Height())
	if err != nil || !net.Equal(protocol.Diff(cfg.Genesis.State, follower.Resources())) {
		t.Fatalf("net change set: %v", err)
	}
}
