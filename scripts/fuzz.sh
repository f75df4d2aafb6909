#!/usr/bin/env bash
# Runs every fuzz target in the module for FUZZTIME (default 10s) each.
set -euo pipefail
cd "$(dirname "$0")/.."
FUZZTIME=${FUZZTIME:-10s}
mapfile -t files < <(git ls-files --cached --others --exclude-standard '*_test.go' | xargs grep -l '^func Fuzz' || true)
declare -A seen
status=0
for f in "${files[@]}"; do
  dir=./$(dirname "$f")
  [ -n "${seen[$dir]:-}" ] && continue
  seen[$dir]=1
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go | sed 's/^func //' | sort -u); do
    echo "== $dir $target ($FUZZTIME)"
    go test -run '^$' -fuzz "^${target}\$" -fuzztime "$FUZZTIME" "$dir" || status=1
  done
done
exit $status
