package transport

import (
	"context"
	"errors"
	"fmt"

	"github.com/scraft/scraft/protocol"
)

// Code is a stable numeric error code of the client API. Codes never change
// meaning; new ones are added at the end. CLIENT_API.md has the same table.
type Code uint32

// The client API's error codes. 100001 is the original design's.
const (
	CodeOK             Code = 0
	CodeNoChannel      Code = 100001 // the channel does not exist on this node
	CodeNotMember      Code = 100002 // the bound address is not a member of the channel
	CodeBadSignature   Code = 100003 // a bind or tx signature does not verify
	CodeStaleNonce     Code = 100004 // a bind nonce that is not this stream's, or a tx nonce already used or skipped
	CodeBusy           Code = 100005 // too many requests in flight (stream, channel or leader queue): retry later
	CodeAbort          Code = 100006 // the contract aborted; Error.AbortCode holds its code
	CodeOutOfGas       Code = 100007 // the call ran out of gas
	CodeNotReady       Code = 100008 // the node is catching up with the channel
	CodeUnavailable    Code = 100009 // no leader reachable at the moment: retry, maybe on another node
	CodeBadRequest     Code = 100010 // malformed message or field
	CodeTooLarge       Code = 100011 // a message, tx or args above the limits
	CodeNotBound       Code = 100012 // a request before the stream was bound
	CodeSlowSubscriber Code = 100013 // the subscriber fell behind and was dropped; resume from Error.ResumeHeight
	CodeExecution      Code = 100014 // the call failed in the VM (trap, memory or stack limit, bad input, bad module)
	CodeWrongSender    Code = 100015 // the tx sender is not the stream's bound address
	CodeClosed         Code = 100016 // the node is shutting down, or no longer serves the channel (its member left): try another node
	CodeTimeout        Code = 100017 // the request's deadline passed; a call may still commit
	CodeInternal       Code = 100018 // an unexpected failure in the node
	CodeUnsupported    Code = 100019 // the node does not serve this request (yet)
	CodeChannelClosed  Code = 100020 // the channel is closed (or closing): its state is final, nothing more is ordered
)

// The client API's errors. A ChannelAPI implementation wraps these
// (fmt.Errorf("%w: ...", transport.ErrBusy)) so that the stream answers
// with the right Code; a client gets an *Error that errors.Is matches
// against them.
var (
	// ErrNoChannel means the channel does not exist on this node (100001).
	ErrNoChannel = errors.New("transport: channel does not exist")
	// ErrNotMember means the address is not a member of the channel.
	ErrNotMember = errors.New("transport: not a member of the channel")
	// ErrBadSignature means a bind or tx signature does not verify.
	ErrBadSignature = errors.New("transport: bad signature")
	// ErrStaleNonce means a nonce was used already, skipped, or is not the
	// stream's challenge.
	ErrStaleNonce = errors.New("transport: stale or reused nonce")
	// ErrBusy means too many requests are in flight; retry later.
	ErrBusy = errors.New("transport: busy")
	// ErrAbort means the contract aborted the call.
	ErrAbort = errors.New("transport: contract aborted")
	// ErrOutOfGas means the call ran out of gas.
	ErrOutOfGas = errors.New("transport: out of gas")
	// ErrNotReady means the node is catching up with the channel.
	ErrNotReady = errors.New("transport: node not ready, catching up")
	// ErrUnavailable means no leader is reachable at the moment.
	ErrUnavailable = errors.New("transport: leader unavailable")
	// ErrBadRequest means a malformed message or field.
	ErrBadRequest = errors.New("transport: bad request")
	// ErrTooLarge means a message, tx or args above the limits.
	ErrTooLarge = errors.New("transport: too large")
	// ErrNotBound means a request came before the stream was bound.
	ErrNotBound = errors.New("transport: stream not bound")
	// ErrSlowSubscriber means a subscriber fell behind and was dropped.
	ErrSlowSubscriber = errors.New("transport: subscriber too slow, dropped")
	// ErrExecution means the call failed in the VM.
	ErrExecution = errors.New("transport: execution failed")
	// ErrWrongSender means a tx's sender is not the bound address.
	ErrWrongSender = errors.New("transport: tx sender is not the bound address")
	// ErrNodeClosed means the node is shutting down or no longer serves
	// the channel; another node may.
	ErrNodeClosed = errors.New("transport: node closed or not serving the channel")
	// ErrChannelClosed means the channel is closed for good (or closing):
	// no node orders anything more in it.
	ErrChannelClosed = errors.New("transport: channel closed")
	// ErrTimeout means the request's deadline passed.
	ErrTimeout = errors.New("transport: deadline exceeded")
	// ErrInternal means an unexpected failure in the node.
	ErrInternal = errors.New("transport: internal error")
	// ErrUnsupported means the node does not serve the request; unlike
	// ErrUnavailable, trying again will not help.
	ErrUnsupported = errors.New("transport: not supported by this node")
)

// codeTable is the one table from codes to errors and names.
var codeTable = []struct {
	code Code
	err  error
	name string
}{
	{CodeNoChannel, ErrNoChannel, "no_channel"},
	{CodeNotMember, ErrNotMember, "not_member"},
	{CodeBadSignature, ErrBadSignature, "bad_signature"},
	{CodeStaleNonce, ErrStaleNonce, "stale_nonce"},
	{CodeBusy, ErrBusy, "busy"},
	{CodeAbort, ErrAbort, "abort"},
	{CodeOutOfGas, ErrOutOfGas, "out_of_gas"},
	{CodeNotReady, ErrNotReady, "not_ready"},
	{CodeUnavailable, ErrUnavailable, "unavailable"},
	{CodeBadRequest, ErrBadRequest, "bad_request"},
	{CodeTooLarge, ErrTooLarge, "too_large"},
	{CodeNotBound, ErrNotBound, "not_bound"},
	{CodeSlowSubscriber, ErrSlowSubscriber, "slow_subscriber"},
	{CodeExecution, ErrExecution, "execution_failed"},
	{CodeWrongSender, ErrWrongSender, "wrong_sender"},
	{CodeClosed, ErrNodeClosed, "closed"},
	{CodeTimeout, ErrTimeout, "timeout"},
	{CodeInternal, ErrInternal, "internal"},
	{CodeUnsupported, ErrUnsupported, "unsupported"},
	{CodeChannelClosed, ErrChannelClosed, "channel_closed"},
}

// String returns the code's name, e.g. "no_channel".
func (c Code) String() string {
	if c == CodeOK {
		return "ok"
	}
	for _, e := range codeTable {
		if e.code == c {
			return e.name
		}
	}
	return fmt.Sprintf("code(%d)", uint32(c))
}

// Err returns the sentinel error of c (ErrInternal for an unknown code, nil
// for CodeOK).
func (c Code) Err() error {
	if c == CodeOK {
		return nil
	}
	for _, e := range codeTable {
		if e.code == c {
			return e.err
		}
	}
	return ErrInternal
}

// Error is a failed client API request as the client sees it. errors.Is
// matches it against the sentinel of its code (ErrNoChannel, ErrBusy, ...).
type Error struct {
	Code    Code
	Message string
	// AbortCode is the contract's abort code (CodeAbort).
	AbortCode uint32
	// ResumeHeight is, for CodeSlowSubscriber, the last height delivered.
	ResumeHeight uint64
}

func (e *Error) Error() string {
	if e.Code == CodeAbort {
		return fmt.Sprintf("%s (code %d, abort code %d)", e.Message, e.Code, e.AbortCode)
	}
	return fmt.Sprintf("%s (code %d)", e.Message, e.Code)
}

// Unwrap returns the sentinel of the code.
func (e *Error) Unwrap() error { return e.Code.Err() }

// CodeOf maps an error to its code: an *Error's own, the code of the first
// sentinel it wraps, CodeTimeout for context errors, CodeInternal otherwise.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	for _, c := range codeTable {
		if errors.Is(err, c.err) {
			return c.code
		}
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return CodeTimeout
	}
	if errors.Is(err, protocol.ErrTooLong) {
		return CodeTooLarge
	}
	return CodeInternal
}

// StatusCode maps the status of a committed entry to its code: CodeOK for
// StatusOK, and the code a client sees for each failure.
func StatusCode(s protocol.Status) Code {
	switch s {
	case protocol.StatusOK:
		return CodeOK
	case protocol.StatusAbort:
		return CodeAbort
	case protocol.StatusOutOfGas:
		return CodeOutOfGas
	case protocol.StatusBadNonce:
		return CodeStaleNonce
	case protocol.StatusNotMember:
		return CodeNotMember
	case protocol.StatusBadSignature:
		return CodeBadSignature
	}
	return CodeExecution
}
