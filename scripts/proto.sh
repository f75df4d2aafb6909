#!/usr/bin/env bash
# Regenerates the Go code for every .proto file in the repository with
# Debian's protoc and pinned Go plugins. Generated files sit beside a pb
# package named in each .proto's go_package option.
set -euo pipefail
cd "$(dirname "$0")/.."

PROTOC_GEN_GO=v1.36.12      # google.golang.org/protobuf
PROTOC_GEN_GO_GRPC=v1.6.1   # google.golang.org/grpc/cmd/protoc-gen-go-grpc

if ! command -v protoc >/dev/null; then
  echo "protoc not found: apt-get install -y protobuf-compiler" >&2
  exit 1
fi
bin="$PWD/.bin"
mkdir -p "$bin"
GOBIN="$bin" go install "google.golang.org/protobuf/cmd/protoc-gen-go@$PROTOC_GEN_GO"
GOBIN="$bin" go install "google.golang.org/grpc/cmd/protoc-gen-go-grpc@$PROTOC_GEN_GO_GRPC"

mapfile -t protos < <(git ls-files --cached --others --exclude-standard '*.proto' | sort)
[ ${#protos[@]} -gt 0 ] || exit 0
PATH="$bin:$PATH" protoc -I . \
  --go_out=. --go_opt=module=github.com/scraft/scraft \
  --go-grpc_out=. --go-grpc_opt=module=github.com/scraft/scraft \
  "${protos[@]}"
