package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
)

// TestChainAdmin: `scraft chain --admin` serves /healthz, /readyz once the
// chain makes blocks, and /metrics with the chain's height; a non-loopback
// address is refused (the listener has no token).
func TestChainAdmin(t *testing.T) {
	dir := t.TempDir()
	admin := testutil.FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- serveChain(ctx, filepath.Join(dir, "data"), "127.0.0.1:0", admin, "", 10*time.Millisecond, contract.Params{}, "error", false, io.Discard)
	}()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	get := func(path string) (int, string, error) {
		resp, err := http.Get("http://" + admin + path)
		if err != nil {
			return 0, "", err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b), nil
	}
	testutil.WaitFor(t, 20*time.Second, func() error {
		code, body, err := get("/readyz")
		if err != nil || code != http.StatusOK {
			return fmt.Errorf("/readyz: %d %q %v", code, body, err)
		}
		return nil
	})
	if code, body, err := get("/healthz"); err != nil || code != http.StatusOK {
		t.Fatalf("/healthz: %d %q %v", code, body, err)
	}
	code, body, err := get("/metrics")
	if err != nil || code != http.StatusOK || !strings.Contains(body, "scraft_chain_height") || !strings.Contains(body, "scraft_build_info") {
		t.Fatalf("/metrics: %d %v\n%s", code, err, body)
	}

	if _, _, err := serveChainAdmin("0.0.0.0:0", func() settlement.Head { return settlement.Head{} }, hclog.NewNullLogger()); err == nil ||
		!strings.Contains(err.Error(), "loopback") {
		t.Fatalf("admin on every interface: %v, want refused", err)
	}
}

// TestChainAdminNotReadyWhenStalled: /readyz answers 503 while the chain
// makes no block.
func TestChainAdminNotReadyWhenStalled(t *testing.T) {
	addr, stop, err := serveChainAdmin("127.0.0.1:0", func() settlement.Head { return settlement.Head{} }, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	resp, err := http.Get("http://" + addr + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz of a chain with no block: %s", resp.Status)
	}
}
