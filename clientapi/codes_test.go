package clientapi

import (
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// TestCodeTableDocumented checks that CLIENT_API.md documents every code
// of protocol's table under its name.
func TestCodeTableDocumented(t *testing.T) {
	doc, err := os.ReadFile("CLIENT_API.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range protocol.Codes() {
		row := fmt.Sprintf("| %d | `%s` |", c, c)
		if !strings.Contains(string(doc), row) {
			t.Fatalf("CLIENT_API.md has no row %q", row)
		}
	}
}
