package protocol

import (
	"context"
	"errors"
	"fmt"
	"sync"
)

// Code is a stable numeric error code: what a node answers a client with,
// and what crosses the peer API between nodes. Codes never change meaning;
// new ones are added at the end. clientapi/CLIENT_API.md has the same
// table.
type Code uint32

// The error codes. 100001 is the original design's.
const (
	CodeOK             Code = 0
	CodeNoChannel      Code = 100001 // the channel does not exist on this node
	CodeNotMember      Code = 100002 // the bound address is not a member of the channel
	CodeBadSignature   Code = 100003 // a bind or tx signature does not verify
	CodeStaleNonce     Code = 100004 // a bind nonce that is not this stream's, or a tx nonce already used or skipped
	CodeBusy           Code = 100005 // too many requests in flight (stream, channel or leader queue): retry later
	CodeAbort          Code = 100006 // the contract aborted; Error.AbortCode holds its code
	CodeOutOfGas       Code = 100007 // the call ran out of gas
	CodeNotReady       Code = 100008 // the node is catching up with the channel: retry, maybe on another node
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

// The sentinel error of each code. Other packages define their own
// sentinels on top of these with NewError (cluster.ErrNotLeader is a
// CodeUnavailable), so that errors.Is(err, protocol.ErrUnavailable) holds
// for them and CodeOf needs no table of its own. A client gets an *Error
// that errors.Is matches against these.
var (
	// ErrNoChannel means the channel does not exist on this node (100001).
	ErrNoChannel = newCode(CodeNoChannel, "no_channel", "channel does not exist")
	// ErrNotMember means the address is not a member of the channel.
	ErrNotMember = newCode(CodeNotMember, "not_member", "not a member of the channel")
	// ErrBadSignature means a signature (of a bind, a tx, a batch, a
	// vote) does not verify.
	ErrBadSignature = newCode(CodeBadSignature, "bad_signature", "bad signature")
	// ErrStaleNonce means a nonce was used already, skipped, or is not the
	// stream's challenge.
	ErrStaleNonce = newCode(CodeStaleNonce, "stale_nonce", "stale or reused nonce")
	// ErrBusy means too many requests are in flight; retry later.
	ErrBusy = newCode(CodeBusy, "busy", "busy")
	// ErrAbort means the contract aborted the call.
	ErrAbort = newCode(CodeAbort, "abort", "contract aborted")
	// ErrOutOfGas means the call ran out of gas.
	ErrOutOfGas = newCode(CodeOutOfGas, "out_of_gas", "out of gas")
	// ErrNotReady means the node is catching up with the channel.
	ErrNotReady = newCode(CodeNotReady, "not_ready", "node not ready, catching up")
	// ErrUnavailable means no leader is reachable at the moment.
	ErrUnavailable = newCode(CodeUnavailable, "unavailable", "leader unavailable")
	// ErrBadRequest means a malformed message or field.
	ErrBadRequest = newCode(CodeBadRequest, "bad_request", "bad request")
	// ErrTooLarge means a message, tx or args above the limits.
	ErrTooLarge = newCode(CodeTooLarge, "too_large", "too large")
	// ErrNotBound means a request came before the stream was bound.
	ErrNotBound = newCode(CodeNotBound, "not_bound", "stream not bound")
	// ErrSlowSubscriber means a subscriber fell behind and was dropped.
	ErrSlowSubscriber = newCode(CodeSlowSubscriber, "slow_subscriber", "subscriber too slow, dropped")
	// ErrExecution means the call failed in the VM.
	ErrExecution = newCode(CodeExecution, "execution_failed", "execution failed")
	// ErrWrongSender means a tx's sender is not the bound address.
	ErrWrongSender = newCode(CodeWrongSender, "wrong_sender", "tx sender is not the bound address")
	// ErrNodeClosed means the node is shutting down or no longer serves
	// the channel; another node may.
	ErrNodeClosed = newCode(CodeClosed, "closed", "node closed or not serving the channel")
	// ErrTimeout means the request's deadline passed.
	ErrTimeout = newCode(CodeTimeout, "timeout", "deadline exceeded")
	// ErrInternal means an unexpected failure in the node.
	ErrInternal = newCode(CodeInternal, "internal", "internal error")
	// ErrUnsupported means the node does not serve the request; unlike
	// ErrUnavailable, trying again will not help.
	ErrUnsupported = newCode(CodeUnsupported, "unsupported", "not supported by this node")
	// ErrChannelClosed means the channel is closed for good (or closing):
	// no node orders anything more in it.
	ErrChannelClosed = newCode(CodeChannelClosed, "channel_closed", "channel closed")
)

// codes is the one table from codes to their sentinels, in code order.
var codes = []*codedError{
	ErrNoChannel.(*codedError), ErrNotMember.(*codedError), ErrBadSignature.(*codedError),
	ErrStaleNonce.(*codedError), ErrBusy.(*codedError), ErrAbort.(*codedError),
	ErrOutOfGas.(*codedError), ErrNotReady.(*codedError), ErrUnavailable.(*codedError),
	ErrBadRequest.(*codedError), ErrTooLarge.(*codedError), ErrNotBound.(*codedError),
	ErrSlowSubscriber.(*codedError), ErrExecution.(*codedError), ErrWrongSender.(*codedError),
	ErrNodeClosed.(*codedError), ErrTimeout.(*codedError), ErrInternal.(*codedError),
	ErrUnsupported.(*codedError), ErrChannelClosed.(*codedError),
}

// codedError is a sentinel that carries a code. Those of this file are the
// codes' own; NewError makes the other packages', which wrap their code's
// and may wrap more sentinels (cluster: a bad signature is also a bad tx).
type codedError struct {
	code Code
	name string // stable, unique: how the sentinel crosses the wire
	msg  string
	up   []error
}

func (e *codedError) Error() string   { return e.msg }
func (e *codedError) Unwrap() []error { return e.up }

// registry holds every coded sentinel by name, so that one decoded from
// the wire (see ErrorWithCauses) is the same value errors.Is compares.
var registry struct {
	sync.Mutex
	byName map[string]*codedError
}

func register(e *codedError) *codedError {
	registry.Lock()
	defer registry.Unlock()
	if registry.byName == nil {
		registry.byName = make(map[string]*codedError)
	}
	if _, dup := registry.byName[e.name]; dup {
		panic(fmt.Sprintf("protocol: error %q registered twice", e.name))
	}
	registry.byName[e.name] = e
	return e
}

func newCode(c Code, name, msg string) error {
	return register(&codedError{code: c, name: name, msg: "protocol: " + msg})
}

// NewError returns a package's sentinel error of code c: errors.Is matches
// it against c's sentinel (and against each of also), and CodeOf returns c
// for any error that wraps it. name identifies it across the wire (by
// convention "package.reason"); it must be unique in the program, and is
// best declared in a package-level var block.
func NewError(c Code, name, msg string, also ...error) error {
	up := append([]error{c.Err()}, also...)
	return register(&codedError{code: c, name: name, msg: msg, up: up})
}

// ErrorName returns the wire name of a sentinel made by NewError or of a
// code's own sentinel, "" for any other error.
func ErrorName(sentinel error) string {
	if e, ok := sentinel.(*codedError); ok {
		return e.name
	}
	return ""
}

// ErrorNamed returns the sentinel registered under name, nil if none.
func ErrorNamed(name string) error {
	registry.Lock()
	defer registry.Unlock()
	if e, ok := registry.byName[name]; ok {
		return e
	}
	return nil
}

// Names returns the wire names of every coded sentinel err wraps,
// outermost first, without duplicates.
func Names(err error) []string {
	var out []string
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if e, ok := err.(*codedError); ok {
			for _, n := range out {
				if n == e.name {
					return
				}
			}
			out = append(out, e.name)
		}
		switch u := err.(type) {
		case interface{ Unwrap() error }:
			walk(u.Unwrap())
		case interface{ Unwrap() []error }:
			for _, e := range u.Unwrap() {
				walk(e)
			}
		}
	}
	walk(err)
	return out
}

// Codes returns every code but CodeOK, in order.
func Codes() []Code {
	out := make([]Code, len(codes))
	for i, e := range codes {
		out[i] = e.code
	}
	return out
}

// String returns the code's name, e.g. "no_channel".
func (c Code) String() string {
	if c == CodeOK {
		return "ok"
	}
	if e := c.sentinel(); e != nil {
		return e.name
	}
	return fmt.Sprintf("code(%d)", uint32(c))
}

func (c Code) sentinel() *codedError {
	if c < CodeNoChannel || int(c-CodeNoChannel) >= len(codes) {
		return nil
	}
	return codes[c-CodeNoChannel]
}

// Err returns the sentinel error of c (ErrInternal for an unknown code, nil
// for CodeOK).
func (c Code) Err() error {
	if c == CodeOK {
		return nil
	}
	if e := c.sentinel(); e != nil {
		return e
	}
	return ErrInternal
}

// Retryable reports whether a request answered with c may succeed later,
// on this node or another, unchanged: a node catching up, no leader, a
// node shutting down or not serving the channel, a deadline.
func (c Code) Retryable() bool {
	switch c {
	case CodeUnavailable, CodeNotReady, CodeClosed, CodeTimeout:
		return true
	}
	return false
}

// Error is a failed request as the caller sees it, rebuilt from the wire.
// errors.Is matches it against the sentinel of its code (ErrNoChannel,
// ErrBusy, ...) and the sentinels the failing side named.
type Error struct {
	Code    Code
	Message string
	// AbortCode is the contract's abort code (CodeAbort).
	AbortCode uint32
	// ResumeHeight is, for CodeSlowSubscriber, the last height delivered.
	ResumeHeight uint64

	causes []error
}

// ErrorWithCauses returns an *Error that also wraps the sentinels named
// (see Names); unknown names are skipped.
func ErrorWithCauses(c Code, msg string, names []string) *Error {
	e := &Error{Code: c, Message: msg}
	for _, n := range names {
		if s := ErrorNamed(n); s != nil {
			e.causes = append(e.causes, s)
		}
	}
	return e
}

func (e *Error) Error() string {
	if e.Code == CodeAbort {
		return fmt.Sprintf("%s (code %d, abort code %d)", e.Message, e.Code, e.AbortCode)
	}
	return fmt.Sprintf("%s (code %d)", e.Message, e.Code)
}

// Unwrap returns the sentinel of the code and the named causes.
func (e *Error) Unwrap() []error { return append([]error{e.Code.Err()}, e.causes...) }

// CodeOf maps an error to its code: an *Error's own, the code of the
// outermost coded sentinel it wraps, CodeTimeout for context errors,
// CodeTooLarge for ErrTooLong, CodeInternal otherwise.
func CodeOf(err error) Code {
	if err == nil {
		return CodeOK
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	var ce *codedError
	if errors.As(err, &ce) {
		return ce.code
	}
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return CodeTimeout
	}
	if errors.Is(err, ErrTooLong) {
		return CodeTooLarge
	}
	return CodeInternal
}

// StatusCode maps the status of a committed entry to its code: CodeOK for
// StatusOK, and the code a client sees for each failure.
func StatusCode(s Status) Code {
	switch s {
	case StatusOK:
		return CodeOK
	case StatusAbort:
		return CodeAbort
	case StatusOutOfGas:
		return CodeOutOfGas
	case StatusBadNonce:
		return CodeStaleNonce
	case StatusNotMember:
		return CodeNotMember
	case StatusBadSignature:
		return CodeBadSignature
	}
	return CodeExecution
}
