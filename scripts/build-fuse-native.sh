#!/usr/bin/env bash
# Patch node_modules/fuse-native with patches/fuse-native+2.2.6+fallocate.patch (the libfuse
# fallocate operation) and build its native binding from source, offline, with node-gyp.
# Run by `npm ci` / `npm install` as the root package's postinstall; safe to run by hand at any time.
#   bash scripts/build-fuse-native.sh [--force]     (--force: rebuild even when up to date)
#
# Idempotent: a copy of the applied patch is kept as node_modules/fuse-native/.zramfuse-fallocate.patch;
# when it equals patches/... the patch is not applied again, and when build/Release/fuse.node is
# newer than the patched sources and loads with the fallocate op, nothing is rebuilt. An older
# version of our patch is reversed first and the new one applied.
#
# Fails loudly (exit 1, message on stderr) when the patch does not apply, the build fails, or the
# module would not load the freshly built build/Release/fuse.node with the fallocate op: there is
# no fallback to fuse-native's unpatched prebuilt binary (prebuilds/linux-x64/node.napi.node).
#
# Needs: node, a C compiler, make, python3 and patch (or git); the libfuse 2.9 headers come from
# node_modules/fuse-shared-library-linux and the node headers from npm's nodedir (or node's own
# prefix, e.g. /usr/include/node), so nothing is downloaded.
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
FN="$REPO/node_modules/fuse-native"
PATCH="$REPO/patches/fuse-native+2.2.6+fallocate.patch"
STAMP="$FN/.zramfuse-fallocate.patch"
WANT_VERSION="2.2.6"
ME="build-fuse-native.sh"

NOT_BUILT="fuse-native was NOT built with fallocate; zramfuse needs it (discard/write-zeroes). Not falling back to the prebuilt binary."
# shellcheck source=lib-build.sh
. "$REPO/scripts/lib-build.sh"
parse_force "$@"

now_ms() { echo $(($(date +%s%N) / 1000000)); }
secs_since() { local ms=$(($(now_ms) - $1)); printf '%d.%03d' $((ms / 1000)) $((ms % 1000)); }
start_ms=$(now_ms)

command -v node >/dev/null 2>&1 || die "node is not on PATH"
[ -f "$PATCH" ] || die "missing $PATCH"
[ -f "$FN/package.json" ] || die "$FN is missing: install the node modules first (npm ci)"
have_version="$(node -p "require('$FN/package.json').version")"
[ "$have_version" = "$WANT_VERSION" ] ||
  die "node_modules/fuse-native is $have_version, the patch is for $WANT_VERSION: update patches/ (and this script) together with package.json"

# --- 1. patch --------------------------------------------------------------------------------
# apply_patch [-R] [--dry-run]: patch(1) when present, else git apply (works outside a repository)
apply_patch() {
  local reverse=0 dry=0 a
  for a in "$@"; do
    case "$a" in
      -R) reverse=1 ;;
      --dry-run) dry=1 ;;
    esac
  done
  local patchfile="$PATCH"
  [ "$reverse" = 1 ] && patchfile="$STAMP"
  if command -v patch >/dev/null 2>&1; then
    local args=(-p1 --batch --silent -d "$FN")
    [ "$reverse" = 1 ] && args+=(-R) || args+=(--forward)
    [ "$dry" = 1 ] && args+=(--dry-run)
    # no .orig/.rej files left behind in node_modules
    args+=(--no-backup-if-mismatch -r -)
    patch "${args[@]}" <"$patchfile"
  elif command -v git >/dev/null 2>&1; then
    local args=(apply -p1 --directory=)
    [ "$reverse" = 1 ] && args+=(-R)
    [ "$dry" = 1 ] && args+=(--check)
    (cd "$FN" && git "${args[@]}" "$patchfile")
  else
    die "neither patch nor git is installed (apt-get install patch)"
  fi
}

patched_now=0
if [ -f "$STAMP" ] && cmp -s "$STAMP" "$PATCH"; then
  grep -q 'op_fallocate' "$FN/fuse-native.c" && grep -q '_op_fallocate' "$FN/index.js" ||
    die "$STAMP says the patch is applied, but fuse-native.c/index.js lack op_fallocate: reinstall (rm -rf node_modules && npm ci)"
else
  if [ -f "$STAMP" ]; then
    say "reversing the previously applied (older) version of the patch"
    apply_patch -R --dry-run >/dev/null 2>&1 ||
      die "the previously applied patch ($STAMP) does not reverse cleanly: reinstall (rm -rf node_modules && npm ci)"
    apply_patch -R >/dev/null
    rm -f "$STAMP"
  fi
  if grep -q 'op_fallocate' "$FN/fuse-native.c"; then
    die "node_modules/fuse-native already mentions op_fallocate, but not through this patch: reinstall (rm -rf node_modules && npm ci)"
  fi
  if ! out="$(apply_patch --dry-run 2>&1)"; then
    echo "$out" >&2
    die "patches/$(basename "$PATCH") does not apply to node_modules/fuse-native"
  fi
  apply_patch >/dev/null
  cp "$PATCH" "$STAMP"
  patched_now=1
  say "applied patches/$(basename "$PATCH")"
fi

# --- 2. verify: what does require('fuse-native') load? ----------------------------------------
# Prints the loaded .node file on success; exits non-zero with a reason otherwise.
verify() {
  (cd "$REPO" && node -e '
    const path = require("path")
    const fn = path.dirname(require.resolve("fuse-native/package.json"))
    const want = path.join(fn, "build", "Release", "fuse.node")
    const resolved = require(require.resolve("node-gyp-build", { paths: [fn] })).resolve(fn)
    if (resolved !== want) {
      console.error("node-gyp-build resolves fuse-native to " + resolved + ", not " + want +
        (process.env.PREBUILDS_ONLY ? " (PREBUILDS_ONLY is set)" : "") +
        (process.env.FUSE_NATIVE_PREBUILD ? " (FUSE_NATIVE_PREBUILD is set)" : ""))
      process.exit(1)
    }
    const Fuse = require("fuse-native")
    const loaded = Object.keys(require.cache).filter((k) => k.endsWith(".node"))
    if (!loaded.includes(want) || loaded.some((k) => k.includes(path.sep + "prebuilds" + path.sep))) {
      console.error("require(\"fuse-native\") loaded " + JSON.stringify(loaded) + ", expected " + want)
      process.exit(1)
    }
    const binding = require(want)
    if (typeof binding.op_fallocate !== "number" || typeof binding.fuse_native_signal_fallocate !== "function") {
      console.error(want + " has no fallocate op (op_fallocate=" + binding.op_fallocate + ")")
      process.exit(1)
    }
    // the JS wrapper is patched too: it accepts ops.fallocate (it throws when the binding lacks it)
    new Fuse("/nonexistent-zramfuse-check", { fallocate () {} })
    if (typeof Fuse.prototype._op_fallocate !== "function") {
      console.error("node_modules/fuse-native/index.js has no _op_fallocate")
      process.exit(1)
    }
    console.log(want + " (op_fallocate=" + binding.op_fallocate + ")")
  ')
}

built="$FN/build/Release/fuse.node"
if [ "$FORCE" = 0 ] && [ "$patched_now" = 0 ] && [ -f "$built" ] &&
  [ "$built" -nt "$FN/fuse-native.c" ] && verify >/dev/null 2>&1; then
  say "up to date: $(verify)"
  exit 0
fi

# --- 3. build from source ---------------------------------------------------------------------
# shellcheck source=lib-node-gyp.sh
. "$REPO/scripts/lib-node-gyp.sh"
check_build_tools
node_gyp="$(node_gyp_path)"
nodedir="$(node_headers_dir)"

log="$(mktemp "${TMPDIR:-/tmp}/zramfuse-fuse-native-build.XXXXXX")"
trap 'rm -f "$log"' EXIT
build_start_ms=$(now_ms)
if ! (cd "$FN" && node "$node_gyp" rebuild --nodedir="$nodedir") >"$log" 2>&1; then
  echo "----- node-gyp output (last 60 lines) -----" >&2
  tail -n 60 "$log" >&2
  echo "--------------------------------------------" >&2
  die "node-gyp rebuild failed in $FN (node-gyp $node_gyp, nodedir $nodedir)"
fi
build_s="$(secs_since "$build_start_ms")"
[ -f "$built" ] || die "node-gyp succeeded but $built is missing"

if ! what="$(verify 2>&1)"; then
  echo "$what" >&2
  die "the freshly built binding is not the one fuse-native loads, or it lacks fallocate"
fi
total_s="$(secs_since "$start_ms")"
say "built and verified: $what (node-gyp ${build_s}s, total ${total_s}s)"
