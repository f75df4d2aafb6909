package transport

import (
	"net"
	"os"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/scraft/scraft/internal/testutil"
)

// testLogger returns an hclog logger writing through t.Log, silent once the
// test has finished (raft goroutines may still log while shutting down).
// SCRAFT_TEST_LOG=debug raises the level.
func testLogger(t testing.TB) hclog.Logger {
	l := testutil.Logger(t, "test")
	level := hclog.Warn
	if v := os.Getenv("SCRAFT_TEST_LOG"); v != "" {
		level = hclog.LevelFromString(v)
	}
	l.SetLevel(level)
	return l
}

// testConfig is DefaultConfig with the test's logger and faults.
func testConfig(t testing.TB, faults *Faults) Config {
	cfg := DefaultConfig()
	cfg.Logger = testLogger(t)
	cfg.Faults = faults
	return cfg
}

// newTestServer starts a Server on 127.0.0.1:0, closed at cleanup.
func newTestServer(t testing.TB, cfg Config) *Server {
	t.Helper()
	ln, err := listen()
	require.NoError(t, err)
	srv, err := NewServer(ln, cfg)
	require.NoError(t, err)
	served := make(chan error, 1)
	go func() { served <- srv.Serve() }()
	t.Cleanup(func() {
		require.NoError(t, srv.Close())
		require.NoError(t, <-served)
	})
	return srv
}

// mustTransport opens a channel transport, closed at cleanup.
func mustTransport(t testing.TB, srv *Server, channel string) *ChannelTransport {
	t.Helper()
	tr, err := srv.Transport(channel)
	require.NoError(t, err)
	t.Cleanup(func() { _ = tr.Close() })
	return tr
}

// respond answers every RPC reaching tr with handle until cleanup; it stands
// in for raft.
func respond(t testing.TB, tr *ChannelTransport, handle func(rpc raft.RPC)) {
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case rpc := <-tr.Consumer():
				handle(rpc)
			case <-stop:
				return
			}
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
	})
}

// waitFor polls cond every few milliseconds until it holds or timeout
// passes.
func waitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		<-tick.C
	}
}

func listen() (net.Listener, error) { return net.Listen("tcp", "127.0.0.1:0") }
