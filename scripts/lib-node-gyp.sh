# Sourced by the scripts that build native code from source, offline, with node-gyp
# (scripts/build-fuse-native.sh, scripts/build-codec-addon.sh, scripts/build-memlock.sh, build-fusedev.sh,
# scripts/build-fileio.sh). Needs `die` defined by the caller (scripts/lib-build.sh).
#
#   node_gyp_path     prints node-gyp.js: npm's own (npm exports it to lifecycle scripts), else
#                     the one bundled with npm, else a project-local one
#   node_headers_dir  prints a nodedir with include/node/{node_api.h,common.gypi}: npm's nodedir
#                     config, else node's own install prefix (e.g. /usr), so nothing is downloaded
#   check_build_tools dies unless make, python3 and a C compiler are installed
#   gyp_rebuild DIR BUILT TAG
#                     node-gyp rebuild in DIR (output kept in a temp file, its tail shown on
#                     failure), then BUILT must exist and the caller's `verify` must pass; says
#                     what loaded and how long it took. Needs `say` and `verify` defined by the caller.

node_gyp_path() {
  local repo npm_bundled="" cand
  repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  if command -v npm >/dev/null 2>&1; then
    npm_bundled="$(dirname "$(readlink -f "$(command -v npm)")")/../node_modules/node-gyp/bin/node-gyp.js"
  fi
  for cand in "${npm_config_node_gyp:-}" "$npm_bundled" "$repo/node_modules/node-gyp/bin/node-gyp.js"; do
    if [ -n "$cand" ] && [ -f "$cand" ]; then
      readlink -f "$cand"
      return 0
    fi
  done
  die "node-gyp not found (it ships with npm: reinstall npm)"
}

node_headers_dir() {
  local nodedir="${npm_config_nodedir:-}"
  if [ -z "$nodedir" ] && command -v npm >/dev/null 2>&1; then
    nodedir="$(npm config get nodedir 2>/dev/null || true)"
    if [ "$nodedir" = "undefined" ] || [ "$nodedir" = "null" ]; then nodedir=""; fi
  fi
  if [ -z "$nodedir" ]; then
    nodedir="$(node -p 'require("path").resolve(process.execPath, "..", "..")')"
  fi
  [ -f "$nodedir/include/node/node_api.h" ] && [ -f "$nodedir/include/node/common.gypi" ] ||
    die "no node headers under $nodedir/include/node (node-gyp would try to download them): set npm's nodedir to a directory with include/node/{node_api.h,common.gypi}"
  echo "$nodedir"
}

check_build_tools() {
  local tool
  for tool in make python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is not installed (apt-get install build-essential python3)"
  done
  command -v "${CC:-cc}" >/dev/null 2>&1 || die "no C compiler (${CC:-cc}) (apt-get install build-essential)"
}

gyp_rebuild() {
  local dir="$1" built="$2" tag="$3" node_gyp nodedir log start_ms what ms
  node_gyp="$(node_gyp_path)"
  nodedir="$(node_headers_dir)"
  log="$(mktemp "${TMPDIR:-/tmp}/zramfuse-$tag-build.XXXXXX")"
  start_ms=$(($(date +%s%N) / 1000000))
  if ! (cd "$dir" && node "$node_gyp" rebuild --nodedir="$nodedir") >"$log" 2>&1; then
    echo "----- node-gyp output (last 60 lines) -----" >&2
    tail -n 60 "$log" >&2
    echo "--------------------------------------------" >&2
    rm -f "$log"
    die "node-gyp rebuild failed in $dir (node-gyp $node_gyp, nodedir $nodedir)"
  fi
  rm -f "$log"
  [ -f "$built" ] || die "node-gyp succeeded but $built is missing"
  if ! what="$(verify 2>&1)"; then
    echo "$what" >&2
    die "the freshly built $built does not load or does not pass its check"
  fi
  ms=$(($(date +%s%N) / 1000000 - start_ms))
  say "built and verified: $what (node-gyp $((ms / 1000)).$(printf '%03d' $((ms % 1000)))s)"
}
