#!/usr/bin/env bash
# The demo: builds medledger, writes a sample ledger in a temporary directory, and shows the ledger's
# checks at work. (The full hospital story — CA, channels, P_DE/D_UE, sharing — arrives with the
# following milestones; this demo grows with them.)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh
medledger_install_deps

echo "== building medledger (release) =="
swift build -c release --product medledger >/dev/null
BIN="$(swift build -c release --show-bin-path)/medledger"

WORK="$(mktemp -d -t medledger-demo.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
DATA="$WORK/node"

step() { printf '\n== %s ==\n' "$*"; }

step "1. Commit 25 sample blocks to channel 'demo' (RocksDB, one fsync per block)"
"$BIN" ledger sample --data "$DATA" --channel demo --blocks 25 --seed 2026

step "2. The ledger's channels, heights, tip hashes and commit hashes"
"$BIN" ledger info --data "$DATA"

step "3. Verify: hash chain, Merkle roots, commit hashes, indexes, and state against a replay"
"$BIN" ledger verify --data "$DATA" --state

step "4. Block 3 as JSON (first 30 lines)"
"$BIN" ledger block 3 --data "$DATA" | head -30

step "5. Rebuild the world state from the blocks, and verify again"
"$BIN" ledger rebuild-state --data "$DATA"
"$BIN" ledger verify --data "$DATA" --state

step "Done: everything was in $WORK and has been removed"
