package meter

import "testing"

// bigFrameModule has f(n): keeps live values in locals or on the operand
// stack across a recursive call f(n-1), so that every compiled frame is
// about as large as MaxFrameSlots allows.
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

// TestLargestFramesReachOurLimit: with frames at MaxFrameSlots, the deepest
// legal recursion fits the engines' stacks, and the next call hits our
// depth trap, not an engine's stack overflow.
func TestLargestFramesReachOurLimit(t *testing.T) {
	if testing.Short() {
		t.Skip("compiles very large functions")
	}
	cfg := DefaultConfig()
	values := int(cfg.MaxFrameSlots) - 8
	for _, onStack := range []bool{false, true} {
		wasm := bigFrameModule(values, onStack)
		out := mustInstrument(t, wasm, cfg)
		if _, err := Instrument(bigFrameModule(values+8, onStack), cfg); err == nil {
			t.Fatal("frame above MaxFrameSlots accepted")
		}
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
