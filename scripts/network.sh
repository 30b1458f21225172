#!/usr/bin/env bash
# A local MedLedger network on loopback, from network-config/channel.yaml:
#   the SA's node (CA + solo orderer) on 7050 (enrollment 7054), hospital-a's peer on 7051,
#   hospital-b's peer on 8051, a research institute without a node; channel `records`.
#
#   scripts/network.sh up       build (release), create identities on first run, start, create/join
#   scripts/network.sh status   processes and each node's channels
#   scripts/network.sh down     stop every process (data is kept in $MEDLEDGER_NETWORK_DIR)
#   scripts/network.sh clean    down, then remove the network directory
set -euo pipefail
cd "$(dirname "$0")/.."
NET="${MEDLEDGER_NETWORK_DIR:-$PWD/.network}"
ORDERER=127.0.0.1:7050; ENROLL=127.0.0.1:7054; PEER_A=127.0.0.1:7051; PEER_B=127.0.0.1:8051

bin() {
  BIN_DIR="$(swift build -c release --show-bin-path)"
  BIN="$BIN_DIR/medledger"; DAEMON="$BIN_DIR/medledgerd"
}

start() {  # name, log, command...
  local name=$1 log=$2; shift 2
  if [[ -f "$NET/$name.pid" ]] && kill -0 "$(cat "$NET/$name.pid")" 2>/dev/null; then echo "$name already running"; return; fi
  nohup "$@" > "$log" 2>&1 &
  echo $! > "$NET/$name.pid"
  for _ in $(seq 1 100); do grep -q "medledgerd: ready" "$log" 2>/dev/null && break; sleep 0.1; done
  grep -q "medledgerd: ready" "$log" || { echo "$name did not start:"; cat "$log"; exit 1; }
  echo "$name started (pid $(cat "$NET/$name.pid"), log $log)"
}

up() {
  source scripts/lib/deps.sh
  medledger_install_deps
  swift build -c release --product medledger >/dev/null
  swift build -c release --product medledgerd >/dev/null
  bin
  mkdir -p "$NET"
  local fresh=0
  if [[ ! -d "$NET/sa" ]]; then
    fresh=1
    "$BIN" ca init --data "$NET/sa" --master-key-file "$NET/sa-master.key" --listen "$ORDERER" --enroll-listen "$ENROLL"
  fi
  start sa "$NET/sa.log" "$BIN" ca serve --data "$NET/sa"
  for org in hospital-a hospital-b; do
    local listen=$PEER_A; [[ $org == hospital-b ]] && listen=$PEER_B
    if [[ ! -d "$NET/$org" ]]; then
      "$BIN" org admit --ca "$ORDERER" --wallet "$NET/sa/wallets/admin" --org "$org" --node peer0 --ip 127.0.0.1 --dns localhost --listen "$listen" --crl-source "$ENROLL" --out "$NET/$org"
    fi
    "$BIN" ca crl --ca "$ENROLL" --ca-cert "$NET/sa/ca-cert.pem" --out "$NET/$org/nodes/peer0/crl.pem" >/dev/null
    start "$org" "$NET/$org.log" "$DAEMON" --config "$NET/$org/nodes/peer0/node.yaml"
  done
  [[ -d "$NET/research-1" ]] || "$BIN" org admit --ca "$ORDERER" --wallet "$NET/sa/wallets/admin" --org research-1 --type third-party --out "$NET/research-1"
  if ((fresh)); then
    sed -e "s/\${ORDERER}/$ORDERER/" -e "s/\${HOSPITAL_A_PEER}/$PEER_A/" -e "s/\${HOSPITAL_B_PEER}/$PEER_B/" network-config/channel.yaml > "$NET/channel.yaml"
    "$BIN" channel create --config "$NET/channel.yaml" --wallet "$NET/sa/wallets/admin" --out "$NET/records.block"
    "$BIN" channel join --node "$ORDERER" --wallet "$NET/sa/wallets/admin" --block "$NET/records.block" --orderer-node
    "$BIN" channel join --node "$PEER_A" --wallet "$NET/hospital-a/admin" --block "$NET/records.block"
    "$BIN" channel join --node "$PEER_B" --wallet "$NET/hospital-b/admin" --block "$NET/records.block"
  fi
  status
  echo
  echo "try: $BIN chaincode invoke --node $PEER_A --wallet $NET/hospital-a/admin --chaincode kv --fn put --arg k --arg v"
}

status() {
  bin
  for name in sa hospital-a hospital-b; do
    if [[ -f "$NET/$name.pid" ]] && kill -0 "$(cat "$NET/$name.pid")" 2>/dev/null; then echo "$name: running (pid $(cat "$NET/$name.pid"))"; else echo "$name: stopped"; fi
  done
  [[ -d "$NET/sa" ]] || return 0
  "$BIN" channel list --node "$ORDERER" --wallet "$NET/sa/wallets/admin" --orderer-node 2>/dev/null | sed 's/^/  orderer: /' || true
  "$BIN" channel list --node "$PEER_A" --wallet "$NET/hospital-a/admin" 2>/dev/null | sed 's/^/  hospital-a: /' || true
  "$BIN" channel list --node "$PEER_B" --wallet "$NET/hospital-b/admin" 2>/dev/null | sed 's/^/  hospital-b: /' || true
}

down() {
  for name in hospital-b hospital-a sa; do
    if [[ -f "$NET/$name.pid" ]]; then
      local pid; pid=$(cat "$NET/$name.pid")
      if kill -0 "$pid" 2>/dev/null; then kill "$pid"; for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done; echo "$name stopped"; fi
      rm -f "$NET/$name.pid"
    fi
  done
}

case "${1:-}" in
  up) up ;;
  down) down ;;
  status) status ;;
  clean) down; rm -rf "$NET"; echo "removed $NET" ;;
  *) echo "usage: scripts/network.sh up|status|down|clean" >&2; exit 2 ;;
esac
