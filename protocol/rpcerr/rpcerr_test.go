package rpcerr

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/scraft/scraft/protocol"
)

var (
	errTestTx  = protocol.NewError(protocol.CodeBadRequest, "rpcerr_test.bad_tx", "test: bad tx")
	errTestSig = protocol.NewError(protocol.CodeBadSignature, "rpcerr_test.bad_signature", "test: bad signature", errTestTx)
)

// An error survives the trip through a gRPC status and through Marshal:
// same code, same message, same sentinels.
func TestRoundTrip(t *testing.T) {
	for _, err := range []error{
		fmt.Errorf("key 3: %w", errTestSig),
		fmt.Errorf("%w: catching up", protocol.ErrNotReady),
		&protocol.Error{Code: protocol.CodeAbort, Message: "aborted", AbortCode: 7},
		&protocol.Error{Code: protocol.CodeSlowSubscriber, Message: "slow", ResumeHeight: 42},
		errors.New("plain"),
	} {
		t.Run(err.Error(), func(t *testing.T) {
			for name, back := range map[string]error{"status": From(Err(err)), "marshal": Unmarshal(Marshal(err))} {
				if protocol.CodeOf(back) != protocol.CodeOf(err) {
					t.Fatalf("%s: code %s, want %s", name, protocol.CodeOf(back), protocol.CodeOf(err))
				}
				for _, s := range []error{errTestSig, errTestTx, protocol.ErrNotReady} {
					if errors.Is(back, s) != errors.Is(err, s) {
						t.Fatalf("%s: Is(%v) = %v", name, s, errors.Is(back, s))
					}
				}
				var pe, orig *protocol.Error
				if errors.As(err, &orig) && (!errors.As(back, &pe) || pe.AbortCode != orig.AbortCode || pe.ResumeHeight != orig.ResumeHeight) {
					t.Fatalf("%s: %#v", name, back)
				}
			}
			if got := status.Code(Err(err)); got != GRPCCode(protocol.CodeOf(err)) {
				t.Fatalf("gRPC code %s", got)
			}
		})
	}
}

// A status without the detail (an old peer, gRPC itself) still maps:
// context errors to theirs, Unavailable to ErrUnavailable.
func TestFromPlainStatus(t *testing.T) {
	if err := From(status.Error(codes.DeadlineExceeded, "late")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatal(err)
	}
	if err := From(status.Error(codes.Unavailable, "connection refused")); !errors.Is(err, protocol.ErrUnavailable) {
		t.Fatal(err)
	}
	if err := From(status.Error(codes.Unknown, "x")); protocol.CodeOf(err) != protocol.CodeInternal {
		t.Fatal(err)
	}
	if From(nil) != nil || Err(nil) != nil || Marshal(nil) != nil {
		t.Fatal("nil must stay nil")
	}
}

// FuzzUnmarshal feeds arbitrary bytes to the decoder of a forwarded
// error: it never panics, and what it decodes encodes back to the same
// code.
func FuzzUnmarshal(f *testing.F) {
	f.Add(Marshal(fmt.Errorf("x: %w", errTestSig)))
	f.Add(Marshal(&protocol.Error{Code: protocol.CodeAbort, Message: "a", AbortCode: 3}))
	f.Add([]byte{8, 14})
	f.Fuzz(func(t *testing.T, b []byte) {
		err := Unmarshal(b)
		if err == nil {
			t.Fatal("Unmarshal returned no error")
		}
		if c := protocol.CodeOf(err); protocol.CodeOf(Unmarshal(Marshal(err))) != c {
			t.Fatalf("code %s does not survive a round trip", c)
		}
	})
}
