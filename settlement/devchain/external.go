package devchain

import (
	"fmt"

	"github.com/scraft/scraft/protocol"
)

// The Chain produces its own blocks from a timer, but it can also be the
// state of a chain whose blocks another engine decides (a BFT consensus):
// that engine hands each decided block to ExecuteBlock and commits it once
// it has recorded the block itself. The same rules, nonces, block records,
// events and AppHash result either way, so queries, Watch and the gRPC
// service work unchanged on such a chain.

// PendingBlock is a block executed by ExecuteBlock and not yet committed:
// its writes sit in an open bbolt transaction until Commit or Abort. While
// one is open no other block is produced or executed, and Close waits.
type PendingBlock struct {
	c        *Chain
	r        executed
	index    map[*pendingTx]int // tx → its position in the input
	outcomes []Outcome
	done     bool
	commit   func() error
	rollback func() error
}

// Config returns the chain's configuration.
func (c *Chain) Config() Config { return c.cfg }

// ExecuteBlock runs txs (encoded signed txs, in the order decided) as block
// height at timeMs without committing it. height must follow the head. The
// block's time is timeMs, but at least 1 ms after the head's, so chain time
// always moves on. A tx that does not decode, is badly signed, reuses a
// nonce or skips one is refused before execution and is in no block record
// (its outcome says why); the others run in order as in ProduceBlock.
func (c *Chain) ExecuteBlock(height uint64, timeMs int64, txs [][]byte) (*PendingBlock, error) {
	c.produceMu.Lock()
	c.mu.Lock()
	prev, prevHash, closed := c.mu.head, c.mu.headHash, c.mu.closed
	c.mu.Unlock()
	switch {
	case closed:
		c.produceMu.Unlock()
		return nil, ErrClosed
	case height != prev.Height+1:
		c.produceMu.Unlock()
		return nil, fmt.Errorf("devchain: execute block %d after head %d", height, prev.Height)
	}
	pb := &PendingBlock{c: c, index: make(map[*pendingTx]int, len(txs)), outcomes: make([]Outcome, len(txs))}
	batch := make([]*pendingTx, 0, len(txs))
	for i, raw := range txs {
		tx, err := DecodeTx(raw, c.cfg.MaxTxBytes)
		if err != nil {
			pb.outcomes[i] = Outcome{TxHash: protocol.HashOf(DomainChainTx, raw), Err: err}
			continue
		}
		p := &pendingTx{tx: tx, raw: raw, done: make(chan Outcome, 1)}
		pb.index[p] = i
		batch = append(batch, p)
	}
	btx, err := c.db.Begin(true)
	if err != nil {
		c.produceMu.Unlock()
		return nil, fmt.Errorf("devchain: execute block %d: %w", height, err)
	}
	pb.commit, pb.rollback = btx.Commit, btx.Rollback
	pb.r, err = c.execute(btx, batch, prev, prevHash, max(timeMs, prev.TimeMs+1), true)
	if err != nil {
		btx.Rollback()
		c.produceMu.Unlock()
		return nil, fmt.Errorf("devchain: execute block %d: %w", height, err)
	}
	for _, d := range pb.r.outcomes {
		o := d.o
		if o.Block != 0 {
			o.TimeMs = pb.r.block.TimeMs
		}
		pb.outcomes[pb.index[d.p]] = o
	}
	return pb, nil
}

// Height returns the block's height.
func (pb *PendingBlock) Height() uint64 { return pb.r.block.Height }

// TimeMs returns the block's time.
func (pb *PendingBlock) TimeMs() int64 { return pb.r.block.TimeMs }

// AppHash returns the state hash after the block.
func (pb *PendingBlock) AppHash() protocol.Hash { return pb.r.block.AppHash }

// Outcomes returns the outcome of each tx, in the order given to
// ExecuteBlock.
func (pb *PendingBlock) Outcomes() []Outcome { return pb.outcomes }

// Commit writes the block and makes it the head.
func (pb *PendingBlock) Commit() error {
	if pb.done {
		return fmt.Errorf("devchain: block %d already ended", pb.r.block.Height)
	}
	pb.done = true
	defer pb.c.produceMu.Unlock()
	if err := pb.commit(); err != nil {
		return fmt.Errorf("devchain: commit block %d: %w", pb.r.block.Height, err)
	}
	pb.c.committed(&pb.r)
	return nil
}

// Abort drops the block's writes. It does nothing after Commit or Abort.
func (pb *PendingBlock) Abort() {
	if pb.done {
		return
	}
	pb.done = true
	pb.rollback()
	pb.c.produceMu.Unlock()
}

// CheckTx decodes raw and checks what can be checked before a block: the
// shape, with verifySig the signature, and that the nonce is not used yet
// (it may be ahead: earlier ones may be on their way). It returns the tx.
func (c *Chain) CheckTx(raw []byte, verifySig bool) (*SignedTx, error) {
	tx, err := DecodeTx(raw, c.cfg.MaxTxBytes)
	if err != nil {
		return nil, err
	}
	if verifySig && !protocol.VerifyBatch([]protocol.SigItem{tx.sigItem()})[0] {
		return nil, fmt.Errorf("%w: sender %s", ErrBadSignature, tx.Sender)
	}
	acc, err := c.AccountInfo(tx.Sender)
	if err != nil {
		return nil, err
	}
	if tx.Nonce < acc.NextNonce {
		return nil, fmt.Errorf("%w: nonce %d, next is %d", ErrBadNonce, tx.Nonce, acc.NextNonce)
	}
	return tx, nil
}
