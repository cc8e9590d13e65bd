#!/usr/bin/env bash
# Static checks over every tracked C file (git ls-files: no build dirs, no
# generated protobuf-c code, no node_modules). Exits 1 if any check reports
# anything, 0 when all are clean.
#   clang-tidy  the checks in .clang-tidy on the product code (not test/:
#               CUnit's _FATAL asserts longjmp, which the analyzer cannot
#               see), with the compile commands of a configure in
#               $STM_LINT_BUILD_DIR (default build-lint)
#   cppcheck    warning, performance and portability; inline suppressions
#               (// cppcheck-suppress ID) are honoured
#   --format    also clang-format --dry-run --Werror with .clang-format
#               (off by default until the tree has been formatted once)
# Packages (Debian 12): clang-tidy, cppcheck, clang-format.
#   scripts/lint.sh [--format] [--only tidy|cppcheck|format] [--jobs N]
set -euo pipefail
cd "$(dirname "$0")/.."
B=${STM_LINT_BUILD_DIR:-build-lint}
JOBS=$(nproc)
FORMAT=0 ONLY=
while [ $# -gt 0 ]; do
  case $1 in
    --format) FORMAT=1; shift ;;
    --only) ONLY=$2; shift 2 ;;
    --jobs) JOBS=$2; shift 2 ;;
    -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
    *) echo "usage: $0 [--format] [--only tidy|cppcheck|format] [--jobs N]" >&2; exit 2 ;;
  esac
done
[ "$ONLY" = format ] && FORMAT=1
want() { [ -z "$ONLY" ] || [ "$ONLY" = "$1" ]; }
for tool in clang-tidy cppcheck clang-format; do
  command -v "$tool" >/dev/null || { echo "lint: $tool is missing (apt-get install $tool)" >&2; exit 2; }
done

mapfile -t SOURCES < <(git ls-files '*.c')
mapfile -t HEADERS < <(git ls-files '*.h')
OUT=$(mktemp -d /tmp/stm-lint-XXXXXX)
trap 'rm -rf "$OUT"' EXIT
status=0

if want format && [ "$FORMAT" = 1 ]; then
  # One line per file that clang-format would change.
  printf '%s\n' "${SOURCES[@]}" "${HEADERS[@]}" |
    xargs -P "$JOBS" -I{} sh -c 'clang-format --dry-run --Werror "$1" 2>/dev/null || echo "$1"' _ {} \
      >"$OUT/format.txt"
  n=$(wc -l <"$OUT/format.txt")
  if [ "$n" -gt 0 ]; then
    sort "$OUT/format.txt" | sed 's/^/format: /'
    echo "lint: clang-format: $n files differ from .clang-format (clang-format -i FILE to fix)"
    status=1
  else
    echo "lint: clang-format: clean"
  fi
fi

if want tidy || want cppcheck; then
  # The compile commands, and the generated protobuf-c headers the sources
  # include (the stm_proto target generates and compiles only those).
  cmake -S . -B "$B" -DCMAKE_EXPORT_COMPILE_COMMANDS=ON >/dev/null
  cmake --build "$B" --target stm_proto -j"$JOBS" >/dev/null
fi

if want tidy; then
  # Only files CMake compiles have compile commands (bench/leveldb_batch.c
  # is built by bench/ itself; cppcheck still reads it).
  python3 - "$B/compile_commands.json" "${SOURCES[@]}" >"$OUT/tidy-files.txt" <<'EOF'
import json, os, sys
db = {os.path.realpath(e["file"]) for e in json.load(open(sys.argv[1]))}
for f in sys.argv[2:]:
    if f.startswith("test/"):
        continue
    if os.path.realpath(f) in db:
        print(f)
    else:
        print("lint: clang-tidy skips %s (no compile command)" % f, file=sys.stderr)
EOF
  xargs -P "$JOBS" -n 4 clang-tidy -p "$B" --quiet <"$OUT/tidy-files.txt" \
    >"$OUT/tidy.txt" 2>"$OUT/tidy.err" || true
  # A header's finding is reported once per file including it: count once.
  grep -E '^[^ ]+:[0-9]+:[0-9]+: (warning|error): .*\[[A-Za-z0-9.,-]+\]$' "$OUT/tidy.txt" |
    sed "s#^$PWD/##" | sort -u >"$OUT/tidy-findings.txt" || true
  n=$(wc -l <"$OUT/tidy-findings.txt")
  if [ "$n" -gt 0 ]; then
    sed 's/^/clang-tidy: /' "$OUT/tidy-findings.txt"
    echo "lint: clang-tidy: $n findings (full context: clang-tidy -p $B FILE)"
    status=1
  elif grep -q 'error' "$OUT/tidy.err"; then
    grep 'error' "$OUT/tidy.err" | head -20
    echo "lint: clang-tidy failed to run"
    status=1
  else
    echo "lint: clang-tidy: clean ($(wc -l <"$OUT/tidy-files.txt") files)"
  fi
fi

if want cppcheck; then
  # No system include paths: cppcheck reads only our headers and the
  # generated ones, whose version guard needs protobuf-c's macros. One
  # configuration (-D given), as built.
  if ! cppcheck -q -j "$JOBS" --std=c11 --enable=warning,performance,portability \
      --inline-suppr --error-exitcode=1 \
      -D_GNU_SOURCE -DSTM_VERSION='"lint"' \
      -DPROTOBUF_C_VERSION_NUMBER=1004001 -DPROTOBUF_C_MIN_COMPILER_VERSION=1000000 \
      -DPROTOBUF_C__BEGIN_DECLS= -DPROTOBUF_C__END_DECLS= \
      -I . -I "$B/gen" --suppress=missingIncludeSystem --suppress="*:$B/gen/*" \
      --template='{file}:{line}: {severity}: {id}: {message}' \
      "${SOURCES[@]}" 2>"$OUT/cppcheck.txt"; then
    sed 's/^/cppcheck: /' "$OUT/cppcheck.txt"
    echo "lint: cppcheck: $(wc -l <"$OUT/cppcheck.txt") findings"
    status=1
  else
    echo "lint: cppcheck: clean (${#SOURCES[@]} files)"
  fi
fi
exit $status
