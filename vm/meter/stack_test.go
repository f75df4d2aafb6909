package meter

import (
	"math/rand"
	"testing"
)

// bigFrameModule has f(n): keeps live values in locals or on the operand
// stack across a recursive call f(n-1), so that every compiled frame is
// as large as the values make it.
func bigFrameModule(values int, onStack bool) []byte {
	var e []byte
	if onStack {
		for k := 0; k < values; k++ {
			e = append(e, opLocalGet, 0)
			e = append(e, i32c(int32(k))...)
			e = append(e, opI32Add)
		}
	} else {
		for k := 0; k < values; k++ {
			e = append(e, opLocalGet, 0)
			e = append(e, i32c(int32(k))...)
			e = append(e, opI32Add, opLocalSet)
			e = append(e, u32(uint32(k+1))...)
		}
	}
	// n == 0 ? 0 : f(n-1)
	e = append(e, opLocalGet, 0, 0x45, opIf, valI32)
	e = append(e, i32c(0)...)
	e = append(e, opElse, opLocalGet, 0)
	e = append(e, i32c(1)...)
	e = append(e, opI32Sub, opCall, 0, opEnd)
	for k := 0; k < values; k++ {
		if !onStack {
			e = append(e, opLocalGet)
			e = append(e, u32(uint32(k+1))...)
		}
		e = append(e, opI32Add)
	}
	e = append(e, opEnd)
	var locals [][2]uint32
	if !onStack {
		locals = [][2]uint32{{uint32(values), valI32}}
	}
	return simpleModule(locals, e)
}

// largestBigFrame returns the most values bigFrameModule may keep under
// cfg's frame limit.
func largestBigFrame(t *testing.T, cfg Config, onStack bool) int {
	lo, hi := 1, 1<<12 // lo fits, hi does not
	if _, err := Instrument(bigFrameModule(lo, onStack), cfg); err != nil {
		t.Fatal(err)
	}
	for hi-lo > 1 {
		mid := (lo + hi) / 2
		if _, err := Instrument(bigFrameModule(mid, onStack), cfg); err == nil {
			lo = mid
		} else {
			hi = mid
		}
	}
	return lo
}

// TestLargestFramesReachOurLimit: with frames as large as MaxFrameBytes
// allows, the deepest legal recursion fits the engines' stacks, and the
// next call hits our depth trap, not an engine's stack overflow.
func TestLargestFramesReachOurLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles large functions")
	}
	cfg := DefaultConfig()
	for _, onStack := range []bool{false, true} {
		values := largestBigFrame(t, cfg, onStack)
		out := mustInstrument(t, bigFrameModule(values, onStack), cfg)
		for _, e := range engines {
			in := instantiate(t, newRuntime(t, e), out)
			max := uint64(cfg.MaxCallDepth)
			if o := in.call(t, "f", plenty, max); o.trapped {
				t.Fatalf("onStack=%v %s: f(%d) trapped (depth %d, gas %d)", onStack, e.name, max, o.depth, o.gasLeft)
			}
			if o := in.call(t, "f", plenty, max+1); !o.trapped || o.depth != cfg.MaxCallDepth+1 {
				t.Fatalf("onStack=%v %s: f(%d): %+v, want the depth trap", onStack, e.name, max+1, o)
			}
		}
	}
}

// TestDepthTrapIgnoresHistory: on the compiler, a call's outcome (result
// or depth trap, gas left) on one instance does not depend on the calls
// it ran before, traps included, even with frames as large as the default
// MaxFrameBytes allows: wazero's stack, grown by earlier calls, is never
// what stops the recursion.
func TestDepthTrapIgnoresHistory(t *testing.T) {
	cfg := DefaultConfig()
	max := int(cfg.MaxCallDepth)
	trials := 300
	if testing.Short() {
		trials = 60
	}
	for _, onStack := range []bool{false, true} {
		wasm := mustInstrument(t, bigFrameModule(largestBigFrame(t, cfg, onStack), onStack), cfg)
		r := newRuntime(t, engines[0])
		fresh := map[int]outcome{}
		outcomeOf := func(n int) outcome {
			if o, ok := fresh[n]; ok {
				return o
			}
			o := instantiate(t, r, wasm).call(t, "f", plenty, uint64(n))
			fresh[n] = o
			return o
		}
		in := instantiate(t, r, wasm)
		rng := rand.New(rand.NewSource(11))
		for i := 0; i < trials; i++ {
			n := max - 8 + rng.Intn(16)
			if rng.Intn(4) == 0 {
				n = rng.Intn(max + 64)
			}
			if got, want := in.call(t, "f", plenty, uint64(n)), outcomeOf(n); got != want {
				t.Fatalf("onStack=%v call %d: f(%d) = %+v on a used instance, %+v on a fresh one", onStack, i, n, got, want)
			}
		}
		if o := outcomeOf(max); o.trapped {
			t.Fatalf("onStack=%v: f(%d) trapped: %+v", onStack, max, o)
		}
		if o := outcomeOf(max + 1); !o.trapped || o.depth != cfg.MaxCallDepth+1 {
			t.Fatalf("onStack=%v: f(%d) = %+v, want the depth trap", onStack, max+1, o)
		}
	}
}
