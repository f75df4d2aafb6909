package meter

import "testing"

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
	lo, hi := 1, 1<<16 // lo fits, hi does not
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
