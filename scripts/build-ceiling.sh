#!/usr/bin/env bash
# Build the bench's C ceiling, bench/ceiling-c/ramfile.c (a RAM file over libfuse3's low-level API,
# one thread or multi-threaded), into bench/ceiling-c/build/ramfile. Run by scripts/setup.sh and by
# `npm run bench` (bench/run.ts) before it measures; safe to run by hand at any time.
#   bash scripts/build-ceiling.sh [--force]     (--force: rebuild even when up to date)
#
# Idempotent: nothing is rebuilt while the binary is newer than its source (and this script) and
# runs. Fails loudly (exit 1, message on stderr) when libfuse3's headers or pkg-config are missing,
# the compiler fails or the result does not run; the bench then reports both C targets as missing,
# with this message as the reason, and measures the others.
#
# Needs: a C compiler, pkg-config and libfuse3's headers (Debian: libfuse3-dev pkg-config, which
# scripts/setup.sh installs).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$REPO/bench/ceiling-c/ramfile.c"
OUT_DIR="$REPO/bench/ceiling-c/build"
BUILT="$OUT_DIR/ramfile"
ME="build-ceiling.sh"

NOT_BUILT="the C ceiling (bench/ceiling-c/build/ramfile) was NOT built; npm run bench leaves its two targets out."
# shellcheck source=lib-build.sh
. "$REPO/scripts/lib-build.sh"
parse_force "$@"

[ -f "$SRC" ] || die "missing $SRC"

# It must start, find libfuse3.so and refuse a bad command line with its usage (exit 2).
verify() {
  local out rc=0
  out="$("$BUILT" 2>&1)" || rc=$?
  [ "$rc" = 2 ] && [[ "$out" == *"usage:"* ]] || { echo "$BUILT without arguments: exit $rc: $out" >&2; return 1; }
}

if [ "$FORCE" = 0 ] && [ -x "$BUILT" ] && [ "$BUILT" -nt "$SRC" ] && [ "$BUILT" -nt "${BASH_SOURCE[0]}" ] && verify 2>/dev/null; then
  say "up to date: $BUILT"
  exit 0
fi

CC="${CC:-cc}"
command -v "$CC" >/dev/null 2>&1 || die "no C compiler ($CC) on PATH: install build-essential"
command -v pkg-config >/dev/null 2>&1 || die "pkg-config is not installed (Debian: apt-get install pkg-config libfuse3-dev)"
pkg-config --exists fuse3 2>/dev/null || die "libfuse3's development files are not installed: pkg-config finds no fuse3 (Debian: apt-get install libfuse3-dev)"
read -r -a FLAGS <<<"$(pkg-config --cflags --libs fuse3)"

mkdir -p "$OUT_DIR"
TMP="$(mktemp "$OUT_DIR/.ramfile.XXXXXX")"
trap 'rm -f "$TMP"' EXIT
t0=$(date +%s%N)
if ! log="$("$CC" -O2 -Wall -Wextra -o "$TMP" "$SRC" "${FLAGS[@]}" 2>&1)"; then
  echo "----- $CC output -----" >&2
  echo "$log" >&2
  echo "----------------------" >&2
  die "$CC failed on $SRC"
fi
[ -n "$log" ] && echo "$log" >&2
chmod 755 "$TMP"
mv -f "$TMP" "$BUILT"   # atomic: a bench starting meanwhile runs the old binary or the new one
verify || die "the build does not run"
say "built $BUILT (libfuse $(pkg-config --modversion fuse3)) in $(( ($(date +%s%N) - t0) / 1000000 )) ms"
