#!/usr/bin/env bash
# The demo: builds medledger, then in a temporary directory
#   part 1 — the ledger: writes a sample chain, verifies it, shows a block;
#   part 2 — identities: the SA's CA, a hospital node over mutual TLS, a doctor and a patient
#            enrolled under pseudo identities, the access rules, a revocation, the audit logs.
# Everything it starts is stopped at the end. (Channels, P_DE/D_UE records and sharing arrive with the
# following milestones; the demo grows with them.)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh
medledger_install_deps

echo "== building medledger and medledgerd (release) =="
swift build -c release --product medledger >/dev/null
swift build -c release --product medledgerd >/dev/null
BIN_DIR="$(swift build -c release --show-bin-path)"
BIN="$BIN_DIR/medledger"
DAEMON="$BIN_DIR/medledgerd"

WORK="$(mktemp -d -t medledger-demo.XXXXXX)"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

step() { printf '\n== %s ==\n' "$*"; }
# Waits for "medledgerd: ready" in a log, then prints the port after "$2 ... listening on".
wait_ready() {
  for _ in $(seq 1 100); do grep -q "medledgerd: ready" "$1" 2>/dev/null && break; sleep 0.1; done
  grep -q "medledgerd: ready" "$1" || { echo "node did not start:"; cat "$1"; exit 1; }
}
port_of() { grep "$2" "$1" | grep -o 'listening on [0-9.]*:[0-9]*' | head -1 | sed 's/.*://'; }

DATA="$WORK/node"
step "1. Commit 25 sample blocks to channel 'demo' (RocksDB, one fsync per block)"
"$BIN" ledger sample --data "$DATA" --channel demo --blocks 25 --seed 2026

step "2. Verify: hash chain, Merkle roots, commit hashes, indexes, and state against a replay"
"$BIN" ledger verify --data "$DATA" --state

step "3. Block 3 as JSON (first 20 lines)"
"$BIN" ledger block 3 --data "$DATA" | head -20

step "4. The system administrator (SA) creates the root CA and starts the CA node"
"$BIN" ca init --data "$WORK/sa" --master-key-file "$WORK/sa-master.key" --listen 127.0.0.1:0 --enroll-listen 127.0.0.1:0
"$BIN" ca serve --data "$WORK/sa" > "$WORK/sa.log" 2>&1 &
PIDS+=($!)
wait_ready "$WORK/sa.log"
CA="127.0.0.1:$(port_of "$WORK/sa.log" "node sa-node")"
ENROLL="127.0.0.1:$(port_of "$WORK/sa.log" "CA enrollment")"
cat "$WORK/sa.log"

step "5. The SA admits hospital-a with one node, peer0 (keys made locally; only CSRs travel)"
"$BIN" org admit --ca "$CA" --wallet "$WORK/sa/wallets/admin" --org hospital-a --node peer0 --listen 127.0.0.1:0 --out "$WORK/hospital-a"
PEER="$WORK/hospital-a/nodes/peer0"
"$BIN" ca crl --ca "$ENROLL" --ca-cert "$WORK/sa/ca-cert.pem" --out "$PEER/crl.pem"
cp -r "$DATA" "$PEER/data"
echo "crl_poll_seconds: 0.5" >> "$PEER/node.yaml"
"$DAEMON" --config "$PEER/node.yaml" > "$WORK/peer0.log" 2>&1 &
PIDS+=($!)
wait_ready "$WORK/peer0.log"
NODE="127.0.0.1:$(port_of "$WORK/peer0.log" "node peer0")"
cat "$WORK/peer0.log"

step "6. hospital-a's administrator registers a doctor and a patient; they enroll with one-time secrets"
secret() { awk '/secret/{print $NF}'; }
S_DOC=$("$BIN" user register --ca "$CA" --wallet "$WORK/hospital-a/admin" --id dr.chen --role doctor --rid "Chen Wei, licence 4471" | secret)
S_PAT=$("$BIN" user register --ca "$CA" --wallet "$WORK/hospital-a/admin" --id p-1001 --role patient --rid "Lin Mei, ID 440111199001010022" | secret)
"$BIN" user enroll --ca "$ENROLL" --ca-cert "$WORK/sa/ca-cert.pem" --id dr.chen --secret "$S_DOC" --wallet "$WORK/w/doctor"
"$BIN" user enroll --ca "$ENROLL" --ca-cert "$WORK/sa/ca-cert.pem" --id p-1001 --secret "$S_PAT" --wallet "$WORK/w/patient"
echo "(the real names stay with the SA, encrypted; certificates carry only the PID)"
"$BIN" cert show "$WORK/w/patient/tls-cert.pem"

step "7. The node sees pseudo identities over mutual TLS"
"$BIN" node whoami --node "$NODE" --wallet "$WORK/w/doctor"
"$BIN" node whoami --node "$NODE" --wallet "$WORK/w/patient"

step "8. Access rules: a doctor may read channel information (OK), a patient may not (403), an unknown channel is 404"
"$BIN" node channel-info --node "$NODE" --wallet "$WORK/w/doctor" --channel demo
"$BIN" node channel-info --node "$NODE" --wallet "$WORK/w/patient" --channel demo || true
"$BIN" node channel-info --node "$NODE" --wallet "$WORK/w/doctor" --channel nowhere || true

step "9. The patient's key is reported stolen: revoke, publish the CRL, the node refuses the certificate (401)"
PID_PAT=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['pid'])" "$WORK/w/patient/identity.json")
"$BIN" ca revoke --ca "$CA" --wallet "$WORK/hospital-a/admin" --pid "$PID_PAT" --reason key-compromise
"$BIN" ca crl --ca "$ENROLL" --ca-cert "$WORK/sa/ca-cert.pem" --out "$PEER/crl.pem"
sleep 1.5
"$BIN" node whoami --node "$NODE" --wallet "$WORK/w/patient" || true

step "10. Only the SA resolves a PID to a real identity, with a justification, and it is audited"
"$BIN" ca resolve-pid --ca "$CA" --wallet "$WORK/hospital-a/admin" --pid "$PID_PAT" --justification "demo" || true
"$BIN" ca resolve-pid --ca "$CA" --wallet "$WORK/sa/wallets/admin" --pid "$PID_PAT" --justification "incident 2026-17"

step "11. Both audit logs are hash-chained and verify"
"$BIN" audit verify "$WORK/sa/audit.log"
"$BIN" audit verify "$PEER/audit.log"

step "Done: everything was in $WORK; the nodes are stopped and the directory removed"
