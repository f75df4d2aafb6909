package meter_test

import (
	"context"
	"fmt"
	"os"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/scraft/scraft/vm/meter"
)

// A host runs an instrumented module: it sets the gas and depth globals
// before each call and tells the three kinds of trap apart afterwards.
func ExampleInstrument() {
	ctx := context.Background()
	wasm, _ := os.ReadFile("testdata/loop.wasm")
	cfg := meter.DefaultConfig()
	metered, err := meter.Instrument(wasm, cfg)
	if err != nil {
		panic(err)
	}

	r := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().
		WithCoreFeatures(api.CoreFeaturesV2&^api.CoreFeatureSIMD))
	defer r.Close(ctx)
	mod, err := r.Instantiate(ctx, metered)
	if err != nil {
		panic(err)
	}
	gas := mod.ExportedGlobal(meter.GasGlobal).(api.MutableGlobal)
	depth := mod.ExportedGlobal(meter.DepthGlobal).(api.MutableGlobal)

	call := func(fn string, budget int64, arg uint64) {
		gas.Set(uint64(budget))
		depth.Set(0)
		res, err := mod.ExportedFunction(fn).Call(ctx, arg)
		left := int64(gas.Get())
		switch {
		case err == nil:
			fmt.Printf("%s(%d) = %d, gas used %d\n", fn, arg, res[0], budget-left)
		case left < 0:
			fmt.Printf("%s(%d): out of gas\n", fn, arg)
		case uint32(depth.Get()) > cfg.MaxCallDepth:
			fmt.Printf("%s(%d): call depth limit\n", fn, arg)
		default:
			fmt.Printf("%s(%d): trap\n", fn, arg)
		}
	}
	call("sum", 10_000, 100)
	call("spin", 10_000, 0)
	// Output:
	// sum(100) = 4950, gas used 1308
	// spin(0): out of gas
}
