package client_test

import (
	"context"
	"fmt"
	"time"

	"github.com/scraft/scraft/client"
	"github.com/scraft/scraft/contracts"
	"github.com/scraft/scraft/protocol"
)

func codeOf(err error) uint32 { return uint32(protocol.CodeOf(err)) }

// exampleChannel starts an in-memory node serving a chat channel with
// alice and bob as members, and returns its address.
func exampleChannel(t *exampleTB) (addr string, ch protocol.ChannelID, alice, bob *protocol.Key) {
	alice, bob = testKey(t, 1), testKey(t, 2)
	ch = testChannel(1)
	node := newMemNode()
	node.addChannel(t, ch, alice, bob)
	return startNode(t, node, nil).addr, ch, alice, bob
}

// A client binds one stream to a node with its key; Join attaches it to a
// channel and tells it its next nonce.
func ExampleDial() {
	t := &exampleTB{}
	defer t.done()
	addr, ch, alice, _ := exampleChannel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	c, err := client.Dial(ctx, alice, []protocol.Address{nodeAddr}, addr) // the node's member address; more addresses to fail over
	if err != nil {
		panic(err)
	}
	defer c.Close()
	info, err := c.Join(ctx, ch)
	if err != nil {
		panic(err)
	}
	fmt.Println("height:", info.Status.Height, "next nonce:", info.NextNonce)
	st, err := c.Status(ctx, ch) // with every member's lag and heartbeat
	if err != nil {
		panic(err)
	}
	fmt.Println("members:", len(st.Members))
	// Output:
	// height: 0 next nonce: 1
	// members: 2
}

// Call signs a tx, submits it and returns once it is committed; the args
// of the demo contracts are encoded from JSON with their ABI.
func ExampleClient_Call() {
	t := &exampleTB{}
	defer t.done()
	addr, ch, alice, _ := exampleChannel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, alice, []protocol.Address{nodeAddr}, addr)
	if err != nil {
		panic(err)
	}
	defer c.Close()

	chat, _ := contracts.Get("chat")
	args, _ := chat.EncodeArgs("join", []byte(`{"nick":"alice"}`))
	if _, err := c.Call(ctx, ch, "chat::join", args); err != nil {
		panic(err)
	}
	args, _ = chat.EncodeArgs("send", []byte(`{"text":"hello"}`))
	res, err := c.Call(ctx, ch, "chat::send", args)
	if err != nil {
		panic(err)
	}
	id, _ := chat.DecodeOutput("send", res.Output)
	fmt.Println("height:", res.Height, "status:", res.Status, "message id:", string(id))

	// An empty message makes the contract abort: the error carries the
	// code 100006 and the contract's abort code, the result its height.
	args, _ = chat.EncodeArgs("send", []byte(`{"text":""}`))
	res, err = c.Call(ctx, ch, "chat::send", args)
	fmt.Println("height:", res.Height, "status:", res.Status, "error code:", codeOf(err))
	// Output:
	// height: 2 status: ok message id: 0
	// height: 3 status: abort error code: 100006
}

// Subscribe gives a snapshot, then every verified outcome in order; it
// resumes by itself after a reconnect or a failover.
func ExampleClient_Subscribe() {
	t := &exampleTB{}
	defer t.done()
	addr, ch, alice, bob := exampleChannel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	reader, err := client.Dial(ctx, bob, []protocol.Address{nodeAddr}, addr)
	if err != nil {
		panic(err)
	}
	defer reader.Close()
	writer, err := client.Dial(ctx, alice, []protocol.Address{nodeAddr}, addr)
	if err != nil {
		panic(err)
	}
	defer writer.Close()

	sub, err := reader.Subscribe(ctx, ch, 0)
	if err != nil {
		panic(err)
	}
	defer sub.Close()
	chat, _ := contracts.Get("chat")
	args, _ := chat.EncodeArgs("join", []byte(`{"nick":"alice"}`))
	if _, err := writer.Call(ctx, ch, "chat::join", args); err != nil {
		panic(err)
	}
	for range 2 {
		u, err := sub.Next(ctx)
		if err != nil {
			panic(err)
		}
		if u.Snapshot != nil {
			fmt.Println("snapshot at height", u.Snapshot.Height)
			continue
		}
		fmt.Println("height", u.Outcome.Height, u.Outcome.Result.Status, "events:", len(u.Outcome.Events))
	}
	// Output:
	// snapshot at height 0
	// height 1 ok events: 1
}

// Many clients in one process (a game server with a client per player)
// share one connection per node through a Pool; each keeps its own
// stream, key and nonces.
func ExamplePool() {
	t := &exampleTB{}
	defer t.done()
	addr, ch, alice, bob := exampleChannel(t)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	cfg := client.DefaultConfig()
	cfg.NodeKeys = []protocol.Address{nodeAddr}
	cfg.Pool = client.NewPool()
	chat, err := contracts.Get("chat")
	if err != nil {
		panic(err)
	}
	for _, k := range []*protocol.Key{alice, bob} {
		c, err := cfg.Dial(ctx, k, addr)
		if err != nil {
			panic(err)
		}
		defer c.Close() // the last to close closes the connection
		args, err := chat.EncodeArgs("join", []byte(`{"nick":"player"}`))
		if err != nil {
			panic(err)
		}
		r, err := c.Call(ctx, ch, "chat::join", args)
		if err != nil {
			panic(err)
		}
		fmt.Println("joined at height", r.Height)
	}
	fmt.Println("connections:", cfg.Pool.Len())
	// Output:
	// joined at height 1
	// joined at height 2
	// connections: 1
}
