// Package vm runs channel contracts, WASM modules written against the scraft
// ABI v1, in a deterministic, gas-metered wazero sandbox.
//
// An Engine owns one wazero runtime (the compiler engine, pinned) and the
// scraft host module. Engine.Deploy checks a module against the ABI,
// refuses what could make members disagree (floats, state that outlives a
// call), instruments it with package meter and compiles it once per code
// hash, optionally through an on-disk compilation cache. Module.Call runs
// one entry function over a read-only Store through a private overlay and
// returns a Result: a status, the gas used and, on success, the canonical
// change set, the events and the output. Calls reuse live instances whose
// memory and globals are restored before each call, so the same call gives
// the same Result bytes on every node, fresh or warm. Call and Result are
// protocol.Call and protocol.CallResult, and Module.Execute makes a Module
// an fsm.Executor as it is. See DESIGN.md.
package vm
