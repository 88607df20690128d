#!/usr/bin/env bash
# Use a zramfuse block file as swap, and stop using it, in the only safe order.
#   zram-swap.sh on  BLOCKFILE [--priority N] [--discard[=once|pages]]
#        losetup --direct-io=on --find --show BLOCKFILE; mkswap; swapon [options];
#        prints the loop device on stdout
#   zram-swap.sh off BLOCKFILE
#        for every loop device backed by BLOCKFILE: swapoff (if active), then losetup -d
# Always turn swap off BEFORE stopping the daemon: swap on a loop device whose daemon is gone
# loses the swapped-out memory of every process using it.
set -euo pipefail
# shellcheck source=scripts/lib-loop.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-loop.sh"

usage() {
  echo "usage: $(basename "$0") on BLOCKFILE [--priority N] [--discard[=once|pages]]" >&2
  echo "       $(basename "$0") off BLOCKFILE" >&2
  exit 2
}

cmd_on() {
  local file="$1"
  shift
  local swapon_opts=()
  while [ "$#" -gt 0 ]; do
    case "$1" in
      --priority | -p)
        [ "$#" -ge 2 ] || usage
        swapon_opts+=(--priority "$2")
        shift 2
        ;;
      --priority=*) swapon_opts+=("$1"); shift ;;
      --discard | --discard=once | --discard=pages) swapon_opts+=("$1"); shift ;;
      --discard=*) die "unknown discard policy in $1 (once or pages)" ;;
      *) usage ;;
    esac
  done
  need_root
  local existing
  existing="$(loops_for "$file" | tr '\n' ' ')"
  [ -z "$existing" ] || die "$file is already attached to ${existing% } (run: $(basename "$0") off $file)"

  local loop
  loop="$(attach "$file")"
  # from here on, undo the loop device if a later step fails
  if ! mkswap -q -- "$loop" >/dev/null; then
    detach "$loop" || true
    die "mkswap $loop failed (loop device detached again)"
  fi
  if ! swapon "${swapon_opts[@]}" -- "$loop"; then
    detach "$loop" || true
    die "swapon ${swapon_opts[*]} $loop failed (loop device detached again)"
  fi
  echo "$loop"
}

cmd_off() {
  local file="$1" loop rc=0 mp line
  need_root
  local loops
  loops="$(loops_for "$file")"
  if [ -z "$loops" ]; then
    local orphans
    orphans="$(orphan_loops)"
    if [ -n "$orphans" ] && [ ! -e "$file" ]; then
      {
        echo "$(basename "$0"): ERROR: $file is gone, and these loop devices are backed by files that"
        echo "  are no longer where the kernel says (a zramfuse daemon exited while they were attached?):"
        while IFS= read -r line; do echo "    $line"; done <<<"$orphans"
        echo "  If one of them was $file: swapoff DEV (if it is in /proc/swaps), then losetup -d DEV."
        echo "  (swapoff fails, and processes with memory there are killed, when the data is gone.)"
      } >&2
      return 1
    fi
    echo "$(basename "$0"): $file is not attached to any loop device" >&2
    return 0
  fi
  for loop in $loops; do
    if is_swap "$loop"; then
      # swapoff reads every swapped page back: it needs the daemon alive and memory to spare
      if ! swapoff -- "$loop"; then
        echo "$(basename "$0"): ERROR: swapoff $loop failed: NOT detaching it (the loop device stays)" >&2
        rc=1
        continue
      fi
    fi
    mp="$(mounts_of "$loop")"
    if [ -n "$mp" ]; then
      echo "$(basename "$0"): ERROR: $loop is mounted at $(echo "$mp" | tr '\n' ' ')- not detaching it (use zram-mkfs.sh umount)" >&2
      rc=1
      continue
    fi
    if ! detach "$loop"; then
      echo "$(basename "$0"): ERROR: losetup -d $loop failed" >&2
      rc=1
    fi
  done
  return "$rc"
}

[ "$#" -ge 2 ] || usage
action="$1"
shift
case "$action" in
  on) cmd_on "$@" ;;
  off) [ "$#" -eq 1 ] || usage; cmd_off "$1" ;;
  *) usage ;;
esac
