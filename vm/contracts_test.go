package vm

import (
	"context"
	"encoding/binary"
	"fmt"
	"testing"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/protocol"
)

// channel runs calls of one contract in order over a state, applying each
// successful call's change set: a stand-in for package fsm.
type channel struct {
	t      testing.TB
	m      *Module
	c      *contracts.Contract
	state  protocol.State
	height uint64
}

func newChannel(t testing.TB, e *Engine, name string) *channel {
	t.Helper()
	c, err := contracts.Get(name)
	if err != nil {
		t.Fatal(err)
	}
	m, err := e.Deploy(context.Background(), c.Wasm)
	if err != nil {
		t.Fatalf("deploy %s: %v", name, err)
	}
	return &channel{t: t, m: m, c: c, state: protocol.State{}}
}

func (ch *channel) args(fn, jsonArgs string) []byte {
	ch.t.Helper()
	b, err := ch.c.EncodeArgs(fn, []byte(jsonArgs))
	if err != nil {
		ch.t.Fatalf("encode %s(%s): %v", fn, jsonArgs, err)
	}
	return b
}

func (ch *channel) call(sender protocol.Address, fn, jsonArgs string) Result {
	ch.t.Helper()
	ch.height++
	r := ch.m.Call(context.Background(), mapStore(ch.state), Call{
		Function: fn, Args: ch.args(fn, jsonArgs), Sender: sender,
		Height: ch.height, TimestampMs: 1_700_000_000_000 + ch.height, Gas: 100_000_000,
	})
	if r.Status == protocol.StatusOK {
		if err := ch.state.Apply(r.ChangeSet); err != nil {
			ch.t.Fatalf("apply %s: %v", fn, err)
		}
	}
	return r
}

func (ch *channel) mustCall(sender protocol.Address, fn, jsonArgs string) Result {
	ch.t.Helper()
	r := ch.call(sender, fn, jsonArgs)
	if r.Status != protocol.StatusOK {
		ch.t.Fatalf("%s(%s): %s %d %s", fn, jsonArgs, r.Status, r.AbortCode, r.Message)
	}
	return r
}

func player(i int) protocol.Address {
	var a protocol.Address
	a[0] = 0xaa
	binary.BigEndian.PutUint32(a[12:], uint32(i))
	return a
}

func TestChatContract(t *testing.T) {
	e := newTestEngine(t, Config{})
	ch := newChannel(t, e, "chat")
	alice, bob := player(1), player(2)
	ch.mustCall(alice, "init", "{}")
	ch.mustCall(alice, "join", `{"nick":"alice"}`)
	ch.mustCall(bob, "join", `{"nick":"bob"}`)
	r := ch.mustCall(alice, "send", `{"text":"hello"}`)
	if r.ChangeSet.Len() == 0 || len(r.Events) == 0 || len(r.Output) != 8 {
		t.Fatalf("send: %d changes, %d events, output %x", r.ChangeSet.Len(), len(r.Events), r.Output)
	}
	out, err := ch.c.DecodeOutput("send", r.Output)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("send output %s, gas %d", out, r.GasUsed)
	if r := ch.call(player(9), "send", `{"text":"intruder"}`); r.Status != protocol.StatusAbort || r.AbortCode != 102 {
		t.Fatalf("non-member send: %s %d %s", r.Status, r.AbortCode, r.Message)
	}
	r = ch.mustCall(bob, "history", `{"from":0,"limit":10}`)
	if _, err := ch.c.DecodeOutput("history", r.Output); err != nil {
		t.Fatal(err)
	}
}

func TestMovecraftTick(t *testing.T) {
	if testing.Short() {
		t.Skip("movecraft world setup is slow under -short")
	}
	e := newTestEngine(t, Config{})
	ch := newChannel(t, e, "movecraft")
	ch.mustCall(player(0), "init", "{}")
	for i := 1; i <= 100; i++ {
		ch.mustCall(player(i), "join", fmt.Sprintf(`{"name":"p%d"}`, i))
		ch.mustCall(player(i), "move", fmt.Sprintf(`{"x":%d,"y":%d,"z":20}`, i, 127-i))
	}
	r := ch.mustCall(player(0), "on_tick", "{}")
	if r.ChangeSet.Len() == 0 {
		t.Fatal("tick changed nothing")
	}
	t.Logf("on_tick with 100 players: %d changes, gas %d", r.ChangeSet.Len(), r.GasUsed)
}

// TestMovecraftFullWorldTick: a world at the contract's cap of 768
// players, all walking, ticks within the default gas limit of an entry
// function and the default bound on resources written, with room left in
// it for every chunk of the land (falling sand and crops).
func TestMovecraftFullWorldTick(t *testing.T) {
	if testing.Short() {
		t.Skip("movecraft world setup is slow under -short")
	}
	const players, chunks = 768, 8 * 8 * 2
	ch := walkingWorld(t, players)
	if r := ch.call(player(players+1), "join", `{"name":"late"}`); r.Status != protocol.StatusAbort || r.AbortCode != 109 {
		t.Fatalf("join past the cap: %s %d %s", r.Status, r.AbortCode, r.Message)
	}
	ch.height++
	r := ch.m.Call(context.Background(), mapStore(ch.state), Call{Function: "on_tick", Args: ch.args("on_tick", "{}"),
		Sender: player(0), Height: ch.height, TimestampMs: 1, Gas: protocol.DefaultGasLimit})
	if r.Status != protocol.StatusOK {
		t.Fatalf("on_tick: %s %s", r.Status, r.Message)
	}
	// Every position moved; the schedule is written too (unchanged here,
	// as nobody arrived, so not in the change set).
	if n := r.ChangeSet.Len(); n < players || players+1+chunks > DefaultConfig().MaxWrites {
		t.Fatalf("on_tick changed %d resources; %d players, the schedule and %d chunks against a bound of %d", n, players, chunks, DefaultConfig().MaxWrites)
	}
	t.Logf("on_tick with %d players: %d changes, gas %d of %d", players, r.ChangeSet.Len(), r.GasUsed, protocol.DefaultGasLimit)
}
