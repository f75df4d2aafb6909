#!/usr/bin/env bash
# Builds the demo contracts reproducibly: contracts/<name>/<name>.ts ->
# contracts/<name>/<name>.wasm, with the pinned AssemblyScript compiler.
# Fails if a module has a float instruction or type, imports anything but
# the scraft ABI, or exports anything but memory and functions.
#
# Usage: contracts/build.sh [--check] [name ...]   (default: every contract)
#   --check  build into a temporary folder and fail if a committed .wasm
#            differs from a fresh build (the tree is left untouched).
set -euo pipefail
cd "$(dirname "$0")"

check=0
if [ "${1:-}" = "--check" ]; then
	check=1
	shift
fi

ASC_VERSION=0.28.20
# Every folder <name> with a <name>.ts is a contract (sorted by the glob).
CONTRACTS=()
for d in */; do
	if [ -f "$d${d%/}.ts" ]; then CONTRACTS+=("${d%/}"); fi
done
if [ $# -gt 0 ]; then CONTRACTS=("$@"); fi

if [ ! -x node_modules/.bin/asc ] || [ "$(node_modules/.bin/asc --version)" != "Version $ASC_VERSION" ]; then
	npm ci --no-audit --no-fund --loglevel=error
fi

# Plain MVP WebAssembly (no sign-extension or bulk-memory opcodes), the stub
# runtime (a bump allocator: memory is restored before every call), and
# AssemblyScript's abort routed to the host's abort.
FLAGS=(
	--runtime stub
	--optimizeLevel 3 --shrinkLevel 0
	--noAssert
	--use abort=sdk/abort/asAbort
	--disable sign-extension,bulk-memory,nontrapping-f2i,mutable-globals
	--noColors
)

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

for name in "${CONTRACTS[@]}"; do
	src="$name/$name.ts"
	if [ ! -f "$src" ]; then
		echo "build.sh: no such contract: $src" >&2
		exit 1
	fi
	# Initial memory (64 KiB pages) large enough that the usual calls never
	# grow it: a growing call is slow, and the vm replaces grown instances.
	pages=1
	case "$name" in
	movecraft) pages=4 ;; # an on_tick moving 500 players stays within 256 KiB
	esac
	node_modules/.bin/asc "$src" -o "$tmp/$name.wasm" -t "$tmp/$name.wat" "${FLAGS[@]}" --initialMemory "$pages"

	# Floats are rejected at deploy: no f32/f64 instruction, local, param or
	# global may appear (data segments are skipped: they are bytes).
	if grep -v '^ *(data ' "$tmp/$name.wat" | grep -nE '\bf(32|64)\b' >"$tmp/floats"; then
		echo "build.sh: $name uses floats:" >&2
		head -20 "$tmp/floats" >&2
		exit 1
	fi
	if command -v wasm-objdump >/dev/null 2>&1; then
		if wasm-objdump -d "$tmp/$name.wasm" | grep -nE '\bf(32|64)\.' >"$tmp/floats"; then
			echo "build.sh: $name has float opcodes:" >&2
			head -20 "$tmp/floats" >&2
			exit 1
		fi
	fi
	if grep -E '^ *\(import ' "$tmp/$name.wat" | grep -vE '^ *\(import "scraft" ' >"$tmp/imports"; then
		echo "build.sh: $name imports outside the scraft ABI:" >&2
		cat "$tmp/imports" >&2
		exit 1
	fi
	if grep -E '^ *\(export ' "$tmp/$name.wat" | grep -vE '\(func |^ *\(export "memory" \(memory ' >"$tmp/exports"; then
		echo "build.sh: $name exports something other than memory and functions:" >&2
		cat "$tmp/exports" >&2
		exit 1
	fi
	if [ "$check" = 1 ]; then
		if ! cmp -s "$tmp/$name.wasm" "$name/$name.wasm"; then
			echo "build.sh: $name/$name.wasm is not what its sources build: run contracts/build.sh and commit it" >&2
			stale=1
		fi
		continue
	fi
	mv "$tmp/$name.wasm" "$name/$name.wasm"
	echo "build.sh: $name/$name.wasm $(wc -c <"$name/$name.wasm") bytes"
done
if [ "$check" = 1 ]; then
	if [ "${stale:-0}" = 1 ]; then exit 1; fi
	echo "build.sh: ${CONTRACTS[*]} up to date"
fi
