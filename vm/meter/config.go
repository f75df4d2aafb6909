package meter

import (
	"errors"
	"fmt"
)

// Names of the globals Instrument adds and exports.
const (
	// GasGlobal is an exported mutable i64 holding the remaining gas. The
	// host sets it (to a value ≥ 0) before a call and reads it afterwards.
	// Instrumented code subtracts first and checks second: when a charge
	// takes it below zero the code executes unreachable, leaving the
	// negative value in the global. A trap with GasGlobal < 0 is therefore
	// "out of gas".
	GasGlobal = "scraft_gas"
	// DepthGlobal is an exported mutable i32 holding the current call
	// depth. The host sets it to 0 before each call. A call that would make
	// it exceed Config.MaxCallDepth traps after the increment, leaving
	// DepthGlobal = MaxCallDepth+1.
	DepthGlobal = "scraft_depth"
	// GlobalExportPrefix starts the names of the exports Instrument adds
	// for mutable globals the module does not export, followed by the
	// global's index ("scraft_global_3"), so that a host can save and
	// restore every mutable global.
	GlobalExportPrefix = "scraft_global_"
)

// Decoding limits. Inputs beyond them fail with ErrTooLarge.
const (
	// MaxModuleSize is the largest module Instrument accepts, in bytes.
	MaxModuleSize = 8 << 20
	// MaxOutputSize is the largest module Instrument returns, in bytes.
	// Metering grows typical code 1.3–3 times; only code made of little
	// but branches and calls grows more.
	MaxOutputSize = 4 * MaxModuleSize
	// MaxFunctions bounds imported plus defined functions.
	MaxFunctions = 100_000
	// MaxLocals bounds the declared locals of one function (parameters
	// excluded).
	MaxLocals = 50_000
	// maxEntries bounds the entries of any one section (types, imports,
	// globals, exports, element and data segments, ...), the value types
	// of a function type and the elements of a segment: a decoder that
	// allocates by declared counts must not be handed more.
	maxEntries = 100_000
	// maxVec bounds the vectors inside code (br_table targets, select
	// types) and the nesting of blocks.
	maxVec = 1_000_000

	// MaxCallDepthLimit is the largest MaxCallDepth Validate accepts: it
	// keeps our limit below wazero's interpreter ceiling of 2,000 frames, so
	// both engines stop at our trap and never at their own.
	MaxCallDepthLimit = 1800
	// MaxStackBytes bounds MaxCallDepth × MaxFrameBytes: the native stack
	// the deepest legal call chain may take in wazero's compiler. wazero
	// v1.12 refuses to grow a call stack whose length is above 50,000,000
	// bytes; a chain whose frames, plus what the next prologue asks for,
	// fit in 50,000,000 bytes therefore never needs that refused growth,
	// whatever the stack's length after earlier calls. 32 MiB leaves
	// 16.4 MB for the entry preamble, a host call from the deepest frame
	// and error in the frame bound.
	MaxStackBytes = 32 << 20
	// maxWeight bounds every weight in a CostTable so that no charge can
	// overflow an i64: 2^32 bytes × 2^24 < 2^63.
	maxWeight = 1 << 24
)

// Sentinel errors. Instrument wraps them with the function index and byte
// offset where it applies; test with errors.Is.
var (
	// ErrMalformed reports bytes that are not a well-formed module.
	ErrMalformed = errors.New("meter: malformed module")
	// ErrFloat reports a floating-point instruction or an f32/f64 type in a
	// function type, local or global: float results are not deterministic
	// across engines.
	ErrFloat = errors.New("meter: floating-point instructions are not allowed")
	// ErrUnsupported reports a feature Instrument does not handle: SIMD
	// (0xFD), threads (0xFE), tail calls, exceptions, multiple memories,
	// unknown sections or opcodes.
	ErrUnsupported = errors.New("meter: unsupported feature")
	// ErrReservedExport reports a module that already exports GasGlobal,
	// DepthGlobal or a name starting with GlobalExportPrefix.
	ErrReservedExport = errors.New("meter: module exports a reserved name")
	// ErrTooLarge reports a module, count or frame beyond the decoding
	// limits.
	ErrTooLarge = errors.New("meter: module too large")
)

// CostTable is a versioned table of gas costs. A published version never
// changes: any change to a weight or to how the instrumenter applies them is
// a new Version, so that a module instrumented under version N charges the
// same gas for the same execution forever, independent of the wazero
// version. One gas unit is roughly one simple instruction.
type CostTable struct {
	// Version identifies the table. Nonzero.
	Version uint32

	// Default is the weight of every instruction not listed below:
	// control flow, locals, globals, constants, integer arithmetic,
	// references, table.get/set/size, memory.size. At least 1, so every
	// loop iteration costs gas.
	Default uint64
	// Load is the weight of an i32/i64 load.
	Load uint64
	// Store is the weight of an i32/i64 store.
	Store uint64
	// DivRem is the weight of i32/i64 div_s, div_u, rem_s, rem_u.
	DivRem uint64
	// Call is the weight of a call, including the depth bookkeeping. At
	// least 1.
	Call uint64
	// CallIndirect is the weight of a call_indirect. At least 1.
	CallIndirect uint64

	// MemoryGrow is the static weight of memory.grow.
	MemoryGrow uint64
	// GrowPerPage is charged per 64 KiB page requested by memory.grow,
	// dynamically by the instrumented code, whether or not the grow
	// succeeds.
	GrowPerPage uint64

	// Bulk is the static weight of memory.copy, memory.fill, memory.init,
	// data.drop, table.copy, table.fill, table.init, table.grow, elem.drop.
	Bulk uint64
	// BulkPerByte is charged per byte of memory.copy, memory.fill and
	// memory.init, dynamically, before the operation (also when it traps).
	BulkPerByte uint64
	// TablePerElem is charged per element of table.copy, table.fill,
	// table.init and table.grow, dynamically.
	TablePerElem uint64

	// HostCall is the base cost of any host function call (charged by the
	// vm, not by instrumented code).
	HostCall uint64
	// HostPerByte is charged per byte moved by a host call (charged by the
	// vm).
	HostPerByte uint64
}

// CostTableV1 returns version 1 of the cost table. Frozen: never edit these
// values; add CostTableV2 instead.
func CostTableV1() *CostTable {
	return &CostTable{
		Version:      1,
		Default:      1,
		Load:         3,
		Store:        3,
		DivRem:       4,
		Call:         5,
		CallIndirect: 8,
		MemoryGrow:   10,
		GrowPerPage:  8192,
		Bulk:         5,
		BulkPerByte:  1,
		TablePerElem: 2,
		HostCall:     100,
		HostPerByte:  1,
	}
}

// Validate checks that every weight is in range.
func (t *CostTable) Validate() error {
	if t == nil {
		return errors.New("meter: nil cost table")
	}
	if t.Version == 0 {
		return errors.New("meter: cost table Version must be nonzero")
	}
	if t.Default == 0 || t.Call == 0 || t.CallIndirect == 0 {
		return fmt.Errorf("meter: cost table v%d: Default (%d), Call (%d) and CallIndirect (%d) must be at least 1",
			t.Version, t.Default, t.Call, t.CallIndirect)
	}
	for _, w := range []struct {
		name string
		v    uint64
	}{
		{"Default", t.Default}, {"Load", t.Load}, {"Store", t.Store}, {"DivRem", t.DivRem},
		{"Call", t.Call}, {"CallIndirect", t.CallIndirect}, {"MemoryGrow", t.MemoryGrow},
		{"GrowPerPage", t.GrowPerPage}, {"Bulk", t.Bulk}, {"BulkPerByte", t.BulkPerByte},
		{"TablePerElem", t.TablePerElem}, {"HostCall", t.HostCall}, {"HostPerByte", t.HostPerByte},
	} {
		if w.v > maxWeight {
			return fmt.Errorf("meter: cost table v%d: %s (%d) exceeds %d", t.Version, w.name, w.v, maxWeight)
		}
	}
	return nil
}

// Config controls Instrument. A zero field stands for its default.
type Config struct {
	// Costs is the gas cost table. Default CostTableV1().
	Costs *CostTable
	// MaxCallDepth is the number of nested calls allowed below an entry
	// function (the host's call is depth 0). Default 1024, at most
	// MaxCallDepthLimit.
	MaxCallDepth uint32
	// MaxFrameBytes bounds the native stack frame of one function, in
	// bytes, as the instrumenter bounds it from the code (parameters,
	// locals, operand stack height, instructions, locals set across
	// blocks: see DESIGN.md). Functions above it are rejected with
	// ErrTooLarge. MaxCallDepth × MaxFrameBytes must not exceed
	// MaxStackBytes so that the deepest legal call chain fits wazero's
	// stack ceiling and only our depth trap can stop it. Default
	// MaxStackBytes / MaxCallDepth (32 KiB at the default depth).
	MaxFrameBytes uint32
	// StartGas is the initial value of GasGlobal: the gas available to the
	// module's start function during instantiation. The host overwrites
	// the global before each call. Default 1,000,000.
	StartGas uint64
}

// DefaultConfig returns the default configuration.
func DefaultConfig() Config {
	return Config{
		Costs:        CostTableV1(),
		MaxCallDepth: 1024,
		// MaxFrameBytes is left zero: it follows MaxCallDepth.
		StartGas: 1_000_000,
	}
}

// withDefaults replaces zero fields by their defaults.
func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.Costs == nil {
		c.Costs = d.Costs
	}
	if c.MaxCallDepth == 0 {
		c.MaxCallDepth = d.MaxCallDepth
	}
	if c.MaxFrameBytes == 0 && c.MaxCallDepth <= MaxCallDepthLimit {
		c.MaxFrameBytes = MaxStackBytes / c.MaxCallDepth
	}
	if c.StartGas == 0 {
		c.StartGas = d.StartGas
	}
	return c
}

// Validate checks the configuration. Zero fields stand for their defaults.
func (c Config) Validate() error {
	c = c.withDefaults()
	if err := c.Costs.Validate(); err != nil {
		return err
	}
	if c.MaxCallDepth > MaxCallDepthLimit {
		return fmt.Errorf("meter: MaxCallDepth (%d) must be between 1 and %d", c.MaxCallDepth, MaxCallDepthLimit)
	}
	if uint64(c.MaxCallDepth)*uint64(c.MaxFrameBytes) > MaxStackBytes {
		return fmt.Errorf("meter: MaxCallDepth (%d) × MaxFrameBytes (%d) exceeds MaxStackBytes (%d)",
			c.MaxCallDepth, c.MaxFrameBytes, MaxStackBytes)
	}
	if c.StartGas > 1<<62 {
		return fmt.Errorf("meter: StartGas (%d) exceeds 2^62", c.StartGas)
	}
	return nil
}
