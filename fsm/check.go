package fsm

import (
	"errors"
	"fmt"
	"strings"

	"github.com/scraft/scraft/protocol"
)

// Reasons CheckCall refuses a tx. The client API maps them to error codes.
var (
	// ErrTxChannel means the tx names another channel.
	ErrTxChannel = errors.New("fsm: tx for another channel")
	// ErrTxSignature means the sender's key or signature is wrong.
	ErrTxSignature = errors.New("fsm: bad tx signature")
	// ErrTxNotMember means the sender is not a member.
	ErrTxNotMember = errors.New("fsm: sender is not a member")
	// ErrTxNonce means the nonce is already used.
	ErrTxNonce = errors.New("fsm: nonce already used")
	// ErrTxFunction means the function is not a callable function of the
	// channel's contract.
	ErrTxFunction = errors.New("fsm: not a function of the channel's contract")
)

// CheckCall is the leader's admission check of a submitted tx, against the
// applied state plus the batches it has proposed: channel, function,
// signature (verified here, so Propose need not verify it again),
// membership, and a nonce not yet used. A nonce beyond the next is
// accepted: the tx may wait for the ones before it. Passing the check does
// not reserve anything; Propose gives the final verdict.
func (m *Machine) CheckCall(tx *protocol.SignedTx) error {
	t := &tx.Tx
	if t.Channel != m.cfg.Channel {
		return fmt.Errorf("%w: %s", ErrTxChannel, t.Channel)
	}
	contract, fn, ok := strings.Cut(t.Function, "::")
	if !ok || contract != m.cfg.Contract || reserved(fn) {
		return fmt.Errorf("%w: %q", ErrTxFunction, t.Function)
	}
	if err := tx.Verify(); err != nil {
		return fmt.Errorf("%w: %v", ErrTxSignature, err)
	}
	v := m.pendingView()
	if _, ok := v.member(t.Sender); !ok {
		return fmt.Errorf("%w: %s", ErrTxNotMember, t.Sender)
	}
	if last := v.nonce(t.Sender); t.Nonce <= last {
		return fmt.Errorf("%w: nonce %d, last used %d", ErrTxNonce, t.Nonce, last)
	}
	return nil
}

// PendingNonce returns the last nonce sender used in the applied state plus
// the batches proposed and not yet applied.
func (m *Machine) PendingNonce(sender protocol.Address) uint64 {
	return m.pendingView().nonce(sender)
}

// pendingView reads the applied state through the pending layers.
func (m *Machine) pendingView() *view {
	v := &view{base: m.st, top: emptyLayer}
	for _, p := range m.pending {
		v.below = append(v.below, p.layer)
	}
	return v
}

// emptyLayer is a read-only top for views that do not write.
var emptyLayer = newLayer(meta{})
