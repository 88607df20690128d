#!/usr/bin/env bash
# Install what is missing, build, and run the zramfuse daemon in the foreground.
#   scripts/start.sh [MOUNT] [extra zramfuse start options...]
# MOUNT defaults to /mnt/zramfuse; the device defaults to 1G (override with --disksize).
# Stop it with Ctrl-C (or SIGTERM), after detaching swap / file systems (see the hints printed).
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

MOUNT=/mnt/zramfuse
if [ "$#" -gt 0 ] && [ "${1#-}" = "$1" ]; then
  MOUNT="$1"
  shift
fi
case "$MOUNT" in
  /*) ;;
  *) MOUNT="$(pwd)/$MOUNT" ;;
esac

bash "$REPO/scripts/setup.sh"

args=(start --mount "$MOUNT")
has_disksize=0
for a in "$@"; do
  case "$a" in --disksize | --disksize=*) has_disksize=1 ;; esac
done
[ "$has_disksize" = 1 ] || args+=(--disksize 1G)
args+=("$@")

DEV="$MOUNT/dev/zram0"
SYS="$MOUNT/sys/block/zram0"
S="$REPO/scripts"
CLI="node $REPO/dist/daemon/cli.js"
cat >&2 <<USAGE
zramfuse: starting on $MOUNT (block device file: $DEV)
Use it from another shell, as root:
  # swap: losetup --direct-io=on + mkswap + swapon; and back: swapoff, then losetup -d
  $S/zram-swap.sh on $DEV --priority 100 --discard
  $S/zram-swap.sh off $DEV
  # ext4: losetup --direct-io=on + mkfs.ext4 + mount; and back: umount, then losetup -d
  $S/zram-mkfs.sh mount $DEV /mnt/zram-ext4
  $S/zram-mkfs.sh umount /mnt/zram-ext4
  # fio straight on the block file
  fio --name=zram --filename=$DEV --direct=1 --ioengine=psync --rw=randrw --bs=4k --size=256M --verify=crc32c
  # statistics, as the kernel's zram prints them (mm_stat: orig_data_size compr_data_size
  # mem_used_total mem_limit mem_used_max same_pages pages_compacted huge_pages huge_pages_since)
  cat $SYS/mm_stat $SYS/io_stat
  $CLI status --mount $MOUNT
  # stop: Ctrl-C here, or the line below (it refuses while the device is swap, mounted or on a
  # loop device: run the "off" / "umount" lines first, or add --force to do that for you)
  $CLI stop --mount $MOUNT
USAGE

exec node "$REPO/dist/daemon/cli.js" "${args[@]}"
