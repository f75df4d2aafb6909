package main

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"text/template"

	"github.com/spf13/cobra"

	"github.com/scraft/scraft/contracts"
)

func contractNewCmd() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "new NAME",
		Short: "Write a new AssemblyScript contract project",
		Long: `Write a standalone AssemblyScript contract project in the folder NAME (or
--dir): package.json and package-lock.json pinning the assemblyscript
compiler the demo contracts are built with, the scraft SDK's sources in
sdk/, NAME.ts with a first entry function, its abi.json, build.sh (plain
MVP WebAssembly, no floats, imports from the scraft ABI only) and test.sh,
which builds the module and calls it with scraft contract run.

NAME is the contract's name in calls (NAME::add): a lowercase letter, then
lowercase letters, digits or _, at most 64 characters. The folder must not
exist or be empty.

Then, in the folder:

  npm ci        # the pinned compiler
  ./build.sh    # NAME.ts -> NAME.wasm
  ./test.sh     # build, then two calls of add through scraft contract run`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fmt.Errorf("contract new needs the contract's NAME (one argument), got %d arguments", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			name := args[0]
			if dir == "" {
				dir = name
			}
			files, err := newContractFiles(name)
			if err != nil {
				return err
			}
			if err := writeNewProject(dir, files); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "wrote %s: %d files\nnext: cd %s && npm ci && ./test.sh\n", dir, len(files), dir)
			return nil
		},
	}
	cmd.Flags().StringVar(&dir, "dir", "", "folder to write the project in (default NAME)")
	return cmd
}

// errBadContractName means a name for contract new that cannot be a
// contract's name in calls or an npm package's.
var errBadContractName = errors.New("contract new: bad name")

func checkContractName(name string) error {
	if name == "" || len(name) > 64 {
		return fmt.Errorf("%w %q: 1 to 64 characters", errBadContractName, name)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z':
		case (c >= '0' && c <= '9' || c == '_') && i > 0:
		default:
			return fmt.Errorf("%w %q: a lowercase letter, then lowercase letters, digits or _", errBadContractName, name)
		}
	}
	return nil
}

// projectFile is one file of a new project; exec marks the scripts.
type projectFile struct {
	path string
	data []byte
	exec bool
}

// newContractFiles returns the files of a project for contract name,
// sorted by path.
func newContractFiles(name string) ([]projectFile, error) {
	if err := checkContractName(name); err != nil {
		return nil, err
	}
	lock, err := contracts.PackageLock(name)
	if err != nil {
		return nil, err
	}
	vars := struct{ Name, ASC string }{name, contracts.AssemblyScriptVersion}
	var files []projectFile
	for _, f := range []struct {
		path, tmpl string
		exec       bool
	}{
		{".gitignore", "node_modules/\n*.wat\nstate*.json\n", false},
		{"README.md", newReadme, false},
		{"abi.json", newABI, false},
		{"build.sh", newBuild, true},
		{name + ".ts", newContract, false},
		{"package.json", newPackage, false},
		{"test.sh", newTest, true},
	} {
		var b bytes.Buffer
		if err := template.Must(template.New(f.path).Delims("[[", "]]").Parse(f.tmpl)).Execute(&b, vars); err != nil {
			return nil, err
		}
		files = append(files, projectFile{path: f.path, data: b.Bytes(), exec: f.exec})
	}
	files = append(files, projectFile{path: "package-lock.json", data: lock})
	err = fs.WalkDir(contracts.SDK(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(contracts.SDK(), p)
		files = append(files, projectFile{path: "sdk/" + p, data: b})
		return err
	})
	if err != nil {
		return nil, err
	}
	return files, nil
}

// writeNewProject writes files under dir, which must not exist or be
// empty; nothing is overwritten.
func writeNewProject(dir string, files []projectFile) error {
	if ents, err := os.ReadDir(dir); err == nil && len(ents) > 0 {
		return fmt.Errorf("contract new: %s exists and is not empty", dir)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("contract new: %w", err)
	}
	for _, f := range files {
		p := filepath.Join(dir, filepath.FromSlash(f.path))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("contract new: %w", err)
		}
		mode := os.FileMode(0o644)
		if f.exec {
			mode = 0o755
		}
		w, err := os.OpenFile(p, os.O_WRONLY|os.O_CREATE|os.O_EXCL, mode)
		if err != nil {
			return fmt.Errorf("contract new: %w", err)
		}
		_, err = w.Write(f.data)
		if cerr := w.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("contract new: %w", err)
		}
	}
	return nil
}

const newPackage = `{
  "name": "[[.Name]]",
  "version": "1.0.0",
  "private": true,
  "description": "A scraft channel contract (ABI v1)",
  "scripts": {
    "build": "./build.sh",
    "test": "./test.sh"
  },
  "devDependencies": {
    "assemblyscript": "[[.ASC]]"
  }
}
`

const newContract = `// [[.Name]]: a scraft channel contract (ABI v1).
//
// Resources
//   [[.Name]]::Counter at each member's address: the total that member added.

import { Reader, Writer, abortWith, input, output, putGlobal, sender, tryBorrowGlobal } from "./sdk";

class Counter {
  total: u64 = 0;

  typeName(): string {
    return "[[.Name]]::Counter";
  }
  encode(w: Writer): void {
    w.u64(this.total);
  }
  decode(r: Reader): void {
    this.total = r.u64();
  }
}

// An entry function: its parameter is the input's length, its result 0.
// add adds amount to the sender's counter and outputs the new total.
export function add(len: i32): i32 {
  const r = input(len);
  const amount = r.u64();
  r.finish(); // aborts (code 1) on trailing bytes
  const me = sender();
  const existing = tryBorrowGlobal<Counter>(me);
  const c = existing == null ? new Counter() : existing;
  if (c.total + amount < c.total) abortWith(100, "counter overflow");
  c.total += amount;
  putGlobal<Counter>(me, c);
  output(new Writer(8).u64(c.total).finish());
  return 0;
}
`

const newABI = `{
  "name": "[[.Name]]",
  "structs": [
    {"name": "Counter", "fields": [
      {"name": "total", "type": "u64"}
    ]}
  ],
  "functions": [
    {"name": "add", "doc": "Adds amount to the sender's counter; outputs the new total. Aborts 100 on overflow.", "args": [
      {"name": "amount", "type": "u64"}
    ], "output": "u64"}
  ],
  "resources": [
    {"type": "[[.Name]]::Counter", "value": "Counter", "account": "the member's address"}
  ],
  "events": []
}
`

const newBuild = `#!/usr/bin/env bash
# Builds [[.Name]].ts into [[.Name]].wasm with the pinned AssemblyScript
# compiler, as scraft's demo contracts are built: plain MVP WebAssembly (a
# node refuses floats and anything beyond what its gas meter knows), the
# stub runtime (a bump allocator: the node restores memory before every
# call), AssemblyScript's abort routed to the host's abort.
set -euo pipefail
cd "$(dirname "$0")"

if [ ! -x node_modules/.bin/asc ]; then
	npm ci --no-audit --no-fund --loglevel=error
fi
node_modules/.bin/asc [[.Name]].ts -o [[.Name]].wasm -t [[.Name]].wat \
	--runtime stub --optimizeLevel 3 --shrinkLevel 0 --noAssert \
	--use abort=sdk/abort/asAbort \
	--disable sign-extension,bulk-memory,nontrapping-f2i,mutable-globals \
	--initialMemory 1 --noColors

# The node refuses a module with a float instruction or type, or imports
# from outside module "scraft": say so here first.
if grep -v '^ *(data ' [[.Name]].wat | grep -nE '\bf(32|64)\b'; then
	echo "build.sh: [[.Name]] uses floats (above); use integers" >&2
	exit 1
fi
if grep -E '^ *\(import ' [[.Name]].wat | grep -vE '^ *\(import "scraft" '; then
	echo "build.sh: [[.Name]] imports outside the scraft ABI (above)" >&2
	exit 1
fi
echo "build.sh: [[.Name]].wasm $(wc -c <[[.Name]].wasm) bytes"
`

const newTest = `#!/usr/bin/env bash
# Builds the contract and calls add twice in scraft's sandbox (the checks,
# gas metering and limits of a channel), the second call on the state the
# first wrote. Needs scraft on PATH.
set -euo pipefail
cd "$(dirname "$0")"
./build.sh

alice=0x000000000000000000000000000000aa
run() { scraft contract run --wasm [[.Name]].wasm --abi abi.json --sender "$alice" "$@"; }
run --function add --args '{"amount":2}' --write-state state.json >/dev/null
out=$(run --function add --args '{"amount":3}' --state state.json)
echo "$out"
if ! echo "$out" | grep -q '"output": 5'; then
	echo "test.sh: add 2 then add 3 did not output 5" >&2
	exit 1
fi
echo "test.sh: ok"
`

const newReadme = `# [[.Name]]

A scraft channel contract in AssemblyScript ([[.Name]].ts), its ABI
(abi.json: the JSON arguments and outputs of its entry functions) and
the scraft SDK (sdk/).

    npm ci          # assemblyscript [[.ASC]], pinned with its dependencies
    ./build.sh      # [[.Name]].ts -> [[.Name]].wasm
    ./test.sh       # build, then add 2 and add 3 through scraft contract run

Try a call on a state of your own:

    scraft contract run --wasm [[.Name]].wasm --abi abi.json --function add --args '{"amount":2}' --write-state s.json

Deploy it on a chain and call it on a channel's nodes:

    CH=$(scraft chain create-channel --chain HOST:PORT --key KEY.json --contract [[.Name]].wasm)
    scraft call --node NODE --key KEY.json --chain HOST:PORT --channel $CH --abi abi.json --function [[.Name]]::add --args '{"amount":2}'

An entry function is an exported (i32) => i32: its parameter is the length
of the call's input, read with input(len); it returns 0 and sets its result
with output(). Keep abi.json in step with the functions: the CLI encodes
--args and decodes outputs with it. The SDK and the codec are described in
scraft's contracts/README.md.
`
