package main

import (
	"context"
	"errors"
	"io"
	"os"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/protocol"
)

// isTerminal reports whether w is a terminal, where a status line may be
// redrawn in place.
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// callErrorName is how scraft bench and scraft drill count a call that
// failed: its error code's name, or maybe_committed, or timeout.
func callErrorName(err error) string {
	switch {
	case errors.Is(err, client.ErrMaybeCommitted):
		return "maybe_committed"
	case errors.Is(err, context.DeadlineExceeded):
		return "timeout"
	}
	return protocol.CodeOf(err).String()
}
