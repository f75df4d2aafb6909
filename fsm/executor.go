package fsm

import "github.com/scraft/scraft/protocol"

// Executor runs the channel contract. Package vm satisfies it through a thin
// adapter in package cluster; tests use a tiny deterministic interpreter.
//
// Both methods are called from the goroutine that drives the Machine, one
// call at a time. An Executor must be deterministic: the same Call over the
// same state must give the same ExecResult on every member, or honest
// members would disagree and one of them would be punished.
type Executor interface {
	// Has reports whether the contract exports the entry function name
	// (without the "contract::" prefix). The machine asks it before running
	// the optional hooks on_join, on_leave and on_tick: a hook the contract
	// does not export is skipped and the entry succeeds with no effect.
	Has(function string) bool
	// Execute runs one entry function over state, which it must not modify:
	// it reports what it would change in ExecResult.ChangeSet. Every failure
	// is a Status in the result, never a panic.
	Execute(call Call, state StateReader) ExecResult
}

// StateReader is the contract-visible state an Executor reads.
type StateReader interface {
	// Get returns the value of a resource and whether it exists. The slice
	// must not be modified.
	Get(key protocol.ResourceKey) ([]byte, bool)
}

// Call is one invocation of a contract entry function.
type Call struct {
	// Function is the export name, e.g. "send" for the tx function
	// "chat::send".
	Function string
	// Args is the call's input: the tx args, the 16-byte member address for
	// on_join/on_leave, the little-endian u64 tick number for on_tick.
	Args []byte
	// Sender is the tx sender, the joining or leaving member, or the zero
	// address for on_tick.
	Sender protocol.Address
	// Height is the entry's height; TimestampMs the batch's leader timestamp.
	Height      uint64
	TimestampMs uint64
	// Gas is the limit for this call (Config.GasLimit).
	Gas uint64
}

// ExecResult is what an Executor reports for one Call. On any status other
// than StatusOK the machine drops ChangeSet, Events and Output.
type ExecResult struct {
	Status    protocol.Status
	AbortCode uint32
	// Message explains a failure to people; it is not part of the digest.
	Message   string
	GasUsed   uint64
	ChangeSet protocol.ChangeSet
	Events    []protocol.Event
	Output    []byte
}
