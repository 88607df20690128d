#!/usr/bin/env bash
# Build native/memlock from source, offline, with node-gyp, into native/memlock/build/Release/:
#   memlock.node        prctl PR_SET_IO_FLUSHER, mlockall, execve, sched_setaffinity for the daemon (memlock.c)
#   madvise-locked.so   the LD_PRELOAD shim that lets V8 run under mlockall (madvise-locked.c)
# Run by `npm ci` / `npm install` as part of the root package's postinstall and by scripts/setup.sh;
# safe to run by hand at any time.
#   bash scripts/build-memlock.sh [--force]     (--force: rebuild even when up to date)
#
# Idempotent: nothing is rebuilt when both are newer than their sources and binding.gyp and the addon
# loads with every function. Fails loudly (exit 1, message on stderr) when the build fails or the result
# does not load: the daemon refuses to start without it unless it is given --no-mlock.
#
# Needs: node, a C compiler, make and python3; the node headers come from npm's nodedir (or node's own
# prefix, e.g. /usr/include/node), so nothing is downloaded.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$REPO/native/memlock"
BUILT="$SRC/build/Release/memlock.node"
SHIM="$SRC/build/Release/madvise-locked.so"
ME="build-memlock.sh"

NOT_BUILT="native/memlock was NOT built; the daemon will refuse to start as root without it (unless --no-mlock)."
# shellcheck source=lib-build.sh
. "$REPO/scripts/lib-build.sh"
parse_force "$@"

command -v node >/dev/null 2>&1 || die "node is not on PATH"
[ -f "$SRC/memlock.c" ] && [ -f "$SRC/binding.gyp" ] || die "missing $SRC/memlock.c or binding.gyp"

# Prints what loaded on success; exits non-zero with a reason otherwise.
verify() {
  node -e '
    const m = require(process.argv[1])
    for (const f of ["setIoFlusher", "getIoFlusher", "mlockall", "munlockall", "probeDontneedLocked", "execve", "setAffinity"]) {
      if (typeof m[f] !== "function") { console.error(process.argv[1] + " has no " + f + "()"); process.exit(1) }
    }
    if (![m.MCL_CURRENT, m.MCL_FUTURE, m.MCL_ONFAULT].every(Number.isInteger)) { console.error("MCL_* missing"); process.exit(1) }
    const fs = require("fs")
    if (!fs.existsSync(process.argv[2])) { console.error(process.argv[2] + " is missing"); process.exit(1) }
    console.log(process.argv[1] + " and " + require("path").basename(process.argv[2]) + " (MCL_CURRENT=" + m.MCL_CURRENT + " MCL_FUTURE=" + m.MCL_FUTURE + " MCL_ONFAULT=" + m.MCL_ONFAULT + ")")
  ' "$BUILT" "$SHIM"
}

if [ "$FORCE" = 0 ] && [ -f "$BUILT" ] && [ -f "$SHIM" ] && [ "$BUILT" -nt "$SRC/memlock.c" ] && [ "$BUILT" -nt "$SRC/binding.gyp" ] &&
  [ "$SHIM" -nt "$SRC/madvise-locked.c" ] && [ "$SHIM" -nt "$SRC/binding.gyp" ] && verify >/dev/null 2>&1; then
  say "up to date: $(verify)"
  exit 0
fi

# shellcheck source=lib-node-gyp.sh
. "$REPO/scripts/lib-node-gyp.sh"
check_build_tools
gyp_rebuild "$SRC" "$BUILT" memlock
