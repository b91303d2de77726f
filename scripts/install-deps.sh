#!/usr/bin/env bash
# Installs every Debian package datacap needs to build, test, benchmark and fuzz.
# Idempotent: packages already present are left alone and apt is not touched at all.
set -euo pipefail

packages=(
  build-essential cmake pkg-config git
  libssl-dev        # SHA-256 reference (libcrypto)
  libb2-dev         # BLAKE2b-256
  libcli11-dev      # argument parsing for the CLI
  liblmdb-dev       # the persistent page store
  nlohmann-json3-dev  # JSON proofs and reports in the CLI
  libgtest-dev libgmock-dev googletest
  libbenchmark-dev
  python3           # renders BENCHMARKS.md from the benchmark JSON
  clang libclang-rt-14-dev  # libFuzzer targets
  clang-format      # the layout check of the test command (.clang-format)
  libhiredis-dev    # the Redis page store's client
  redis-server redis-tools  # the standalone Redis and the Redis Cluster the tests start
  python3-dev python3-pybind11  # the Python package (python/)
  python3-pytest python3-numpy  # its tests (numpy: zero-copy inputs from arrays)
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if ((${#missing[@]} == 0)); then
  exit 0
fi

echo "install-deps: installing ${missing[*]}" >&2
sudo_cmd=()
if [[ $(id -u) -ne 0 ]]; then sudo_cmd=(sudo); fi
export DEBIAN_FRONTEND=noninteractive
"${sudo_cmd[@]}" apt-get update -qq
"${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
