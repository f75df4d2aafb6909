package meter

import (
	"context"
	"testing"
)

// BenchmarkLoop measures one iteration of a tight loop (loop.wasm "sum")
// on the compiler engine, plain and metered. Compare the ns/iter metrics.
func BenchmarkLoop(b *testing.B) {
	const iters = 100_000
	wasm := readTestdata(b, "loop.wasm")
	for _, tc := range []struct {
		name string
		wasm []byte
	}{
		{"plain", wasm},
		{"metered", mustInstrument(b, wasm, DefaultConfig())},
	} {
		b.Run(tc.name, func(b *testing.B) {
			in := instantiate(b, newRuntime(b, engines[0]), tc.wasm)
			f := in.mod.ExportedFunction("sum")
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if in.gas != nil {
					in.gas.Set(uint64(plenty))
					in.depth.Set(0)
				}
				if _, err := f.Call(ctx, iters); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/iters, "ns/iter")
		})
	}
}

// BenchmarkCall measures a call to a function that makes 1000 nested calls
// (recurse.wasm "depth"), plain and metered.
func BenchmarkCall(b *testing.B) {
	wasm := readTestdata(b, "recurse.wasm")
	for _, tc := range []struct {
		name string
		wasm []byte
	}{
		{"plain", wasm},
		{"metered", mustInstrument(b, wasm, DefaultConfig())},
	} {
		b.Run(tc.name, func(b *testing.B) {
			in := instantiate(b, newRuntime(b, engines[0]), tc.wasm)
			f := in.mod.ExportedFunction("depth")
			ctx := context.Background()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if in.gas != nil {
					in.gas.Set(uint64(plenty))
					in.depth.Set(0)
				}
				if _, err := f.Call(ctx, 1000); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/1000, "ns/call")
		})
	}
}

// BenchmarkInstrument measures Instrument on a generated module of 2,000
// functions.
func BenchmarkInstrument(b *testing.B) {
	data := make([]byte, 200_000)
	seed := uint64(7)
	for i := range data {
		seed = seed*6364136223846793005 + 1442695040888963407
		data[i] = byte(seed >> 56)
	}
	wasm := generateN(data, 2000)
	out := mustInstrument(b, wasm, DefaultConfig())
	b.SetBytes(int64(len(wasm)))
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := Instrument(wasm, DefaultConfig()); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(wasm)), "in-bytes")
	b.ReportMetric(float64(len(out))/float64(len(wasm)), "growth")
}
