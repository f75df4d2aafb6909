package main

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// scraft chain testnet writes a one-validator chain, and scraft chain
// --engine comet runs it: a client of the devchain API makes a channel.
func TestChainCometTestnetAndServe(t *testing.T) {
	out := t.TempDir()
	p2p := testutil.FreePort(t)
	_, port, _ := strings.Cut(p2p, ":")
	if _, err := runChain(t, "chain", "testnet", "--validators", "1", "--out", out, "--heartbeat-ttl", "4s", "--ban", "3s"); err == nil {
		t.Fatal("a testnet whose ban is shorter than its heartbeat TTL was written")
	}
	printed, err := runChain(t, "chain", "testnet", "--validators", "1", "--out", out, "--base-port", port, "--timeout-commit", "50ms",
		"--heartbeat-ttl", "4s", "--vote-window", "30s")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(out, "chain-keys"))
	if err != nil {
		t.Fatal(err)
	}
	chainKey, err := protocol.ParseAddress(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(printed, "--chain-key "+chainKey.String()) {
		t.Fatalf("testnet printed:\n%s", printed)
	}
	if _, err := runChain(t, "chain", "testnet", "--validators", "1", "--out", out, "--base-port", port); err == nil {
		t.Fatal("a second testnet over the first was written")
	}

	api := testutil.FreePort(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	done := make(chan error, 1)
	resetChainCommands()
	rootCmd.SetArgs([]string{"chain", "--engine", "comet", "--home", filepath.Join(out, "node0"), "--listen", api, "--log-level", "warn"})
	go func() { done <- rootCmd.ExecuteContext(ctx) }()

	k, _ := protocol.GenerateKey(nil)
	c, err := devchain.Dial(api, k, devchain.WithChainKeys(chainKey))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	testutil.WaitFor(t, 20*time.Second, func() error {
		_, err := c.Head(ctx)
		return err
	})
	cctx, ccancel := context.WithTimeout(ctx, 10*time.Second)
	defer ccancel()
	id, err := c.CreateChannel(cctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("x")})
	if err != nil {
		t.Fatal(err)
	}
	if info, err := c.Channel(cctx, id); err != nil || info.Creator != k.Address() {
		t.Fatalf("channel %+v, %v", info, err)
	}
	want := contract.DefaultParams()
	want.HeartbeatTTL, want.VoteWindow = 4*time.Second, 30*time.Second
	if p, err := c.Params(cctx); err != nil || p != want {
		t.Fatalf("chain settings %+v, %v; want %+v (the genesis's)", p, err, want)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("validator returned %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("validator did not stop")
	}
}
