package meter

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// features is what the vm enables: core v2 without SIMD.
const features = api.CoreFeaturesV2 &^ api.CoreFeatureSIMD

type engine struct {
	name string
	cfg  func() wazero.RuntimeConfig
}

var engines = []engine{
	{"compiler", wazero.NewRuntimeConfigCompiler},
	{"interpreter", wazero.NewRuntimeConfigInterpreter},
}

func readTestdata(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustInstrument(t testing.TB, wasm []byte, cfg Config) []byte {
	t.Helper()
	out, err := Instrument(wasm, cfg)
	if err != nil {
		t.Fatalf("Instrument: %v", err)
	}
	return out
}

// newRuntime returns a runtime with the host module "env" (twice(x) = 2x).
func newRuntime(t testing.TB, e engine) wazero.Runtime {
	t.Helper()
	ctx := context.Background()
	r := wazero.NewRuntimeWithConfig(ctx, e.cfg().WithCoreFeatures(features))
	t.Cleanup(func() { r.Close(ctx) })
	_, err := r.NewHostModuleBuilder("env").NewFunctionBuilder().
		WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, _ api.Module, stack []uint64) {
			stack[0] = uint64(uint32(stack[0]) * 2)
		}), []api.ValueType{api.ValueTypeI32}, []api.ValueType{api.ValueTypeI32}).
		Export("twice").Instantiate(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// instance is a live module; gas and depth are nil when it is not
// instrumented.
type instance struct {
	mod   api.Module
	gas   api.MutableGlobal
	depth api.MutableGlobal
}

func instantiate(t testing.TB, r wazero.Runtime, wasm []byte) *instance {
	t.Helper()
	in, err := tryInstantiate(r, wasm)
	if err != nil {
		t.Fatalf("instantiate: %v", err)
	}
	return in
}

func tryInstantiate(r wazero.Runtime, wasm []byte) (*instance, error) {
	ctx := context.Background()
	mod, err := r.InstantiateWithConfig(ctx, wasm, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		return nil, err
	}
	in := &instance{mod: mod}
	if g := mod.ExportedGlobal(GasGlobal); g != nil {
		in.gas = g.(api.MutableGlobal)
		in.depth = mod.ExportedGlobal(DepthGlobal).(api.MutableGlobal)
	}
	return in, nil
}

// outcome is the observable result of one call.
type outcome struct {
	ret     uint64
	trapped bool
	gasLeft int64 // after the call; 0 when not instrumented
	depth   uint32
}

func (in *instance) call(t testing.TB, fn string, gas int64, args ...uint64) outcome {
	t.Helper()
	f := in.mod.ExportedFunction(fn)
	if f == nil {
		t.Fatalf("no export %q", fn)
	}
	if in.gas != nil {
		in.gas.Set(uint64(gas))
		in.depth.Set(0)
	}
	res, err := f.Call(context.Background(), args...)
	var o outcome
	if err != nil {
		var exit interface{ ExitCode() uint32 }
		if errors.As(err, &exit) {
			t.Fatalf("%s: unexpected exit: %v", fn, err)
		}
		o.trapped = true
	} else if len(res) > 0 {
		o.ret = res[0]
	}
	if in.gas != nil {
		o.gasLeft = int64(in.gas.Get())
		o.depth = uint32(in.depth.Get())
	}
	return o
}
