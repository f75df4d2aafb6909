package meter

import (
	"bytes"
	"context"
	"fmt"
	"reflect"
	"runtime"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// nativeStackUsed returns how many bytes of its native stack a wazero
// compiler function handle is using while it is stopped in a host call:
// the top of its stack minus the stack pointer saved on the exit to Go.
// It reads wazero v1.12's internals (callEngine.stackTop and
// execCtx.stackPointerBeforeGoCall), for measurement only: a wazero
// upgrade that renames them makes it panic, and the frame bound must be
// measured again anyway.
func nativeStackUsed(fn api.Function) int64 {
	c := reflect.ValueOf(fn).Elem()
	top := c.FieldByName("stackTop").Uint()
	sp := c.FieldByName("execCtx").FieldByName("stackPointerBeforeGoCall").Pointer()
	return int64(top) - int64(sp)
}

// probeShape is a recursive function f(n) (function index 2) of a probe
// module: imports env.probe () -> () (index 0), has a leaf h(x) = x
// (index 1) and f, which calls probe when n == 0.
type probeShape struct {
	name    string
	locals  [][2]uint32
	body    []byte // the expression of f, ending with end
	globals int    // mutable i32 globals
	args    int    // parameters of g, function 3: (i32 × args) -> i32
}

func probeModule(s probeShape) []byte {
	var globals [][]byte
	for i := 0; i < s.globals; i++ {
		globals = append(globals, cat([]byte{valI32, 0x01}, i32c(0), []byte{opEnd}))
	}
	gParams := bytes.Repeat([]byte{valI32}, max(s.args, 1))
	return wasmModule(
		sec(secType, encFuncType([]byte{valI32}, []byte{valI32}), encFuncType(nil, nil),
			encFuncType(gParams, []byte{valI32})),
		sec(secImport, cat(name("env"), name("probe"), []byte{0x00}, u32(1))),
		sec(secFunction, u32(0), u32(0), u32(2)),
		sec(secGlobal, globals...),
		sec(secExport, exportFunc("f", 2)),
		sec(secCode, codeBody(nil, []byte{opLocalGet, 0, opEnd}), codeBody(s.locals, s.body),
			codeBody(nil, []byte{opLocalGet, 0, opEnd})),
	)
}

// recurse appends: n == 0 ? (probe(), 0) : f(n-1), an i32.
func recurse(e []byte) []byte {
	e = append(e, opLocalGet, 0, 0x45, opIf, valI32, opCall, 0)
	e = append(e, i32c(0)...)
	e = append(e, opElse, opLocalGet, 0)
	e = append(e, i32c(1)...)
	return append(e, opI32Sub, opCall, 2, opEnd)
}

func probeShapes(k int) []probeShape {
	small := recurse(nil)
	small = append(small, opEnd)

	// k i32 locals set from n, live across the recursive call.
	var locals []byte
	for i := 1; i <= k; i++ {
		locals = append(locals, opLocalGet, 0)
		locals = append(locals, i32c(int32(i))...)
		locals = append(locals, opI32Add, opLocalSet)
		locals = append(locals, u32(uint32(i))...)
	}
	locals = recurse(locals)
	for i := 1; i <= k; i++ {
		locals = append(locals, opLocalGet)
		locals = append(locals, u32(uint32(i))...)
		locals = append(locals, opI32Add)
	}
	locals = append(locals, opEnd)

	// k i64 locals (8-byte spill slots) live across the call.
	var locals64 []byte
	for i := 1; i <= k; i++ {
		locals64 = append(locals64, opLocalGet, 0, opI64ExtendU, opI64Const)
		locals64 = appendS64(locals64, int64(i))
		locals64 = append(locals64, 0x7c, opLocalSet) // i64.add
		locals64 = append(locals64, u32(uint32(i))...)
	}
	locals64 = recurse(locals64)
	for i := 1; i <= k; i++ {
		locals64 = append(locals64, opLocalGet)
		locals64 = append(locals64, u32(uint32(i))...)
		locals64 = append(locals64, 0xa7, opI32Add) // i32.wrap_i64
	}
	locals64 = append(locals64, opEnd)

	// k values on the operand stack across the call.
	var stack []byte
	for i := 0; i < k; i++ {
		stack = append(stack, opLocalGet, 0)
		stack = append(stack, i32c(int32(i))...)
		stack = append(stack, opI32Add)
	}
	stack = recurse(stack)
	for i := 0; i < k; i++ {
		stack = append(stack, opI32Add)
	}
	stack = append(stack, opEnd)

	// One local redefined k times, each value live across a call to h:
	// x = x + h(x). A register allocator that gives every spilled value
	// its own slot makes this frame grow with the code, not the locals.
	redefine := []byte{opLocalGet, 0, opLocalSet, 1}
	for i := 0; i < k; i++ {
		redefine = append(redefine, opLocalGet, 1, opLocalGet, 1, opCall, 1, opI32Add, opLocalSet, 1)
	}
	redefine = recurse(redefine)
	redefine = append(redefine, opLocalGet, 1, opI32Add, opEnd)

	// 16 locals read in each of k/16 loops that call h: merge points
	// (block parameters) for every local in every loop.
	const nl = 16
	var loops []byte
	for i := 1; i <= nl; i++ {
		loops = append(loops, opLocalGet, 0, opLocalSet)
		loops = append(loops, u32(uint32(i))...)
	}
	for j := 0; j < k/nl; j++ {
		loops = append(loops, opLoop, blockEmpty)
		for i := 1; i <= nl; i++ {
			loops = append(loops, opLocalGet)
			loops = append(loops, u32(uint32(i))...)
			loops = append(loops, opCall, 1, opLocalSet)
			loops = append(loops, u32(uint32(i))...)
		}
		loops = append(loops, opLocalGet, 0, opLocalGet, 1, opI32GtU, opBrIf, 0, opEnd)
	}
	loops = recurse(loops)
	for i := 1; i <= nl; i++ {
		loops = append(loops, opLocalGet)
		loops = append(loops, u32(uint32(i))...)
		loops = append(loops, opI32Add)
	}
	loops = append(loops, opEnd)

	// k/4 locals assigned inside 64 nested blocks, each left by a
	// conditional branch (a merge point), then live across the call.
	var nest []byte
	d, nn := 64, uint32(k/4)
	for j := 0; j < d; j++ {
		nest = append(nest, opBlock, blockEmpty, opLocalGet, 0, opBrIf, 0)
	}
	for i := uint32(1); i <= nn; i++ {
		nest = append(nest, opLocalGet, 0)
		nest = append(nest, i32c(int32(i))...)
		nest = append(nest, opI32Add, opLocalSet)
		nest = append(nest, u32(i)...)
	}
	for j := 0; j < d; j++ {
		nest = append(nest, opEnd)
	}
	nest = recurse(nest)
	for i := uint32(1); i <= nn; i++ {
		nest = append(nest, opLocalGet)
		nest = append(nest, u32(i)...)
		nest = append(nest, opI32Add)
	}
	nest = append(nest, opEnd)

	// The same with k/4 globals instead of locals: wazevo keeps globals in
	// SSA variables too.
	var gnest []byte
	for j := 0; j < d; j++ {
		gnest = append(gnest, opBlock, blockEmpty, opLocalGet, 0, opBrIf, 0)
	}
	for i := uint32(0); i < nn; i++ {
		gnest = append(gnest, opLocalGet, 0)
		gnest = append(gnest, i32c(int32(i))...)
		gnest = append(gnest, opI32Add, opGlobalSet)
		gnest = append(gnest, u32(i)...)
	}
	for j := 0; j < d; j++ {
		gnest = append(gnest, opEnd)
	}
	gnest = recurse(gnest)
	for i := uint32(0); i < nn; i++ {
		gnest = append(gnest, opGlobalGet)
		gnest = append(gnest, u32(i)...)
		gnest = append(gnest, opI32Add)
	}
	gnest = append(gnest, opEnd)

	// A call to g with k arguments: most of them passed on the stack.
	var args []byte
	for i := 0; i < k; i++ {
		args = append(args, opLocalGet, 0)
	}
	args = append(args, opCall, 3, opDrop())
	args = recurse(args)
	args = append(args, opEnd)

	return []probeShape{
		{"small", nil, small, 0, 0},
		{fmt.Sprintf("args-%d", k), nil, args, 0, k},
		{fmt.Sprintf("gnest-%dx%d", d, nn), nil, gnest, int(nn), 0},
		{fmt.Sprintf("nest-%dx%d", d, nn), [][2]uint32{{nn, valI32}}, nest, 0, 0},
		{fmt.Sprintf("locals-%d", k), [][2]uint32{{uint32(k), valI32}}, locals, 0, 0},
		{fmt.Sprintf("i64-locals-%d", k), [][2]uint32{{uint32(k), valI64}}, locals64, 0, 0},
		{fmt.Sprintf("stack-%d", k), nil, stack, 0, 0},
		{fmt.Sprintf("redefine-%d", k), [][2]uint32{{1, valI32}}, redefine, 0, 0},
		{fmt.Sprintf("loops-%dx%d", k/nl, nl), [][2]uint32{{nl, valI32}}, loops, 0, 0},
	}
}

// measureFrame returns the native stack bytes one more level of an
// instrumented f's recursion takes in wazero's compiler.
func measureFrame(t *testing.T, wasm []byte) int64 {
	t.Helper()
	u := measureUsed(t, wasm, 10, 110)
	return (u[1] - u[0]) / 100
}

// measureUsed returns the native stack bytes in use at the bottom of an
// instrumented f's recursion, f(n) for each n.
func measureUsed(t *testing.T, wasm []byte, ns ...uint64) []int64 {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCoreFeatures(features))
	defer r.Close(ctx)
	var fn api.Function
	var used int64
	_, err := r.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {
			used = nativeStackUsed(fn)
		}), nil, nil).Export("probe").Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	in, err := tryInstantiate(r, wasm)
	if err != nil {
		t.Fatal(err)
	}
	fn = in.mod.ExportedFunction("f")
	u := make([]int64, len(ns))
	for i, n := range ns {
		in.gas.Set(uint64(plenty))
		in.depth.Set(0)
		if _, err := fn.Call(ctx, n); err != nil {
			t.Fatal(err)
		}
		u[i] = used
	}
	return u
}

// TestNativeFrameWithinBound measures, in wazero's compiler, the native
// frame of recursive functions shaped to take much stack per wasm byte,
// and checks that the instrumenter's frame bound covers it. The figures
// in DESIGN.md come from its -v output.
func TestNativeFrameWithinBound(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("no wazero compiler")
	}
	sizes := []int{16, 256, 1024}
	if testing.Short() {
		sizes = sizes[:2]
	}
	for _, k := range sizes {
		for _, s := range probeShapes(k) {
			m, err := Parse(probeModule(s))
			if err != nil {
				t.Fatal(err)
			}
			out, err := m.Instrument(Config{MaxCallDepth: 128})
			if err != nil {
				t.Fatal(err)
			}
			got := measureFrame(t, out.Wasm)
			t.Logf("%-16s native frame %6d bytes, bound %7d (%.1f×), code %5d bytes", s.name, got, out.FrameBytes,
				float64(out.FrameBytes)/float64(got), len(s.body))
			if uint64(got) > out.FrameBytes {
				t.Errorf("%s: native frame of %d bytes above the bound of %d", s.name, got, out.FrameBytes)
			}
		}
	}
}

// TestDeepestChainFitsStackBudget: for every shape made as large as the
// default MaxFrameBytes allows, the deepest legal recursion uses less
// native stack than MaxStackBytes.
func TestDeepestChainFitsStackBudget(t *testing.T) {
	if runtime.GOARCH != "amd64" && runtime.GOARCH != "arm64" {
		t.Skip("no wazero compiler")
	}
	if testing.Short() {
		t.Skip("compiles large functions")
	}
	cfg := DefaultConfig()
	for i, s := range probeShapes(16) {
		// The largest k whose shape i fits, by bisection.
		fits := func(k int) bool {
			_, err := Instrument(probeModule(probeShapes(k)[i]), cfg)
			return err == nil
		}
		lo, hi := 16, 1<<14
		if !fits(lo) {
			t.Fatalf("%s: does not fit at 16", s.name)
		}
		for hi-lo > 1 {
			if mid := (lo + hi) / 2; fits(mid) {
				lo = mid
			} else {
				hi = mid
			}
		}
		big := probeShapes(lo)[i]
		wasm := mustInstrument(t, probeModule(big), cfg)
		// f(n) runs at depth n + 1: the deepest legal call is
		// f(MaxCallDepth - 1).
		used := measureUsed(t, wasm, uint64(cfg.MaxCallDepth)-1)[0]
		t.Logf("%-16s deepest legal chain uses %9d bytes of native stack (budget %d)", big.name, used, MaxStackBytes)
		if used > MaxStackBytes {
			t.Errorf("%s: %d bytes, above MaxStackBytes", big.name, used)
		}
	}
}

func opDrop() byte { return 0x1a }
