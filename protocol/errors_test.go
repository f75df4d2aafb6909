package protocol

import (
	"context"
	"errors"
	"fmt"
	"testing"
)

// TestCodeTable checks the one table: codes are unique and stable, each
// sentinel maps to its code wrapped or not, and an *Error matches its
// sentinel.
func TestCodeTable(t *testing.T) {
	seen := map[Code]bool{}
	names := map[string]bool{}
	for _, c := range Codes() {
		if seen[c] || names[c.String()] {
			t.Fatalf("code %d or name %q twice", c, c)
		}
		seen[c], names[c.String()] = true, true
		if c < 100001 || c > 100999 {
			t.Fatalf("code %d outside the client API's range", c)
		}
		if got := CodeOf(fmt.Errorf("context: %w", c.Err())); got != c {
			t.Fatalf("CodeOf(wrapped %v) = %d, want %d", c.Err(), got, c)
		}
		e := &Error{Code: c, Message: "x"}
		if !errors.Is(e, c.Err()) || CodeOf(e) != c || ErrorName(c.Err()) != c.String() {
			t.Fatalf("code %d: Is %v, String %q", c, errors.Is(e, c.Err()), c)
		}
	}
	if CodeNoChannel != 100001 || CodeChannelClosed != 100020 || len(Codes()) != 20 {
		t.Fatal("codes never change: 100001 is 'channel does not exist', 100020 the last of the first table")
	}
	for _, tc := range []struct {
		err  error
		want Code
	}{
		{nil, CodeOK},
		{context.DeadlineExceeded, CodeTimeout},
		{fmt.Errorf("x: %w", ErrTooLong), CodeTooLarge},
		{errors.New("anything else"), CodeInternal},
	} {
		if got := CodeOf(tc.err); got != tc.want {
			t.Fatalf("CodeOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	for s := Status(0); s < 20; s++ {
		if c := StatusCode(s); (s == StatusOK) != (c == CodeOK) || (c != CodeOK && !seen[c]) {
			t.Fatalf("status %s maps to %d", s, c)
		}
	}
}

var (
	errTestBad    = NewError(CodeBadRequest, "protocol_test.bad", "test: bad")
	errTestSig    = NewError(CodeBadSignature, "protocol_test.sig", "test: bad signature", errTestBad)
	errTestNoLead = NewError(CodeUnavailable, "protocol_test.no_leader", "test: no leader")
)

// A package's sentinel carries its code and whatever else it wraps; the
// outermost coded sentinel decides the code, and the names rebuild the
// sentinels on the far side.
func TestNewError(t *testing.T) {
	err := fmt.Errorf("submit: %w: key 3", errTestSig)
	if CodeOf(err) != CodeBadSignature || !errors.Is(err, errTestBad) || !errors.Is(err, ErrBadSignature) || !errors.Is(err, ErrBadRequest) {
		t.Fatalf("CodeOf = %s", CodeOf(err))
	}
	if got := CodeOf(fmt.Errorf("%w", errTestNoLead)); got != CodeUnavailable || !got.Retryable() {
		t.Fatalf("CodeOf = %s", got)
	}
	names := Names(err)
	want := []string{"protocol_test.sig", "bad_signature", "protocol_test.bad", "bad_request"}
	if fmt.Sprint(names) != fmt.Sprint(want) {
		t.Fatalf("Names = %v, want %v", names, want)
	}
	back := ErrorWithCauses(CodeBadSignature, err.Error(), append(names, "unknown.name"))
	if !errors.Is(back, errTestSig) || !errors.Is(back, errTestBad) || errors.Is(back, errTestNoLead) || CodeOf(back) != CodeBadSignature {
		t.Fatalf("rebuilt %v", back)
	}
	defer func() {
		if recover() == nil {
			t.Fatal("a name registered twice must panic")
		}
	}()
	NewError(CodeBusy, "protocol_test.bad", "again")
}
