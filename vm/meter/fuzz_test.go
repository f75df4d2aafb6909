package meter

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

func addSeeds(f *testing.F) {
	paths, _ := filepath.Glob(filepath.Join("testdata", "*.wasm"))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	for _, d := range genSeeds {
		f.Add(generate(d))
	}
}

var genSeeds = [][]byte{
	nil,
	[]byte("\x02\x03\x08\x02\x05\x07\x06\x01\x02\x03"),
	[]byte("scraft metering: loops, calls, memory and tables"),
	bytes.Repeat([]byte{8, 9, 10, 2, 6, 7, 15, 16, 12, 3}, 20),
	bytes.Repeat([]byte{0xff, 0x11, 0x22, 0x47, 0x08, 0x0a, 0x10}, 30),
}

// FuzzInstrument: arbitrary bytes never panic, and when Instrument accepts
// a module that wazero accepts, wazero accepts the output.
func FuzzInstrument(f *testing.F) {
	addSeeds(f)
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(features))
	defer r.Close(ctx)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		out, err := Instrument(wasm, DefaultConfig())
		if err != nil && strings.Contains(err.Error(), "internal error") {
			t.Fatal(err)
		}
		if err != nil {
			// Not handed to wazero: its decoder allocates what a count
			// claims before reading it (a 14-byte module can make it
			// allocate 2 GiB); Instrument bounds every count, so only
			// inputs it accepted are safe to compile.
			return
		}
		cm, verr := r.CompileModule(ctx, wasm)
		if verr != nil {
			return
		}
		cm.Close(ctx)
		cm, err = r.CompileModule(ctx, out)
		if err != nil {
			t.Fatalf("instrumented module does not validate: %v", err)
		}
		cm.Close(ctx)
	})
}

// FuzzParse: arbitrary bytes never panic, and for every module Parse
// accepts and wazero validates, what Parse reports (imports with their
// types, exports, the signature of every exported function, the memory)
// is what wazero reads. A host checks its ABI against this summary.
func FuzzParse(f *testing.F) {
	addSeeds(f)
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(features))
	defer r.Close(ctx)
	f.Fuzz(func(t *testing.T, wasm []byte) {
		m, err := Parse(wasm)
		if err != nil {
			if strings.Contains(err.Error(), "internal error") {
				t.Fatal(err)
			}
			return // not handed to wazero: see FuzzInstrument
		}
		cm, err := r.CompileModule(ctx, m.Stripped())
		if err != nil {
			return
		}
		defer cm.Close(ctx)
		checkSummary(t, m, cm)
	})
}

// checkSummary compares Parse's summary of a module with wazero's.
func checkSummary(t *testing.T, m *Module, cm wazero.CompiledModule) {
	t.Helper()
	types := func(ts []ValueType) string { return fmt.Sprint([]byte(ts)) }
	wtypes := func(ts []api.ValueType) string { return fmt.Sprint([]byte(ts)) }
	var funcs []Import
	for _, im := range m.Imports {
		if im.Kind == KindFunc {
			funcs = append(funcs, im)
		}
	}
	wfuncs := cm.ImportedFunctions()
	if len(funcs) != len(wfuncs) {
		t.Fatalf("%d imported functions, wazero %d", len(funcs), len(wfuncs))
	}
	for i, f := range wfuncs {
		mod, name, _ := f.Import()
		im := funcs[i]
		if im.Module != mod || im.Name != name ||
			types(im.Type.Params) != wtypes(f.ParamTypes()) || types(im.Type.Results) != wtypes(f.ResultTypes()) {
			t.Fatalf("import %d: %+v, wazero %s.%s %v -> %v", i, im, mod, name, f.ParamTypes(), f.ResultTypes())
		}
	}
	wexports := cm.ExportedFunctions()
	nfuncs := 0
	for _, ex := range m.Exports {
		switch ex.Kind {
		case KindFunc:
			nfuncs++
			f, ok := wexports[ex.Name]
			ft, ok2 := m.Func(ex.Index)
			if !ok || !ok2 || types(ft.Params) != wtypes(f.ParamTypes()) || types(ft.Results) != wtypes(f.ResultTypes()) {
				t.Fatalf("export %q: %+v, wazero %v", ex.Name, ft, f)
			}
		case KindMemory:
			mem, ok := cm.ExportedMemories()[ex.Name]
			if !ok || m.Memory == nil || mem.Min() != m.Memory.Min {
				t.Fatalf("memory export %q: %+v, wazero %v", ex.Name, m.Memory, mem)
			}
			wmax, hasMax := mem.Max()
			if hasMax != m.Memory.HasMax || hasMax && wmax != m.Memory.Max {
				t.Fatalf("memory export %q: %+v, wazero max %d %v", ex.Name, m.Memory, wmax, hasMax)
			}
		}
	}
	if nfuncs != len(wexports) {
		t.Fatalf("%d exported functions, wazero %d", nfuncs, len(wexports))
	}
}

// TestParseMatchesWazero runs checkSummary on the test modules.
func TestParseMatchesWazero(t *testing.T) {
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigInterpreter().WithCoreFeatures(features))
	defer r.Close(ctx)
	for _, name := range append(validModules, "reserved.wasm", "float.wasm") {
		t.Run(name, func(t *testing.T) {
			m, err := Parse(readTestdata(t, name))
			if err != nil {
				t.Fatal(err)
			}
			cm, err := r.CompileModule(ctx, m.Stripped())
			if err != nil {
				t.Fatal(err)
			}
			defer cm.Close(ctx)
			checkSummary(t, m, cm)
		})
	}
}

// FuzzSemantics: generated terminating programs give the same results and
// memory instrumented and not, and the same gas on both engines.
func FuzzSemantics(f *testing.F) {
	for _, d := range genSeeds {
		f.Add(d)
	}
	interp := newRuntime(f, engines[1])
	comp := newRuntime(f, engines[0])
	f.Fuzz(func(t *testing.T, data []byte) {
		checkSemantics(t, interp, comp, generate(data))
	})
}

func TestGeneratedPrograms(t *testing.T) {
	interp := newRuntime(t, engines[1])
	comp := newRuntime(t, engines[0])
	n := 150
	if testing.Short() {
		n = 40
	}
	seed := uint64(1)
	for i := 0; i < n; i++ {
		data := make([]byte, 16+i%200)
		for j := range data {
			seed = seed*6364136223846793005 + 1442695040888963407
			data[j] = byte(seed >> 56)
		}
		checkSemantics(t, interp, comp, generate(data))
	}
}

func checkSemantics(t *testing.T, interp, comp wazero.Runtime, wasm []byte) {
	t.Helper()
	ctx := context.Background()
	if _, err := interp.CompileModule(ctx, wasm); err != nil {
		t.Fatalf("generator made an invalid module: %v", err)
	}
	out := mustInstrument(t, wasm, DefaultConfig())
	for _, arg := range []uint64{0, 1, 0xfffffff9} {
		plain := instantiate(t, interp, wasm)
		ins := []*instance{instantiate(t, interp, out), instantiate(t, comp, out)}
		want := plain.call(t, "f0", 0, arg)
		var gas []int64
		for k, in := range ins {
			got := in.call(t, "f0", plenty, arg)
			if got.trapped != want.trapped || got.ret != want.ret || got.gasLeft < 0 || got.depth != 0 && !got.trapped {
				t.Fatalf("%s f0(%d): got %+v, want %+v", engines[1-k].name, arg, got, want)
			}
			if !bytes.Equal(memory(in), memory(plain)) {
				t.Fatalf("%s f0(%d): memory differs", engines[1-k].name, arg)
			}
			gas = append(gas, got.gasLeft)
		}
		if gas[0] != gas[1] {
			t.Fatalf("f0(%d): gas left %d (interpreter) vs %d (compiler)", arg, gas[0], gas[1])
		}
		plain.mod.Close(ctx)
		for _, in := range ins {
			in.mod.Close(ctx)
		}
	}
}

func memory(in *instance) []byte {
	m := in.mod.Memory()
	b, _ := m.Read(0, m.Size())
	return b
}
