package main

import (
	"bytes"
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/devchain"
)

// serveChainAt serves a fresh dev chain over TLS with key on addr
// ("127.0.0.1:0": any port) and returns its address and a stop function.
func serveChainAt(t *testing.T, key *protocol.Key, addr string) (string, func()) {
	t.Helper()
	cfg := devchain.DefaultConfig(t.TempDir())
	cfg.BlockInterval, cfg.NoSync = 5*time.Millisecond, true
	c, err := devchain.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	g, err := devchain.NewGRPCServer(c, key)
	if err != nil {
		t.Fatal(err)
	}
	go g.Serve(l)
	t.Cleanup(g.Stop)
	return l.Addr().String(), g.Stop
}

// TestNodeRefusesImpostorChain: a node pins the chain's key in its data
// folder on first contact; started later against another server on the
// chain's address, it stops with ErrChainKey, naming the pin file, before
// it serves anything, and leaves the pin as it was.
func TestNodeRefusesImpostorChain(t *testing.T) {
	dir := t.TempDir()
	data := filepath.Join(dir, "data")
	keyFile := filepath.Join(dir, "node.key")
	k, _ := protocol.GenerateKey(nil)
	if err := protocol.SaveKey(keyFile, k); err != nil {
		t.Fatal(err)
	}
	addr, stop := serveChainAt(t, testChainKey, "127.0.0.1:0")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	chain, err := dialNodeChain(ctx, addr, nil, data, k, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	if got, ok := chain.ChainKey(); !ok || got != testChainKey.Address() {
		t.Fatalf("first contact: chain key %s (%v), want %s", got, ok, testChainKey.Address())
	}
	chain.Close()
	pin := filepath.Join(data, chainPinName)
	before, err := os.ReadFile(pin)
	if err != nil || !strings.Contains(string(before), testChainKey.Address().String()) {
		t.Fatalf("pin file after first contact: %v:\n%s", err, before)
	}

	stop()
	impostor, _ := protocol.GenerateKey(nil)
	serveChainAt(t, impostor, addr)
	listen := testutil.FreePort(t)
	_, err = run(t, "node", "--data", data, "--key", keyFile, "--chain", addr, "--listen", listen, "--admin", "",
		"--channel", protocol.ChannelID{1}.String())
	if !errors.Is(err, devchain.ErrChainKey) || !strings.Contains(err.Error(), pin) || !strings.Contains(err.Error(), impostor.Address().String()) {
		t.Fatalf("node against an impostor chain: %v, want ErrChainKey naming %s and the impostor's key", err, pin)
	}
	if c, err := net.DialTimeout("tcp", listen, time.Second); err == nil {
		c.Close()
		t.Fatalf("the refused node serves on %s", listen)
	}
	if after, _ := os.ReadFile(pin); string(after) != string(before) {
		t.Fatalf("pin file changed:\n%s", after)
	}

	// --chain-key names the key to accept: the impostor's, told so, is.
	chain, err = dialNodeChain(ctx, addr, []string{impostor.Address().String()}, data, k, hclog.NewNullLogger())
	if err != nil {
		t.Fatal(err)
	}
	chain.Close()
}

// TestChainCommandsPinChainKey: a chain command pins the chain's key next
// to its --key on first contact and refuses another key later; without
// --key it needs --chain-key.
func TestChainCommandsPinChainKey(t *testing.T) {
	addr, stop := serveChainAt(t, testChainKey, "127.0.0.1:0")
	keyFile, _ := newChainKeyFile(t, "dave")
	if out, err := runChain(t, "chain", "deposit", "5", "--chain", addr, "--key", keyFile); err != nil {
		t.Fatal(err, out)
	}
	pin := filepath.Join(filepath.Dir(keyFile), chainPinName)
	if b, err := os.ReadFile(pin); err != nil || !strings.Contains(string(b), testChainKey.Address().String()) {
		t.Fatalf("pin file: %v:\n%s", err, b)
	}
	stop()
	impostor, _ := protocol.GenerateKey(nil)
	serveChainAt(t, impostor, addr)
	if _, err := runChain(t, "chain", "deposit", "5", "--chain", addr, "--key", keyFile); !errors.Is(err, devchain.ErrChainKey) {
		t.Fatalf("deposit at an impostor: %v, want ErrChainKey", err)
	}
	if _, err := runChain(t, "chain", "show", protocol.ChannelID{1}.String(), "--chain", addr); err == nil || !strings.Contains(err.Error(), "--chain-key") {
		t.Fatalf("show without --key or --chain-key: %v, want an error naming --chain-key", err)
	}
}

// TestNodeSaysWhenChainAnswers: a node started before its chain says the
// chain is not reachable, and says so again once it answers.
func TestNodeSaysWhenChainAnswers(t *testing.T) {
	dir := t.TempDir()
	k, _ := protocol.GenerateKey(nil)
	addr := testutil.FreePort(t)
	var logs lockedBuffer
	logger := hclog.New(&hclog.LoggerOptions{Output: &logs, Level: hclog.Info})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	chain, err := dialNodeChain(ctx, addr, []string{testChainKey.Address().String()}, filepath.Join(dir, "data"), k, logger)
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	if !strings.Contains(logs.String(), "chain not reachable yet") {
		t.Fatalf("log before the chain runs:\n%s", logs.String())
	}
	serveChainAt(t, testChainKey, addr)
	testutil.Eventually(t, 20*time.Second, "chain connected in the log", func() bool {
		return strings.Contains(logs.String(), "chain connected")
	})
}

// lockedBuffer is a bytes.Buffer that a logger writes from other goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestValidatorChainNeedsKeys: a --chain listing several validators is
// refused without --chain-key: no one validator's word may pin the others'.
func TestValidatorChainNeedsKeys(t *testing.T) {
	k, _ := protocol.GenerateKey(nil)
	_, err := dialChainAt("127.0.0.1:1,127.0.0.1:2,127.0.0.1:3,127.0.0.1:4", k, nil, nil)
	if err == nil || !strings.Contains(err.Error(), "--chain-key") {
		t.Fatalf("validator chain without keys: %v, want an error naming --chain-key", err)
	}
}
