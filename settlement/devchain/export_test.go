package devchain

import (
	"fmt"
	"net"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/scraft/scraft/settlement"
)

// replay executes the txs of a block of another chain as this chain's next
// block, at the same time, and returns the block it made.
func (c *Chain) replay(b *Block) (*Block, error) {
	c.produceMu.Lock()
	c.mu.Lock()
	prev, prevHash := c.mu.head, c.mu.headHash
	c.mu.Unlock()
	batch := make([]*pendingTx, len(b.Txs))
	for i, bt := range b.Txs {
		tx, err := DecodeTx(bt.Tx, c.cfg.MaxTxBytes)
		if err != nil {
			c.produceMu.Unlock()
			return nil, fmt.Errorf("block %d tx %d: %w", b.Height, i, err)
		}
		batch[i] = &pendingTx{tx: tx, raw: bt.Tx, done: make(chan Outcome, 1)}
	}
	var h settlement.Head
	h, err := c.produceLocked(batch, prev, prevHash, b.TimeMs)
	c.produceMu.Unlock()
	if err != nil {
		return nil, err
	}
	return c.Block(h.Height)
}

func serveBench(b testing.TB, c *Chain) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	g := grpc.NewServer(ServerOptions(c.cfg)...)
	NewServer(c).Register(g)
	go g.Serve(l)
	b.Cleanup(g.Stop)
	return l.Addr().String()
}

func dialBench(b testing.TB, addr string) *grpc.ClientConn {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { conn.Close() })
	return conn
}
