#!/usr/bin/env bash
# Build native/fusedev from source, offline, with node-gyp, into native/fusedev/build/Release/fusedev.node:
# raw /dev/fuse (open, mount/umount2, fusermount3 with the fd passed back over _FUSE_COMMFD,
# FUSE_DEV_IOC_CLONE, read/write/writev, a uv_poll in Node's own loop) for the FUSE protocol spoken in
# TypeScript on the JavaScript thread (src/fuse/kernel/fusedev-addon.ts).
# Run by `npm ci` / `npm install` as part of the root package's postinstall and by hand at any time.
#   bash scripts/build-fusedev.sh [--force]     (--force: rebuild even when up to date)
#
# Idempotent: nothing is rebuilt while the addon is newer than its source and binding.gyp and passes
# the check below. Fails loudly (exit 1, message on stderr) when the build fails or the result does
# not load with every function and constant, refuse a bad argument with a TypeError, or carry bytes
# through its own pipe(): src/fuse/kernel cannot reach /dev/fuse without it.
#
# Needs: node, a C compiler, make, python3, liburing (Debian liburing-dev) and glibc >= 2.32 (strerrorname_np); the node headers
# (node_api.h and libuv's uv.h) come from npm's nodedir (or node's own prefix, e.g. /usr/include/node),
# so nothing is downloaded.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SRC="$REPO/native/fusedev"
BUILT="$SRC/build/Release/fusedev.node"
ME="build-fusedev.sh"

NOT_BUILT="native/fusedev was NOT built; the FUSE session (src/fuse/kernel) cannot reach /dev/fuse without it."
# shellcheck source=lib-build.sh
. "$REPO/scripts/lib-build.sh"
parse_force "$@"

command -v node >/dev/null 2>&1 || die "node is not on PATH"
[ -f "$SRC/fusedev.c" ] && [ -f "$SRC/binding.gyp" ] || die "missing $SRC/fusedev.c or binding.gyp"

# Loads the addon: every function and constant, a TypeError for a bad argument, and "ok" written
# through a pipe of its own then read back, the empty pipe answering -EAGAIN. Prints what loaded.
verify() {
  node -e '
    const m = require(process.argv[1])
    const fail = (why) => { console.error(process.argv[1] + ": " + why); process.exit(1) }
    for (const f of ["open", "close", "pipe", "mount", "umount", "fusermount", "fusermountUnmount", "read", "write", "writev", "poll", "cloneFd", "uringSetup", "uringFd", "uringRegister", "uringCommit", "uringSubmit", "uringReap", "uringClose"]) {
      if (typeof m[f] !== "function") fail("has no " + f + "()")
    }
    const consts = ["MNT_DETACH", "MS_NOSUID", "MS_NODEV", "MS_NOEXEC", "MS_NOATIME"]
    if (!consts.every((c) => Number.isInteger(m[c]))) fail("MNT_DETACH/MS_* missing")
    try { m.read("0", Buffer.alloc(1)); fail("read(\"0\", ...) did not throw") } catch (e) { if (!(e instanceof TypeError)) fail("read(\"0\", ...) threw " + e) }
    const [r, w] = m.pipe()
    const buf = Buffer.alloc(8)
    if (m.write(w, Buffer.from("ok"), 2) !== 2) fail("write to its pipe failed")
    if (m.read(r, buf) !== 2 || buf.toString("latin1", 0, 2) !== "ok") fail("read from its pipe failed")
    const again = m.read(r, buf)
    if (again !== -11) fail("read of an empty pipe answered " + again + ", not -EAGAIN")
    if (m.close(r) !== 0 || m.close(w) !== 0) fail("close failed")
    console.log(process.argv[1] + " (" + consts.map((c) => c + "=" + m[c]).join(" ") + ")")
  ' "$BUILT"
}

if [ "$FORCE" = 0 ] && [ -f "$BUILT" ] && [ "$BUILT" -nt "$SRC/fusedev.c" ] && [ "$BUILT" -nt "$SRC/binding.gyp" ] &&
  verify >/dev/null 2>&1; then
  say "up to date: $(verify)"
  exit 0
fi

# shellcheck source=lib-node-gyp.sh
. "$REPO/scripts/lib-node-gyp.sh"
check_build_tools
gyp_rebuild "$SRC" "$BUILT" fusedev
