# Shared by the shell integration tests: where the binaries are, result
# counting and free ports. Source it after `set -u`.

# The checkout and the build: STM_BUILD_DIR (CTest passes it absolute; a
# relative one is taken from the checkout's root) or ./build.
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD=${STM_BUILD_DIR:-$ROOT/build}
case "$BUILD" in /*) ;; *) BUILD=$ROOT/$BUILD ;; esac
SERVER_BIN=${STM_SERVER_BIN:-$BUILD/service/stemedb-server}
GATEWAY_BIN=${STM_GATEWAY_BIN:-$BUILD/gateway/stemedb-gateway}

pass=0 fail=0
ok() { pass=$((pass + 1)); echo "ok   - $1"; }
bad() { fail=$((fail + 1)); echo "FAIL - $1"; }
check() { # check NAME EXPECTED ACTUAL
  if [ "$2" = "$3" ]; then ok "$1"; else bad "$1 (expected '$2', got '$3')"; fi
}
contains() { # contains NAME NEEDLE HAYSTACK
  case "$3" in *"$2"*) ok "$1" ;; *) bad "$1 ('$2' not in '$3')" ;; esac
}
free_port() { /usr/bin/python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
