package devchain

import (
	"bytes"
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scraft/scraft/protocol"
	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/chaintest"
	"github.com/scraft/scraft/settlement/contract"
	"github.com/scraft/scraft/settlement/devchain/chainpb"
)

// TestBadInput sends malformed, forged, replayed and refused txs over the
// gRPC API; each gets a clear error and the chain keeps making blocks.
func TestBadInput(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dir := t.TempDir()
	clock := NewManualClock(genesis)
	cfg := DefaultConfig(dir)
	cfg.BlockInterval, cfg.Clock, cfg.NoSync, cfg.MaxTxBytes = 2*time.Millisecond, clock, true, 64<<10
	c, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	addr := serve(t, c)

	alice, err := Dial(addr, chaintest.Key("alice"), pinned)
	if err != nil {
		t.Fatal(err)
	}
	defer alice.Close()
	id, err := alice.CreateChannel(ctx, settlement.ChannelSpec{Contract: "chat", Code: []byte("code")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Join(ctx, id, false); err != nil {
		t.Fatal(err)
	}
	// Filing is alice's vote, the only one: the election passes.
	pid, err := alice.CreateProposal(ctx, id, protocol.ProposalElection, protocol.Marshal(&protocol.Election{Epoch: 0, Candidate: alice.Address()}))
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.ExecuteProposal(ctx, id, pid); err != nil {
		t.Fatal(err)
	}

	api := alice.b.(*remote).api
	submit := func(raw []byte) (*chainpb.SubmitResponse, error) {
		resp, err := api.Submit(ctx, &chainpb.SubmitRequest{Tx: raw})
		if err != nil {
			return nil, errorFrom(err)
		}
		return resp, ErrorOf(resp.Code, resp.Error)
	}
	mallory := chaintest.Key("mallory")
	tx := func(k *protocol.Key, nonce uint64, call contract.Call) []byte { return NewTx(k, nonce, call).Bytes() }
	replayed := tx(chaintest.Key("replayer"), 1, &contract.Deposit{Amount: 1})
	if _, err := submit(replayed); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name    string
		raw     []byte
		want    error
		inBlock bool // refused by the contract inside a block, nonce used
	}{
		{"empty", nil, ErrMalformedTx, false},
		{"garbage", []byte{1, 2, 3}, ErrMalformedTx, false},
		{"unsigned", func() []byte {
			st := NewTx(mallory, 1, &contract.Deposit{Amount: 1})
			st.Signature = nil
			return st.Bytes()
		}(), ErrUnsigned, false},
		{"forged signature", func() []byte {
			st := NewTx(mallory, 1, &contract.Deposit{Amount: 1})
			st.Signature[5] ^= 1
			return st.Bytes()
		}(), ErrBadSignature, false},
		{"key of another sender", func() []byte {
			st := NewTx(mallory, 1, &contract.Deposit{Amount: 1})
			st.PublicKey = chaintest.Key("bob").Public()
			return st.Bytes()
		}(), ErrBadSignature, false},
		{"changed after signing", func() []byte {
			st := NewTx(mallory, 1, &contract.Deposit{Amount: 1})
			st.Call = contract.EncodeCall(&contract.Deposit{Amount: 1000})
			return st.Bytes()
		}(), ErrBadSignature, false},
		{"replayed", replayed, ErrBadNonce, false},
		{"nonce zero", tx(mallory, 0, &contract.Deposit{Amount: 1}), ErrBadNonce, false},
		{"oversized", tx(mallory, 1, &contract.CreateChannel{Contract: "x", Code: make([]byte, 64<<10)}), ErrTooLarge, false},
		{"unknown call", func() []byte {
			st := NewTx(chaintest.Key("u1"), 1, &contract.Deposit{Amount: 1})
			st.Call = []byte{200}
			st.Signature = chaintest.Key("u1").Sign(DomainChainTx, st.Tx.body())
			return st.Bytes()
		}(), contract.ErrUnknownCall, true},
		{"truncated call", func() []byte {
			st := NewTx(chaintest.Key("u2"), 1, &contract.Deposit{Amount: 1})
			st.Call = st.Call[:3]
			st.Signature = chaintest.Key("u2").Sign(DomainChainTx, st.Tx.body())
			return st.Bytes()
		}(), contract.ErrMalformed, true},
		{"non-member heartbeat", tx(chaintest.Key("u3"), 1, &contract.KeepAlive{Channel: id}), contract.ErrNotMember, true},
		{"non-member vote", tx(chaintest.Key("u4"), 1, &contract.Vote{Channel: id, Proposal: pid, Option: 1}), contract.ErrNotMember, true},
		{"malformed proposal data", tx(alice.Key(), 5, &contract.CreateProposal{Channel: id, Type: protocol.ProposalPunish, Data: []byte{1, 2}}), contract.ErrMalformed, true},
		{"vote on a closed proposal", tx(alice.Key(), 6, &contract.Vote{Channel: id, Proposal: pid, Option: 1}), contract.ErrProposalClosed, true},
		{"unknown channel", tx(chaintest.Key("u5"), 1, &contract.Join{Channel: protocol.ChannelID{1}}), contract.ErrNoChannel, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := c.Head().Height
			resp, err := submit(tc.raw)
			if !errors.Is(err, tc.want) {
				t.Fatalf("error %v, want %v", err, tc.want)
			}
			if err.Error() == "" {
				t.Fatal("empty error message")
			}
			if inBlock := resp != nil && resp.Block != 0; inBlock != tc.inBlock {
				t.Fatalf("in block %v, want %v", inBlock, tc.inBlock)
			}
			testutilWaitHeight(t, c, before+2)
		})
	}

	// Same through the Client: the refusal wraps the sentinel.
	err = alice.KeepAlive(ctx, protocol.ChannelID{7})
	if !errors.Is(err, contract.ErrNoChannel) {
		t.Fatalf("client error %v", err)
	}
	// A gRPC message larger than the server accepts is refused cleanly.
	if _, err := api.Submit(ctx, &chainpb.SubmitRequest{Tx: bytes.Repeat([]byte{1}, 1<<20)}); err == nil {
		t.Fatal("oversized message accepted")
	}
}

func testutilWaitHeight(t *testing.T, c *Chain, h uint64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for c.Head().Height < h {
		if time.Now().After(deadline) {
			t.Fatalf("chain stuck at height %d, want %d", c.Head().Height, h)
		}
		waitBlock(c)
	}
}

// waitBlock returns after the next block is committed.
func waitBlock(c *Chain) {
	c.mu.Lock()
	ch := c.mu.newBlock
	c.mu.Unlock()
	select {
	case <-ch:
	case <-time.After(time.Second):
	}
}
