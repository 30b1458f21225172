#!/usr/bin/env bash
# Fuzzes the decoders with libFuzzer and AddressSanitizer (targets: `MedLedgerFuzz list`).
#
#   scripts/fuzz.sh [TARGET|all] [SECONDS]      default: all, 60 seconds per target
#
# Builds the fuzzing binary once (release, -sanitize=fuzzer,address, scratch path .build-fuzz), then
# runs each target for SECONDS over a temporary copy of its seed corpus Tests/Fuzz/<target>/ (the
# repository is never written). Prints target | executions | crashes and exits 1 on any crash,
# sanitizer report, timeout or out-of-memory; the inputs that caused them are left in
# fuzz-crashes/<target>/ with the log. Reproduce one with
#   MEDLEDGER_FUZZ_TARGET=<target> .build-fuzz/release/MedLedgerFuzz fuzz-crashes/<target>/crash-…
# (or without sanitizers: swift run MedLedgerFuzz replay <target> FILE), and once fixed add the
# input to Tests/Fuzz/<target>/ beside a regression test.
#
# Environment: MEDLEDGER_FUZZ_NO_BUILD=1 uses the binary already built; MEDLEDGER_FUZZ_CORPUS_OUT=DIR
# keeps each target's grown corpus in DIR/<target>/ (to continue a long run later: copy it back
# in as a corpus with MEDLEDGER_FUZZ_CORPUS_IN=DIR); MEDLEDGER_FUZZ_ARGS adds libFuzzer flags.
set -euo pipefail
cd "$(dirname "$0")/.."

TARGET="${1:-all}"
SECONDS_PER_TARGET="${2:-60}"
SCRATCH=.build-fuzz
BIN="$SCRATCH/release/MedLedgerFuzz"
CRASHES=fuzz-crashes

if [[ "${MEDLEDGER_FUZZ_NO_BUILD:-0}" != 1 ]]; then
  source scripts/lib/deps.sh
  medledger_install_deps
  echo "fuzz: building $BIN (release, libFuzzer + AddressSanitizer)" >&2
  # -DMEDLEDGER_FUZZING: the binary's main hands over to libFuzzer (Sources/MedLedgerFuzz/Entry.swift).
  # -sanitize=fuzzer instruments the Swift code for coverage and links libFuzzer from the toolchain;
  # address instruments it for ASan (C dependencies are not instrumented).
  nice -n 10 swift build -c release --product MedLedgerFuzz --scratch-path "$SCRATCH" \
    -Xswiftc -sanitize=fuzzer,address -Xswiftc -DMEDLEDGER_FUZZING >&2
fi
[[ -x "$BIN" ]] || { echo "fuzz: $BIN is missing (build it: unset MEDLEDGER_FUZZ_NO_BUILD)" >&2; exit 2; }

ALL_TARGETS=$(cd Tests/Fuzz && ls -d */ | tr -d /)
if [[ "$TARGET" == all ]]; then TARGETS=$ALL_TARGETS; else TARGETS=$TARGET; fi
for t in $TARGETS; do
  [[ -d "Tests/Fuzz/$t" ]] || { echo "fuzz: no target $t (targets: $(echo $ALL_TARGETS))" >&2; exit 2; }
done

# On tmpfs when there is one: three harnesses write their input to a file on every execution.
if [[ -d /dev/shm && -w /dev/shm ]]; then WORK_BASE=/dev/shm; else WORK_BASE="${TMPDIR:-/tmp}"; fi
WORK=$(mktemp -d "$WORK_BASE/medledger-fuzz.XXXXXX")
trap 'rm -rf "$WORK"' EXIT
# The Swift runtime's backtracer would catch the signal before libFuzzer; LeakSanitizer is off
# (Foundation and swift-protobuf allocations show up as leaks at exit). The binary re-execs itself
# with both set if they are missing, so running it by hand behaves the same.
export SWIFT_BACKTRACE=enable=no
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=0}"

failed=0
rows=()
for t in $TARGETS; do
  corpus="$WORK/$t/corpus"
  mkdir -p "$corpus" "$WORK/$t/tmp"
  cp "Tests/Fuzz/$t/"* "$corpus/"
  if [[ -n "${MEDLEDGER_FUZZ_CORPUS_IN:-}" && -d "$MEDLEDGER_FUZZ_CORPUS_IN/$t" ]]; then cp "$MEDLEDGER_FUZZ_CORPUS_IN/$t/"* "$corpus/" 2>/dev/null || true; fi
  artifacts="$WORK/$t/artifacts"
  mkdir -p "$artifacts"
  log="$WORK/$t/log"
  set +e
  # -timeout: an input taking 25 s is a finding (libFuzzer's default is 20 minutes);
  # -rss_limit_mb: the fixture ledger, caches and ASan's shadow need more than the default 2 GB.
  MEDLEDGER_FUZZ_TARGET="$t" MEDLEDGER_FUZZ_TMP="$WORK/$t/tmp" nice -n 10 "$BIN" \
    -max_total_time="$SECONDS_PER_TARGET" -timeout=25 -rss_limit_mb=4096 -print_final_stats=1 \
    -artifact_prefix="$artifacts/" ${MEDLEDGER_FUZZ_ARGS:-} "$corpus" >"$log" 2>&1
  status=$?
  set -e
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  # libFuzzer also keeps inputs that took over 10 s ("slow-unit-"): on a loaded machine that is often
  # the scheduler, not the input, so they are kept and reported but are not failures (-timeout is).
  found=$(ls "$artifacts" | grep -cv '^slow-unit-' || true)
  slow=$(ls "$artifacts" | grep -c '^slow-unit-' || true)
  if ((slow > 0)); then
    mkdir -p "$CRASHES/$t"
    cp "$artifacts/"slow-unit-* "$CRASHES/$t/"
    echo "fuzz: $t: $slow input(s) took over 10 s once, kept in $CRASHES/$t/ (replay one to see whether it is slow or the machine was busy)" >&2
  fi
  if [[ $status -ne 0 || $found -gt 0 ]] || grep -q 'ERROR: AddressSanitizer\|ERROR: libFuzzer\|SUMMARY: ' "$log"; then
    failed=1
    (( found > 0 )) || found=1
    mkdir -p "$CRASHES/$t"
    cp "$artifacts/"* "$CRASHES/$t/" 2>/dev/null || true
    cp "$log" "$CRASHES/$t/fuzz.log"
    echo "fuzz: $t FAILED (exit $status); inputs and log in $CRASHES/$t/" >&2
    grep -m1 -A12 'ERROR: \|==ERROR\|deadly signal\|Swift runtime failure' "$log" >&2 || tail -20 "$log" >&2
  fi
  if [[ -n "${MEDLEDGER_FUZZ_CORPUS_OUT:-}" ]]; then
    mkdir -p "$MEDLEDGER_FUZZ_CORPUS_OUT/$t"
    cp "$corpus/"* "$MEDLEDGER_FUZZ_CORPUS_OUT/$t/" 2>/dev/null || true
  fi
  rows+=("$(printf '| %-18s | %12s | %7s |' "$t" "${execs:-?}" "$found")")
done

printf '| %-18s | %12s | %7s |\n' target executions crashes
printf '|%s|%s|%s|\n' "--------------------" "--------------" "---------"
printf '%s\n' "${rows[@]}"
exit $failed
