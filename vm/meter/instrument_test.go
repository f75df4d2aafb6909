package meter

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero/api"
)

const plenty = int64(1) << 40

var validModules = []string{"loop.wasm", "recurse.wasm", "memory.wasm", "features.wasm", "empty.wasm"}

func TestOutputValidates(t *testing.T) {
	for _, name := range validModules {
		for _, e := range engines {
			t.Run(name+"/"+e.name, func(t *testing.T) {
				out := mustInstrument(t, readTestdata(t, name), DefaultConfig())
				r := newRuntime(t, e)
				if _, err := r.CompileModule(context.Background(), out); err != nil {
					t.Fatalf("instrumented module does not validate: %v", err)
				}
				in := instantiate(t, r, out)
				if in.gas == nil || in.depth == nil {
					t.Fatal("gas or depth global not exported")
				}
			})
		}
	}
}

func TestInstrumentIsDeterministic(t *testing.T) {
	for _, name := range validModules {
		wasm := readTestdata(t, name)
		a := mustInstrument(t, wasm, DefaultConfig())
		b := mustInstrument(t, wasm, DefaultConfig())
		if !bytes.Equal(a, b) {
			t.Fatalf("%s: two runs differ", name)
		}
	}
}

func TestInfiniteLoopRunsOutOfGas(t *testing.T) {
	out := mustInstrument(t, readTestdata(t, "loop.wasm"), DefaultConfig())
	var left []int64
	for _, e := range engines {
		in := instantiate(t, newRuntime(t, e), out)
		o := in.call(t, "spin", 100_000, 0)
		if !o.trapped || o.gasLeft >= 0 {
			t.Fatalf("%s: spin: trapped=%v gas left %d, want a trap with gas < 0", e.name, o.trapped, o.gasLeft)
		}
		if o.depth != 0 {
			t.Fatalf("%s: depth %d after out of gas", e.name, o.depth)
		}
		left = append(left, o.gasLeft)
	}
	if left[0] != left[1] {
		t.Fatalf("gas left differs between engines: %d vs %d", left[0], left[1])
	}
}

func TestGasIsDeterministicAndLinear(t *testing.T) {
	wasm := readTestdata(t, "loop.wasm")
	out := mustInstrument(t, wasm, DefaultConfig())
	ns := []uint64{0, 1, 2, 10, 1000}
	var used [][]int64
	for _, e := range engines {
		r := newRuntime(t, e)
		plain := instantiate(t, r, wasm)
		in := instantiate(t, r, out)
		var u []int64
		for _, n := range ns {
			want := plain.call(t, "sum", 0, n)
			got := in.call(t, "sum", plenty, n)
			if got.trapped || got.ret != want.ret {
				t.Fatalf("%s: sum(%d) = %d (trapped %v), want %d", e.name, n, got.ret, got.trapped, want.ret)
			}
			u = append(u, plenty-got.gasLeft)
		}
		used = append(used, u)
	}
	for i := range ns {
		if used[0][i] != used[1][i] {
			t.Fatalf("sum(%d): gas %d (compiler) vs %d (interpreter)", ns[i], used[0][i], used[1][i])
		}
	}
	// Each iteration costs the same, and something.
	perIter := used[0][2] - used[0][1]
	if perIter <= 0 || used[0][3]-used[0][2] != 8*perIter || used[0][4]-used[0][3] != 990*perIter {
		t.Fatalf("gas not linear in iterations: %v", used[0])
	}
	t.Logf("sum: gas per iteration %d, total %v", perIter, used[0])
}

func TestExactGasRunsOut(t *testing.T) {
	out := mustInstrument(t, readTestdata(t, "loop.wasm"), DefaultConfig())
	in := instantiate(t, newRuntime(t, engines[0]), out)
	need := plenty - in.call(t, "sum", plenty, 10).gasLeft
	if o := in.call(t, "sum", need, 10); o.trapped || o.gasLeft != 0 {
		t.Fatalf("with exactly %d gas: trapped=%v left %d", need, o.trapped, o.gasLeft)
	}
	if o := in.call(t, "sum", need-1, 10); !o.trapped || o.gasLeft >= 0 {
		t.Fatalf("with %d gas: trapped=%v left %d, want out of gas", need-1, o.trapped, o.gasLeft)
	}
}

func TestCallDepth(t *testing.T) {
	wasm := readTestdata(t, "recurse.wasm")
	for _, max := range []uint32{1, 10, 1024} {
		cfg := DefaultConfig()
		cfg.MaxCallDepth = max
		out := mustInstrument(t, wasm, cfg)
		for _, e := range engines {
			in := instantiate(t, newRuntime(t, e), out)
			tests := []struct {
				fn       string
				arg      uint64
				wantTrap bool
			}{
				{"depth", uint64(max), false},
				{"depth", uint64(max) + 1, true},
				{"indirect", uint64(max), false},
				{"indirect", uint64(max) + 1, true},
				{"forever", 0, true},
			}
			for _, tc := range tests {
				o := in.call(t, tc.fn, plenty, tc.arg)
				if o.trapped != tc.wantTrap {
					t.Fatalf("max %d %s: %s(%d): trapped=%v", max, e.name, tc.fn, tc.arg, o.trapped)
				}
				if tc.wantTrap && o.depth != max+1 {
					t.Fatalf("max %d %s: %s(%d): depth %d after trap, want %d", max, e.name, tc.fn, tc.arg, o.depth, max+1)
				}
				if !tc.wantTrap && (o.depth != 0 || o.ret != tc.arg) {
					t.Fatalf("max %d %s: %s(%d) = %d, depth %d", max, e.name, tc.fn, tc.arg, o.ret, o.depth)
				}
				if o.gasLeft < 0 {
					t.Fatalf("max %d %s: %s(%d): out of gas", max, e.name, tc.fn, tc.arg)
				}
			}
		}
	}
}

func TestFloatsRejected(t *testing.T) {
	tests := []struct {
		file, want string
	}{
		{"float.wasm", "function 0 at offset"},
		{"float_param.wasm", "type 0"},
		{"float_local.wasm", "locals of function 0"},
		{"float_global.wasm", "global 0"},
		{"float_convert.wasm", "function 0 at offset"},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			_, err := Instrument(readTestdata(t, tc.file), DefaultConfig())
			if !errors.Is(err, ErrFloat) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want ErrFloat mentioning %q", err, tc.want)
			}
		})
	}
}

func TestRejects(t *testing.T) {
	tests := []struct {
		file string
		want error
	}{
		{"reserved.wasm", ErrReservedExport},
		{"simd.wasm", ErrUnsupported},
	}
	for _, tc := range tests {
		if _, err := Instrument(readTestdata(t, tc.file), DefaultConfig()); !errors.Is(err, tc.want) {
			t.Fatalf("%s: got %v, want %v", tc.file, err, tc.want)
		}
	}
}

func TestStartFunctionUsesStartGas(t *testing.T) {
	wasm := readTestdata(t, "features.wasm")
	r := newRuntime(t, engines[0])
	cfg := DefaultConfig()
	in := instantiate(t, r, mustInstrument(t, wasm, cfg))
	if got := int64(in.gas.Get()); got >= int64(cfg.StartGas) || got < 0 {
		t.Fatalf("gas after start = %d, want a little below %d", got, cfg.StartGas)
	}
	cfg.StartGas = 1
	if _, err := tryInstantiate(r, mustInstrument(t, wasm, cfg)); err == nil {
		t.Fatal("start function ran with 1 gas")
	}
}

func TestConfigValidate(t *testing.T) {
	if err := DefaultConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Config{}).Validate(); err != nil {
		t.Fatalf("zero config (all defaults): %v", err)
	}
	bad := []Config{
		{MaxCallDepth: MaxCallDepthLimit + 1},
		{MaxCallDepth: 1024, MaxFrameBytes: MaxStackBytes/1024 + 1},
		{Costs: &CostTable{Version: 1}},
		{Costs: &CostTable{Default: 1, Call: 1, CallIndirect: 1}},
		{Costs: func() *CostTable { c := CostTableV1(); c.GrowPerPage = 1 << 40; return c }()},
	}
	for i, c := range bad {
		if err := c.Validate(); err == nil {
			t.Errorf("config %d: no error", i)
		}
		if _, err := Instrument(readTestdata(t, "empty.wasm"), c); err == nil {
			t.Errorf("config %d: Instrument accepted it", i)
		}
	}
}

func TestCostTableV1IsFrozen(t *testing.T) {
	// Published values: changing any of them changes every gas figure on
	// every channel. Add a new version instead.
	want := CostTable{Version: 1, Default: 1, Load: 3, Store: 3, DivRem: 4, Call: 5, CallIndirect: 8,
		MemoryGrow: 10, GrowPerPage: 8192, Bulk: 5, BulkPerByte: 1, TablePerElem: 2, HostCall: 100, HostPerByte: 1}
	if got := *CostTableV1(); got != want {
		t.Fatalf("CostTableV1 changed: %+v", got)
	}
}

func TestTruncatedInputNeverPanics(t *testing.T) {
	for _, name := range validModules {
		wasm := readTestdata(t, name)
		for i := 0; i < len(wasm); i++ {
			_, err := Instrument(wasm[:i], DefaultConfig())
			if err != nil && strings.Contains(err.Error(), "internal error") {
				t.Fatalf("%s[:%d]: %v", name, i, err)
			}
		}
	}
}

func TestDynamicCharges(t *testing.T) {
	costs := CostTableV1()
	wasm := readTestdata(t, "memory.wasm")
	out := mustInstrument(t, wasm, DefaultConfig())
	tests := []struct {
		fn     string
		a, b   uint64 // arguments compared
		perArg uint64 // extra gas per unit of argument
	}{
		{"grow_by", 0, 50, costs.GrowPerPage},
		{"grow_by", 1, 1000, costs.GrowPerPage}, // fails (-1) above the maximum, still charged
		{"fill", 1, 60000, costs.BulkPerByte},
		{"copy", 1, 60000, costs.BulkPerByte},
		{"init", 1, 12, costs.BulkPerByte},
	}
	for _, e := range engines {
		r := newRuntime(t, e)
		for _, tc := range tests {
			ga := plenty - instantiate(t, r, out).call(t, tc.fn, plenty, tc.a).gasLeft
			gb := plenty - instantiate(t, r, out).call(t, tc.fn, plenty, tc.b).gasLeft
			if want := int64((tc.b - tc.a) * tc.perArg); gb-ga != want {
				t.Errorf("%s: %s(%d) - %s(%d) = %d gas, want %d", e.name, tc.fn, tc.b, tc.fn, tc.a, gb-ga, want)
			}
		}
		// Growing one page at a time in a loop pays per page too.
		g1 := plenty - instantiate(t, r, out).call(t, "grow", plenty, 1).gasLeft
		g10 := plenty - instantiate(t, r, out).call(t, "grow", plenty, 10).gasLeft
		if g10-g1 < int64(9*costs.GrowPerPage) {
			t.Errorf("%s: grow loop: 10 pages cost %d, 1 page %d", e.name, g10, g1)
		}
		// A budget below one page's price traps before growing.
		in := instantiate(t, r, out)
		if o := in.call(t, "grow_by", int64(costs.GrowPerPage), 1); !o.trapped || o.gasLeft >= 0 {
			t.Errorf("%s: grow_by(1) with %d gas: %+v", e.name, costs.GrowPerPage, o)
		}
		if size, _ := in.mod.Memory().Grow(0); size != 1 {
			t.Errorf("%s: memory grew to %d pages without gas", e.name, size)
		}
		// A huge fill runs out of gas before touching memory.
		if o := in.call(t, "fill", 1000, 65536); !o.trapped || o.gasLeft >= 0 {
			t.Errorf("%s: fill(65536) with 1000 gas: %+v", e.name, o)
		}
		if b, _ := in.mod.Memory().ReadByte(0); b != 0 {
			t.Errorf("%s: fill ran without gas", e.name)
		}
	}
}

// TestMatchesUninstrumented runs every export of the test modules on both
// engines, instrumented and not, and compares results and traps.
func TestMatchesUninstrumented(t *testing.T) {
	args := []uint64{0, 1, 2, 3, 5, 7, 100, 0xffffffff, 0x80000000}
	for _, name := range []string{"features.wasm", "memory.wasm", "loop.wasm", "recurse.wasm"} {
		wasm := readTestdata(t, name)
		out := mustInstrument(t, wasm, DefaultConfig())
		var fns []string
		for fn := range instantiate(t, newRuntime(t, engines[0]), wasm).mod.ExportedFunctionDefinitions() {
			fns = append(fns, fn)
		}
		sort.Strings(fns)
		var gas [2][]int64
		for i, e := range engines {
			r := newRuntime(t, e)
			for _, fn := range fns {
				if fn == "spin" || fn == "forever" {
					continue
				}
				for _, a := range args {
					if (name == "recurse.wasm" || name == "loop.wasm" || strings.HasPrefix(fn, "grow")) && a > 100 {
						continue // too deep, too long, or out of gas by design
					}
					want := instantiate(t, r, wasm).call(t, fn, 0, a)
					got := instantiate(t, r, out).call(t, fn, plenty, a)
					if got.trapped != want.trapped || got.ret != want.ret {
						t.Errorf("%s %s %s(%d): got %+v, want %+v", name, e.name, fn, a, got, want)
					}
					if got.gasLeft < 0 || got.gasLeft == plenty {
						t.Errorf("%s %s %s(%d): gas left %d", name, e.name, fn, a, got.gasLeft)
					}
					gas[i] = append(gas[i], got.gasLeft)
				}
			}
		}
		if !slices.Equal(gas[0], gas[1]) {
			t.Errorf("%s: gas differs between engines:\n%v\n%v", name, gas[0], gas[1])
		}
	}
}

// TestOutputReport checks what Module.Instrument reports besides the code:
// the export of every mutable global and the first instruction that
// changes a table or drops a segment.
func TestOutputReport(t *testing.T) {
	tests := []struct {
		file    string
		globals []string
		stateOp StateOp
	}{
		{"features.wasm", []string{"scraft_global_0", GasGlobal, DepthGlobal}, StateOp{Name: "table.grow", Func: 10}},
		{"memory.wasm", []string{GasGlobal, DepthGlobal}, StateOp{Name: "data.drop", Func: 5}},
		{"loop.wasm", []string{GasGlobal, DepthGlobal}, StateOp{}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			m, err := Parse(readTestdata(t, tc.file))
			if err != nil {
				t.Fatal(err)
			}
			out, err := m.Instrument(DefaultConfig())
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(out.Globals, tc.globals) || out.StateOp != tc.stateOp {
				t.Fatalf("globals %v, state op %+v; want %v, %+v", out.Globals, out.StateOp, tc.globals, tc.stateOp)
			}
			in := instantiate(t, newRuntime(t, engines[0]), out.Wasm)
			for _, g := range out.Globals {
				if _, ok := in.mod.ExportedGlobal(g).(api.MutableGlobal); !ok {
					t.Fatalf("%s is not an exported mutable global", g)
				}
			}
		})
	}
}

// TestCustomSectionsDropped: custom sections are skipped unread (even a
// malformed one) and are not in the output.
func TestCustomSectionsDropped(t *testing.T) {
	wasm := readTestdata(t, "loop.wasm")
	custom := rawSec(secCustom, []byte{0x7f, 'x'}) // a name longer than the section
	withCustom := cat(wasmHeader, custom, wasm[len(wasmHeader):], custom)
	m, err := Parse(withCustom)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(m.Stripped(), wasm) {
		t.Fatal("Stripped kept custom sections")
	}
	a, b := mustInstrument(t, wasm, DefaultConfig()), mustInstrument(t, withCustom, DefaultConfig())
	if !bytes.Equal(a, b) {
		t.Fatal("custom sections changed the output")
	}
}
