package vm

import (
	"context"
	"errors"
	"fmt"
	"math/rand"
	"testing"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/vm/meter"
)

// stackCall is a call of stack.wasm: entry fn recursing n levels deep.
type stackCall struct {
	fn string
	n  int
}

func (c stackCall) call() Call {
	return Call{Function: c.fn, Args: make([]byte, c.n), Gas: testGas}
}

func (c stackCall) String() string { return fmt.Sprintf("%s(%d)", c.fn, c.n) }

// stackCalls are the deepest legal call and the first one past the limit
// of every shape of stack.wasm.
func stackCalls(depth int) []stackCall {
	var calls []stackCall
	for i, fn := range []string{"small", "mutual", "indirect", "wide"} {
		// The entry is depth 0 and calls the recursion, so n levels below
		// it reach depth n + 1.
		calls = append(calls, stackCall{fn, depth - 1}, stackCall{fn, depth},
			stackCall{"mix", 4*(depth-1) + i}, stackCall{"mix", 4*depth + i})
	}
	return append(calls, stackCall{"forever", 0})
}

// TestStackLimit: deep recursion of small frames, large frames, mutual
// recursion and recursion through call_indirect ends with stack_limit at
// MaxCallDepth, never with a trap of the engine.
func TestStackLimit(t *testing.T) {
	for _, depth := range []uint32{1024, meter.MaxCallDepthLimit} {
		e := newTestEngine(t, Config{MaxCallDepth: depth})
		m := deployTestdata(t, e, "stack")
		for _, c := range stackCalls(int(depth)) {
			t.Run(fmt.Sprintf("depth %d/%s", depth, c), func(t *testing.T) {
				r := m.Call(context.Background(), nil, c.call())
				if c.fn != "forever" && (c.n < int(depth) || c.fn == "mix" && c.n < 4*int(depth)) {
					if r.Status != protocol.StatusOK {
						t.Fatalf("status %s (%s), want ok", r.Status, r.Message)
					}
					return
				}
				want := fmt.Sprintf("call depth exceeded %d", depth)
				if r.Status != protocol.StatusStackLimit || r.Message != want {
					t.Fatalf("status %s (%s), want stack_limit (%s)", r.Status, r.Message, want)
				}
				if r.Output != nil || len(r.ChangeSet.Changes) != 0 {
					t.Fatalf("stack_limit kept output %q or changes %v", r.Output, r.ChangeSet)
				}
			})
		}
	}
}

// TestStackLimitIgnoresHistory: a call gives the same Result (status, gas,
// output) on a fresh instance and after any history of calls on the same
// instance, including ones that grew the engine's native stack as far as
// the limit lets them.
func TestStackLimitIgnoresHistory(t *testing.T) {
	const depth = 1024
	cfg := Config{MaxCallDepth: depth, MaxIdleInstances: 1}
	targets := stackCalls(depth)
	fresh := make([][]byte, len(targets))
	for i, c := range targets {
		e := newTestEngine(t, cfg)
		fresh[i] = resultBytes(deployTestdata(t, e, "stack").Call(context.Background(), nil, c.call()))
	}

	e := newTestEngine(t, cfg)
	m := deployTestdata(t, e, "stack")
	rng := rand.New(rand.NewSource(7))
	history := []string{"small", "mutual", "indirect", "wide", "mix", "mix", "mix", "forever", "fail"}
	trials := 200
	if testing.Short() {
		trials = 40
	}
	for trial := 0; trial < trials; trial++ {
		var past []stackCall
		for k := rng.Intn(6); k > 0; k-- {
			c := stackCall{history[rng.Intn(len(history))], rng.Intn(depth + 64)}
			if c.fn == "mix" {
				c.n = rng.Intn(4 * (depth + 16))
			}
			m.Call(context.Background(), nil, c.call())
			past = append(past, c)
		}
		i := rng.Intn(len(targets))
		got := resultBytes(m.Call(context.Background(), nil, targets[i].call()))
		if string(got) != string(fresh[i]) {
			t.Fatalf("%s after %v differs from a fresh instance", targets[i], past)
		}
	}
}

// TestStackFrameBound: a module whose functions' native frames may not
// fit MaxFrameBytes is refused at deploy, saying which function and why.
func TestStackFrameBound(t *testing.T) {
	e := newTestEngine(t, Config{Meter: meter.Config{MaxFrameBytes: 4096}})
	_, err := e.Deploy(context.Background(), testdata(t, "stack"))
	var de *DeployError
	if !errors.As(err, &de) || !errors.Is(err, meter.ErrTooLarge) || de.Status != protocol.StatusInvalidModule {
		t.Fatalf("got %v, want an invalid_module DeployError wrapping meter.ErrTooLarge", err)
	}
	t.Log(err)
}
