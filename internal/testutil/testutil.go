// Package testutil holds helpers for tests: waiting on a condition with a
// deadline, a logger that writes through t.Log, and free loopback ports.
package testutil

import (
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
)

// WaitFor polls cond every few milliseconds until it returns nil or timeout
// passes; then it fails the test with cond's last error. Use it instead of
// sleeping: it returns as soon as the condition holds.
func WaitFor(t testing.TB, timeout time.Duration, cond func() error) {
	t.Helper()
	if err := Poll(timeout, cond); err != nil {
		t.Fatalf("condition not met within %s: %v", timeout, err)
	}
}

// Poll is WaitFor without a test: it returns cond's last error on timeout.
func Poll(timeout time.Duration, cond func() error) error {
	deadline := time.Now().Add(timeout)
	wait := time.Millisecond
	for {
		err := cond()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			return err
		}
		time.Sleep(wait)
		if wait < 50*time.Millisecond {
			wait *= 2
		}
	}
}

// Eventually is WaitFor for a boolean condition; msg describes what was
// awaited.
func Eventually(t testing.TB, timeout time.Duration, msg string, cond func() bool) {
	t.Helper()
	WaitFor(t, timeout, func() error {
		if cond() {
			return nil
		}
		return fmt.Errorf("%s", msg)
	})
}

// Logger returns an hclog logger named name that writes through t.Log, so
// logs show only when a test fails (or with -v). Lines written after the
// test ends are dropped instead of panicking.
func Logger(t testing.TB, name string) hclog.Logger {
	w := &testWriter{t: t}
	t.Cleanup(w.stop)
	return hclog.New(&hclog.LoggerOptions{
		Name:   name,
		Level:  hclog.Debug,
		Output: w,
	})
}

type testWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) stop() {
	w.mu.Lock()
	w.done = true
	w.mu.Unlock()
}

var _ io.Writer = (*testWriter)(nil)

// FreePort returns a loopback TCP address that was free a moment ago. Prefer
// listening on 127.0.0.1:0 and passing the listener; use this only where a
// process must be told its address before it starts.
func FreePort(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("free port: %v", err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}
