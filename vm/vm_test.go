package vm

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"strings"
	"testing"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/vm/meter"
)

const testGas = 10_000_000

func TestCallStatus(t *testing.T) {
	e := newTestEngine(t, Config{MemoryLimitPages: 8})
	m := deployTestdata(t, e, "abi")
	bad := uint32(0xfffffff0)
	typ := "t::T"
	tests := []struct {
		name   string
		fn     string
		args   []byte
		gas    uint64
		status protocol.Status
		code   uint32
		msg    string // substring of Message
		output []byte
	}{
		{name: "ok", fn: "echo", args: []byte("hello"), status: protocol.StatusOK, output: []byte("hello")},
		{name: "ok empty input", fn: "echo", status: protocol.StatusOK, output: []byte{}},
		{name: "abort", fn: "fail", status: protocol.StatusAbort, code: 42, msg: "boom"},
		{name: "nonzero return", fn: "ret7", status: protocol.StatusAbort, code: 7, msg: "returned 7"},
		{name: "out of gas", fn: "loop", status: protocol.StatusOutOfGas, msg: "out of gas"},
		{name: "zero gas", fn: "echo", gas: 0, status: protocol.StatusOutOfGas},
		{name: "memory limit", fn: "grow", status: protocol.StatusMemoryLimit, msg: "memory limit of 8 pages"},
		{name: "stack limit", fn: "recurse", status: protocol.StatusStackLimit, msg: "call depth exceeded 1024"},
		{name: "unreachable", fn: "trap", status: protocol.StatusTrap, msg: "unreachable"},
		{name: "unknown function", fn: "nope", status: protocol.StatusBadInput, msg: `no entry function "nope"`},
		{name: "qualified name", fn: "abi::echo", status: protocol.StatusBadInput, msg: `without its contract ("echo")`},
		{name: "input too large", fn: "echo", args: make([]byte, protocol.MaxArgsLen+1), status: protocol.StatusBadInput, msg: "input of"},
		{name: "input_read out of range", fn: "run", args: new(script).op(opInputRead, bad).bytes(),
			status: protocol.StatusTrap, msg: "input_read: destination"},
		{name: "sender out of range", fn: "run", args: new(script).op(opSender, 65530).bytes(),
			status: protocol.StatusTrap, msg: "sender: destination"},
		{name: "res_get address out of range", fn: "run", args: new(script).op(opResGet, bad, 0, 4, scratch, 0).bytes(),
			status: protocol.StatusTrap, msg: "res_get: address"},
		{name: "res_get type length zero", fn: "run", args: new(script).op(opResGet, 0, 0, 0, scratch, 0).bytes(),
			status: protocol.StatusTrap, msg: "res_get: resource type length 0"},
		{name: "res_get negative capacity", fn: "run", args: new(script).op(opResGet, 0, 0, 4, scratch, 0xffffffff).bytes(),
			status: protocol.StatusTrap, msg: "capacity -1"},
		{name: "res_put type out of range", fn: "run", args: new(script).op(opResPut, 0, bad, 4, 0, 0).bytes(),
			status: protocol.StatusTrap, msg: "res_put: type"},
		{name: "res_put value out of range", fn: "run", args: new(script).op(opResPut, 0, 0, 4, 65000, 1000).bytes(),
			status: protocol.StatusTrap, msg: "res_put: value"},
		{name: "res_put negative length", fn: "run", args: new(script).op(opResPut, 0, 0, 4, 0, 0x80000000).bytes(),
			status: protocol.StatusOutOfGas}, // 2^31 bytes cost more than the gas
		{name: "res_del type out of range", fn: "run", args: new(script).op(opResDel, 0, 65535, 2).bytes(),
			status: protocol.StatusTrap, msg: "res_del: type"},
		{name: "emit data out of range", fn: "run", args: new(script).op(opEmit, 0, 4, bad, 8).bytes(),
			status: protocol.StatusTrap, msg: "emit: data"},
		{name: "emit empty type", fn: "run", args: new(script).op(opEmit, 0, 0, 0, 0).bytes(),
			status: protocol.StatusTrap, msg: "event type length 0"},
		{name: "output_write out of range", fn: "run", args: new(script).op(opOutput, 65536, 1).bytes(),
			status: protocol.StatusTrap, msg: "output_write: data"},
		{name: "output_write too large", fn: "run", args: new(script).op(opOutput, 0, 65537).bytes(),
			status: protocol.StatusTrap, msg: "at most 65536"},
		{name: "abort message out of range", fn: "run", args: new(script).op(opAbort, 1, bad, 100).bytes(),
			status: protocol.StatusTrap, msg: "abort: message"},
		{name: "abort from script", fn: "run", args: new(script).put(addr(1), typ, []byte("x")).abort(9, "no way").bytes(),
			status: protocol.StatusAbort, code: 9, msg: "no way"},
		{name: "empty script", fn: "run", args: new(script).bytes(), status: protocol.StatusOK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			gas := uint64(testGas)
			if tc.gas != 0 || tc.name == "zero gas" {
				gas = tc.gas
			}
			r := m.Call(context.Background(), mapStore{}, Call{Function: tc.fn, Args: tc.args, Gas: gas})
			if r.Status != tc.status {
				t.Fatalf("status %s (%s), want %s", r.Status, r.Message, tc.status)
			}
			if r.AbortCode != tc.code {
				t.Errorf("abort code %d, want %d", r.AbortCode, tc.code)
			}
			if !strings.Contains(r.Message, tc.msg) {
				t.Errorf("message %q does not contain %q", r.Message, tc.msg)
			}
			if tc.output != nil && !bytes.Equal(r.Output, tc.output) {
				t.Errorf("output %q, want %q", r.Output, tc.output)
			}
			if r.Status != protocol.StatusOK && (r.ChangeSet.Len() != 0 || r.Events != nil || r.Output != nil) {
				t.Errorf("failed call kept effects: %+v", r)
			}
			switch {
			case r.Status == protocol.StatusBadInput && r.GasUsed != 0:
				t.Errorf("bad input used %d gas", r.GasUsed)
			case r.Status == protocol.StatusOutOfGas && r.GasUsed != gas:
				t.Errorf("out of gas used %d, want the whole %d", r.GasUsed, gas)
			case r.Status != protocol.StatusBadInput && r.GasUsed == 0 && gas > 0:
				t.Errorf("no gas used")
			}
		})
	}
}

func TestCallInfo(t *testing.T) {
	e := newTestEngine(t, Config{})
	m := deployTestdata(t, e, "abi")
	s := new(script)
	s.op(opSender, scratch).op(opHeight).op(opTimestamp).flush()
	r := m.Call(context.Background(), nil, Call{Function: "run", Args: s.bytes(), Sender: addr(7), Height: 12, TimestampMs: 34, Gas: testGas})
	if r.Status != protocol.StatusOK {
		t.Fatal(r.Message)
	}
	want := append(binary.LittleEndian.AppendUint64(nil, 12), binary.LittleEndian.AppendUint64(nil, 34)...)
	if !bytes.Equal(r.Output, want) {
		t.Fatalf("output %x, want %x", r.Output, want)
	}
	s = new(script)
	s.op(opSender, scratch).op(opOutput, scratch, 16)
	r = m.Call(context.Background(), nil, Call{Function: "run", Args: s.bytes(), Sender: addr(7), Gas: testGas})
	if a := addr(7); !bytes.Equal(r.Output, a[:]) {
		t.Fatalf("sender %x", r.Output)
	}
}

func TestOverlayAndChangeSet(t *testing.T) {
	e := newTestEngine(t, Config{})
	m := deployTestdata(t, e, "abi")
	a, b := addr(1), addr(2)
	const typ = "test::R"
	store := mapStore{
		{Account: a, Type: typ}: []byte("v1"),
		{Account: b, Type: typ}: []byte("v2"),
	}
	key := func(ad protocol.Address) protocol.ResourceKey { return protocol.ResourceKey{Account: ad, Type: typ} }
	c := addr(3)
	tests := []struct {
		name    string
		script  *script
		changes []protocol.Change
		output  []byte // nil: not checked
	}{
		{name: "new", script: new(script).put(c, typ, []byte("x")),
			changes: []protocol.Change{{Key: key(c), Kind: protocol.OpNew, New: []byte("x")}}},
		{name: "modify", script: new(script).put(a, typ, []byte("v9")),
			changes: []protocol.Change{{Key: key(a), Kind: protocol.OpModify, Old: []byte("v1"), New: []byte("v9")}}},
		{name: "delete", script: new(script).del(a, typ).del(c, typ).flush(),
			changes: []protocol.Change{{Key: key(a), Kind: protocol.OpDelete, Old: []byte("v1")}},
			output:  append(u32le(1), u32le(0)...)},
		{name: "put same value", script: new(script).put(a, typ, []byte("v1"))},
		{name: "modify back", script: new(script).put(a, typ, []byte("zz")).put(a, typ, []byte("v1"))},
		{name: "new then delete", script: new(script).put(c, typ, []byte("x")).del(c, typ)},
		{name: "delete then put back", script: new(script).del(b, typ).put(b, typ, []byte("v2"))},
		{name: "sorted output", script: new(script).put(c, typ, []byte("3")).put(b, typ, []byte("2")).del(a, typ),
			changes: []protocol.Change{
				{Key: key(a), Kind: protocol.OpDelete, Old: []byte("v1")},
				{Key: key(b), Kind: protocol.OpModify, Old: []byte("v2"), New: []byte("2")},
				{Key: key(c), Kind: protocol.OpNew, New: []byte("3")},
			}},
		{name: "get length only", script: new(script).get(a, typ, scratch, 0).get(c, typ, scratch, 100).flush(),
			output: append(u32le(2), u32le(0xffffffff)...)},
		{name: "get sees overlay", script: new(script).put(a, typ, []byte("longer")).get(a, typ, scratch, 3).
			del(b, typ).get(b, typ, scratch, 10).flush(),
			changes: []protocol.Change{
				{Key: key(a), Kind: protocol.OpModify, Old: []byte("v1"), New: []byte("longer")},
				{Key: key(b), Kind: protocol.OpDelete, Old: []byte("v2")},
			},
			output: append(append(u32le(6), u32le(1)...), u32le(0xffffffff)...)},
		{name: "get copies when it fits", script: new(script).get(b, typ, scratch, 2).op(opOutput, scratch, 2),
			output: []byte("v2")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := m.Call(context.Background(), store, Call{Function: "run", Args: tc.script.bytes(), Gas: testGas})
			if r.Status != protocol.StatusOK {
				t.Fatalf("status %s: %s", r.Status, r.Message)
			}
			want, err := protocol.NewChangeSet(tc.changes)
			if err != nil {
				t.Fatal(err)
			}
			if !r.ChangeSet.Equal(want) {
				t.Errorf("change set %+v, want %+v", r.ChangeSet.Changes, want.Changes)
			}
			if tc.output != nil && !bytes.Equal(r.Output, tc.output) {
				t.Errorf("output %x, want %x", r.Output, tc.output)
			}
		})
	}
	if v := store[key(a)]; string(v) != "v1" || len(store) != 2 {
		t.Fatalf("store was mutated: %v", store)
	}
}

func TestEventsAndFailureDropsEffects(t *testing.T) {
	e := newTestEngine(t, Config{MaxEvents: 2})
	m := deployTestdata(t, e, "abi")
	s := new(script).emit("test::A", []byte("1")).emit(protocol.EventLeave, nil).op(opOutput, dataBase, 4)
	r := m.Call(context.Background(), nil, Call{Function: "run", Args: s.bytes(), Gas: testGas})
	if r.Status != protocol.StatusOK {
		t.Fatal(r.Message)
	}
	want := []protocol.Event{{Type: "test::A", Data: []byte("1")}, {Type: protocol.EventLeave, Data: []byte{}}}
	if protocol.EventsHash(r.Events) != protocol.EventsHash(want) || len(r.Output) != 4 {
		t.Fatalf("events %+v output %q", r.Events, r.Output)
	}

	s = new(script).emit("a::B", nil).emit("a::B", nil).emit("a::B", nil)
	r = m.Call(context.Background(), nil, Call{Function: "run", Args: s.bytes(), Gas: testGas})
	if r.Status != protocol.StatusTrap || !strings.Contains(r.Message, "more than 2 events") {
		t.Fatalf("third event: %s %s", r.Status, r.Message)
	}

	s = new(script).put(addr(1), "a::B", []byte("x")).emit("a::B", nil).op(opOutput, dataBase, 4).abort(5, "stop")
	r = m.Call(context.Background(), nil, Call{Function: "run", Args: s.bytes(), Gas: testGas})
	if r.Status != protocol.StatusAbort || r.AbortCode != 5 || r.ChangeSet.Len() != 0 || r.Events != nil || r.Output != nil {
		t.Fatalf("abort kept effects: %+v", r)
	}
	if r.GasUsed == 0 || r.GasUsed >= testGas {
		t.Fatalf("abort used %d gas", r.GasUsed)
	}
}

func TestMaxWrites(t *testing.T) {
	e := newTestEngine(t, Config{MaxWrites: 2})
	m := deployTestdata(t, e, "abi")
	s := new(script).put(addr(1), "a::B", nil).put(addr(1), "a::B", []byte("again")).put(addr(2), "a::B", nil)
	if r := m.Call(context.Background(), nil, Call{Function: "run", Args: s.bytes(), Gas: testGas}); r.Status != protocol.StatusOK {
		t.Fatal(r.Message)
	}
	s.put(addr(3), "a::B", nil)
	r := m.Call(context.Background(), nil, Call{Function: "run", Args: s.bytes(), Gas: testGas})
	if r.Status != protocol.StatusTrap || !strings.Contains(r.Message, "more than 2 resources") {
		t.Fatalf("%s %s", r.Status, r.Message)
	}
}

func TestStateRestoredBetweenCalls(t *testing.T) {
	e := newTestEngine(t, Config{MaxIdleInstances: 1})
	m := deployTestdata(t, e, "abi")
	want := []byte{1, 0, 0, 0, 1, 0, 0, 0}
	for i, fn := range []string{"count", "count", "fail", "count", "trap", "count", "grow1", "count", "count"} {
		r := m.Call(context.Background(), nil, Call{Function: fn, Gas: testGas})
		if fn == "count" && (r.Status != protocol.StatusOK || !bytes.Equal(r.Output, want)) {
			t.Fatalf("call %d: %s %q output %v, want %v", i, r.Status, r.Message, r.Output, want)
		}
	}
}

func TestDeployRefusals(t *testing.T) {
	e := newTestEngine(t, Config{MemoryLimitPages: 256})
	tests := []struct {
		name string
		wasm []byte
		err  error
		msg  string
	}{
		{"garbage", []byte("not wasm at all"), ErrInvalidModule, "invalid WASM"},
		{"empty", nil, ErrInvalidModule, "invalid WASM"},
		{"truncated", testdata(t, "abi")[:100], ErrInvalidModule, "invalid WASM"},
		{"float", testdata(t, "float"), meter.ErrFloat, "floating-point"},
		{"no memory export", testdata(t, "nomemory"), ErrABI, `does not export its memory as "memory"`},
		{"wrong entry signature", testdata(t, "badsig"), ErrABI, `exports function "f" with type (i32, i32) -> (i32): entry functions must be (i32) -> (i32)`},
		{"unknown import", testdata(t, "unknownimport"), ErrABI, "imports scraft.random: no such function in ABI v1"},
		{"import with wrong type", testdata(t, "badimporttype"), ErrABI, "imports scraft.height with type (i32) -> (i64), ABI v1 has () -> (i64)"},
		{"WASI import", testdata(t, "wasi"), ErrABI, "WASI is not available"},
		{"imported global", testdata(t, "importglobal"), ErrABI, "only functions may be imported"},
		{"memory too large", testdata(t, "bigmemory"), ErrABI, "memory starts at 300 pages, more than the limit of 256 pages"},
		{"reserved export", testdata(t, "reserved"), ErrABI, `exports "scraft_gas": names starting with "scraft_" are reserved`},
		{"table.set", testdata(t, "tableset"), ErrNotDeterministic, "uses table.set"},
		{"start calls host", testdata(t, "starthost"), ErrStart, "height called by the start function"},
		{"start never ends", testdata(t, "startloop"), ErrStart, "start function"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := e.Deploy(context.Background(), tc.wasm)
			if err == nil {
				t.Fatalf("deployed: %v", m.Functions())
			}
			var de *DeployError
			if !errors.As(err, &de) || de.Status != protocol.StatusInvalidModule {
				t.Fatalf("not a DeployError: %v", err)
			}
			if !errors.Is(err, tc.err) {
				t.Errorf("error %v is not %v", err, tc.err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("error %q does not say %q", err, tc.msg)
			}
		})
	}
}

func TestDeployCached(t *testing.T) {
	e := newTestEngine(t, Config{})
	wasm := testdata(t, "abi")
	m1 := deployTestdata(t, e, "abi")
	m2, err := e.Deploy(context.Background(), wasm)
	if err != nil || m1 != m2 {
		t.Fatalf("second deploy: %v, same module %v", err, m1 == m2)
	}
	if m1.Hash() != CodeHash(wasm) {
		t.Fatal("hash")
	}
	if !m1.Has("echo") || m1.Has("memory") || m1.Has("scraft_gas") {
		t.Fatal("Has")
	}
	fns := m1.Functions()
	want := []string{"count", "echo", "fail", "grow", "grow1", "loop", "recurse", "ret7", "run", "spin", "trap"}
	if strings.Join(fns, ",") != strings.Join(want, ",") {
		t.Fatalf("functions %v", fns)
	}
}

func TestEngineClose(t *testing.T) {
	e := newTestEngine(t, Config{})
	m := deployTestdata(t, e, "abi")
	if err := e.Close(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(context.Background()); err != nil {
		t.Fatal("second close:", err)
	}
	if r := m.Call(context.Background(), nil, Call{Function: "echo", Gas: testGas}); r.Status == protocol.StatusOK {
		t.Fatal("call after close succeeded")
	}
	if _, err := e.Deploy(context.Background(), testdata(t, "abi")); !errors.Is(err, ErrClosed) {
		t.Fatalf("deploy after close: %v", err)
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero is defaults", Config{}, true},
		{"defaults", DefaultConfig(), true},
		{"memory too large", Config{MemoryLimitPages: MaxMemoryPages + 1}, false},
		{"depth too large", Config{MaxCallDepth: meter.MaxCallDepthLimit + 1}, false},
		{"depth conflict", Config{MaxCallDepth: 10, Meter: meter.Config{MaxCallDepth: 20}}, false},
		{"negative output", Config{MaxOutputBytes: -1}, false},
		{"too many events", Config{MaxEvents: protocol.MaxEvents + 1}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.cfg.Validate(); (err == nil) != tc.ok {
				t.Fatalf("Validate() = %v, want ok %v", err, tc.ok)
			}
		})
	}
}

func TestHostGasCharges(t *testing.T) {
	e := newTestEngine(t, Config{})
	m := deployTestdata(t, e, "abi")
	costs := e.Config().Meter.Costs
	gas := func(n int) uint64 {
		r := m.Call(context.Background(), nil, Call{Function: "echo", Args: make([]byte, n), Gas: testGas})
		if r.Status != protocol.StatusOK {
			t.Fatal(r.Message)
		}
		return r.GasUsed
	}
	// echo moves its input twice: input_read and output_write.
	if d := gas(1000) - gas(0); d != 2*1000*costs.HostPerByte {
		t.Fatalf("1000 more bytes cost %d gas, want %d", d, 2*1000*costs.HostPerByte)
	}
	// Gas that covers the code but not the host call's bytes runs out in
	// the host.
	base := gas(0)
	r := m.Call(context.Background(), nil, Call{Function: "echo", Args: make([]byte, 1000), Gas: base + 500})
	if r.Status != protocol.StatusOutOfGas || r.GasUsed != base+500 {
		t.Fatalf("%s used %d", r.Status, r.GasUsed)
	}
}

// TestDeployParsesOnce: a deploy decodes the module once, with meter.Parse;
// the checks, the instrumenter and the global exports all work from that
// one decode. A cached deploy decodes nothing.
func TestDeployParsesOnce(t *testing.T) {
	parses := 0
	orig := parse
	parse = func(wasm []byte) (*meter.Module, error) {
		parses++
		return orig(wasm)
	}
	t.Cleanup(func() { parse = orig })
	e := newTestEngine(t, Config{})
	for _, tc := range []struct {
		name string
		wasm []byte
		want int
	}{
		{"abi", testdata(t, "abi"), 1},
		{"abi again (cached)", testdata(t, "abi"), 1},
		{"movecraft", mustContract(t, "movecraft"), 2},
		{"refused", testdata(t, "tableset"), 3},
	} {
		_, _ = e.Deploy(context.Background(), tc.wasm)
		if parses != tc.want {
			t.Fatalf("%s: %d parses so far, want %d", tc.name, parses, tc.want)
		}
	}
}

// TestModuleVersions checks that a module reports the VM version and the
// cost table version of its engine: a channel's members compare them with
// the versions the chain records for it.
func TestModuleVersions(t *testing.T) {
	m := deployTestdata(t, newTestEngine(t, DefaultConfig()), "abi")
	if v, g := m.Versions(); v != Version || g != meter.CostTableV1().Version {
		t.Fatalf("versions %d, %d; want %d, %d", v, g, Version, meter.CostTableV1().Version)
	}
	cfg := DefaultConfig()
	costs := *meter.CostTableV1()
	costs.Version = 9
	cfg.Meter.Costs = &costs
	m = deployTestdata(t, newTestEngine(t, cfg), "abi")
	if _, g := m.Versions(); g != 9 {
		t.Fatalf("gas table version %d, want 9", g)
	}
}
