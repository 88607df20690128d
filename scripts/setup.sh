#!/usr/bin/env bash
# Install everything zramfuse needs and build it. Idempotent: safe to run again and again.
#   - Debian packages (only if missing, only as root): libfuse2 fuse fio e2fsprogs util-linux,
#     and build-essential python3 patch (fuse-native's binding is patched and built from source
#     by scripts/build-fuse-native.sh, npm's postinstall), liblz4-dev libzstd-dev (the codec addon
#     native/, built by scripts/build-codec-addon.sh), lz4 zstd (the C libraries' own benchmark
#     next to ours in bench/codecs.ts; zstd --train makes the dictionaries of the tests),
#     libfuse3-dev pkg-config (the bench's C ceiling, bench/ceiling-c/ramfile.c), liburing-dev (FUSE over
#     io_uring in native/fusedev)
#   - /dev/fuse (modprobe fuse when it is missing)
#   - node modules (npm ci with package-lock.json, else npm install; its postinstall builds the
#     native code: scripts/build-fuse-native.sh, scripts/build-codec-addon.sh,
#     scripts/build-memlock.sh, scripts/build-fileio.sh and scripts/build-fusedev.sh; when the modules are up to date,
#     only those run, each idempotent)
#   - npm run build, and the bench's C ceiling (scripts/build-ceiling.sh)
# Quiet on success; on failure it prints what failed and the command's output, and exits non-zero.
# Environment: ZRAMFUSE_FORCE_INSTALL=1 reinstalls node modules even when they look up to date.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$REPO"

die() {
  echo "setup.sh: ERROR: $*" >&2
  exit 1
}

# run DESCRIPTION CMD...: run quietly, show everything if it fails
run() {
  local what="$1"
  shift
  local log
  log="$(mktemp "${TMPDIR:-/tmp}/zramfuse-setup.XXXXXX")"
  if ! "$@" >"$log" 2>&1; then
    echo "setup.sh: ERROR: $what failed: $*" >&2
    echo "----- output -----" >&2
    tail -n 200 "$log" >&2
    echo "------------------" >&2
    rm -f "$log"
    exit 1
  fi
  rm -f "$log"
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# --- 1. system packages ------------------------------------------------------------------
PACKAGES=(libfuse2 fuse fio e2fsprogs util-linux build-essential python3 patch liblz4-dev libzstd-dev lz4 zstd libfuse3-dev pkg-config liburing-dev)

package_installed() {
  dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q '^install ok installed$'
}

missing=()
if command -v dpkg-query >/dev/null 2>&1; then
  for p in "${PACKAGES[@]}"; do
    package_installed "$p" || missing+=("$p")
  done
else
  # not Debian: check for the programs and library themselves
  for tool in fusermount fio mkfs.ext4 e2fsck losetup mkswap swapon make cc python3 patch lz4 zstd; do
    command -v "$tool" >/dev/null 2>&1 || PATH="$PATH:/sbin:/usr/sbin" command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
  done
  ldconfig -p 2>/dev/null | grep -q 'libfuse\.so\.2' || missing+=("libfuse.so.2")
  for h in lz4.h zstd.h; do
    echo "#include <$h>" | cc -E -x c - >/dev/null 2>&1 || missing+=("$h")
  done
fi

if [ "${#missing[@]}" -gt 0 ]; then
  if ! is_root; then
    die "missing: ${missing[*]}. Install them as root, e.g.: sudo apt-get install -y ${PACKAGES[*]}  (or run this script as root)"
  fi
  command -v apt-get >/dev/null 2>&1 || die "missing: ${missing[*]}, and apt-get is not available: install them with your package manager"
  export DEBIAN_FRONTEND=noninteractive
  run "apt-get update" apt-get update -q
  run "apt-get install" apt-get install -y -q --no-install-recommends \
    -o Dpkg::Options::=--force-confdef -o Dpkg::Options::=--force-confold "${PACKAGES[@]}"
fi

# --- 2. /dev/fuse -------------------------------------------------------------------------
if [ ! -c /dev/fuse ]; then
  if is_root; then
    modprobe fuse >/dev/null 2>&1 || true
  fi
  [ -c /dev/fuse ] || die "/dev/fuse is missing: load the fuse module as root (modprobe fuse); in a container, pass the device in (e.g. docker run --device /dev/fuse --cap-add SYS_ADMIN)"
fi

# --- 3. node and node modules -------------------------------------------------------------
command -v node >/dev/null 2>&1 || die "node is not installed: zramfuse needs Node.js >= 20 (https://nodejs.org, or NodeSource's Debian packages)"
command -v npm >/dev/null 2>&1 || die "npm is not installed (it comes with Node.js >= 20)"
node_major="$(node -p 'process.versions.node.split(".")[0]')"
[ "$node_major" -ge 20 ] || die "Node.js $(node --version) is too old: zramfuse needs >= 20"

# Up to date when npm's own record of the installed tree (node_modules/.package-lock.json)
# is at least as new as package.json and package-lock.json.
modules_up_to_date() {
  local hidden=node_modules/.package-lock.json
  [ -f "$hidden" ] || return 1
  if [ package.json -nt "$hidden" ]; then return 1; fi
  if [ -f package-lock.json ] && [ package-lock.json -nt "$hidden" ]; then return 1; fi
  return 0
}

if [ "${ZRAMFUSE_FORCE_INSTALL:-0}" = 1 ] || ! modules_up_to_date; then
  if [ -f package-lock.json ]; then
    run "npm ci" npm ci --no-audit --no-fund
  else
    run "npm install" npm install --no-audit --no-fund
  fi
else
  # The native builds run once: npm's postinstall does them after an install (and npm ci fails
  # when they fail). When nothing was installed, they still catch a changed patch or source
  # (each is idempotent and fast when up to date). Each fails loudly.
  run "patch and build fuse-native" bash scripts/build-fuse-native.sh
  run "build the codec addon" bash scripts/build-codec-addon.sh
  run "build native/memlock" bash scripts/build-memlock.sh
  run "build native/fileio" bash scripts/build-fileio.sh
  run "build native/fusedev" bash scripts/build-fusedev.sh
fi

# --- 4. build ----------------------------------------------------------------------------
run "npm run build" npm run build
[ -f dist/daemon/cli.js ] || die "npm run build succeeded but dist/daemon/cli.js is missing"
run "build the bench's C ceiling" bash scripts/build-ceiling.sh
