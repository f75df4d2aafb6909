// Package rpcerr carries protocol's error codes across gRPC: the one
// mapping from an error to a gRPC status (a gRPC code for generic clients,
// an ErrorInfo detail with the protocol.Code and the names of the
// sentinels it wraps) and back to a *protocol.Error that errors.Is
// matches against the same sentinels. The client API and the peer API
// both use it, so an error keeps its identity from one node to the next
// and to the client.
package rpcerr

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	spb "google.golang.org/genproto/googleapis/rpc/status"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/scraft/scraft/protocol"
)

// Domain marks the ErrorInfo detail that carries a protocol.Code.
const Domain = "scraft"

// Metadata keys of the ErrorInfo detail.
const (
	keyCode   = "code"   // the protocol.Code, decimal
	keyErrors = "errors" // the sentinels' names (protocol.Names), comma-separated
	keyAbort  = "abort_code"
	keyResume = "resume_height"
)

// GRPCCode is the gRPC code a protocol.Code travels under, for clients
// that read only that.
func GRPCCode(c protocol.Code) codes.Code {
	switch c {
	case protocol.CodeOK:
		return codes.OK
	case protocol.CodeNoChannel:
		return codes.NotFound
	case protocol.CodeNotMember, protocol.CodeWrongSender:
		return codes.PermissionDenied
	case protocol.CodeBadSignature, protocol.CodeNotBound:
		return codes.Unauthenticated
	case protocol.CodeStaleNonce:
		return codes.Unauthenticated
	case protocol.CodeChannelClosed:
		return codes.FailedPrecondition
	case protocol.CodeBusy, protocol.CodeTooLarge, protocol.CodeSlowSubscriber:
		return codes.ResourceExhausted
	case protocol.CodeAbort, protocol.CodeOutOfGas, protocol.CodeExecution:
		return codes.Aborted
	case protocol.CodeNotReady, protocol.CodeUnavailable, protocol.CodeClosed:
		return codes.Unavailable
	case protocol.CodeBadRequest:
		return codes.InvalidArgument
	case protocol.CodeTimeout:
		return codes.DeadlineExceeded
	case protocol.CodeUnsupported:
		return codes.Unimplemented
	}
	return codes.Internal
}

// Status returns the gRPC status of err: its code (protocol.CodeOf), its
// message, and the detail that From reads back. nil gives an OK status.
func Status(err error) *status.Status {
	if err == nil {
		return status.New(codes.OK, "")
	}
	c := protocol.CodeOf(err)
	msg := err.Error()
	md := map[string]string{keyCode: strconv.FormatUint(uint64(c), 10)}
	var pe *protocol.Error
	if errors.As(err, &pe) {
		msg = pe.Message
		if pe.AbortCode != 0 {
			md[keyAbort] = strconv.FormatUint(uint64(pe.AbortCode), 10)
		}
		if pe.ResumeHeight != 0 {
			md[keyResume] = strconv.FormatUint(pe.ResumeHeight, 10)
		}
	}
	if names := protocol.Names(err); len(names) > 0 {
		md[keyErrors] = strings.Join(names, ",")
	}
	st := status.New(GRPCCode(c), msg)
	if d, e := st.WithDetails(&errdetails.ErrorInfo{Domain: Domain, Reason: c.String(), Metadata: md}); e == nil {
		st = d
	}
	return st
}

// Err is Status(err).Err(): nil for nil.
func Err(err error) error {
	if err == nil {
		return nil
	}
	return Status(err).Err()
}

// Marshal returns the encoded google.rpc.Status of err, for a message
// field that carries one error among results (nil for nil).
func Marshal(err error) []byte {
	if err == nil {
		return nil
	}
	b, _ := proto.Marshal(Status(err).Proto())
	return b
}

// Unmarshal decodes what Marshal encoded into the error From returns.
func Unmarshal(b []byte) error {
	p := new(spb.Status)
	if err := proto.Unmarshal(b, p); err != nil {
		return fmt.Errorf("%w: error status: %v", protocol.ErrBadRequest, err)
	}
	if codes.Code(p.GetCode()) == codes.OK {
		return fmt.Errorf("%w: error status without code", protocol.ErrBadRequest)
	}
	return From(status.FromProto(p).Err())
}

// From rebuilds the error of a gRPC status. A status with the detail of
// Status becomes a *protocol.Error with its code, message and sentinels; a
// context status wraps the context's error; Unavailable from a peer that
// is down or unreachable becomes protocol.ErrUnavailable. Anything else,
// and an error that is no status, is returned as it is (CodeInternal).
func From(err error) error {
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return err
	}
	if pe, ok := fromDetail(st); ok {
		return pe
	}
	switch st.Code() {
	case codes.Canceled:
		return fmt.Errorf("%w: %s", context.Canceled, st.Message())
	case codes.DeadlineExceeded:
		return fmt.Errorf("%w: %s", context.DeadlineExceeded, st.Message())
	case codes.Unavailable:
		return &protocol.Error{Code: protocol.CodeUnavailable, Message: st.Message()}
	}
	return err
}

// Coded returns the *protocol.Error of a gRPC status that carries the
// detail of Status, and false for any other error: a caller that treats a
// broken connection differently from a node's answer tells them apart.
func Coded(err error) (*protocol.Error, bool) {
	st, ok := status.FromError(err)
	if !ok || err == nil {
		return nil, false
	}
	return fromDetail(st)
}

func fromDetail(st *status.Status) (*protocol.Error, bool) {
	for _, d := range st.Details() {
		info, ok := d.(*errdetails.ErrorInfo)
		if !ok || info.GetDomain() != Domain {
			continue
		}
		md := info.GetMetadata()
		c, e := strconv.ParseUint(md[keyCode], 10, 32)
		if e != nil || c == 0 {
			continue
		}
		var names []string
		if s := md[keyErrors]; s != "" {
			names = strings.Split(s, ",")
		}
		pe := protocol.ErrorWithCauses(protocol.Code(c), st.Message(), names)
		if v, e := strconv.ParseUint(md[keyAbort], 10, 32); e == nil {
			pe.AbortCode = uint32(v)
		}
		if v, e := strconv.ParseUint(md[keyResume], 10, 64); e == nil {
			pe.ResumeHeight = v
		}
		return pe, true
	}
	return nil, false
}
