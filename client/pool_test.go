package client_test

import (
	"errors"
	"fmt"
	"testing"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/protocol"
)

// TestPoolSharesConnections: clients with one Pool reach a node over one
// connection, fail over each on its own stream, keep working when another
// client of the pool closes, and the last to close closes the connections.
func TestPoolSharesConnections(t *testing.T) {
	keys := []*protocol.Key{testKey(t, 1), testKey(t, 2), testKey(t, 3)}
	node := newMemNode()
	ch := testChannel(1)
	node.addChannel(t, ch, keys...)
	n1 := startNode(t, node, nil)
	n2 := startNode(t, node, nil)
	ctx := ctxT(t)
	pool := client.NewPool()
	cfg := client.DefaultConfig()
	cfg.NodeKeys = []protocol.Address{nodeAddr}
	cfg.Pool = pool
	var cls []*client.Client
	for _, k := range keys {
		c, err := cfg.Dial(ctx, k, n1.addr, n2.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		cls = append(cls, c)
	}
	if n := pool.Len(); n != 1 {
		t.Fatalf("3 clients bound to one node hold %d connections, want 1", n)
	}
	calls := 0
	send := func(c *client.Client) {
		t.Helper()
		calls++
		r, err := c.Call(ctx, ch, "chat::send", chatArgs(t, "send", fmt.Sprintf(`{"text":"message %d"}`, calls)))
		if err != nil && !errors.Is(err, protocol.ErrAbort) {
			t.Fatal(err)
		}
		if r.Height != uint64(calls) {
			t.Fatalf("call %d committed at height %d", calls, r.Height)
		}
	}
	for _, c := range cls {
		send(c)
	}
	n1.stop()
	for _, c := range cls {
		send(c)
		if c.Node() != n2.addr {
			t.Fatalf("client %s bound to %s after the failover, want %s", c.Address(), c.Node(), n2.addr)
		}
	}
	if n := pool.Len(); n != 2 {
		t.Fatalf("pool holds %d connections after the failover, want 2", n)
	}
	cls[0].Close()
	send(cls[1])
	send(cls[2])
	cls[1].Close()
	cls[2].Close()
	if n := pool.Len(); n != 0 {
		t.Fatalf("pool holds %d connections after every client closed, want 0", n)
	}
}
