package devchain_test

import (
	"context"
	"fmt"
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
