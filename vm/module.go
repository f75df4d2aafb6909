package vm

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"
	"github.com/tetratelabs/wazero/experimental"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/vm/meter"
)

// Store is the read-only view of channel state a call runs on. Get returns
// the value of a resource and whether it exists; the vm never mutates the
// returned bytes. Get is called from the goroutine running the call; a
// Store shared by concurrent calls must allow concurrent Gets.
type Store = protocol.StateReader

// Call is one invocation of an entry function; Result is its outcome (on
// any status but OK the change set, events and output are empty; GasUsed
// is what was spent, the whole limit when the gas ran out). They are the
// protocol's types, so that a Module is an fsm.Executor as it is.
type (
	Call   = protocol.Call
	Result = protocol.CallResult
)

// Module is deployed contract code. Its methods are safe for concurrent
// use.
type Module struct {
	e        *Engine
	hash     protocol.Hash
	compiled wazero.CompiledModule
	names    []string       // entry functions, sorted
	index    map[string]int // name → position in names
	globals  []string       // export names of every mutable global
	snap     snapshot       // state right after instantiation

	mu   sync.Mutex
	idle []*instance // ready instances, restored or fresh
}

// snapshot is an instance's memory and mutable globals right after
// instantiation. Every call starts from it.
type snapshot struct {
	mem     []byte
	used    int // mem[used:] is all zero
	globals []uint64
}

// Hash returns the code hash (CodeHash of the deployed bytes).
func (m *Module) Hash() protocol.Hash { return m.hash }

// Versions returns the VM version and the gas cost table version the
// module runs under: Version and its engine's meter cost table.
func (m *Module) Versions() (vmVersion, gasTable uint32) {
	return Version, m.e.cfg.Meter.Costs.Version
}

// Functions returns the entry functions, sorted, reserved ones included.
func (m *Module) Functions() []string { return slices.Clone(m.names) }

// Has reports whether name is an entry function.
func (m *Module) Has(name string) bool { _, ok := m.index[name]; return ok }

// instance is one live wazero instance of a module with the state of the
// call it runs. It is used by one goroutine at a time: it leaves the pool
// for a call and comes back after.
type instance struct {
	m     *Module
	mod   api.Module
	mem   *linearMemory
	ctx   context.Context // carries the instance to host functions
	fns   []api.Function  // by entry index, made on first use
	glob  []api.MutableGlobal
	gas   api.MutableGlobal
	depth api.MutableGlobal
	stack [1]uint64
	dirty bool // ran a call since its last restore

	// The running call.
	inCall      bool
	store       Store
	input       []byte
	sender      protocol.Address
	height      uint64
	timestampMs uint64
	overlay     map[protocol.ResourceKey]slot
	touched     []protocol.ResourceKey // overlay keys in first-write order
	events      []protocol.Event
	eventBytes  int
	output      []byte
	hasOutput   bool
	stop        stopReason
	stopMsg     string
	abortCode   uint32
	hitLimit    bool // memory.grow was refused at MemoryLimitPages

	types map[string]string // resource type names seen, see typeName
}

// slot is the overlay's value of one resource: present with val, or
// deleted.
type slot struct {
	val     []byte
	present bool
}

func (in *instance) get(k protocol.ResourceKey) ([]byte, bool) {
	if s, ok := in.overlay[k]; ok {
		return s.val, s.present
	}
	if in.store == nil {
		return nil, false
	}
	return in.store.Get(k)
}

func (in *instance) put(k protocol.ResourceKey, v []byte, present bool) {
	if _, ok := in.overlay[k]; !ok {
		if len(in.touched) >= in.m.e.cfg.MaxWrites {
			in.trap(fmt.Sprintf("more than %d resources written in one call", in.m.e.cfg.MaxWrites))
		}
		in.touched = append(in.touched, k)
	}
	in.overlay[k] = slot{val: v, present: present}
}

// changeSet is the canonical diff between the store and the overlay: only
// touched keys are looked at, and protocol.Diff sorts them.
func (in *instance) changeSet() protocol.ChangeSet {
	if len(in.touched) == 0 {
		return protocol.ChangeSet{}
	}
	before := make(protocol.State, len(in.touched))
	after := make(protocol.State, len(in.touched))
	for _, k := range in.touched {
		if in.store != nil {
			if v, ok := in.store.Get(k); ok {
				before[k] = v
			}
		}
		if s := in.overlay[k]; s.present {
			after[k] = s.val
		}
	}
	return protocol.Diff(before, after)
}

// linearMemory backs an instance's memory (experimental.MemoryAllocator).
// It refuses to grow past the page limit and records that it did, which is
// how a trap after a refused memory.grow becomes StatusMemoryLimit.
type linearMemory struct {
	in    *instance
	buf   []byte
	limit uint64 // bytes
}

func (l *linearMemory) Reallocate(size uint64) []byte {
	if size > l.limit {
		l.in.hitLimit = true
		return nil
	}
	if size <= uint64(cap(l.buf)) {
		// Memory never shrinks, so the bytes past len are still the zeroes
		// make gave them.
		l.buf = l.buf[:size]
		return l.buf
	}
	nb := make([]byte, size, min(max(size, 2*uint64(cap(l.buf))), l.limit))
	copy(nb, l.buf)
	l.buf = nb
	return l.buf
}

func (l *linearMemory) Free() { l.buf = nil }

func (m *Module) newInstance(ctx context.Context) (*instance, error) {
	in := &instance{m: m, overlay: map[protocol.ResourceKey]slot{}, types: map[string]string{}}
	in.ctx = context.WithValue(context.Background(), instanceKey{}, in)
	limit := uint64(m.e.cfg.MemoryLimitPages) * 65536
	ictx := experimental.WithMemoryAllocator(in.ctx, experimental.MemoryAllocatorFunc(
		func(capacity, _ uint64) experimental.LinearMemory {
			in.mem = &linearMemory{in: in, buf: make([]byte, 0, min(capacity, limit)), limit: limit}
			return in.mem
		}))
	mod, err := m.e.runtime.InstantiateModule(ictx, m.compiled,
		wazero.NewModuleConfig().WithName("").WithStartFunctions())
	if err != nil {
		msg := firstLine(err.Error())
		switch {
		case in.stop == stopTrap:
			msg = in.stopMsg
		case in.stop == stopGas:
			msg = "out of gas"
		}
		return nil, fmt.Errorf("start function: %s", msg)
	}
	in.mod = mod
	if in.mem == nil {
		mod.Close(ctx)
		return nil, errors.New("module has no memory")
	}
	// Function handles are made on first use: each one carries its own
	// call stack in wazero, tens of KB that most entries never need.
	in.fns = make([]api.Function, len(m.names))
	in.glob = make([]api.MutableGlobal, len(m.globals))
	for i, n := range m.globals {
		g, ok := mod.ExportedGlobal(n).(api.MutableGlobal)
		if !ok {
			mod.Close(ctx)
			return nil, fmt.Errorf("global %s is not mutable", n)
		}
		in.glob[i] = g
		switch n {
		case meter.GasGlobal:
			in.gas = g
		case meter.DepthGlobal:
			in.depth = g
		}
	}
	if in.gas == nil || in.depth == nil {
		mod.Close(ctx)
		return nil, errors.New("instrumented module lacks the gas or depth global")
	}
	return in, nil
}

func (in *instance) snapshot() snapshot {
	s := snapshot{mem: slices.Clone(in.mem.buf), globals: make([]uint64, len(in.glob))}
	s.used = len(s.mem)
	for s.used > 0 && s.mem[s.used-1] == 0 {
		s.used--
	}
	for i, g := range in.glob {
		s.globals[i] = g.Get()
	}
	return s
}

// restore puts back the memory and globals of the snapshot. The memory has
// the snapshot's size: an instance whose memory grew is never reused.
func (in *instance) restore() {
	s := &in.m.snap
	// Most of a fresh memory is zeroes past the data segments, and a call
	// dirties little of it: reading a chunk to find it still zero is
	// cheaper than writing it.
	copy(in.mem.buf[:s.used], s.mem[:s.used])
	tail := in.mem.buf[s.used:len(s.mem)]
	for len(tail) > 0 {
		n := min(len(tail), len(zeroChunk))
		if !bytes.Equal(tail[:n], zeroChunk[:n]) {
			clear(tail[:n])
		}
		tail = tail[n:]
	}
	for i, g := range in.glob {
		g.Set(s.globals[i])
	}
	in.dirty = false
}

var zeroChunk [4096]byte

func (in *instance) close() {
	if in.mod != nil {
		_ = in.mod.Close(context.Background())
	}
}

func (m *Module) getInstance(ctx context.Context) (*instance, error) {
	m.mu.Lock()
	if n := len(m.idle); n > 0 {
		in := m.idle[n-1]
		m.idle = m.idle[:n-1]
		m.mu.Unlock()
		return in, nil
	}
	m.mu.Unlock()
	return m.newInstance(ctx)
}

func (m *Module) putInstance(in *instance) {
	m.mu.Lock()
	if len(m.idle) < m.e.cfg.MaxIdleInstances {
		m.idle = append(m.idle, in)
		in = nil
	}
	m.mu.Unlock()
	if in != nil {
		in.close()
	}
}

// Call runs an entry function over a private overlay of store. It never
// panics and never returns an error: every failure is a Result with its
// status. ctx is not consulted while the guest runs (gas bounds every
// call, and a result must not depend on a deadline).
func (m *Module) Call(ctx context.Context, store Store, call Call) (res Result) {
	m.e.life.RLock()
	defer m.e.life.RUnlock()
	if m.e.closed {
		return Result{Status: protocol.StatusInvalidModule, Message: ErrClosed.Error()}
	}
	idx, ok := m.index[call.Function]
	if !ok {
		return Result{Status: protocol.StatusBadInput, Message: m.unknownFunction(call.Function)}
	}
	if len(call.Args) > m.e.cfg.MaxInputBytes {
		return Result{Status: protocol.StatusBadInput,
			Message: fmt.Sprintf("input of %d bytes, at most %d allowed", len(call.Args), m.e.cfg.MaxInputBytes)}
	}
	in, err := m.getInstance(ctx)
	if err != nil {
		return Result{Status: protocol.StatusInvalidModule, Message: "instantiate: " + err.Error()}
	}
	keep := false
	defer func() {
		if r := recover(); r != nil {
			res = Result{Status: protocol.StatusTrap, Message: fmt.Sprintf("vm: internal error: %v", r)}
			keep = false
		}
		in.end()
		if keep {
			m.putInstance(in)
		} else {
			in.close()
		}
	}()
	limit := min(call.Gas, math.MaxInt64)
	in.begin(store, &call, limit)
	in.stack[0] = uint64(len(call.Args))
	fn := in.fns[idx]
	if fn == nil {
		fn = in.mod.ExportedFunction(m.names[idx])
		in.fns[idx] = fn
	}
	err = fn.CallWithStack(in.ctx, in.stack[:])
	res, keep = in.result(err, limit)
	return res
}

func (m *Module) unknownFunction(name string) string {
	switch {
	case name == "":
		return "no function named"
	case strings.Contains(name, "::"):
		return fmt.Sprintf("no entry function %q: name the export without its contract (%q)", name, name[strings.Index(name, "::")+2:])
	}
	return fmt.Sprintf("no entry function %q (the module has %s)", name, strings.Join(m.names, ", "))
}

func (in *instance) begin(store Store, call *Call, gas uint64) {
	if in.dirty {
		in.restore()
	}
	in.dirty = true
	in.inCall = true
	in.store = store
	in.input = call.Args
	in.sender = call.Sender
	in.height = call.Height
	in.timestampMs = call.TimestampMs
	in.gas.Set(gas)
	in.depth.Set(0)
}

// end forgets the call, keeping the overlay's and buffers' storage.
func (in *instance) end() {
	in.inCall = false
	in.store = nil
	in.input = nil
	clear(in.overlay)
	clear(in.touched)
	in.touched = in.touched[:0]
	in.events = nil
	in.eventBytes = 0
	in.output = in.output[:0]
	in.hasOutput = false
	in.stop = stopNone
	in.stopMsg = ""
	in.abortCode = 0
	in.hitLimit = false
}

// result turns the end of a call into a Result, and says whether the
// instance may be reused: not after a trap (we restore memory and globals,
// but a trap may have left the engine mid-way), nor after its memory grew.
func (in *instance) result(err error, limit uint64) (Result, bool) {
	remaining := int64(in.gas.Get())
	used := limit
	if remaining >= 0 && uint64(remaining) <= limit {
		used = limit - uint64(remaining)
	}
	grown := len(in.mem.buf) != len(in.m.snap.mem)
	if err == nil {
		if ret := int32(uint32(in.stack[0])); ret != 0 {
			return Result{Status: protocol.StatusAbort, AbortCode: uint32(ret), GasUsed: used,
				Message: fmt.Sprintf("entry function returned %d", ret)}, !grown
		}
		r := Result{Status: protocol.StatusOK, GasUsed: used, ChangeSet: in.changeSet(), Events: in.events}
		if in.hasOutput { // never nil once written, even if empty
			r.Output = append(make([]byte, 0, len(in.output)), in.output...)
		}
		return r, !grown
	}
	cfg := &in.m.e.cfg
	switch {
	case in.stop == stopAbort:
		return Result{Status: protocol.StatusAbort, AbortCode: in.abortCode, GasUsed: used,
			Message: strings.ToValidUTF8(in.stopMsg, "\uFFFD")}, !grown
	case remaining < 0:
		return Result{Status: protocol.StatusOutOfGas, GasUsed: limit,
			Message: fmt.Sprintf("out of gas: the limit of %d was spent", limit)}, false
	case in.stop == stopTrap:
		return Result{Status: protocol.StatusTrap, GasUsed: used, Message: in.stopMsg}, false
	case int32(uint32(in.depth.Get())) > int32(cfg.MaxCallDepth):
		return Result{Status: protocol.StatusStackLimit, GasUsed: used,
			Message: fmt.Sprintf("call depth exceeded %d", cfg.MaxCallDepth)}, false
	case in.hitLimit:
		return Result{Status: protocol.StatusMemoryLimit, GasUsed: used,
			Message: fmt.Sprintf("memory limit of %d pages reached, then %s", cfg.MemoryLimitPages, trapText(err))}, false
	}
	return Result{Status: protocol.StatusTrap, GasUsed: used, Message: trapText(err)}, false
}

func trapText(err error) string {
	return strings.TrimPrefix(firstLine(err.Error()), "wasm error: ")
}
