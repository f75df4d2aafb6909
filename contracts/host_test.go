package contracts

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sort"
	"testing"
	"time"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
)

// testHost runs contracts against an in-memory store through stub "scraft"
// host functions: a small stand-in for package vm, enough to call entry
// functions and look at what they stored, emitted and returned. Each call
// gets a fresh instance and its writes are kept only if it returns 0.
type testHost struct {
	t       testing.TB
	rt      wazero.Runtime
	mod     wazero.CompiledModule
	abi     *ABI
	store   map[string][]byte // key: 16-byte address + resource type
	height  int64
	nowMs   int64
	lastOut []byte
	// callTime adds up the time spent in entry functions (guest code and
	// host calls), without instantiation.
	callTime time.Duration
	memPages uint32 // memory size after the last call

	// per call
	cur call
}

type event struct {
	Type string
	Data []byte
}

type call struct {
	sender  [16]byte
	input   []byte
	writes  map[string][]byte // nil value: deleted
	output  []byte
	events  []event
	aborted *abortErr
}

// abortErr is what the stub abort host function panics with.
type abortErr struct {
	code uint32
	msg  string
}

func (e *abortErr) Error() string { return fmt.Sprintf("abort %d: %s", e.code, e.msg) }

func newTestHost(t testing.TB, name string) *testHost {
	t.Helper()
	c, err := Get(name)
	if err != nil {
		t.Fatal(err)
	}
	return newTestHostFor(t, c)
}

// newTestHostFor is newTestHost for a contract that is not embedded (the
// test contracts, read from their folders).
func newTestHostFor(t testing.TB, c *Contract) *testHost {
	t.Helper()
	ctx := context.Background()
	h := &testHost{t: t, abi: c.ABI, store: map[string][]byte{}}
	h.rt = wazero.NewRuntime(ctx)
	t.Cleanup(func() { h.rt.Close(ctx) })

	i32, i64 := api.ValueTypeI32, api.ValueTypeI64
	b := h.rt.NewHostModuleBuilder("scraft")
	fn := func(name string, params, results []api.ValueType, f func(m api.Module, s []uint64)) {
		b.NewFunctionBuilder().WithGoModuleFunction(api.GoModuleFunc(func(_ context.Context, m api.Module, s []uint64) { f(m, s) }), params, results).Export(name)
	}
	read := func(m api.Module, ptr, n uint64) []byte {
		b, ok := m.Memory().Read(uint32(ptr), uint32(n))
		if !ok {
			panic(fmt.Errorf("out of range read %d+%d", ptr, n))
		}
		return append([]byte(nil), b...)
	}
	write := func(m api.Module, ptr uint64, b []byte) {
		if !m.Memory().Write(uint32(ptr), b) {
			panic(fmt.Errorf("out of range write %d+%d", ptr, len(b)))
		}
	}
	key := func(m api.Module, addr, typ, typLen uint64) string {
		return string(read(m, addr, 16)) + string(read(m, typ, typLen))
	}
	fn("input_read", []api.ValueType{i32}, nil, func(m api.Module, s []uint64) { write(m, s[0], h.cur.input) })
	fn("sender", []api.ValueType{i32}, nil, func(m api.Module, s []uint64) { write(m, s[0], h.cur.sender[:]) })
	fn("height", nil, []api.ValueType{i64}, func(m api.Module, s []uint64) { s[0] = uint64(h.height) })
	fn("timestamp_ms", nil, []api.ValueType{i64}, func(m api.Module, s []uint64) { s[0] = uint64(h.nowMs) })
	fn("res_get", []api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}, func(m api.Module, s []uint64) {
		v, ok := h.get(key(m, s[0], s[1], s[2]))
		if !ok {
			s[0] = api.EncodeI32(-1)
			return
		}
		if uint64(len(v)) <= uint64(uint32(s[4])) {
			write(m, s[3], v)
		}
		s[0] = api.EncodeI32(int32(len(v)))
	})
	fn("res_put", []api.ValueType{i32, i32, i32, i32, i32}, nil, func(m api.Module, s []uint64) {
		h.cur.writes[key(m, s[0], s[1], s[2])] = read(m, s[3], s[4])
	})
	fn("res_del", []api.ValueType{i32, i32, i32}, []api.ValueType{i32}, func(m api.Module, s []uint64) {
		k := key(m, s[0], s[1], s[2])
		_, ok := h.get(k)
		h.cur.writes[k] = nil
		if ok {
			s[0] = 1
		} else {
			s[0] = 0
		}
	})
	fn("emit", []api.ValueType{i32, i32, i32, i32}, nil, func(m api.Module, s []uint64) {
		h.cur.events = append(h.cur.events, event{Type: string(read(m, s[0], s[1])), Data: read(m, s[2], s[3])})
	})
	fn("output_write", []api.ValueType{i32, i32}, nil, func(m api.Module, s []uint64) { h.cur.output = read(m, s[0], s[1]) })
	fn("abort", []api.ValueType{i32, i32, i32}, nil, func(m api.Module, s []uint64) {
		h.cur.aborted = &abortErr{code: uint32(s[0]), msg: string(read(m, s[1], s[2]))}
		panic(h.cur.aborted)
	})
	if _, err := b.Instantiate(ctx); err != nil {
		t.Fatal(err)
	}
	var err error
	h.mod, err = h.rt.CompileModule(ctx, c.Wasm)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func (h *testHost) get(k string) ([]byte, bool) {
	if v, ok := h.cur.writes[k]; ok {
		return v, v != nil
	}
	v, ok := h.store[k]
	return v, ok
}

// call runs fn with input from sender at the next height. It returns the
// abort (nil on success); the call's events are in h.cur.events.
func (h *testHost) call(sender [16]byte, fn string, input []byte) *abortErr {
	h.t.Helper()
	return h.callLen(sender, fn, input, uint64(len(input)))
}

// callLen is call with the entry function's length parameter given.
func (h *testHost) callLen(sender [16]byte, fn string, input []byte, n uint64) *abortErr {
	h.t.Helper()
	ctx := context.Background()
	h.height++
	h.nowMs += 50
	h.cur = call{sender: sender, input: input, writes: map[string][]byte{}}
	m, err := h.rt.InstantiateModule(ctx, h.mod, wazero.NewModuleConfig().WithName(""))
	if err != nil {
		h.t.Fatalf("instantiate: %v", err)
	}
	defer m.Close(ctx)
	f := m.ExportedFunction(fn)
	if f == nil {
		h.t.Fatalf("no export %q", fn)
	}
	start := time.Now()
	res, err := f.Call(ctx, n)
	h.callTime += time.Since(start)
	h.memPages, _ = m.Memory().Grow(0)
	if h.cur.aborted != nil {
		return h.cur.aborted
	}
	if err != nil {
		h.t.Fatalf("%s: trap: %v", fn, err)
	}
	if res[0] != 0 {
		h.t.Fatalf("%s returned %d", fn, res[0])
	}
	keys := make([]string, 0, len(h.cur.writes))
	for k := range h.cur.writes {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if v := h.cur.writes[k]; v == nil {
			delete(h.store, k)
		} else {
			h.store[k] = v
		}
	}
	h.lastOut = h.cur.output
	return nil
}

// mustCall encodes jsonArgs by the ABI, calls fn and fails on abort.
func (h *testHost) mustCall(sender [16]byte, fn, jsonArgs string) []byte {
	h.t.Helper()
	in, err := h.abi.EncodeArgs(fn, []byte(jsonArgs))
	if err != nil {
		h.t.Fatalf("encode %s %s: %v", fn, jsonArgs, err)
	}
	if ab := h.call(sender, fn, in); ab != nil {
		h.t.Fatalf("%s %s: %v", fn, jsonArgs, ab)
	}
	return h.lastOut
}

// mustAbort calls fn and fails unless it aborts with code.
func (h *testHost) mustAbort(sender [16]byte, fn, jsonArgs string, code uint32) *abortErr {
	h.t.Helper()
	in, err := h.abi.EncodeArgs(fn, []byte(jsonArgs))
	if err != nil {
		h.t.Fatalf("encode %s %s: %v", fn, jsonArgs, err)
	}
	ab := h.call(sender, fn, in)
	if ab == nil {
		h.t.Fatalf("%s %s: want abort %d, got success", fn, jsonArgs, code)
	}
	if ab.code != code {
		h.t.Fatalf("%s %s: want abort %d, got %v", fn, jsonArgs, code, ab)
	}
	return ab
}

// resource returns the stored value of (addr, typ) as JSON, or "" if absent.
func (h *testHost) resource(addr [16]byte, typ string) string {
	h.t.Helper()
	v, ok := h.store[string(addr[:])+typ]
	if !ok {
		return ""
	}
	j, err := h.abi.DecodeResource(typ, v)
	if err != nil {
		h.t.Fatalf("decode %s: %v", typ, err)
	}
	return string(j)
}

// count returns how many stored resources have type typ.
func (h *testHost) count(typ string) int {
	n := 0
	for k := range h.store {
		if k[16:] == typ {
			n++
		}
	}
	return n
}

func addr(b byte) [16]byte {
	var a [16]byte
	for i := range a {
		a[i] = b
	}
	return a
}

var channelAccount = [16]byte{15: 1}

func derived(tag string, k0, k1, k2 uint32) [16]byte {
	var a [16]byte
	copy(a[:4], tag)
	binary.LittleEndian.PutUint32(a[4:], k0)
	binary.LittleEndian.PutUint32(a[8:], k1)
	binary.LittleEndian.PutUint32(a[12:], k2)
	return a
}

var _ = errors.New
