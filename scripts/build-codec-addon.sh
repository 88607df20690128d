#!/usr/bin/env bash
# Build native/zcodec.node, the N-API addon over the system's liblz4 and libzstd (src/codec), from
# source with node-gyp, offline. Run by `npm ci` / `npm install` (the root package's postinstall)
# and by scripts/setup.sh; safe to run by hand at any time.
#   bash scripts/build-codec-addon.sh [--force]     (--force: rebuild even when up to date)
#
# Idempotent: nothing is rebuilt while native/build/Release/zcodec.node is newer than its sources
# and passes the check below. Fails loudly (exit 1, message on stderr) when the headers or a
# compiler are missing, the build fails, or the built addon does not round-trip a page with lz4 and
# zstd: zramfuse has no other codec to fall back to.
#
# Needs: node, a C compiler, make, python3, and the Debian packages liblz4-dev libzstd-dev (the
# headers; scripts/setup.sh installs them). Node's headers come from npm's nodedir or node's own
# prefix (e.g. /usr/include/node), so nothing is downloaded.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DIR="$REPO/native"
BUILT="$DIR/build/Release/zcodec.node"
ME="build-codec-addon.sh"

NOT_BUILT="the codec addon (native/zcodec.node) was NOT built; zramfuse cannot compress without it."
# shellcheck source=lib-build.sh
. "$REPO/scripts/lib-build.sh"
parse_force "$@"

command -v node >/dev/null 2>&1 || die "node is not on PATH"

# Loads the addon and round-trips one page with each codec; prints the library versions.
verify() {
  node -e '
    const z = require(process.argv[1])
    const page = Buffer.alloc(4096)
    for (let i = 0; i < page.length; i++) page[i] = (i * 31) % 251 < 64 ? 0 : (i * 7) & 0xff
    const dst = Buffer.alloc(8192), out = Buffer.alloc(4096)
    for (const ctx of [z.lz4Create(1, null), z.zstdCreate(3, null)]) {
      const n = z.compress(ctx, page, dst)
      if (!(n > 0 && n < 4096)) throw new Error("compress returned " + n)
      z.decompress(ctx, dst.subarray(0, n), out)
      if (!out.equals(page)) throw new Error("a page did not round-trip")
    }
    const v = z.versions()
    console.log(process.argv[1] + " (lz4 " + v.lz4 + ", zstd " + v.zstd + ")")
  ' "$BUILT"
}

newer_than_sources() {
  [ -f "$BUILT" ] && [ "$BUILT" -nt "$DIR/zcodec.c" ] && [ "$BUILT" -nt "$DIR/binding.gyp" ]
}

if [ "$FORCE" = 0 ] && newer_than_sources && verify >/dev/null 2>&1; then
  say "up to date: $(verify)"
  exit 0
fi

# shellcheck source=scripts/lib-node-gyp.sh
. "$REPO/scripts/lib-node-gyp.sh"
check_build_tools
for h in lz4.h zstd.h zstd_errors.h; do
  echo "#include <$h>" | "${CC:-cc}" -E -x c - >/dev/null 2>&1 ||
    die "the C header $h is missing (apt-get install liblz4-dev libzstd-dev, or run scripts/setup.sh as root)"
done
gyp_rebuild "$DIR" "$BUILT" codec
