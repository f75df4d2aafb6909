package main

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/scraft/scraft/contracts"
)

// TestContractNew runs `scraft contract new` and checks the tree it
// writes: the pinned compiler in package.json and package-lock.json, the
// SDK as the demo contracts have it, an abi.json the CLI reads, the
// contract and its scripts.
func TestContractNew(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "counter")
	out, err := runContract(t, "new", "counter", "--dir", dir)
	if err != nil {
		t.Fatalf("contract new: %v\n%s", err, out)
	}
	if !strings.Contains(out, "wrote "+dir) {
		t.Fatalf("output %q", out)
	}
	read := func(p string) []byte {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil {
			t.Fatal(err)
		}
		return b
	}

	var pkg struct {
		Name            string            `json:"name"`
		DevDependencies map[string]string `json:"devDependencies"`
	}
	if err := json.Unmarshal(read("package.json"), &pkg); err != nil {
		t.Fatal(err)
	}
	if pkg.Name != "counter" || pkg.DevDependencies["assemblyscript"] != contracts.AssemblyScriptVersion {
		t.Fatalf("package.json: %+v, want counter pinning assemblyscript %s", pkg, contracts.AssemblyScriptVersion)
	}
	var lock struct {
		Name     string `json:"name"`
		Packages map[string]struct {
			Name    string `json:"name"`
			Version string `json:"version"`
		} `json:"packages"`
	}
	if err := json.Unmarshal(read("package-lock.json"), &lock); err != nil {
		t.Fatal(err)
	}
	if lock.Name != "counter" || lock.Packages[""].Name != "counter" ||
		lock.Packages["node_modules/assemblyscript"].Version != contracts.AssemblyScriptVersion {
		t.Fatalf("package-lock.json: %+v", lock)
	}

	// The SDK, file for file as the repository has it.
	n := 0
	err = fs.WalkDir(contracts.SDK(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		want, _ := fs.ReadFile(contracts.SDK(), p)
		if string(read("sdk/"+p)) != string(want) {
			t.Errorf("sdk/%s differs from the SDK", p)
		}
		n++
		return nil
	})
	if err != nil || n < 5 {
		t.Fatalf("SDK: %d files, %v", n, err)
	}

	abi, err := contracts.ParseABI(read("abi.json"))
	if err != nil {
		t.Fatal(err)
	}
	if abi.Name != "counter" {
		t.Fatalf("abi.json names %q", abi.Name)
	}
	if _, err := abi.EncodeArgs("add", []byte(`{"amount":2}`)); err != nil {
		t.Fatalf("abi.json: add: %v", err)
	}
	src := string(read("counter.ts"))
	for _, want := range []string{`from "./sdk"`, "export function add(len: i32): i32", `"counter::Counter"`} {
		if !strings.Contains(src, want) {
			t.Errorf("counter.ts lacks %q", want)
		}
	}
	for _, script := range []string{"build.sh", "test.sh"} {
		st, err := os.Stat(filepath.Join(dir, script))
		if err != nil || st.Mode().Perm()&0o100 == 0 {
			t.Errorf("%s: %v, mode %v: want an executable script", script, err, st.Mode())
		}
	}
	if b := read("build.sh"); !strings.Contains(string(b), "asc counter.ts -o counter.wasm") {
		t.Errorf("build.sh does not build counter.ts:\n%s", b)
	}
	if b := read("test.sh"); !strings.Contains(string(b), "--abi abi.json") {
		t.Errorf("test.sh does not call through the ABI:\n%s", b)
	}
}

// TestContractNewRefuses: names that cannot be a contract's or an npm
// package's, and a folder that holds something, are refused without
// writing anything.
func TestContractNewRefuses(t *testing.T) {
	for _, name := range []string{"", "Counter", "9lives", "_x", "../up", "a/b", "a-b", "a b", strings.Repeat("a", 65)} {
		dir := filepath.Join(t.TempDir(), "p")
		out, err := runContract(t, "new", name, "--dir", dir)
		if !errors.Is(err, errBadContractName) {
			t.Errorf("contract new %q: %v %s, want a bad name", name, err, out)
		}
		if _, err := os.Stat(dir); err == nil {
			t.Errorf("contract new %q wrote %s", name, dir)
		}
	}
	if out, err := runContract(t, "new"); err == nil || !strings.Contains(err.Error(), "NAME") {
		t.Errorf("contract new without a name: %v %s", err, out)
	}

	dir := t.TempDir()
	keep := filepath.Join(dir, "counter.ts")
	if err := os.WriteFile(keep, []byte("mine"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, err := runContract(t, "new", "counter", "--dir", dir); err == nil || !strings.Contains(err.Error(), "not empty") {
		t.Fatalf("contract new into a folder with files: %v %s", err, out)
	}
	if b, _ := os.ReadFile(keep); string(b) != "mine" {
		t.Fatalf("contract new overwrote %s", keep)
	}
	if _, err := os.Stat(filepath.Join(dir, "package.json")); err == nil {
		t.Fatal("contract new wrote into a folder that was not empty")
	}
}

// TestABIFlagRefuses: --abi files that are missing, not an ABI, or of
// another contract are refused with the file named, before anything runs
// or dials.
func TestABIFlagRefuses(t *testing.T) {
	dir := t.TempDir()
	if out, err := runContract(t, "new", "counter", "--dir", filepath.Join(dir, "counter")); err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	abi := filepath.Join(dir, "counter", "abi.json")
	bad := filepath.Join(dir, "bad.json")
	if err := os.WriteFile(bad, []byte(`{"name": "x", "functions": [{"name": "f", "args": [{"name": "a", "type": "float"}]}]}`), 0o644); err != nil {
		t.Fatal(err)
	}
	wasm := filepath.Join(dir, "m.wasm")
	if err := os.WriteFile(wasm, []byte("\x00asm\x01\x00\x00\x00"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--wasm", wasm, "--abi", filepath.Join(dir, "none.json"), "--function", "add"}, "--abi"},
		{[]string{"run", "--wasm", wasm, "--abi", bad, "--function", "f"}, "bad.json"},
		{[]string{"run", "--contract", "chat", "--abi", abi, "--function", "send"}, "--abi is for a --wasm module"},
	} {
		out, err := runContract(t, tc.args...)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("contract %v: %v %s, want an error naming %q", tc.args, err, out, tc.want)
		}
	}

	// call: an ABI of another contract than the function's.
	t.Cleanup(func() { resetFlags("call") })
	resetFlags("call")
	out, err := run(t, "call", "--node", "127.0.0.1:1", "--key", filepath.Join(dir, "none.key"), "--channel", "0x000000000000000000000000000000aa",
		"--abi", abi, "--function", "chat::send", "--args", `{"text":"hi"}`)
	if err == nil || !strings.Contains(err.Error(), `ABI of contract "counter", not of chat::send`) {
		t.Fatalf("call with another contract's ABI: %v %s", err, out)
	}
}

// resetFlags puts every flag of the root command name back to its default.
func resetFlags(name string) {
	for _, c := range rootCmd.Commands() {
		if c.Name() == name {
			c.Flags().VisitAll(func(f *pflag.Flag) {
				_ = f.Value.Set(f.DefValue)
				f.Changed = false
			})
		}
	}
}
