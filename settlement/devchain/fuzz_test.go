package devchain

import (
	"bytes"
	"testing"

	"github.com/scraft/scraft/settlement"
	"github.com/scraft/scraft/settlement/chaintest"
	"github.com/scraft/scraft/settlement/contract"
)

func FuzzDecodeTx(f *testing.F) {
	f.Add(NewTx(chaintest.Key("a"), 1, &contract.Deposit{Amount: 5}).Bytes())
	f.Add(NewTx(chaintest.Key("b"), 9, &contract.KeepAlive{}).Bytes())
	f.Fuzz(func(t *testing.T, b []byte) {
		tx, err := DecodeTx(b, 1<<20)
		if err != nil {
			return
		}
		if !bytes.Equal(tx.Bytes(), b) {
			t.Fatalf("decoded %x but encodes as %x", b, tx.Bytes())
		}
	})
}

func FuzzDecodeBlock(f *testing.F) {
	b := &Block{Height: 3, TimeMs: 9, Txs: []BlockTx{{Tx: []byte{1}, Code: 5, Error: "x", Events: 2}}}
	f.Add(b.Bytes())
	f.Fuzz(func(t *testing.T, raw []byte) {
		if b, err := DecodeBlock(raw); err == nil && !bytes.Equal(b.Bytes(), raw) {
			t.Fatalf("decoded %x but encodes as %x", raw, b.Bytes())
		}
	})
}

func FuzzDecodeEvent(f *testing.F) {
	ev := settlement.Event{ID: settlement.EventID{Block: 2, Index: 1}, TimeMs: 5, Event: contract.Event{Kind: contract.EventMemberJoined, JoinSeq: 3}}
	f.Add(EncodeEvent(&ev))
	f.Fuzz(func(t *testing.T, raw []byte) {
		if ev, err := DecodeEvent(raw); err == nil && !bytes.Equal(EncodeEvent(&ev), raw) {
			t.Fatalf("decoded %x but encodes differently", raw)
		}
	})
}
