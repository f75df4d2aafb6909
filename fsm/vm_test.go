package fsm

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
	"time"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/vm"
)

// A deployed vm.Module is an Executor as it is.
var _ Executor = (*vm.Module)(nil)

func deployChat(t testing.TB) (*vm.Module, *contracts.Contract) {
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
	return mod, c
}

// chatGenesis returns a chat channel of members whose genesis state is what
// init leaves, as the chain would hold it.
func chatGenesis(t testing.TB, x *vm.Module, keys ...*protocol.Key) Config {
	cfg := testConfig(keys...)
	cfg.Contract = "chat"
	cfg.GasLimit = 10_000_000
	initRes := x.Execute(protocol.Call{Function: "init", Gas: cfg.GasLimit}, &view{base: &state{}, top: newLayer(meta{})})
	if initRes.Status != protocol.StatusOK {
		t.Fatalf("init: %s %s", initRes.Status, initRes.Message)
	}
	cfg.Genesis.State = protocol.State{}
	if err := cfg.Genesis.State.Apply(initRes.ChangeSet); err != nil {
		t.Fatal(err)
	}
	return cfg
}

func chatCall(t testing.TB, chat *contracts.Contract, k *protocol.Key, nonce uint64, fn, args string) protocol.Entry {
	enc, err := chat.EncodeArgs(fn, []byte(args))
	if err != nil {
		t.Fatal(err)
	}
	tx := protocol.SignTx(k, protocol.Tx{Channel: testChannel, Nonce: nonce, Function: "chat::" + fn, Args: enc})
	return protocol.Entry{Kind: protocol.EntryCall, Call: tx}
}

// BenchmarkApplyChat is BenchmarkApply with the real chat contract: a
// follower applies batches of 256 "send" calls from 16 members.
func BenchmarkApplyChat(b *testing.B) {
	x, chat := deployChat(b)
	keys := benchKeys(b)
	cfg := chatGenesis(b, x, keys...)
	leader, err := New(cfg, x)
	if err != nil {
		b.Fatal(err)
	}
	fx, _ := deployChat(b)
	follower, err := New(cfg, fx)
	if err != nil {
		b.Fatal(err)
	}
	var joins []protocol.Entry
	for i, k := range keys {
		joins = append(joins, chatCall(b, chat, k, 1, "join", fmt.Sprintf(`{"nick":"m%d"}`, i)))
	}
	batch, _, err := leader.Propose(joins, 1, keys[0], 1)
	if err != nil {
		b.Fatal(err)
	}
	mustApply(b, leader, batch)
	mustApply(b, follower, batch)
	per := benchTxs / len(keys)
	var spent, spentCPU, spentExec time.Duration
	for i := range b.N {
		b.StopTimer()
		entries := make([]protocol.Entry, 0, benchTxs)
		for j := 0; j < per; j++ {
			for _, k := range keys {
				entries = append(entries, chatCall(b, chat, k, uint64(2+i*per+j), "send", `{"text":"hello, channel"}`))
			}
		}
		batch, _, err := leader.Propose(entries, 1, keys[0], uint64(2+i))
		if err != nil {
			b.Fatal(err)
		}
		mustApply(b, leader, batch)
		batch = roundTrip(b, batch)
		// Execution alone, on a throwaway layer.
		cpu := testutil.CPUTime()
		v := &view{base: follower.st, top: newLayer(follower.st.meta)}
		outs, _ := follower.run(v, batch.Entries, batch.FirstHeight, batch.TimestampMs, nil)
		spentExec += testutil.CPUTime() - cpu
		if outs[0].Result.Status != protocol.StatusOK {
			b.Fatal(outs[0].Message)
		}
		b.StartTimer()
		start, cpu := time.Now(), testutil.CPUTime()
		a, err := follower.Apply(batch, nil)
		spent += time.Since(start)
		spentCPU += testutil.CPUTime() - cpu
		if err != nil || a.Faults != 0 {
			b.Fatalf("apply: %v", err)
		}
	}
	perTx(b, spent)
	cpuPerTx(b, spentCPU)
	b.ReportMetric(float64(spentExec.Nanoseconds())/float64(b.N*benchTxs), "exec-cpu-ns/tx")
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

	cfg := chatGenesis(t, lx, alice, bob)
	leader, err := New(cfg, lx)
	if err != nil {
		t.Fatal(err)
	}
	follower, err := New(cfg, fx)
	if err != nil {
		t.Fatal(err)
	}
	tx := func(k *protocol.Key, nonce uint64, fn, args string) protocol.Entry {
		return chatCall(t, chat, k, nonce, fn, args)
	}
	steps := [][]protocol.Entry{
		{tx(alice, 1, "join", `{"nick":"alice"}`), tx(bob, 1, "join", `{"nick":"bob"}`)},
		{tx(alice, 2, "send", `{"text":"hello"}`), tx(bob, 2, "send", `{"text":""}`), tx(bob, 3, "send", `{"text":"hi alice"}`)},
		{tx(alice, 3, "history", `{"from":0,"limit":10}`), tx(bob, 4, "leave", `{}`)},
	}
	var outs []protocol.Outcome
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
