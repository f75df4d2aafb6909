package devchain

import (
	"github.com/scraft/scraft/protocol"
)

// Block is one committed block: its txs in order, each with its outcome.
// Txs refused before execution (bad signature, used nonce) are not in any
// block; txs the contract refused are, with their error, and use their
// nonce.
type Block struct {
	Height uint64
	TimeMs int64
	// Prev is the hash of the previous block (zero for block 1).
	Prev protocol.Hash
	// AppHash chains the state writes: H(previous AppHash ‖ this block's
	// writes in order). Two chains with the same AppHash hold the same state.
	AppHash protocol.Hash
	Txs     []BlockTx
}

// BlockTx is a tx in a block with its outcome.
type BlockTx struct {
	Tx    []byte // the signed tx's encoding
	Code  uint32 // 0 accepted, else the refusal's code (ErrorCode)
	Error string
	// Events is the number of events the tx emitted; FirstEvent the index
	// of its first in the block.
	FirstEvent uint32
	Events     uint32
	Receipt    Receipt
}

// Receipt holds the ids a call assigned.
type Receipt struct {
	Channel  protocol.ChannelID
	Proposal uint64
	JoinSeq  uint64
	Epoch    uint64
}

const domainBlock = "scraft/block/v1"

// Hash identifies the block.
func (b *Block) Hash() protocol.Hash { return protocol.HashOf(domainBlock, b.Bytes()) }

// Bytes returns the canonical encoding.
func (b *Block) Bytes() []byte {
	size := 128
	for i := range b.Txs {
		size += len(b.Txs[i].Tx) + len(b.Txs[i].Error) + 64
	}
	e := protocol.NewEncoder(size)
	e.U64(b.Height)
	e.I64(b.TimeMs)
	e.Fixed(b.Prev[:])
	e.Fixed(b.AppHash[:])
	e.Uleb(uint64(len(b.Txs)))
	for _, t := range b.Txs {
		e.Bytes(t.Tx)
		e.U32(t.Code)
		e.String(t.Error)
		e.U32(t.FirstEvent)
		e.U32(t.Events)
		e.Fixed(t.Receipt.Channel[:])
		e.U64(t.Receipt.Proposal)
		e.U64(t.Receipt.JoinSeq)
		e.U64(t.Receipt.Epoch)
	}
	return e.Out()
}

// DecodeBlock reads a block written by Bytes.
func DecodeBlock(buf []byte) (*Block, error) {
	d := protocol.NewDecoder(buf)
	b := new(Block)
	b.Height = d.U64()
	b.TimeMs = d.I64()
	d.FixedInto(b.Prev[:])
	d.FixedInto(b.AppHash[:])
	n := d.Length(protocol.MaxVecLen)
	for i := 0; i < n && d.Err() == nil; i++ {
		var t BlockTx
		t.Tx = d.Bytes(protocol.MaxBytesLen)
		t.Code = d.U32()
		t.Error = d.String(64 << 10)
		t.FirstEvent = d.U32()
		t.Events = d.U32()
		d.FixedInto(t.Receipt.Channel[:])
		t.Receipt.Proposal = d.U64()
		t.Receipt.JoinSeq = d.U64()
		t.Receipt.Epoch = d.U64()
		b.Txs = append(b.Txs, t)
	}
	if err := d.Finish(); err != nil {
		return nil, err
	}
	return b, nil
}
