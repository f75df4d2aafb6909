package vm

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"sync"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// freshCall runs c on a new instance: the pool is emptied first.
func freshCall(m *Module, s Store, c Call) Result {
	m.mu.Lock()
	idle := m.idle
	m.idle = nil
	m.mu.Unlock()
	for _, in := range idle {
		in.close()
	}
	return m.Call(context.Background(), s, c)
}

// determinismCalls is a mix of calls of abi.wasm ending every way.
func determinismCalls() []Call {
	a, b := addr(1), addr(2)
	scripts := [][]byte{
		new(script).put(a, "d::R", []byte("new")).get(b, "d::R", scratch, 64).op(opOutput, scratch, 2).bytes(),
		new(script).del(b, "d::R").emit("d::E", []byte("event")).op(opHeight).op(opTimestamp).flush().bytes(),
		new(script).put(b, "d::R", []byte("v2")).op(opSender, scratch).op(opOutput, scratch, 16).bytes(),
		new(script).put(a, "d::R", []byte("gone")).abort(77, "changed my mind").bytes(),
		new(script).op(opResGet, 0xffffff00, 0, 4, 0, 0).bytes(),
	}
	var calls []Call
	add := func(fn string, args []byte, gas uint64) {
		calls = append(calls, Call{Function: fn, Args: args, Sender: addr(byte(len(calls))),
			Height: uint64(100 + len(calls)), TimestampMs: uint64(5000 + len(calls)), Gas: gas})
	}
	for _, s := range scripts {
		add("run", s, testGas)
	}
	add("count", nil, testGas)
	add("echo", []byte("determinism"), testGas)
	add("echo", nil, testGas)
	add("fail", nil, testGas)
	add("ret7", nil, testGas)
	add("trap", nil, testGas)
	add("loop", nil, 50_000)
	add("recurse", nil, testGas)
	add("grow", nil, testGas)
	add("grow1", nil, testGas)
	add("spin", u32le(1000), testGas)
	add("spin", u32le(1000), 500) // runs out in the loop
	add("count", nil, testGas)
	add("nope", nil, testGas)
	return calls
}

func determinismStore() mapStore {
	return mapStore{{Account: addr(2), Type: "d::R"}: []byte("v2")}
}

func TestDeterminism(t *testing.T) {
	calls := determinismCalls()
	store := determinismStore()
	cacheDir := t.TempDir()
	cfg := Config{MemoryLimitPages: 16, CompilationCacheDir: cacheDir}

	e1 := newTestEngine(t, cfg)
	m1 := deployTestdata(t, e1, "abi")
	want := make([][]byte, len(calls))
	for i, c := range calls {
		want[i] = resultBytes(freshCall(m1, store, c))
	}
	check := func(t *testing.T, i int, r Result) {
		t.Helper()
		if got := resultBytes(r); !bytes.Equal(got, want[i]) {
			t.Errorf("call %d (%s): result differs from a fresh instance's:\n got %+v", i, calls[i].Function, r)
		}
	}

	t.Run("reused instance", func(t *testing.T) {
		for round := 0; round < 3; round++ {
			for i, c := range calls {
				check(t, i, m1.Call(context.Background(), store, c))
			}
		}
	})
	for _, workers := range []int{1, 4} {
		t.Run(fmt.Sprintf("%d workers", workers), func(t *testing.T) {
			var wg sync.WaitGroup
			for w := 0; w < workers; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for k := range calls {
						i := (k + w*3) % len(calls)
						if got := resultBytes(m1.Call(context.Background(), store, calls[i])); !bytes.Equal(got, want[i]) {
							t.Errorf("worker %d call %d (%s) differs", w, i, calls[i].Function)
						}
					}
				}()
			}
			wg.Wait()
		})
	}
	t.Run("new engine with warm disk cache", func(t *testing.T) {
		if ents, err := os.ReadDir(cacheDir); err != nil || len(ents) == 0 {
			t.Fatalf("compilation cache is empty: %v", err)
		}
		e2 := newTestEngine(t, cfg) // shares cacheDir with e1
		m2 := deployTestdata(t, e2, "abi")
		for i, c := range calls {
			check(t, i, freshCall(m2, store, c))
			check(t, i, m2.Call(context.Background(), store, c))
		}
	})
}

func TestChatDeterminism(t *testing.T) {
	steps := []struct {
		sender    int
		fn, input string
	}{
		{1, "init", "{}"},
		{1, "join", `{"nick":"alice"}`},
		{2, "join", `{"nick":"bob"}`},
		{1, "send", `{"text":"hello"}`},
		{3, "send", `{"text":"not a member"}`},
		{2, "send", `{"text":"hi alice"}`},
		{2, "rename", `{"name":"room"}`},
		{1, "history", `{"from":0,"limit":10}`},
		{2, "leave", "{}"},
	}
	run := func(t *testing.T, e *Engine, fresh bool) [][]byte {
		ch := newChannel(t, e, "chat")
		var out [][]byte
		for _, s := range steps {
			ch.height++
			c := Call{Function: s.fn, Args: ch.args(s.fn, s.input), Sender: player(s.sender),
				Height: ch.height, TimestampMs: 1000 * ch.height, Gas: 10_000_000}
			var r Result
			if fresh {
				r = freshCall(ch.m, mapStore(ch.state), c)
			} else {
				r = ch.m.Call(context.Background(), mapStore(ch.state), c)
			}
			if r.Status == protocol.StatusOK {
				if err := ch.state.Apply(r.ChangeSet); err != nil {
					t.Fatal(err)
				}
			}
			out = append(out, resultBytes(r))
		}
		return out
	}
	a := run(t, newTestEngine(t, Config{}), true)
	b := run(t, newTestEngine(t, Config{MaxIdleInstances: 1}), false)
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			t.Errorf("step %d (%s): fresh and reused instances differ", i, steps[i].fn)
		}
	}
}
