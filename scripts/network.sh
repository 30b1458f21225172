#!/usr/bin/env bash
# A local MedLedger network on loopback, from network-config/channel.yaml:
#   the SA's node (CA + solo orderer) on 7050 (enrollment 7054), hospital-a's peer on 7051,
#   hospital-b's peer on 8051, a research institute without a node; channel `records`.
#
#   scripts/network.sh up       build (release), create identities on first run, start, create/join
#   scripts/network.sh up --orderers 3
#                               the raft network instead (network-config/channel-raft.yaml): the SA's
#                               node (CA, and a peer of the channel) and hospital-a, -b, -c, each running a peer and a raft
#                               consenter (nodes 7051/8051/9051, raft 7052/8052/9052); its own
#                               directory (default .network-raft)
#   scripts/network.sh status   processes and each node's channels
#   scripts/network.sh down     stop every process (data is kept in $MEDLEDGER_NETWORK_DIR)
#   scripts/network.sh clean    down, then remove the network directory
set -euo pipefail
cd "$(dirname "$0")/.."
ORDERERS=1
if [[ "${2:-}" == --orderers ]]; then
  ORDERERS="${3:-}"
  [[ "$ORDERERS" == 1 || "$ORDERERS" == 3 ]] || { echo "network.sh: --orderers takes 1 (solo) or 3 (raft)" >&2; exit 2; }
fi
# status/down/clean without --orderers: the raft network when it is the only one there is.
if [[ "${1:-}" != up && -z "${2:-}" && -z "${MEDLEDGER_NETWORK_DIR:-}" && ! -d "$PWD/.network" && -d "$PWD/.network-raft" ]]; then ORDERERS=3; fi
if ((ORDERERS == 3)); then DEFAULT_NET="$PWD/.network-raft"; else DEFAULT_NET="$PWD/.network"; fi
NET="${MEDLEDGER_NETWORK_DIR:-$DEFAULT_NET}"
# A network remembers its kind: status/down/clean of a raft network need no flag.
[[ -f "$NET/orderers" ]] && ORDERERS=$(cat "$NET/orderers")
ORDERER=127.0.0.1:7050; ENROLL=127.0.0.1:7054; PEER_A=127.0.0.1:7051; PEER_B=127.0.0.1:8051
HOSPITALS=(hospital-a hospital-b)
((ORDERERS == 3)) && HOSPITALS=(hospital-a hospital-b hospital-c)
node_port() { case $1 in hospital-a) echo 7051 ;; hospital-b) echo 8051 ;; hospital-c) echo 9051 ;; esac; }

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
  echo "$ORDERERS" > "$NET/orderers"
  local fresh=0
  if [[ ! -d "$NET/sa" ]]; then
    fresh=1
    "$BIN" ca init --data "$NET/sa" --master-key-file "$NET/sa-master.key" --listen "$ORDERER" --enroll-listen "$ENROLL"
  fi
  start sa "$NET/sa.log" "$BIN" ca serve --data "$NET/sa"
  for org in "${HOSPITALS[@]}"; do
    local port; port=$(node_port "$org")
    local listen="127.0.0.1:$port" raft=()
    ((ORDERERS == 3)) && raft=(--raft-listen "127.0.0.1:$((port + 1))")
    if [[ ! -d "$NET/$org" ]]; then
      "$BIN" org admit --ca "$ORDERER" --wallet "$NET/sa/wallets/admin" --org "$org" --node peer0 --ip 127.0.0.1 --dns localhost --listen "$listen" --crl-source "$ENROLL" "${raft[@]}" --out "$NET/$org"
    fi
    "$BIN" ca crl --ca "$ENROLL" --ca-cert "$NET/sa/ca-cert.pem" --out "$NET/$org/nodes/peer0/crl.pem" >/dev/null
    start "$org" "$NET/$org.log" "$DAEMON" --config "$NET/$org/nodes/peer0/node.yaml"
  done
  [[ -d "$NET/research-1" ]] || "$BIN" org admit --ca "$ORDERER" --wallet "$NET/sa/wallets/admin" --org research-1 --type third-party --out "$NET/research-1"
  if ((fresh && ORDERERS == 3)); then
    sed -e "s/\${SA_NODE}/$ORDERER/" -e "s/\${NODE_1}/127.0.0.1:7051/" -e "s/\${NODE_2}/127.0.0.1:8051/" -e "s/\${NODE_3}/127.0.0.1:9051/" \
        -e "s/\${RAFT_1}/127.0.0.1:7052/" -e "s/\${RAFT_2}/127.0.0.1:8052/" -e "s/\${RAFT_3}/127.0.0.1:9052/" network-config/channel-raft.yaml > "$NET/channel.yaml"
    "$BIN" channel create --config "$NET/channel.yaml" --wallet "$NET/sa/wallets/admin" --out "$NET/records.block"
    # Every consenter joins from the genesis block (they elect a leader among themselves), then every peer.
    for org in "${HOSPITALS[@]}"; do
      "$BIN" channel join --node "127.0.0.1:$(node_port "$org")" --wallet "$NET/$org/admin" --block "$NET/records.block" --orderer-node
    done
    for org in "${HOSPITALS[@]}"; do
      "$BIN" channel join --node "127.0.0.1:$(node_port "$org")" --wallet "$NET/$org/admin" --block "$NET/records.block"
    done
    "$BIN" channel join --node "$ORDERER" --wallet "$NET/sa/wallets/admin" --block "$NET/records.block"
  elif ((fresh)); then
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
  for name in sa "${HOSPITALS[@]}"; do
    if [[ -f "$NET/$name.pid" ]] && kill -0 "$(cat "$NET/$name.pid")" 2>/dev/null; then echo "$name: running (pid $(cat "$NET/$name.pid"))"; else echo "$name: stopped"; fi
  done
  [[ -d "$NET/sa" ]] || return 0
  if ((ORDERERS == 3)); then
    "$BIN" orderer status --node 127.0.0.1:7051 --wallet "$NET/hospital-a/admin" 2>/dev/null | sed 's/^/  orderer: /' || true
  else
    "$BIN" channel list --node "$ORDERER" --wallet "$NET/sa/wallets/admin" --orderer-node 2>/dev/null | sed 's/^/  orderer: /' || true
  fi
  for org in "${HOSPITALS[@]}"; do
    "$BIN" channel list --node "127.0.0.1:$(node_port "$org")" --wallet "$NET/$org/admin" 2>/dev/null | sed "s/^/  $org: /" || true
  done
}

down() {
  for name in hospital-c hospital-b hospital-a sa; do
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
  *) echo "usage: scripts/network.sh up [--orderers 1|3]|status|down|clean" >&2; exit 2 ;;
esac
