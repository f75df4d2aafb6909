// Package meter rewrites a WASM module so that it meters its own gas and
// call depth: the instrumenter behind the vm's bounded, deterministic
// execution.
//
// Parse is the decoder of WASM modules (wazero's is internal): it reads
// every section once, bounded, into a Module that tells a host what it
// needs to check the module (imports, exports, signatures, memory limits).
// Module.Instrument decodes the instructions, once, while it rewrites the
// code section; Instrument does both. The rewrite rejects floating-point
// instructions and types (ErrFloat), SIMD, threads and anything else
// outside core v2 (ErrUnsupported). It appends two mutable globals to the
// global section and exports them, and exports every other mutable global
// (GlobalExportPrefix) so that a host can restore an instance's state;
// appending shifts no index, and no import is added, so no function is
// renumbered. Custom sections are dropped.
//
// # Gas
//
// GasGlobal (i64) holds the remaining gas. Each function body is cut into
// metered segments of straight-line code: a segment starts at function
// entry, after every loop, if, else, end, br, br_if, br_table, return and
// unreachable. At its start the segment pays the summed static cost (from
// the CostTable) of all its instructions:
//
//	global.get $gas; i64.const cost; i64.sub; global.set $gas
//	global.get $gas; i64.const 0; i64.lt_s; if; unreachable; end
//
// memory.grow pays GrowPerPage per requested page, the bulk memory
// instructions BulkPerByte per byte and the table instructions TablePerElem
// per element, computed at run time from the operand (through a scratch
// local the rewrite appends) and charged the same way, before the
// instruction runs — whether or not it then succeeds.
//
// Convention for the host:
//   - set GasGlobal to the call's budget (≥ 0) and DepthGlobal to 0 before
//     each call into the instance;
//   - after the call, gas used = budget − GasGlobal when it returned
//     normally;
//   - after a trap, GasGlobal < 0 means out of gas: the charge that failed
//     was subtracted first, so the global holds the negative balance; the
//     vm reports the budget as used. Otherwise DepthGlobal > MaxCallDepth
//     means the call-depth limit; otherwise it is an ordinary trap.
//
// The start function, which wazero runs during instantiation, sees the
// global's initial value, Config.StartGas.
//
// # Call depth
//
// DepthGlobal (i32) counts nested calls below the host's call (depth 0).
// Every call and call_indirect site is wrapped:
//
//	depth++; if depth > MaxCallDepth { unreachable }; call; depth--
//
// so a chain of MaxCallDepth nested calls succeeds and the next one traps
// with DepthGlobal = MaxCallDepth+1. Calls to imported functions are counted
// too. Each function's native frame, bounded from its code (parameters,
// locals, operand stack height, instructions, locals set across blocks), must
// fit Config.MaxFrameBytes, and MaxCallDepth × MaxFrameBytes fits
// MaxStackBytes, below wazero's stack ceiling: only our trap can stop
// recursion, at a depth that depends on the module and the call alone.
//
// # Cost tables
//
// A CostTable is versioned and a published version never changes (see
// CostTableV1); the gas of an execution depends only on the module, its
// input and the table version.
package meter
