package fsm

import "github.com/scraft/scraft/protocol"

// Executor runs the channel contract. A *vm.Module satisfies it as it is;
// tests use a tiny deterministic interpreter.
//
// Both methods are called from the goroutine that drives the Machine, one
// call at a time. An Executor must be deterministic: the same Call over the
// same state must give the same CallResult on every member, or honest
// members would disagree and one of them would be punished.
type Executor interface {
	// Has reports whether the contract exports the entry function name
	// (without the "contract::" prefix). The machine asks it before running
	// the optional hooks on_join, on_leave and on_tick: a hook the contract
	// does not export is skipped and the entry succeeds with no effect.
	Has(function string) bool
	// Execute runs one entry function over state, which it must not modify:
	// it reports what it would change in CallResult.ChangeSet. Every failure
	// is a Status in the result, never a panic.
	Execute(call protocol.Call, state protocol.StateReader) protocol.CallResult
}
