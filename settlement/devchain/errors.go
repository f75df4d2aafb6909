package devchain

import (
	"errors"
	"fmt"

	"github.com/scraft/scraft/settlement/contract"
)

// Sentinel errors of the chain itself; refusals by the contract rules are
// contract errors.
var (
	// ErrMalformedTx means a chain tx does not decode.
	ErrMalformedTx = errors.New("devchain: malformed tx")
	// ErrUnsigned means a chain tx carries no key or signature.
	ErrUnsigned = errors.New("devchain: unsigned tx")
	// ErrBadSignature means a chain tx's signature does not verify.
	ErrBadSignature = errors.New("devchain: bad tx signature")
	// ErrBadNonce means the nonce was used already (a replay) or is zero.
	ErrBadNonce = errors.New("devchain: nonce already used")
	// ErrNonceGap means earlier nonces of the sender never arrived.
	ErrNonceGap = errors.New("devchain: nonce gap")
	// ErrTooLarge means a tx exceeds MaxTxBytes.
	ErrTooLarge = errors.New("devchain: tx too large")
	// ErrBusy means too many txs are pending.
	ErrBusy = errors.New("devchain: too many pending txs")
	// ErrClosed means the chain is shut down.
	ErrClosed = errors.New("devchain: chain closed")
	// ErrNotFound means a queried block or record does not exist.
	ErrNotFound = errors.New("devchain: not found")
	// ErrParamsDiffer means a chain was opened with other settings than
	// the ones fixed at its genesis. It never crosses the wire (no code).
	ErrParamsDiffer = errors.New("devchain: settings differ from the chain's genesis")

	// ErrChainKey means the chain's TLS key is not one of the keys the
	// client pins: another server answers at the chain's address, or the
	// chain's key changed. It never crosses the wire (no code).
	ErrChainKey = errors.New("devchain: the chain's key is not a pinned one")
	// ErrNoChainKey means Dial was given no way to verify the chain's key
	// (neither WithChainKeys nor WithPinFile).
	ErrNoChainKey = errors.New("devchain: no chain key to verify the chain with")
)

var chainCodes = []struct {
	code uint32
	err  error
}{
	{1001, ErrMalformedTx}, {1002, ErrUnsigned}, {1003, ErrBadSignature}, {1004, ErrBadNonce},
	{1005, ErrNonceGap}, {1006, ErrTooLarge}, {1007, ErrBusy}, {1008, ErrClosed}, {1009, ErrNotFound},
}

// ErrorCode returns the stable code of a chain or contract error (0 for nil
// or an error without one).
func ErrorCode(err error) uint32 {
	if err == nil {
		return 0
	}
	for _, c := range chainCodes {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	return contract.Code(err)
}

// ErrorOf rebuilds an error from its code and message so that errors.Is
// matches the sentinel on the far side of the gRPC API.
func ErrorOf(code uint32, msg string) error {
	if code == 0 {
		return nil
	}
	for _, c := range chainCodes {
		if c.code == code {
			return &remoteError{sentinel: c.err, msg: msg}
		}
	}
	if code < 1000 {
		return contract.ErrorOf(code, msg)
	}
	return fmt.Errorf("devchain error %d: %s", code, msg)
}

type remoteError struct {
	sentinel error
	msg      string
}

func (e *remoteError) Error() string { return e.msg }
func (e *remoteError) Unwrap() error { return e.sentinel }
