#!/usr/bin/env bash
# Build native/fileio from source, offline, with node-gyp, into native/fileio/build/Release/fileio.node:
# fallocate(2) PUNCH_HOLE|KEEP_SIZE on libuv's thread pool, which Node's fs does not have; the packed
# lower file punches its freed segments out with it (src/backing/lower-file.ts).
# Run by `npm ci` / `npm install` as part of the root package's postinstall and by scripts/setup.sh;
# safe to run by hand at any time.
#   bash scripts/build-fileio.sh [--force]     (--force: rebuild even when up to date)
#
# Idempotent: nothing is rebuilt while the addon is newer than its source and binding.gyp and passes
# the check below. Fails loudly (exit 1, message on stderr) when the build fails or the result does
# not load, refuse a bad argument, and answer a bad descriptor with EBADF: src/backing cannot load
# without it.
#
# Needs: node, a C compiler, make, python3 and glibc >= 2.32 (strerrorname_np); the node headers come
# from npm's nodedir (or node's own prefix, e.g. /usr/include/node), so nothing is downloaded.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$REPO/native/fileio"
BUILT="$SRC/build/Release/fileio.node"
ME="build-fileio.sh"

NOT_BUILT="native/fileio was NOT built; the lower file (src/backing) cannot load without it."
# shellcheck source=lib-build.sh
. "$REPO/scripts/lib-build.sh"
parse_force "$@"

command -v node >/dev/null 2>&1 || die "node is not on PATH"
[ -f "$SRC/fileio.c" ] && [ -f "$SRC/binding.gyp" ] || die "missing $SRC/fileio.c or binding.gyp"

# Loads the addon; a bad argument must throw and a descriptor no process has (2^30, above any
# RLIMIT_NOFILE) must come back from the thread pool as EBADF. Prints what loaded.
verify() {
  node -e '
    const m = require(process.argv[1])
    if (typeof m.punchHole !== "function") { console.error(process.argv[1] + " has no punchHole()"); process.exit(1) }
    try { m.punchHole(-1, 0, 4096); console.error("punchHole(-1, ...) did not throw"); process.exit(1) } catch (e) {
      if (!(e instanceof RangeError)) { console.error("punchHole(-1, ...) threw " + e); process.exit(1) }
    }
    m.punchHole(2 ** 30, 0, 4096).then(
      () => { console.error("punchHole on a bad descriptor resolved"); process.exit(1) },
      (e) => {
        if (e.code !== "EBADF" || e.syscall !== "fallocate") { console.error("punchHole on a bad descriptor: " + e); process.exit(1) }
        console.log(process.argv[1] + " (punchHole; a bad descriptor answers " + e.code + ")")
      })
  ' "$BUILT"
}

if [ "$FORCE" = 0 ] && [ -f "$BUILT" ] && [ "$BUILT" -nt "$SRC/fileio.c" ] && [ "$BUILT" -nt "$SRC/binding.gyp" ] &&
  verify >/dev/null 2>&1; then
  say "up to date: $(verify)"
  exit 0
fi

# shellcheck source=lib-node-gyp.sh
. "$REPO/scripts/lib-node-gyp.sh"
check_build_tools
gyp_rebuild "$SRC" "$BUILT" fileio
