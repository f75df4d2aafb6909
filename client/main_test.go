package client

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package's tests when goroutines outlive them: every
// client, pool, subscription and test node they start must be stopped.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
