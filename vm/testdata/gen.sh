#!/bin/sh
# Rebuilds the test modules from their .wat sources with wabt's wat2wasm
# (Debian package wabt). The .wasm files are committed; run this after
# editing a .wat.
set -eu
cd "$(dirname "$0")"
for f in *.wat; do
	wat2wasm -o "${f%.wat}.wasm" "$f"
done
