#!/usr/bin/env bash
# The project's test command: installs what the tests need, builds everything, runs every test.
# Usage: scripts/test.sh [extra `swift test` arguments, e.g. --filter CrashTests]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/lib/deps.sh
medledger_install_deps test

swift build --build-tests
swift test --skip-build "$@"
