package meter

import "testing"

// TestGasV1Golden pins the gas of calls under CostTableV1. These figures are
// part of version 1: a change to the rewrite that alters any of them needs a
// new cost table version, not an edit here.
func TestGasV1Golden(t *testing.T) {
	golden := []struct {
		file, fn string
		arg      uint64
		gas      int64
	}{
		{"loop.wasm", "sum", 0, 8},
		{"loop.wasm", "sum", 3, 47},
		{"recurse.wasm", "depth", 0, 6},
		{"recurse.wasm", "depth", 3, 51},
		{"recurse.wasm", "indirect", 0, 6},
		{"recurse.wasm", "indirect", 3, 63},
		{"memory.wasm", "copy", 0, 15},
		{"memory.wasm", "copy", 3, 18},
		{"memory.wasm", "drop", 0, 7},
		{"memory.wasm", "drop", 3, 7},
		{"memory.wasm", "fill", 0, 15},
		{"memory.wasm", "fill", 3, 18},
		{"memory.wasm", "grow", 0, 7},
		{"memory.wasm", "grow", 3, 24643},
		{"memory.wasm", "grow_by", 0, 12},
		{"memory.wasm", "grow_by", 3, 24588},
		{"memory.wasm", "init", 0, 15},
		{"memory.wasm", "init", 3, 18},
		{"features.wasm", "brtable", 0, 7},
		{"features.wasm", "brtable", 3, 7},
		{"features.wasm", "globals", 0, 6},
		{"features.wasm", "globals", 3, 6},
		{"features.wasm", "host", 0, 7},
		{"features.wasm", "host", 3, 7},
		{"features.wasm", "i32ops", 0, 15},
		{"features.wasm", "i32ops", 3, 15},
		{"features.wasm", "i64ops", 0, 22},
		{"features.wasm", "i64ops", 3, 22},
		{"features.wasm", "ifelse", 0, 17},
		{"features.wasm", "ifelse", 3, 12},
		{"features.wasm", "indirect", 0, 17},
		{"features.wasm", "indirect", 3, 17},
		{"features.wasm", "loop_params", 0, 354},
		{"features.wasm", "loop_params", 3, 333},
		{"features.wasm", "memops", 0, 27},
		{"features.wasm", "memops", 3, 27},
		{"features.wasm", "multivalue", 0, 26},
		{"features.wasm", "multivalue", 3, 26},
		{"features.wasm", "refs", 0, 10},
		{"features.wasm", "refs", 3, 10},
		{"features.wasm", "select", 0, 11},
		{"features.wasm", "select", 3, 11},
		{"features.wasm", "signext", 0, 9},
		{"features.wasm", "signext", 3, 9},
		{"features.wasm", "tables", 0, 93},
		{"features.wasm", "tables", 3, 93},
		{"features.wasm", "trap", 0, 5},
		{"features.wasm", "trap", 3, 3},
	}
	for _, e := range engines {
		r := newRuntime(t, e)
		outs := map[string][]byte{}
		for _, g := range golden {
			out, ok := outs[g.file]
			if !ok {
				out = mustInstrument(t, readTestdata(t, g.file), DefaultConfig())
				outs[g.file] = out
			}
			o := instantiate(t, r, out).call(t, g.fn, plenty, g.arg)
			if used := plenty - o.gasLeft; used != g.gas {
				t.Errorf("%s %s %s(%d): gas %d, want %d", e.name, g.file, g.fn, g.arg, used, g.gas)
			}
		}
	}
}
