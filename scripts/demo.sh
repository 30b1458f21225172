#!/usr/bin/env bash
# The demo: builds medledger, then in a temporary directory
#   part 1 — the ledger: writes a sample chain, verifies it, shows a block;
#   part 2 — identities: the SA's CA (which also runs the solo orderer), a hospital node over mutual
#            TLS, a doctor, a patient and a researcher enrolled under pseudo identities;
#   part 3 — transactions: a channel from its signed genesis block, a treatment, a ciphertext in the
#            hospital's object store, its P_DE signed by patient and doctor, consent (the researcher
#            can fetch the ciphertext only then), a D_UE usage record, a Merkle proof checked offline;
#   part 4 — the access rules, a revocation, the audit logs.
# Everything it starts is stopped at the end. (Sealing records and re-encryption through the proxy
# arrive with the rest of issue 5; the demo grows with them.)
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

step "5. The SA admits hospital-a with one node, peer0 (keys made locally; only CSRs travel), and a research institute"
"$BIN" org admit --ca "$CA" --wallet "$WORK/sa/wallets/admin" --org hospital-a --node peer0 --ip 127.0.0.1 --listen 127.0.0.1:0 --out "$WORK/hospital-a"
"$BIN" org admit --ca "$CA" --wallet "$WORK/sa/wallets/admin" --org research-1 --type third-party --out "$WORK/research-1"
PEER="$WORK/hospital-a/nodes/peer0"
"$BIN" ca crl --ca "$ENROLL" --ca-cert "$WORK/sa/ca-cert.pem" --out "$PEER/crl.pem"
echo "crl_poll_seconds: 0.5" >> "$PEER/node.yaml"
"$DAEMON" --config "$PEER/node.yaml" > "$WORK/peer0.log" 2>&1 &
PIDS+=($!)
wait_ready "$WORK/peer0.log"
NODE="127.0.0.1:$(port_of "$WORK/peer0.log" "node peer0")"
cat "$WORK/peer0.log"

step "6. hospital-a's administrator registers a doctor and a patient, research-1's a researcher; they enroll with one-time secrets"
secret() { awk '/secret/{print $NF}'; }
S_DOC=$("$BIN" user register --ca "$CA" --wallet "$WORK/hospital-a/admin" --id dr.chen --role doctor --rid "Chen Wei, licence 4471" | secret)
S_PAT=$("$BIN" user register --ca "$CA" --wallet "$WORK/hospital-a/admin" --id p-1001 --role patient --rid "Lin Mei, ID 440111199001010022" | secret)
"$BIN" user enroll --ca "$ENROLL" --ca-cert "$WORK/sa/ca-cert.pem" --id dr.chen --secret "$S_DOC" --wallet "$WORK/w/doctor"
"$BIN" user enroll --ca "$ENROLL" --ca-cert "$WORK/sa/ca-cert.pem" --id p-1001 --secret "$S_PAT" --wallet "$WORK/w/patient"
S_RES=$("$BIN" user register --ca "$CA" --wallet "$WORK/research-1/admin" --id dr.okafor --role third-party --rid "Ada Okafor, research-1" | secret)
"$BIN" user enroll --ca "$ENROLL" --ca-cert "$WORK/sa/ca-cert.pem" --id dr.okafor --secret "$S_RES" --wallet "$WORK/w/researcher"
echo "(the real names stay with the SA, encrypted; certificates carry only the PID)"
"$BIN" cert show "$WORK/w/patient/tls-cert.pem"

step "7. The node sees pseudo identities over mutual TLS"
"$BIN" node whoami --node "$NODE" --wallet "$WORK/w/doctor"
"$BIN" node whoami --node "$NODE" --wallet "$WORK/w/patient"

pid_of() { python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['pid'])" "$1/identity.json"; }
field() { python3 -c "import json,sys;print(json.loads(sys.stdin.readline())[sys.argv[1]])" "$1"; }
PID_DOC=$(pid_of "$WORK/w/doctor"); PID_PAT=$(pid_of "$WORK/w/patient"); PID_RES=$(pid_of "$WORK/w/researcher")
A=(--node "$NODE" --channel records)

step "8. A channel from network configuration: the SA signs the genesis block; the orderer and peer0 join"
cat > "$WORK/channel.yaml" <<YAML
channel: records
organizations:
  - { id: sa, ca_root: sa/ca-cert.pem }
  - { id: hospital-a, ca_root: sa/ca-cert.pem, peers: [$NODE] }
  - { id: research-1, ca_root: sa/ca-cert.pem }
orderer: { org: sa, endpoints: [$CA] }
batch: { max_message_count: 500, batch_timeout_ms: 0 }
chaincodes:
  - { name: medrecords, endorsement_policy: "OR('hospital-a.node')" }
  - { name: kv, endorsement_policy: ANY }
YAML
"$BIN" channel create --config "$WORK/channel.yaml" --wallet "$WORK/sa/wallets/admin" --out "$WORK/records.block"
"$BIN" channel join --node "$CA" --wallet "$WORK/sa/wallets/admin" --block "$WORK/records.block" --orderer-node
"$BIN" channel join --node "$NODE" --wallet "$WORK/hospital-a/admin" --block "$WORK/records.block"
"$BIN" channel info "${A[@]}" --wallet "$WORK/hospital-a/admin"

step "9. hospital-a's administrator opens a treatment: T_ID for the patient's and the doctor's PIDs"
OUT=$("$BIN" chaincode invoke "${A[@]}" --wallet "$WORK/hospital-a/admin" --chaincode medrecords --fn createTreatment --arg "{\"patient_pid\":\"$PID_PAT\",\"doctor_pid\":\"$PID_DOC\"}")
echo "$OUT"
TID=$(echo "$OUT" | field t_id)

step "10. The ciphertext goes to hospital-a's object store (URL_C); its P_DE (URL_C, SHA-384) is signed by patient AND doctor"
head -c 200000 /dev/urandom > "$WORK/ciphertext.bin"   # stands in for the sealed record (sealing comes with the next step of issue 5)
OUT=$("$BIN" object put --node "$NODE" --wallet "$WORK/w/patient" --channel records --t-id "$TID" --file "$WORK/ciphertext.bin")
echo "$OUT"
URL=$(echo "$OUT" | sed -n 's/^url: //p')
DIGEST=$("$BIN" record digest "$WORK/ciphertext.bin")
SIG_P=$("$BIN" record sign --wallet "$WORK/w/patient" --t-id "$TID" --url "$URL" --digest "$DIGEST")
SIG_D=$("$BIN" record sign --wallet "$WORK/w/doctor" --t-id "$TID" --url "$URL" --digest "$DIGEST")
OUT=$("$BIN" record put "${A[@]}" --wallet "$WORK/w/doctor" --t-id "$TID" --url "$URL" --digest "$DIGEST" \
  --patient-signature "$SIG_P" --doctor-signature "$SIG_D" --patient-cert "$WORK/w/patient/signing-cert.pem" --doctor-cert "$WORK/w/doctor/signing-cert.pem")
echo "$OUT" | tail -1
RID=$(echo "$OUT" | field record_id)
TX_PDE=$(echo "$OUT" | tail -1 | awk '{print $2}')
echo "A P_DE whose signature is not the patient's is refused:"
"$BIN" record put "${A[@]}" --wallet "$WORK/w/doctor" --t-id "$TID" --url "$URL" --digest "$DIGEST" \
  --patient-signature "$SIG_D" --doctor-signature "$SIG_D" --patient-cert "$WORK/w/patient/signing-cert.pem" --doctor-cert "$WORK/w/doctor/signing-cert.pem" || true

step "11. The patient lists their records; the researcher, without consent, cannot see the record (404)"
"$BIN" chaincode query "${A[@]}" --wallet "$WORK/w/patient" --chaincode medrecords --fn listIndexRecords --arg "{\"patient_pid\":\"$PID_PAT\"}" | python3 -c "import json,sys; d=json.load(sys.stdin); [print(r['record_id'], r['t_id'], r['url'], r['digest'][:16]+'…') for r in d['records']]"
"$BIN" chaincode query "${A[@]}" --wallet "$WORK/w/researcher" --chaincode medrecords --fn getIndexRecord --arg "{\"record_id\":\"$RID\"}" || true
echo "Nor fetch the ciphertext from the object store (404):"
"$BIN" object get --url "$URL" --wallet "$WORK/w/researcher" --out "$WORK/researcher-copy.bin" || true

step "12. The patient grants the researcher access to this treatment, for research, for 30 days"
EXPIRES=$(python3 -c "import datetime;print((datetime.datetime.now(datetime.timezone.utc)+datetime.timedelta(days=30)).strftime('%Y-%m-%dT%H:%M:%SZ'))")
"$BIN" chaincode invoke "${A[@]}" --wallet "$WORK/w/patient" --chaincode medrecords --fn grantAccess \
  --arg "{\"grantee_pid\":\"$PID_RES\",\"t_ids\":[\"$TID\"],\"purpose\":\"research\",\"expires_at\":\"$EXPIRES\"}"
"$BIN" chaincode query "${A[@]}" --wallet "$WORK/w/researcher" --chaincode medrecords --fn getIndexRecord --arg "{\"record_id\":\"$RID\"}" | python3 -c "import json,sys; r=json.load(sys.stdin); print('researcher reads P_DE', r['record_id'], 'of', r['t_id'], 'at', r['url'])"
echo "With the consent live, the researcher fetches the ciphertext from the object store (its SHA-384 is checked):"
"$BIN" object get --url "$URL" --wallet "$WORK/w/researcher" --out "$WORK/researcher-copy.bin"

step "13. hospital-a's node, re-encrypting for the researcher, records the usage D_UE (only under a live consent)"
"$BIN" chaincode invoke "${A[@]}" --wallet "$PEER" --chaincode medrecords --fn recordUsage \
  --arg "{\"t_id\":\"$TID\",\"third_party_pid\":\"$PID_RES\",\"proxy_node\":\"hospital-a/peer0\",\"purpose\":\"research\"}"
echo "A usage for another purpose has no consent (403):"
"$BIN" chaincode invoke "${A[@]}" --wallet "$PEER" --chaincode medrecords --fn recordUsage \
  --arg "{\"t_id\":\"$TID\",\"third_party_pid\":\"$PID_RES\",\"proxy_node\":\"hospital-a/peer0\",\"purpose\":\"marketing\"}" || true
echo "The patient lists who used their data:"
"$BIN" chaincode query "${A[@]}" --wallet "$WORK/w/patient" --chaincode medrecords --fn listUsage --arg "{\"patient_pid\":\"$PID_PAT\"}" | python3 -c "import json,sys; [print(u['usage_id'], u['t_id'], 'by', u['third_party_pid'][:12]+'…', 'via', u['proxy_node'], 'for', u['purpose'], 'at', u['time']) for u in json.load(sys.stdin)['records']]"

step "14. The P_DE's Merkle inclusion proof, checked offline against the block header"
"$BIN" tx get "$TX_PDE" "${A[@]}" --wallet "$WORK/hospital-a/admin" --out "$WORK/proof.json"
HEADER_HASH=$(python3 -c "import json,sys;print(json.load(open(sys.argv[1]))['header_hash'])" "$WORK/proof.json")
"$BIN" tx verify-proof "$WORK/proof.json" --header-hash "$HEADER_HASH"
echo "Against another block's header hash the proof fails:"
"$BIN" tx verify-proof "$WORK/proof.json" --header-hash "$(printf '%064d' 0)" || true
"$BIN" node channel-info --node "$NODE" --wallet "$WORK/w/doctor" --channel records

step "15. Access rules: a patient may not read blocks (403); an unknown channel is 404"
"$BIN" block get latest "${A[@]}" --wallet "$WORK/w/patient" || true
"$BIN" node channel-info --node "$NODE" --wallet "$WORK/w/doctor" --channel nowhere || true

step "16. The patient's key is reported stolen: revoke, publish the CRL, the node refuses the certificate (401)"
"$BIN" ca revoke --ca "$CA" --wallet "$WORK/hospital-a/admin" --pid "$PID_PAT" --reason key-compromise
"$BIN" ca crl --ca "$ENROLL" --ca-cert "$WORK/sa/ca-cert.pem" --out "$PEER/crl.pem"
sleep 1.5
"$BIN" node whoami --node "$NODE" --wallet "$WORK/w/patient" || true

step "17. Only the SA resolves a PID to a real identity, with a justification, and it is audited"
"$BIN" ca resolve-pid --ca "$CA" --wallet "$WORK/hospital-a/admin" --pid "$PID_PAT" --justification "demo" || true
"$BIN" ca resolve-pid --ca "$CA" --wallet "$WORK/sa/wallets/admin" --pid "$PID_PAT" --justification "incident 2026-17"

step "18. Both audit logs are hash-chained and verify; the ledger holds no real names"
"$BIN" audit verify "$WORK/sa/audit.log"
"$BIN" audit verify "$PEER/audit.log"
if grep -rqa -e "Lin Mei" -e "Chen Wei" "$PEER/data" "$WORK/sa/orderer-data" "$PEER/audit.log"; then echo "FOUND a real name in ledger or logs"; exit 1; else echo "no real name in the peer's or orderer's ledger or the node's audit log"; fi

step "Done: everything was in $WORK; the nodes are stopped and the directory removed"
