#!/usr/bin/env bash
# Runs the deterministic simulator over random seeds for HOURS (a fraction is fine: 0.1), keeping
# every seed that breaks an invariant.
#
#   scripts/sim.sh [HOURS] [STEPS]      default: 1 hour, 4000 steps per seed
#
# Builds medledger (release) once, then loops: a random 63-bit seed, `medledger sim --seed S --steps
# STEPS --faults all`. A failing seed's report (the violation and the shortest command that
# reproduces it) is appended to sim-failures/failures.txt and its output kept in
# sim-failures/seed-S.txt. At the end prints seeds run, events, failures; exits 1 if any seed failed.
# Fixed seeds run in CI as a test (Tests/LedgerSimulationTests); turn a failing seed into one there
# once fixed. Each seed runs on a network drawn from the seed (1-5 peers, 2-16 doctors, 2-40 keys).
# Environment: MEDLEDGER_SIM_NO_BUILD=1 uses the binary already built; MEDLEDGER_SIM_ARGS fixes the
# network instead (e.g. "--peers 5 --clients 12").
set -euo pipefail
cd "$(dirname "$0")/.."

HOURS="${1:-1}"
STEPS="${2:-4000}"
OUT=sim-failures
BIN=.build/release/medledger

if [[ "${MEDLEDGER_SIM_NO_BUILD:-0}" != 1 ]]; then
  source scripts/lib/deps.sh
  medledger_install_deps
  echo "sim: building $BIN (release)" >&2
  swift build -c release --product medledger >&2
fi
[[ -x "$BIN" ]] || { echo "sim: $BIN is missing (build it: unset MEDLEDGER_SIM_NO_BUILD)" >&2; exit 2; }

end=$(python3 -c "import time,sys; print(int(time.time() + float(sys.argv[1]) * 3600))" "$HOURS")
mkdir -p "$OUT"
seeds=0 failures=0 events=0
# shellcheck disable=SC2086
while (( $(date +%s) < end )); do
  seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
  seed=$(( seed & 0x7fffffffffffffff ))
  # Without MEDLEDGER_SIM_ARGS, each seed also draws its network: 1-5 peers, 2-16 doctors, 2-40 keys.
  shape=${MEDLEDGER_SIM_ARGS:-"--peers $((seed % 5 + 1)) --clients $((seed / 5 % 15 + 2)) --keys $((seed / 75 % 39 + 2))"}
  if line=$("$BIN" sim --seed "$seed" --steps "$STEPS" --faults all --quiet $shape 2>&1); then
    :
  else
    failures=$((failures + 1))
    printf '%s\n' "$line" > "$OUT/seed-$seed.txt"
    printf '%s\n' "$line" | grep -E 'VIOLATION|reproduce' >> "$OUT/failures.txt" || true
    echo "sim: seed $seed FAILED (kept in $OUT/seed-$seed.txt)" >&2
  fi
  seeds=$((seeds + 1))
  n=$(printf '%s\n' "$line" | sed -n 's/.*, \([0-9]*\) events,.*/\1/p' | head -1)
  events=$((events + ${n:-0}))
done
echo "sim: $seeds seeds, $events events, $failures failing (reports in $OUT/)"
(( failures == 0 ))
