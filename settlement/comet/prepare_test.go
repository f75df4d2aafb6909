package comet

import (
	"context"
	"testing"

	abci "github.com/cometbft/cometbft/abci/types"
	"github.com/hashicorp/go-hclog"

	"github.com/scraft/scraft/settlement/chaintest"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain"
)

// A proposal leaves out a tx whose sender's earlier nonce has not reached
// the mempool, while the rest of the sender's run goes in whatever their
// order; after gapProposals proposals the tx goes in anyway (and the block
// refuses it). Junk and used nonces go in as before: the block refuses
// them the same way on every validator.
func TestPrepareProposalWaitsForEarlierNonces(t *testing.T) {
	cfg := devchain.DefaultConfig(t.TempDir())
	cfg.BlockInterval, cfg.NoSync = 0, true
	chain, err := devchain.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer chain.Close()
	app := NewApp(chain, hclog.NewNullLogger())
	tx := func(k string, nonce uint64) []byte {
		return devchain.NewTx(chaintest.Key(k), nonce, &contract.Deposit{Amount: 1}).Bytes()
	}
	a1, a2, a3, a5, b2, junk := tx("alice", 1), tx("alice", 2), tx("alice", 3), tx("alice", 5), tx("bob", 2), []byte("junk")
	req := &abci.PrepareProposalRequest{Txs: [][]byte{a3, a5, b2, a1, junk, a2}, MaxTxBytes: 1 << 20}
	ctx := context.Background()
	for i := 1; i <= gapProposals+1; i++ {
		resp, err := app.PrepareProposal(ctx, req)
		if err != nil {
			t.Fatal(err)
		}
		want := [][]byte{a3, a1, junk, a2}
		if i > gapProposals {
			want = [][]byte{a3, a5, b2, a1, junk, a2}
		}
		if len(resp.Txs) != len(want) {
			t.Fatalf("proposal %d holds %d txs, want %d", i, len(resp.Txs), len(want))
		}
		for j := range want {
			if string(resp.Txs[j]) != string(want[j]) {
				t.Fatalf("proposal %d: tx %d differs", i, j)
			}
		}
	}
}
