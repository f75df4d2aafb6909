package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/scraft/scraft/protocol"
)

// run executes the scraft command tree in process with args and returns
// what it printed and its error.
func run(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	rootCmd.SetOut(&out)
	rootCmd.SetErr(&out)
	rootCmd.SetArgs(args)
	err := rootCmd.Execute()
	return out.String(), err
}

func TestKeygen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "node.key")
	out, err := run(t, "keygen", "--out", path)
	if err != nil {
		t.Fatal(err)
	}
	k, err := protocol.LoadKey(path)
	if err != nil {
		t.Fatal(err)
	}
	if strings.TrimSpace(out) != k.Address().String() {
		t.Fatalf("printed %q, key address %s", out, k.Address())
	}
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v", st.Mode())
	}
	if _, err := run(t, "keygen", "--out", path); err == nil || !strings.Contains(err.Error(), "exists") {
		t.Fatalf("second keygen to the same file: %v", err)
	}
}

func TestVersion(t *testing.T) {
	out, err := run(t, "version")
	if err != nil || !strings.HasPrefix(out, "scraft ") || !strings.Contains(out, " go1.") {
		t.Fatalf("version: %q %v", out, err)
	}
	t.Cleanup(func() { rootCmd.Flags().Set("version", "false") }) // cobra keeps flag values between runs
	flag, err := run(t, "--version")
	if err != nil || flag != out {
		t.Fatalf("--version: %q %v; version printed %q", flag, err, out)
	}
}
