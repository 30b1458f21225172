# Installs the system packages medledger builds and tests against, on a fresh Debian machine.
# Sourced by scripts/test.sh and scripts/demo.sh. Idempotent: does nothing when all are present.

MEDLEDGER_APT_PACKAGES=(librocksdb-dev pkg-config openssl python3 python3-pip)
# Only the tests need these: docker-compose validates docker-compose.yml (no Docker engine runs here).
MEDLEDGER_TEST_APT_PACKAGES=(docker-compose)
# Python packages the tests use to cross-check our crypto with independent implementations.
MEDLEDGER_PIP_PACKAGES=(cryptography)

# medledger_install_deps [test]: with "test", also what only the tests need.
medledger_install_deps() {
  local missing=()
  local wanted=("${MEDLEDGER_APT_PACKAGES[@]}")
  [[ "${1:-}" == "test" ]] && wanted+=("${MEDLEDGER_TEST_APT_PACKAGES[@]}")
  for pkg in "${wanted[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  if ((${#missing[@]} > 0)); then
    echo "medledger: installing ${missing[*]} (Debian packages)" >&2
    local SUDO=""
    if [[ $(id -u) -ne 0 ]]; then
      command -v sudo >/dev/null || { echo "medledger: need root or sudo to install ${missing[*]}" >&2; return 1; }
      SUDO="sudo"
    fi
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
  fi
  for pkg in "${MEDLEDGER_PIP_PACKAGES[@]}"; do
    if ! python3 -c "import ${pkg//-/_}" >/dev/null 2>&1; then
      echo "medledger: installing $pkg (PyPI)" >&2
      python3 -m pip install --quiet "$pkg" 2>/dev/null || python3 -m pip install --quiet --break-system-packages "$pkg"
    fi
  done
  command -v swift >/dev/null || { echo "medledger: swift is not on PATH (Swift 6 toolchain required)" >&2; return 1; }
}
