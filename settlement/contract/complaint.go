package contract

import (
	"fmt"

	"github.com/scraft/scraft/protocol"
)

// A censorship complaint (DESIGN §7) says the leader did not order the
// complainer's signed tx. The leader, or anyone for it, answers with one
// batch of the channel (ProveInclusion) that shows one of:
//
//   - inclusion: the batch holds the tx;
//   - nonce used: the batch holds another tx of the complainer, signed by
//     it, with the same nonce, whose result shows the nonce was consumed
//     (any status but bad signature, bad nonce, not a member or rejected,
//     which the state machine gives before it takes the nonce). The tx
//     complained about can never be ordered then: the complainer signed
//     two txs with one nonce;
//   - not a member: the batch orders the complainer's leave, and the
//     complainer's member record shows it asked to leave. Its txs are
//     refused from that height on.
//
// The batch must be signed by the accused, or by the leader the chain
// records for the batch's epoch: a tx ordered under an earlier leader was
// not censored by this one. A complaint left unanswered past its deadline
// closes the channel at its last settled state, with no fine; one whose
// complainer is no longer a member when it is executed lapses (its tx can
// never be ordered).

// answersComplaint checks that b answers the complaint cs in channel ch.
func (x *exec) answersComplaint(ch *Channel, cs *protocol.Censorship, b *protocol.Batch) error {
	if b.Channel != ch.ID {
		return fmt.Errorf("%w: batch is for channel %s", ErrBadProof, b.Channel)
	}
	if b.Leader != cs.Accused && !x.ledEpoch(ch, b.Leader, b.Epoch) {
		return fmt.Errorf("%w: batch of epoch %d signed by %s, neither the accused %s nor that epoch's leader",
			ErrBadProof, b.Epoch, b.Leader, cs.Accused)
	}
	if err := b.VerifySignature(); err != nil {
		return fmt.Errorf("%w: batch signature: %v", ErrBadProof, err)
	}
	switch a := AnswerIn(b, &cs.Tx); {
	case a == AnswerIncluded || a == AnswerNonceUsed:
		return nil
	case a == AnswerLeft && x.leaving(ch, cs.Tx.Tx.Sender):
		return nil
	}
	t := &cs.Tx.Tx
	return fmt.Errorf("%w: batch %d..%d neither holds tx %s, nor another tx of %s with nonce %d, nor the leave of %s, who is leaving",
		ErrBadProof, b.FirstHeight, b.LastHeight(), cs.Tx.Hash(), t.Sender, t.Nonce, t.Sender)
}

// Answer is what a batch shows about a complained-about tx.
type Answer uint8

// The answers a batch can give, strongest first.
const (
	// AnswerNone: the batch says nothing about the tx.
	AnswerNone Answer = iota
	// AnswerIncluded: the batch holds the tx.
	AnswerIncluded
	// AnswerNonceUsed: the batch holds another tx of the sender, signed by
	// it, that consumed the tx's nonce.
	AnswerNonceUsed
	// AnswerLeft: the batch orders the sender's leave (the chain also
	// requires the sender to be leaving).
	AnswerLeft
)

func (a Answer) String() string {
	switch a {
	case AnswerNone:
		return "none"
	case AnswerIncluded:
		return "included"
	case AnswerNonceUsed:
		return "nonce_used"
	case AnswerLeft:
		return "left"
	}
	return fmt.Sprintf("answer(%d)", uint8(a))
}

// AnswerIn returns the strongest answer b's entries give to a complaint
// about tx. It looks at the entries only: who signed b, whether the
// signature holds and whether the sender is leaving are the chain's
// checks (ProveInclusion). A node uses it to pick the batch to prove with.
func AnswerIn(b *protocol.Batch, tx *protocol.SignedTx) Answer {
	want := tx.Hash()
	t := &tx.Tx
	best := AnswerNone
	better := func(a Answer) {
		if best == AnswerNone || a < best {
			best = a
		}
	}
	for i := range b.Entries {
		if i >= len(b.Results) {
			break
		}
		en := &b.Entries[i]
		switch {
		case en.Kind == protocol.EntryCall && en.Call != nil:
			if en.Call.Hash() == want {
				return AnswerIncluded
			}
			if nonceUsedBy(en.Call, b.Results[i], t) {
				better(AnswerNonceUsed)
			}
		case en.Kind == protocol.EntryLeave && en.Leave != nil:
			if en.Leave.Member == t.Sender && b.Results[i].Status == protocol.StatusOK {
				better(AnswerLeft)
			}
		}
	}
	return best
}

// nonceUsedBy reports whether other, ordered with result r, is a tx of
// t's sender in t's channel with t's nonce that consumed the nonce, signed
// by the sender.
func nonceUsedBy(other *protocol.SignedTx, r protocol.Result, t *protocol.Tx) bool {
	o := &other.Tx
	if o.Sender != t.Sender || o.Channel != t.Channel || o.Nonce != t.Nonce {
		return false
	}
	switch r.Status {
	case protocol.StatusBadSignature, protocol.StatusBadNonce, protocol.StatusNotMember, protocol.StatusRejected:
		return false
	}
	return other.Verify() == nil
}

// ledEpoch reports whether the chain records a as the leader of ch's epoch
// epoch.
func (x *exec) ledEpoch(ch *Channel, a protocol.Address, epoch uint64) bool {
	if epoch == 0 || epoch > ch.Epoch || a.IsZero() {
		return false
	}
	var el EpochLeader
	return get(x.st, epochKey(ch.ID, epoch), &el) && el.Leader == a
}

// leaving reports whether a is a member of ch that asked to leave.
func (x *exec) leaving(ch *Channel, a protocol.Address) bool {
	m, err := x.member(ch.ID, a)
	return err == nil && m.Leaving()
}
