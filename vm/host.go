package vm

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/tetratelabs/wazero"
	"github.com/tetratelabs/wazero/api"

	"github.com/scraft/scraft/protocol"
)

// hostModule is the import module of the scraft ABI.
const hostModule = "scraft"

// hostFunction is one import of the ABI. Every one is a GoModuleFunc: it
// reads its arguments from the stack and reaches the running call through
// the context (about 40 ns per call, against 1 µs for reflection).
type hostFunction struct {
	name    string
	params  []api.ValueType
	results []api.ValueType
	fn      func(in *instance, stack []uint64)
}

var i32, i64 = api.ValueTypeI32, api.ValueTypeI64

// hostFunctions is ABI v1 (DESIGN.md §4), sorted by name.
var hostFunctions = []hostFunction{
	{"abort", []api.ValueType{i32, i32, i32}, nil, hostAbort},
	{"emit", []api.ValueType{i32, i32, i32, i32}, nil, hostEmit},
	{"height", nil, []api.ValueType{i64}, hostHeight},
	{"input_read", []api.ValueType{i32}, nil, hostInputRead},
	{"output_write", []api.ValueType{i32, i32}, nil, hostOutputWrite},
	{"res_del", []api.ValueType{i32, i32, i32}, []api.ValueType{i32}, hostResDel},
	{"res_get", []api.ValueType{i32, i32, i32, i32, i32}, []api.ValueType{i32}, hostResGet},
	{"res_put", []api.ValueType{i32, i32, i32, i32, i32}, nil, hostResPut},
	{"sender", []api.ValueType{i32}, nil, hostSender},
	{"timestamp_ms", nil, []api.ValueType{i64}, hostTimestamp},
}

func hostFunctionByName(name string) *hostFunction {
	i, ok := slices.BinarySearchFunc(hostFunctions, name, func(f hostFunction, n string) int {
		switch {
		case f.name < n:
			return -1
		case f.name > n:
			return 1
		}
		return 0
	})
	if !ok {
		return nil
	}
	return &hostFunctions[i]
}

func hostFunctionNames() []string {
	names := make([]string, len(hostFunctions))
	for i, f := range hostFunctions {
		names[i] = f.name
	}
	return names
}

// instanceKey is the context key under which host functions find their
// instance. Each instance builds its context once, so a call allocates none.
type instanceKey struct{}

func instantiateHost(ctx context.Context, r wazero.Runtime) error {
	b := r.NewHostModuleBuilder(hostModule)
	for i := range hostFunctions {
		f := &hostFunctions[i]
		b.NewFunctionBuilder().
			WithGoModuleFunction(api.GoModuleFunc(func(ctx context.Context, _ api.Module, stack []uint64) {
				in, _ := ctx.Value(instanceKey{}).(*instance)
				if in == nil {
					panic(errors.New("vm: host function called outside a call"))
				}
				if !in.inCall {
					in.trap(fmt.Sprintf("%s called by the start function: the ABI is only available inside entry functions", f.name))
				}
				f.fn(in, stack)
			}), f.params, f.results).
			Export(f.name)
	}
	_, err := b.Instantiate(ctx)
	return err
}

// Why a call stopped early, when the host stopped it.
type stopReason uint8

const (
	stopNone  stopReason = iota
	stopAbort            // the guest called abort
	stopTrap             // a host function refused its arguments
	stopGas              // a host function ran out of gas
)

// errHostStop unwinds the guest when a host function stops the call; the
// reason is in the instance.
var errHostStop = errors.New("vm: call stopped by the host")

func (in *instance) trap(msg string) {
	in.stop, in.stopMsg = stopTrap, msg
	panic(errHostStop)
}

// charge takes HostCall + HostPerByte × n gas, stopping the call when the
// gas runs out. The gas global is never negative when a host function is
// entered (the metered code traps first), so the arithmetic cannot
// overflow: n < 2^33 and weights < 2^24.
func (in *instance) charge(n uint64) {
	c := in.m.e.cfg.Meter.Costs
	in.take(c.HostCall + c.HostPerByte*n)
}

// chargeBytes takes HostPerByte × n gas, for bytes a host function moves
// after it has charged its call.
func (in *instance) chargeBytes(n uint64) {
	in.take(in.m.e.cfg.Meter.Costs.HostPerByte * n)
}

func (in *instance) take(cost uint64) {
	g := int64(in.gas.Get()) - int64(cost)
	in.gas.Set(uint64(g))
	if g < 0 {
		in.stop = stopGas
		panic(errHostStop)
	}
}

// span checks that [ptr, ptr+n) lies inside memory and returns it. A bad
// pointer or a negative length traps the call.
func (in *instance) span(fn, what string, ptr, n uint64) []byte {
	mem := in.mem.buf
	if int32(uint32(n)) < 0 {
		in.trap(fmt.Sprintf("%s: %s length %d is negative", fn, what, int32(uint32(n))))
	}
	p, l := uint64(uint32(ptr)), uint64(uint32(n))
	if p+l > uint64(len(mem)) {
		in.trap(fmt.Sprintf("%s: %s [%d, +%d) is outside memory (%d bytes)", fn, what, p, l, len(mem)))
	}
	return mem[p : p+l : p+l]
}

func (in *instance) resourceKey(fn string, addrPtr, typePtr, typeLen uint64) protocol.ResourceKey {
	if int32(uint32(typeLen)) <= 0 || uint32(typeLen) > protocol.MaxTypeLen {
		in.trap(fmt.Sprintf("%s: resource type length %d, must be 1 to %d", fn, int32(uint32(typeLen)), protocol.MaxTypeLen))
	}
	var k protocol.ResourceKey
	copy(k.Account[:], in.span(fn, "address", addrPtr, protocol.AddressLen))
	k.Type = in.typeName(in.span(fn, "type", typePtr, typeLen))
	return k
}

// typeName returns b as a string, reusing the string of an earlier call:
// a contract uses a handful of resource types, and a host call should not
// allocate for them each time.
func (in *instance) typeName(b []byte) string {
	if s, ok := in.types[string(b)]; ok {
		return s
	}
	s := string(b)
	if len(in.types) < maxTypeNames {
		in.types[s] = s
	}
	return s
}

// maxTypeNames bounds an instance's cache of resource type names.
const maxTypeNames = 256

func hostInputRead(in *instance, stack []uint64) {
	in.charge(uint64(len(in.input)))
	copy(in.span("input_read", "destination", stack[0], uint64(len(in.input))), in.input)
}

func hostSender(in *instance, stack []uint64) {
	in.charge(protocol.AddressLen)
	copy(in.span("sender", "destination", stack[0], protocol.AddressLen), in.sender[:])
}

func hostHeight(in *instance, stack []uint64) {
	in.charge(0)
	stack[0] = in.height
}

func hostTimestamp(in *instance, stack []uint64) {
	in.charge(0)
	stack[0] = in.timestampMs
}

// res_get(addr, type, type_len, dst, cap) -> length | -1. The value is copied
// only when it fits in cap, so a guest can ask for the length with cap 0 and
// call again with a buffer of that size.
func hostResGet(in *instance, stack []uint64) {
	in.charge(uint64(uint32(stack[2])))
	k := in.resourceKey("res_get", stack[0], stack[1], stack[2])
	capacity := int32(uint32(stack[4]))
	if capacity < 0 {
		in.trap(fmt.Sprintf("res_get: capacity %d is negative", capacity))
	}
	v, ok := in.get(k)
	if !ok {
		stack[0] = uint64(uint32(0xffffffff)) // -1
		return
	}
	if len(v) <= int(capacity) {
		in.chargeBytes(uint64(len(v)))
		copy(in.span("res_get", "destination", stack[3], uint64(len(v))), v)
	}
	stack[0] = uint64(uint32(len(v)))
}

func hostResPut(in *instance, stack []uint64) {
	in.charge(uint64(uint32(stack[2])) + uint64(uint32(stack[4])))
	k := in.resourceKey("res_put", stack[0], stack[1], stack[2])
	if n := int32(uint32(stack[4])); n > protocol.MaxValueLen {
		in.trap(fmt.Sprintf("res_put: value of %d bytes, at most %d allowed", n, protocol.MaxValueLen))
	}
	v := in.span("res_put", "value", stack[3], stack[4])
	in.put(k, slices.Clone(v), true)
}

func hostResDel(in *instance, stack []uint64) {
	in.charge(uint64(uint32(stack[2])))
	k := in.resourceKey("res_del", stack[0], stack[1], stack[2])
	_, existed := in.get(k)
	if existed {
		in.put(k, nil, false)
	}
	if existed {
		stack[0] = 1
	} else {
		stack[0] = 0
	}
}

func hostEmit(in *instance, stack []uint64) {
	tl, dl := uint64(uint32(stack[1])), uint64(uint32(stack[3]))
	in.charge(tl + dl)
	if int32(uint32(tl)) <= 0 || tl > protocol.MaxTypeLen {
		in.trap(fmt.Sprintf("emit: event type length %d, must be 1 to %d", int32(uint32(tl)), protocol.MaxTypeLen))
	}
	typ := in.span("emit", "type", stack[0], tl)
	data := in.span("emit", "data", stack[2], dl)
	cfg := &in.m.e.cfg
	if len(in.events) >= cfg.MaxEvents {
		in.trap(fmt.Sprintf("emit: more than %d events", cfg.MaxEvents))
	}
	if in.eventBytes+len(typ)+len(data) > cfg.MaxEventBytes {
		in.trap(fmt.Sprintf("emit: events larger than %d bytes", cfg.MaxEventBytes))
	}
	in.eventBytes += len(typ) + len(data)
	in.events = append(in.events, protocol.Event{Type: string(typ), Data: slices.Clone(data)})
}

// output_write(ptr, len) sets the call's return value; a later write
// replaces an earlier one.
func hostOutputWrite(in *instance, stack []uint64) {
	n := uint64(uint32(stack[1]))
	in.charge(n)
	if max := in.m.e.cfg.MaxOutputBytes; int32(uint32(n)) > int32(max) {
		in.trap(fmt.Sprintf("output_write: %d bytes, at most %d allowed", int32(uint32(n)), max))
	}
	in.output = append(in.output[:0], in.span("output_write", "data", stack[0], n)...)
	in.hasOutput = true
}

// abort(code, msg, msg_len) stops the call with an abort code; the message
// (at most MaxAbortMessage bytes are kept) is for people.
func hostAbort(in *instance, stack []uint64) {
	n := uint64(uint32(stack[2]))
	in.charge(min(n, MaxAbortMessage))
	msg := in.span("abort", "message", stack[1], n)
	if len(msg) > MaxAbortMessage {
		msg = msg[:MaxAbortMessage]
	}
	in.stop, in.abortCode, in.stopMsg = stopAbort, uint32(stack[0]), string(msg)
	panic(errHostStop)
}
