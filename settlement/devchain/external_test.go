package devchain

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/scraft/scraft/internal/testutil"
	"github.com/scraft/scraft/settlement/chaintest"
	"github.com/scraft/scraft/settlement/contract"
)

// A block run through ExecuteBlock and committed is the block ProduceBlock
// makes of the same txs at the same time: same record, same AppHash. Txs
// refused before execution are answered and left out of the record, and a
// nonce gap is refused at once (the block is final).
func TestExecuteBlockMatchesProduceBlock(t *testing.T) {
	k := chaintest.Key("exec")
	good := [][]byte{
		NewTx(k, 1, &contract.CreateChannel{Contract: "chat", Code: []byte("code")}).Bytes(),
		NewTx(k, 2, &contract.Deposit{Amount: 5}).Bytes(),
	}
	produced, clock := newTestChain(t, t.TempDir(), 0)
	done := make(chan error, len(good))
	for i, raw := range good { // in this order
		go func() { _, err := produced.Submit(context.Background(), raw); done <- err }()
		testutil.Eventually(t, 5*time.Second, "tx pending", func() bool { return pendingCount(produced) > i })
	}
	if _, err := produced.ProduceBlock(); err != nil {
		t.Fatal(err)
	}
	for range good {
		if err := <-done; err != nil {
			t.Fatal(err)
		}
	}
	want, err := produced.Block(1)
	if err != nil {
		t.Fatal(err)
	}

	executed, _ := newTestChain(t, t.TempDir(), 0)
	bad := append([]byte(nil), good[1]...)
	bad[len(bad)-1] ^= 1
	gap := NewTx(k, 9, &contract.Deposit{Amount: 1}).Bytes()
	txs := [][]byte{good[0], []byte("junk"), bad, good[1], gap}
	pb, err := executed.ExecuteBlock(1, clock.Now().UnixMilli(), txs)
	if err != nil {
		t.Fatal(err)
	}
	outs := pb.Outcomes()
	for i, want := range []error{nil, ErrMalformedTx, ErrBadSignature, nil, ErrNonceGap} {
		if want == nil && outs[i].Err != nil || want != nil && !errors.Is(outs[i].Err, want) {
			t.Fatalf("tx %d: %v, want %v", i, outs[i].Err, want)
		}
	}
	if executed.Head().Height != 0 {
		t.Fatal("an executed block is the head before Commit")
	}
	if err := pb.Commit(); err != nil {
		t.Fatal(err)
	}
	got, err := executed.Block(1)
	if err != nil {
		t.Fatal(err)
	}
	if got.Hash() != want.Hash() || executed.AppHash() != produced.AppHash() {
		t.Fatalf("executed block %+v, produced %+v", got, want)
	}
	// The next one aborted leaves nothing.
	pb, err = executed.ExecuteBlock(2, clock.Now().UnixMilli()+1, [][]byte{NewTx(k, 3, &contract.Deposit{Amount: 1}).Bytes()})
	if err != nil {
		t.Fatal(err)
	}
	pb.Abort()
	if acc, _ := executed.AccountInfo(k.Address()); executed.Head().Height != 1 || acc.NextNonce != 3 {
		t.Fatalf("after abort: head %d, next nonce %d", executed.Head().Height, acc.NextNonce)
	}
}
