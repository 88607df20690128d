#!/usr/bin/env bash
# Put a file system on a zramfuse block file and mount it, and take it down in the safe order.
#   zram-mkfs.sh mount BLOCKFILE MOUNTPOINT [--fs ext4] [--mount-options OPTS] [mkfs options...]
#        losetup --direct-io=on --find --show BLOCKFILE; mkfs.<fs> (ext4: -q); mkdir -p; mount
#        prints the loop device on stdout
#   zram-mkfs.sh umount MOUNTPOINT
#        umount MOUNTPOINT, then losetup -d the loop device that was mounted there
set -euo pipefail
# shellcheck source=scripts/lib-loop.sh
. "$(dirname "${BASH_SOURCE[0]}")/lib-loop.sh"

usage() {
  echo "usage: $(basename "$0") mount BLOCKFILE MOUNTPOINT [--fs ext4] [--mount-options OPTS] [mkfs options...]" >&2
  echo "       $(basename "$0") umount MOUNTPOINT" >&2
  exit 2
}

cmd_mount() {
  [ "$#" -ge 2 ] || usage
  local file="$1" mp="$2"
  shift 2
  local fs=ext4 mount_opts="" mkfs_opts=()
  while [ "$#" -gt 0 ]; do
    case "$1" in
      --fs) [ "$#" -ge 2 ] || usage; fs="$2"; shift 2 ;;
      --fs=*) fs="${1#--fs=}"; shift ;;
      --mount-options | -o) [ "$#" -ge 2 ] || usage; mount_opts="$2"; shift 2 ;;
      --mount-options=*) mount_opts="${1#--mount-options=}"; shift ;;
      *) mkfs_opts+=("$1"); shift ;;
    esac
  done
  need_root
  command -v "mkfs.$fs" >/dev/null 2>&1 || die "mkfs.$fs not found"
  local existing
  existing="$(loops_for "$file" | tr '\n' ' ')"
  [ -z "$existing" ] || die "$file is already attached to ${existing% }"

  local loop
  loop="$(attach "$file")"
  case "$fs" in
    ext2 | ext3 | ext4 | xfs) mkfs_opts=(-q "${mkfs_opts[@]}") ;;
  esac
  if ! "mkfs.$fs" "${mkfs_opts[@]}" "$loop" >/dev/null; then
    detach "$loop" || true
    die "mkfs.$fs ${mkfs_opts[*]} $loop failed (loop device detached again)"
  fi
  mkdir -p -- "$mp"
  local mo=()
  [ -z "$mount_opts" ] || mo=(-o "$mount_opts")
  if ! mount "${mo[@]}" -- "$loop" "$mp"; then
    detach "$loop" || true
    die "mount $loop $mp failed (loop device detached again)"
  fi
  echo "$loop"
}

cmd_umount() {
  [ "$#" -eq 1 ] || usage
  local mp src
  mp="$(abs_path "$1")"
  need_root
  src="$(findmnt -rn -M "$mp" -o SOURCE 2>/dev/null | tail -n 1 || true)"
  [ -n "$src" ] || die "nothing is mounted at $mp"
  case "$src" in
    /dev/loop[0-9]*) ;;
    *) die "$mp is mounted from $src, not from a loop device" ;;
  esac
  umount -- "$mp" || die "umount $mp failed (is something using it? see: fuser -vm $mp)"
  # the same loop device may be mounted elsewhere too: only detach it when nothing uses it
  local loop="$src"
  if [[ "$src" =~ ^(/dev/loop[0-9]+)p[0-9]+$ ]]; then loop="${BASH_REMATCH[1]}"; fi
  if [ -n "$(mounts_of "$loop")" ] || is_swap "$loop"; then
    echo "$(basename "$0"): $loop is still in use elsewhere: not detaching it" >&2
    return 0
  fi
  detach "$loop" || die "losetup -d $loop failed"
}

[ "$#" -ge 1 ] || usage
action="$1"
shift
case "$action" in
  mount) cmd_mount "$@" ;;
  umount | unmount) cmd_umount "$@" ;;
  *) usage ;;
esac
