# shellcheck shell=bash
# Shared helpers for zram-swap.sh and zram-mkfs.sh (sourced, not run).
# Nothing here touches the block file itself: a loop device is matched through
# /sys/block/loopN/loop/backing_file, so it works even when the daemon is gone or stuck.

die() {
  echo "$(basename "$0"): ERROR: $*" >&2
  exit 1
}

need_root() {
  [ "$(id -u)" -eq 0 ] || die "must run as root (losetup, mkswap, swapon, mount need it)"
}

# abs_path PATH: absolute, normalised, without resolving symlinks or touching the file
abs_path() {
  realpath -s -m -- "$1"
}

# loops_for FILE: every loop device (/dev/loopN) whose backing file is FILE, one per line
loops_for() {
  local want want_real d bf
  want="$(abs_path "$1")"
  # a symlinked path is attached under its target: compare with that too (timeout: a stuck
  # FUSE daemon must not hang us)
  want_real="$(timeout 5 realpath -e -- "$1" 2>/dev/null || true)"
  for d in /sys/block/loop*; do
    [ -r "$d/loop/backing_file" ] || continue
    bf="$(cat "$d/loop/backing_file" 2>/dev/null || true)"
    bf="${bf% (deleted)}"
    if [ "$bf" = "$want" ] || { [ -n "$want_real" ] && [ "$bf" = "$want_real" ]; }; then
      echo "/dev/${d##*/}"
    fi
  done
}

# is_swap DEV: true when DEV is an active swap area
is_swap() {
  awk -v dev="$1" 'NR > 1 && $1 == dev { found = 1 } END { exit !found }' /proc/swaps
}

# mounts_of DEV: mount points of file systems mounted from DEV, one per line
mounts_of() {
  findmnt -rn -S "$1" -o TARGET 2>/dev/null | sed -e 's/\\x20/ /g' || true
}

# attach FILE: losetup --direct-io=on, prints the loop device; warns when direct I/O is off
attach() {
  local file="$1" loop
  [ -f "$file" ] || die "$file is not a regular file (is the zramfuse daemon running?)"
  loop="$(losetup --direct-io=on --find --show -- "$file")" || die "losetup --direct-io=on --find --show $file failed"
  if [ "$(cat "/sys/block/${loop#/dev/}/loop/dio" 2>/dev/null || echo 0)" != 1 ]; then
    echo "$(basename "$0"): WARNING: direct I/O is not active on $loop: pages will be cached twice" >&2
  fi
  cap_requests "$loop" "$file"
  echo "$loop"
}

# detach LOOP: losetup -d, with the request cap of cap_requests taken off first (a loop device
# keeps its queue settings for its next user)
detach() {
  local q="/sys/block/${1#/dev/}/queue"
  cat "$q/max_hw_sectors_kb" > "$q/max_sectors_kb" 2>/dev/null || true
  losetup -d "$1"
}

# cap_requests LOOP FILE: no request of LOOP larger than the daemon takes in one (its
# queue/max_hw_sectors_kb). FUSE splits a larger one, and a loop device takes a write whose later
# part failed (the pool at its limit) for done: the kernel's swap would then read back pages that
# were never stored.
cap_requests() {
  local loop="$1" file="$2" kb
  local attr="${file%/dev/*}/sys/block/${file##*/}/queue/max_hw_sectors_kb"
  kb="$(cat "$attr" 2>/dev/null)" || die "cannot read $attr (is $file a zramfuse block file?)"
  if ! echo "$kb" > "/sys/block/${loop#/dev/}/queue/max_sectors_kb"; then
    detach "$loop" || true
    die "cannot cap $loop's requests at $kb KiB (loop device detached again)"
  fi
}

# orphan_loops: loop devices whose backing file is no longer at the path the kernel shows (its
# mount was lazily unmounted, e.g. by a daemon that exited while they were attached): "DEV PATH"
orphan_loops() {
  local name ino majmin file now
  losetup --list --noheadings --output NAME,BACK-INO,BACK-MAJ:MIN,BACK-FILE 2>/dev/null |
    while read -r name ino majmin file; do
      [ -n "$name" ] || continue
      file="${file% (deleted)}"
      now="$(timeout 5 stat -c '%i %Hd:%Ld' -- "$file" 2>/dev/null || true)"
      if [ "$now" != "$ino $majmin" ]; then
        echo "$name $file"
      fi
    done
}
