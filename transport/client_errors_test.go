package transport

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// TestCodeTable checks the one table: codes are unique and stable, each
// sentinel maps to its code wrapped or not, an *Error matches its
// sentinel, and CLIENT_API.md documents every code under its name.
func TestCodeTable(t *testing.T) {
	doc, err := os.ReadFile("CLIENT_API.md")
	if err != nil {
		t.Fatal(err)
	}
	seen := map[Code]bool{}
	names := map[string]bool{}
	for _, c := range codeTable {
		if seen[c.code] || names[c.name] {
			t.Fatalf("code %d or name %q twice", c.code, c.name)
		}
		seen[c.code], names[c.name] = true, true
		if c.code < 100001 || c.code > 100999 {
			t.Fatalf("code %d outside the client API's range", c.code)
		}
		if got := CodeOf(fmt.Errorf("context: %w", c.err)); got != c.code {
			t.Fatalf("CodeOf(wrapped %v) = %d, want %d", c.err, got, c.code)
		}
		e := &Error{Code: c.code, Message: "x"}
		if !errors.Is(e, c.err) || CodeOf(e) != c.code || c.code.String() != c.name || c.code.Err() != c.err {
			t.Fatalf("code %d: Is %v, String %q", c.code, errors.Is(e, c.err), c.code.String())
		}
		row := fmt.Sprintf("| %d | `%s` |", c.code, c.name)
		if !strings.Contains(string(doc), row) {
			t.Fatalf("CLIENT_API.md has no row %q", row)
		}
	}
	if CodeNoChannel != 100001 {
		t.Fatal("100001 must stay 'channel does not exist'")
	}
	for _, tc := range []struct {
		err  error
		want Code
	}{
		{nil, CodeOK},
		{context.DeadlineExceeded, CodeTimeout},
		{fmt.Errorf("x: %w", protocol.ErrTooLong), CodeTooLarge},
		{errors.New("anything else"), CodeInternal},
	} {
		if got := CodeOf(tc.err); got != tc.want {
			t.Fatalf("CodeOf(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
	for s := protocol.Status(0); s < 20; s++ {
		if c := StatusCode(s); (s == protocol.StatusOK) != (c == CodeOK) || (c != CodeOK && !seen[c]) {
			t.Fatalf("status %s maps to %d", s, c)
		}
	}
}
