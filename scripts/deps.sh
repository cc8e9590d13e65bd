#!/usr/bin/env bash
# Install every build and test dependency from Debian 12 packages (and npm
# for the Node test client). Idempotent: skips apt when all are present.
#   scripts/deps.sh          build and test dependencies (what CI needs)
#   scripts/deps.sh --bench  also the references of bench/compare.sh: etcd,
#                            PostgreSQL 15 (pgbench), wrk
set -euo pipefail
cd "$(dirname "$0")/.."
PKGS=(build-essential cmake pkg-config git
  libgrpc-dev protobuf-compiler protobuf-c-compiler libprotobuf-c-dev
  protobuf-compiler-grpc python3 python3-grpcio python3-protobuf
  libwebsockets-dev libssl-dev libleveldb-dev libzstd-dev zstd libsodium-dev libjansson-dev
  libcunit1-dev curl jq procps python3-cryptography
  prometheus nginx python3-yaml systemd iproute2
  clang-format clang-tidy cppcheck clang libclang-rt-14-dev)
if [ "${1:-}" = "--bench" ]; then
  PKGS+=(etcd-server etcd-client postgresql postgresql-contrib wrk)
fi
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
command -v node >/dev/null || missing+=(nodejs)
command -v npm >/dev/null || missing+=(npm)
if [ ${#missing[@]} -gt 0 ]; then
  SUDO=; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  echo "installing: ${missing[*]}"
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get update -q
  $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
fi
if [ ! -d test/integration/node_modules/@grpc/grpc-js ]; then
  (cd test/integration && npm ci --no-audit --no-fund --loglevel=error)
fi
