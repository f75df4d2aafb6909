#!/bin/sh
# Regenerates the .wasm test modules from their .wat sources (needs wabt).
set -e
cd "$(dirname "$0")"
for f in *.wat; do
	wat2wasm -o "${f%.wat}.wasm" "$f"
done
