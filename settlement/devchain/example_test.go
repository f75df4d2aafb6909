package devchain_test

import (
	"context"
	"fmt"
	"net"
	"os"
	"time"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// A node opens the chain in process (or dials one with devchain.Dial),
// creates a channel, joins it and claims leadership.
func Example() {
	dir, _ := os.MkdirTemp("", "devchain-example")
	defer os.RemoveAll(dir)
	cfg := devchain.DefaultConfig(dir)
	cfg.BlockInterval = 10 * time.Millisecond
	c, err := devchain.Open(cfg)
	if err != nil {
		panic(err)
	}
	defer c.Close()

	key, _ := protocol.GenerateKey(nil)
	var chain settlement.Chain = devchain.NewLocal(c, key)
	ctx := context.Background()
	id, _ := chain.CreateChannel(ctx, settlement.ChannelSpec{
		Contract: "chat", Code: []byte("\x00asm\x01\x00\x00\x00"),
		Labels: []contract.Label{{Key: "server_address", Value: "127.0.0.1:7000"}},
		Config: contract.ChannelConfig{TickInterval: 50 * time.Millisecond},
	})
	seq, _ := chain.Join(ctx, id, false)
	epoch, _ := chain.ClaimLeader(ctx, id, 0, nil)
	_, err = chain.ClaimLeader(ctx, id, epoch, nil)
	info, _ := chain.Channel(ctx, id)
	fmt.Println("join seq", seq, "epoch", epoch, "leader is me", info.Leader == key.Address())
	fmt.Println(err != nil)
	// Output:
	// join seq 1 epoch 1 leader is me true
	// true
}

// A chain served over TLS with its key, and a client that pins that key:
// another server on the address, with another key, would be refused with
// ErrChainKey.
func ExampleNewGRPCServer() {
	dir, _ := os.MkdirTemp("", "devchain-example")
	defer os.RemoveAll(dir)
	cfg := devchain.DefaultConfig(dir)
	cfg.BlockInterval = 10 * time.Millisecond
	c, err := devchain.Open(cfg)
	if err != nil {
		panic(err)
	}
	defer c.Close()

	chainKey, _ := protocol.GenerateKey(nil)
	g, err := devchain.NewGRPCServer(c, chainKey)
	if err != nil {
		panic(err)
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	go g.Serve(l)
	defer g.Stop()

	member, _ := protocol.GenerateKey(nil)
	cl, err := devchain.Dial(l.Addr().String(), member, devchain.WithChainKeys(chainKey.Address()))
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = cl.Head(ctx)
	got, _ := cl.ChainKey()
	fmt.Println(err == nil, got == chainKey.Address())
	// Output:
	// true true
}
