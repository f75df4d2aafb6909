package vm

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/vm/meter"
)

// cpuPerOp reports the CPU time (all threads) per iteration since start: on
// a shared machine it says more about cost than wall time.
func cpuPerOp(b *testing.B, start time.Duration) {
	b.ReportMetric(float64((testutil.CPUTime()-start).Nanoseconds())/float64(b.N), "cpu-ns/op")
}

// BenchmarkCallEcho is the fixed cost of a call: pool, restore, host calls,
// result.
func BenchmarkCallEcho(b *testing.B) {
	e := newTestEngine(b, Config{})
	m := deployTestdata(b, e, "abi")
	c := Call{Function: "echo", Args: []byte("hello"), Gas: testGas}
	b.ReportAllocs()
	cpu := testutil.CPUTime()
	for b.Loop() {
		if r := m.Call(context.Background(), nil, c); r.Status != protocol.StatusOK {
			b.Fatal(r.Message)
		}
	}
	cpuPerOp(b, cpu)
}

// BenchmarkChatSend is chat::send end to end: restore, run, overlay, change
// set, events, output.
func BenchmarkChatSend(b *testing.B) {
	e := newTestEngine(b, Config{})
	ch := newChannel(b, e, "chat")
	alice := player(1)
	ch.mustCall(alice, "init", "{}")
	ch.mustCall(alice, "join", `{"nick":"alice"}`)
	c := Call{Function: "send", Args: ch.args("send", `{"text":"hello, world"}`), Sender: alice,
		Height: 10, TimestampMs: 1000, Gas: 10_000_000}
	store := mapStore(ch.state)
	b.ReportAllocs()
	cpu := testutil.CPUTime()
	for b.Loop() {
		if r := ch.m.Call(context.Background(), store, c); r.Status != protocol.StatusOK || r.ChangeSet.Len() == 0 {
			b.Fatal(r.Message)
		}
	}
	cpuPerOp(b, cpu)
}

// BenchmarkChatSendParallel is chat::send from every core at once.
func BenchmarkChatSendParallel(b *testing.B) {
	e := newTestEngine(b, Config{})
	ch := newChannel(b, e, "chat")
	alice := player(1)
	ch.mustCall(alice, "init", "{}")
	ch.mustCall(alice, "join", `{"nick":"alice"}`)
	c := Call{Function: "send", Args: ch.args("send", `{"text":"hello, world"}`), Sender: alice,
		Height: 10, TimestampMs: 1000, Gas: 10_000_000}
	store := mapStore(ch.state)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if r := ch.m.Call(context.Background(), store, c); r.Status != protocol.StatusOK {
				b.Fatal(r.Message)
			}
		}
	})
}

// BenchmarkRestore is putting back an instance's memory and globals.
func BenchmarkRestore(b *testing.B) {
	for _, name := range contracts.Names() {
		b.Run(name, func(b *testing.B) {
			c, err := contracts.Get(name)
			if err != nil {
				b.Fatal(err)
			}
			e := newTestEngine(b, Config{})
			m, err := e.Deploy(context.Background(), c.Wasm)
			if err != nil {
				b.Fatal(err)
			}
			in, err := m.getInstance(context.Background())
			if err != nil {
				b.Fatal(err)
			}
			defer in.close()
			b.ReportAllocs()
			cpu := testutil.CPUTime()
			for b.Loop() {
				in.restore()
			}
			cpuPerOp(b, cpu)
			b.ReportMetric(float64(len(m.snap.mem)), "mem-bytes")
			b.ReportMetric(float64(m.snap.used), "nonzero-bytes")
		})
	}
}

// BenchmarkLoadFromWarmCache is a restarted node loading a contract: a new
// Engine over a compilation cache directory that already holds its code.
func BenchmarkLoadFromWarmCache(b *testing.B) {
	for _, name := range contracts.Names() {
		b.Run(name, func(b *testing.B) {
			c, err := contracts.Get(name)
			if err != nil {
				b.Fatal(err)
			}
			cfg := Config{CompilationCacheDir: b.TempDir()}
			ctx := context.Background()
			warm, err := NewEngine(ctx, cfg)
			if err != nil {
				b.Fatal(err)
			}
			if _, err := warm.Deploy(ctx, c.Wasm); err != nil {
				b.Fatal(err)
			}
			warm.Close(ctx)
			cpu := testutil.CPUTime()
			for b.Loop() {
				e, err := NewEngine(ctx, cfg)
				if err != nil {
					b.Fatal(err)
				}
				if _, err := e.Deploy(ctx, c.Wasm); err != nil {
					b.Fatal(err)
				}
				e.Close(ctx)
			}
			cpuPerOp(b, cpu)
		})
	}
}

// BenchmarkDeployCold compiles a contract with no cache.
func BenchmarkDeployCold(b *testing.B) {
	c, err := contracts.Get("movecraft")
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	cpu := testutil.CPUTime()
	for b.Loop() {
		e, err := NewEngine(ctx, Config{})
		if err != nil {
			b.Fatal(err)
		}
		if _, err := e.Deploy(ctx, c.Wasm); err != nil {
			b.Fatal(err)
		}
		e.Close(ctx)
	}
	cpuPerOp(b, cpu)
}

// BenchmarkGasOverhead runs a tight loop of a million iterations metered
// (through Module.Call) and unmetered (the same module in plain wazero).
func BenchmarkGasOverhead(b *testing.B) {
	const n = 1_000_000
	wasm := testdata(b, "abi")
	b.Run("metered", func(b *testing.B) {
		e := newTestEngine(b, Config{})
		m := deployTestdata(b, e, "abi")
		c := Call{Function: "spin", Args: u32le(n), Gas: 1 << 40}
		r := m.Call(context.Background(), nil, c)
		if r.Status != protocol.StatusOK {
			b.Fatal(r.Message)
		}
		cpu := testutil.CPUTime()
		for b.Loop() {
			m.Call(context.Background(), nil, c)
		}
		cpuPerOp(b, cpu)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/iter")
		b.ReportMetric(float64(r.GasUsed)/n, "gas/iter")
	})
	b.Run("unmetered", func(b *testing.B) {
		ctx := context.Background()
		rt := wazero.NewRuntimeWithConfig(ctx, wazero.NewRuntimeConfigCompiler().WithCoreFeatures(features))
		defer rt.Close(ctx)
		hb := rt.NewHostModuleBuilder(hostModule)
		for _, f := range hostFunctions {
			hb.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(context.Context, api.Module, []uint64) {}),
				f.params, f.results).Export(f.name)
		}
		if _, err := hb.Instantiate(ctx); err != nil {
			b.Fatal(err)
		}
		mod, err := rt.Instantiate(ctx, wasm)
		if err != nil {
			b.Fatal(err)
		}
		fn := mod.ExportedFunction("spin")
		stack := []uint64{4}
		cpu := testutil.CPUTime()
		for b.Loop() {
			mod.Memory().WriteUint32Le(inputBase, n)
			if err := fn.CallWithStack(ctx, stack); err != nil {
				b.Fatal(err)
			}
			stack[0] = 4
		}
		cpuPerOp(b, cpu)
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/n, "ns/iter")
	})
}

// BenchmarkMovecraftTick is movecraft::on_tick with every player of a
// world walking, from 10 players to the contract's cap of 768: its time,
// its gas against the tick's budget (protocol.DefaultGasLimit, the gas of
// one entry function unless a channel sets its own), and the gas of one
// more move, which rewrites the schedule the tick reads.
func BenchmarkMovecraftTick(b *testing.B) {
	for _, players := range []int{10, 100, 500, 768} {
		b.Run(fmt.Sprintf("%d players", players), func(b *testing.B) {
			ch := walkingWorld(b, players)
			move := ch.mustCall(player(1), "move", `{"x":0,"y":0,"z":20}`)
			c := Call{Function: "on_tick", Args: ch.args("on_tick", "{}"), Sender: player(0),
				Height: ch.height + 1, TimestampMs: 1, Gas: protocol.DefaultGasLimit}
			store := mapStore(ch.state)
			r := ch.m.Call(context.Background(), store, c)
			if r.Status != protocol.StatusOK {
				b.Fatal(r.Message)
			}
			b.ReportAllocs()
			cpu := testutil.CPUTime()
			for b.Loop() {
				ch.m.Call(context.Background(), store, c)
			}
			cpuPerOp(b, cpu)
			b.ReportMetric(float64(r.ChangeSet.Len()), "changes")
			b.ReportMetric(float64(r.GasUsed), "gas")
			b.ReportMetric(100*float64(r.GasUsed)/float64(protocol.DefaultGasLimit), "%budget")
			b.ReportMetric(float64(move.GasUsed), "move-gas")
		})
	}
}

// BenchmarkCallFailure is the cost of the failure paths: an abort keeps
// its instance, a trap replaces it with a new one.
func BenchmarkCallFailure(b *testing.B) {
	for _, fn := range []string{"fail", "trap"} {
		b.Run(fn, func(b *testing.B) {
			e := newTestEngine(b, Config{})
			m := deployTestdata(b, e, "abi")
			c := Call{Function: fn, Gas: testGas}
			b.ReportAllocs()
			cpu := testutil.CPUTime()
			for b.Loop() {
				if r := m.Call(context.Background(), nil, c); r.Status == protocol.StatusOK {
					b.Fatal("call succeeded")
				}
			}
			cpuPerOp(b, cpu)
		})
	}
}

// BenchmarkDeployDecode is a deploy's own decoding of a contract (wazero's
// validation and compilation excluded): one meter.Parse and the rewrite.
func BenchmarkDeployDecode(b *testing.B) {
	for _, name := range contracts.Names() {
		b.Run(name, func(b *testing.B) {
			wasm := mustContract(b, name)
			cfg := Config{}.withDefaults()
			b.ReportAllocs()
			cpu := testutil.CPUTime()
			for b.Loop() {
				m, err := meter.Parse(wasm)
				if err != nil {
					b.Fatal(err)
				}
				out, err := m.Instrument(cfg.Meter)
				if err != nil || out.StateOp.Name != "" {
					b.Fatal(err)
				}
			}
			cpuPerOp(b, cpu)
		})
	}
}

// walkingWorld is a MoveCraft land with players joined (player(1) to
// player(players); player(0) made the land), each walking to a column of
// its own.
func walkingWorld(tb testing.TB, players int) *channel {
	tb.Helper()
	ch := newChannel(tb, newTestEngine(tb, Config{}), "movecraft")
	ch.mustCall(player(0), "init", "{}")
	for i := 1; i <= players; i++ {
		ch.mustCall(player(i), "join", fmt.Sprintf(`{"name":"p%d"}`, i))
		ch.mustCall(player(i), "move", fmt.Sprintf(`{"x":%d,"y":%d,"z":20}`, i%128, 127-i%128))
	}
	return ch
}
