package cluster

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when goroutines outlive them: every
// node, channel, loop and chain feed the tests start must be stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
