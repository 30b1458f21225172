#!/usr/bin/env bash
# Regenerates Sources/LedgerProtos from protos/*.proto.
#
# The generated Swift is committed: CI and users never run protoc. Run this after editing a .proto:
# it installs protoc (Debian's protobuf-compiler), builds the protoc-gen-swift plugin from the same
# swift-protobuf version the package uses (once, cached in .build-protoc/), and regenerates.
set -euo pipefail
cd "$(dirname "$0")/.."

SWIFT_PROTOBUF_VERSION="1.39.0"
GRPC_SWIFT_PROTOBUF_VERSION="2.4.1"
TOOLS_DIR="${PROTOC_TOOLS_DIR:-$PWD/.build-protoc}"
OUT_DIR="Sources/LedgerProtos"
RPC_OUT_DIR="Sources/LedgerRPC"
# .proto files that define gRPC services: their stubs go to LedgerRPC, their messages to LedgerProtos.
SERVICE_PROTOS=(identity.proto node.proto peer.proto objects.proto hospital.proto)

if ! command -v protoc >/dev/null; then
  echo "gen-protos: installing protobuf-compiler" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq protobuf-compiler
fi

PLUGIN="$TOOLS_DIR/swift-protobuf/.build/release/protoc-gen-swift"
if [[ ! -x "$PLUGIN" ]]; then
  echo "gen-protos: building protoc-gen-swift $SWIFT_PROTOBUF_VERSION (slow, once)" >&2
  mkdir -p "$TOOLS_DIR"
  rm -rf "$TOOLS_DIR/swift-protobuf"
  git clone -q --depth 1 --branch "$SWIFT_PROTOBUF_VERSION" \
    https://github.com/apple/swift-protobuf "$TOOLS_DIR/swift-protobuf"
  (cd "$TOOLS_DIR/swift-protobuf" && swift build -c release --product protoc-gen-swift)
fi

GRPC_PLUGIN="$TOOLS_DIR/grpc-swift-protobuf/.build/release/protoc-gen-grpc-swift-2"
if [[ ! -x "$GRPC_PLUGIN" ]]; then
  echo "gen-protos: building protoc-gen-grpc-swift-2 $GRPC_SWIFT_PROTOBUF_VERSION (slow, once)" >&2
  rm -rf "$TOOLS_DIR/grpc-swift-protobuf"
  git clone -q --depth 1 --branch "$GRPC_SWIFT_PROTOBUF_VERSION" \
    https://github.com/grpc/grpc-swift-protobuf "$TOOLS_DIR/grpc-swift-protobuf"
  (cd "$TOOLS_DIR/grpc-swift-protobuf" && swift build -c release --product protoc-gen-grpc-swift-2)
fi

rm -f "$OUT_DIR"/*.pb.swift "$RPC_OUT_DIR"/*.grpc.swift
protoc \
  --plugin=protoc-gen-swift="$PLUGIN" \
  --swift_opt=Visibility=Public \
  --swift_out="$OUT_DIR" \
  -I protos \
  protos/*.proto
mkdir -p "$RPC_OUT_DIR"
protoc \
  --plugin=protoc-gen-grpc-swift-2="$GRPC_PLUGIN" \
  --grpc-swift-2_opt=Visibility=Public,ExtraModuleImports=LedgerProtos \
  --grpc-swift-2_out="$RPC_OUT_DIR" \
  -I protos \
  "${SERVICE_PROTOS[@]/#/protos/}"
echo "gen-protos: wrote $(ls "$OUT_DIR"/*.pb.swift | wc -l) files to $OUT_DIR" >&2
