package fsm

import (
	"fmt"

	"github.com/scraft/scraft/protocol"
)

// Verified holds the signature verdicts of one batch: the leader's and
// every call's. Verifying is most of a follower's work and depends on the
// batch alone, so the caller may do it ahead of time, on other goroutines
// and several batches at once, and hand the result to ApplyFacts.
type Verified struct {
	// Batch is the batch verified. It must not be modified afterwards.
	Batch  *protocol.Batch
	leader error   // the leader's signature
	calls  []error // per entry; nil for valid calls and for other kinds
}

// Verify checks the signatures of b in one batch verification (the
// leader's over the body and each call's sender's). It is a pure function,
// safe on any goroutine. A malformed batch gets a verdict that Apply
// refuses; it never panics.
func Verify(b *protocol.Batch) *Verified {
	v := &Verified{Batch: b}
	if b == nil {
		v.leader = fmt.Errorf("%w: nil", ErrBatchShape)
		return v
	}
	for i := range b.Entries {
		if !wellFormed(&b.Entries[i]) {
			v.leader = fmt.Errorf("%w: entry %d is a %s without its body", ErrBatchShape, i, b.Entries[i].Kind)
			return v
		}
	}
	v.calls = make([]error, len(b.Entries))
	items := make([]protocol.SigItem, 0, len(b.Entries)+1)
	idx := make([]int, 0, len(b.Entries)+1) // entry index, -1 for the leader
	if protocol.AddressOf(b.PublicKey) != b.Leader {
		v.leader = protocol.ErrKeyMismatch
	} else {
		items = append(items, protocol.SigItem{PublicKey: b.PublicKey, Domain: protocol.DomainBatch, Message: b.Body(), Signature: b.Signature})
		idx = append(idx, -1)
	}
	for i := range b.Entries {
		if b.Entries[i].Kind != protocol.EntryCall {
			continue
		}
		tx := b.Entries[i].Call
		if protocol.AddressOf(tx.PublicKey) != tx.Tx.Sender {
			v.calls[i] = protocol.ErrKeyMismatch
			continue
		}
		items = append(items, tx.SigItem())
		idx = append(idx, i)
	}
	for j, ok := range protocol.VerifyBatch(items) {
		switch {
		case ok:
		case idx[j] < 0:
			v.leader = protocol.ErrBadSignature
		default:
			v.calls[idx[j]] = protocol.ErrBadSignature
		}
	}
	return v
}
