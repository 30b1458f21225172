# Installs the system packages medledger builds and tests against, on a fresh Debian machine.
# Sourced by scripts/test.sh and scripts/demo.sh. Idempotent: does nothing when all are present.

MEDLEDGER_APT_PACKAGES=(librocksdb-dev libssl-dev libsecp256k1-dev libgmp-dev libjemalloc-dev libraft-dev libuv1-dev pkg-config openssl python3 python3-pip)
# Only the tests need these: docker-compose validates docker-compose.yml (no Docker engine runs here);
# prometheus scrapes a running node's operations endpoint; curl sends the FHIR tests' forged requests.
MEDLEDGER_TEST_APT_PACKAGES=(docker-compose prometheus curl)
# Python packages the tests use to cross-check our crypto with independent implementations, as
# "distribution==version-prefix": cryptography (any version), umbral-pre 0.11.x (the PRE interop
# reference; docs/PRE.md); for the FHIR face, an independent SMART client (authlib, with joserfc and
# requests) and FHIR R4 validation (fhir.resources' R4B models, fhirpathpy for invariants).
MEDLEDGER_PIP_PACKAGES=(cryptography "umbral-pre==0.11.0" requests "authlib==1.9.10" "fhir.resources==8.3.0" "fhirpathpy==2.2.4")

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
  for spec in "${MEDLEDGER_PIP_PACKAGES[@]}"; do
    local dist="${spec%%==*}" version=""
    [[ "$spec" == *==* ]] && version="${spec#*==}"
    if ! python3 - "$dist" "$version" >/dev/null 2>&1 <<'PY'
import importlib, importlib.metadata, sys
dist, version = sys.argv[1], sys.argv[2]
importlib.import_module(dist.replace("-", "_"))
assert not version or importlib.metadata.version(dist) == version
PY
    then
      echo "medledger: installing $spec (PyPI)" >&2
      python3 -m pip install --quiet "$spec" 2>/dev/null || python3 -m pip install --quiet --break-system-packages "$spec"
    fi
  done
  command -v swift >/dev/null || { echo "medledger: swift is not on PATH (Swift 6 toolchain required)" >&2; return 1; }
}
