package client_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/protocol"
)

// TestNodeKeyPinned: the client talks only to a node whose TLS key is
// pinned; a node with another key (an impostor at the address) fails the
// handshake, and a client that pins nothing does not dial at all.
func TestNodeKeyPinned(t *testing.T) {
	alice := testKey(t, 1)
	ch := testChannel(1)
	node := newMemNode()
	node.addChannel(t, ch, alice)
	tn := startNode(t, node, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	if _, err := client.DefaultConfig().Dial(ctx, alice, tn.addr); !errors.Is(err, client.ErrNoNodeKeys) {
		t.Fatalf("no pin: %v, want ErrNoNodeKeys", err)
	}
	other := testKey(t, 99).Address()
	cfg := client.DefaultConfig()
	cfg.NodeKeys = []protocol.Address{other}
	cfg.DialTimeout = 2 * time.Second
	if c, err := cfg.Dial(ctx, alice, tn.addr); err == nil || !strings.Contains(err.Error(), "not one of the") {
		if c != nil {
			c.Close()
		}
		t.Fatalf("another node key pinned: %v, want a handshake failure", err)
	}
	c, err := client.Dial(ctx, alice, []protocol.Address{other, nodeAddr}, tn.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Join(ctx, ch); err != nil {
		t.Fatal(err)
	}
}
