package comet

import (
	"context"
	"testing"
	"time"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/hashicorp/go-hclog"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement/chaintest"
	"github.com/scraft/scraft/settlement/devchain"
)

// The blocks CometBFT decided, replayed on a fresh application, give the
// same AppHash at every height as the validators reported in the next
// block's header, and the same block records.
func TestReplayOnFreshAppGivesSameAppHash(t *testing.T) {
	c := newTestNetWith(t, 4, chaintest.ShortParams())
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	creator := c.dial(0, chaintest.Key("creator"))
	alice := c.dial(1, chaintest.Key("alice"))
	id, err := send(ctx, t, creator, 0)
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Stake(ctx, id, 100); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Join(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.ClaimLeader(ctx, id, 0, nil); err != nil {
		t.Fatal(err)
	}
	top := c.vals[0].Chain().Head().Height
	c.waitHeight(0, top+1, 10*time.Second) // the header holding top's AppHash

	cfg := devchain.DefaultConfig(t.TempDir())
	cfg.BlockInterval = 0
	cfg.Params = chaintest.ShortParams() // the genesis's
	fresh, err := devchain.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer fresh.Close()
	app := NewApp(fresh, hclog.NewNullLogger())
	bs := c.vals[0].node.BlockStore()
	for h := int64(1); h <= int64(top); h++ {
		b, _ := bs.LoadBlock(h)
		if b == nil {
			t.Fatalf("block %d not in the block store", h)
		}
		txs := make([][]byte, len(b.Txs))
		for i, tx := range b.Txs {
			txs[i] = tx
		}
		resp, err := app.FinalizeBlock(ctx, &abci.FinalizeBlockRequest{Height: h, Time: b.Time, Txs: txs})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := app.Commit(ctx, &abci.CommitRequest{}); err != nil {
			t.Fatal(err)
		}
		next, _ := bs.LoadBlock(h + 1)
		if string(resp.AppHash) != string(next.AppHash) {
			t.Fatalf("block %d: replayed app hash %x, the chain's %x", h, resp.AppHash, next.AppHash)
		}
		want, err := c.vals[0].Chain().Block(uint64(h))
		if err != nil {
			t.Fatal(err)
		}
		got, err := fresh.Block(uint64(h))
		if err != nil {
			t.Fatal(err)
		}
		if got.Hash() != want.Hash() {
			t.Fatalf("block %d record differs", h)
		}
	}
	if fresh.AppHash() == (protocol.Hash{}) {
		t.Fatal("the replay wrote no state")
	}
}
