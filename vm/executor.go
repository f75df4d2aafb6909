package vm

import (
	"context"

	"github.com/scraft/scraft/protocol"
)

// Execute runs one call over state, like Call without a context: it makes
// a *Module an fsm.Executor (with Has), so the state machine runs
// contracts through the vm directly. A call is bounded by its gas, not by
// a deadline, and every member must reach the same result, so no context
// could cancel it anyway.
func (m *Module) Execute(call protocol.Call, state protocol.StateReader) protocol.CallResult {
	return m.Call(context.Background(), state, call)
}
