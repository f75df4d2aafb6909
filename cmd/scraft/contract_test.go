package main

import (
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// runContract runs a `scraft contract` command line after putting every
// flag of the contract commands back to its default: the command tree is
// shared by the tests of this process.
func runContract(t *testing.T, args ...string) (string, error) {
	t.Helper()
	var reset func(c *cobra.Command)
	reset = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) {
			_ = f.Value.Set(f.DefValue)
			f.Changed = false
		})
		for _, sub := range c.Commands() {
			reset(sub)
		}
	}
	for _, c := range rootCmd.Commands() {
		if c.Name() == "contract" {
			reset(c)
		}
	}
	return run(t, append([]string{"contract"}, args...)...)
}

func TestContractRunChain(t *testing.T) {
	dir := t.TempDir()
	s1, s2 := filepath.Join(dir, "s1.json"), filepath.Join(dir, "s2.json")
	alice := "0x000000000000000000000000000000aa"
	steps := []struct {
		args []string
		want string // status
		code int    // exit code, 0 for success
	}{
		{[]string{"--function", "init", "--write-state", s1}, "ok", 0},
		{[]string{"--function", "join", "--args", `{"nick":"alice"}`, "--sender", alice, "--state", s1, "--write-state", s2}, "ok", 0},
		{[]string{"--function", "chat::send", "--args", `{"text":"hi"}`, "--sender", alice, "--state", s2, "--height", "7"}, "ok", 0},
		{[]string{"--function", "send", "--args", `{"text":"hi"}`, "--state", s2}, "abort", 2},
		{[]string{"--function", "nope", "--args-hex", "00", "--state", s2}, "bad_input", 2},
		{[]string{"--function", "send", "--args", `{"text":"hi"}`, "--sender", alice, "--state", s2, "--gas", "100"}, "out_of_gas", 2},
	}
	for i, s := range steps {
		out, err := runContract(t, append([]string{"run", "--contract", "chat"}, s.args...)...)
		var ee *exitError
		switch {
		case s.code == 0 && err != nil:
			t.Fatalf("step %d: %v\n%s", i, err, out)
		case s.code != 0 && (!errors.As(err, &ee) || ee.code != s.code):
			t.Fatalf("step %d: error %v, want exit code %d", i, err, s.code)
		}
		var res struct {
			Status string          `json:"status"`
			Output json.RawMessage `json:"output"`
		}
		if err := json.Unmarshal([]byte(out), &res); err != nil {
			t.Fatalf("step %d: %v\n%s", i, err, out)
		}
		if res.Status != s.want {
			t.Fatalf("step %d: status %s, want %s\n%s", i, res.Status, s.want, out)
		}
	}
}

func TestContractRunWasm(t *testing.T) {
	wasm := filepath.Join("..", "..", "vm", "testdata", "abi.wasm")
	out, err := runContract(t, "run", "--wasm", wasm, "--function", "echo", "--args-hex", "0x6869")
	if err != nil || !strings.Contains(out, `"output_hex": "6869"`) {
		t.Fatalf("%v\n%s", err, out)
	}
	if _, err := runContract(t, "run", "--wasm", wasm, "--function", "echo", "--args", "{}"); err == nil {
		t.Fatal("--args without an ABI was accepted")
	}
}

func TestContractInspect(t *testing.T) {
	out, err := runContract(t, "inspect", "--contract", "movecraft")
	if err != nil || !strings.Contains(out, `"name": "on_tick"`) || !strings.Contains(out, `"reserved": true`) {
		t.Fatalf("%v\n%s", err, out)
	}
	_, err = runContract(t, "inspect", filepath.Join("..", "..", "vm", "testdata", "float.wasm"))
	var ee *exitError
	if !errors.As(err, &ee) || ee.code != 2 || !strings.Contains(err.Error(), "floating-point") {
		t.Fatalf("float module: %v", err)
	}
}
