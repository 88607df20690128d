# Sourced first by every scripts/build-*.sh: the preamble they share. The caller sets ME (its own
# name) and NOT_BUILT (what its failure means, said after every error), then calls parse_force "$@".
#
#   die MESSAGE          "$ME: ERROR: MESSAGE" and "$ME: $NOT_BUILT" on stderr, exit 1
#   say MESSAGE          "$ME: MESSAGE" on stdout
#   parse_force ARGS...  FORCE=1 with --force (rebuild even when up to date), else 0; dies on any other argument

die() {
  echo "$ME: ERROR: $*" >&2
  echo "$ME: $NOT_BUILT" >&2
  exit 1
}

say() { echo "$ME: $*"; }

parse_force() {
  FORCE=0
  local arg
  for arg in "$@"; do
    case "$arg" in
      --force) FORCE=1 ;;
      *) die "unknown argument: $arg (usage: $ME [--force])" ;;
    esac
  done
}
