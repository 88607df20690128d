#!/usr/bin/env bash
# The transport against the FUSE protocol's own ceiling, interleaved in one run (issue 27):
#   C libfuse3 low-level RAM file, one thread and multi-threaded (bench/ceiling-c/ramfile.c),
#   the fuse-native RAM file (bench/ceiling.ts), zramfuse lz4 over the native transport (classic
#   /dev/fuse, and FUSE over io_uring where the kernel has it: enable_uring is set for the run and put
#   back after) and over fuse-native, and the kernel's zram (lz4), each job on each target in turn,
#   every round.
# Prints a markdown table: IOPS (median of the rounds) and the ratio to the C one-thread ceiling.
#   bash bench/transport.sh [--rounds 2] [--seconds 3] [--awake]     (root; npm run build first)
# --awake holds a 0 us PM QoS request (/dev/cpu_dma_latency): idle vCPUs poll instead of halting,
# which on this VM otherwise adds a slow wake-up to every QD1 request of every target.
set -euo pipefail
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
ROUNDS=2 SECONDS_PER_JOB=3 AWAKE=0
while [ $# -gt 0 ]; do
  case "$1" in
    --rounds) ROUNDS="$2"; shift 2 ;;
    --seconds) SECONDS_PER_JOB="$2"; shift 2 ;;
    --awake) AWAKE=1; shift ;;
    *) echo "usage: $0 [--rounds N] [--seconds S] [--awake]" >&2; exit 2 ;;
  esac
done
[ "$(id -u)" = 0 ] || { echo "$0: run as root" >&2; exit 1; }
command -v fio >/dev/null || { echo "$0: fio is missing" >&2; exit 1; }
[ -f "$REPO/dist/daemon/cli.js" ] || { echo "$0: npm run build first" >&2; exit 1; }

IDLE_DRIVER="$(cat /sys/devices/system/cpu/cpuidle/current_driver 2>/dev/null || echo unknown)"
if [ "$AWAKE" = 1 ] && [ "$IDLE_DRIVER" = none ]; then
  # As npm run bench: without a cpuidle driver idle vCPUs halt whatever PM QoS asks.
  echo "$0: --awake cannot keep CPUs from halting here: the cpuidle driver is \"none\"; run without --awake" >&2
  exit 2
fi

W="$(mktemp -d /tmp/zramfuse-transport-XXXXXX)"
SIZE_MB=256
PIDS=()
KZ=""
URING_PARAM=/sys/module/fuse/parameters/enable_uring
URING_WAS=""
cleanup() {
  set +e
  for m in "$W"/c1 "$W"/cm "$W"/fn; do mountpoint -q "$m" && umount "$m"; done
  for m in "$W"/zn "$W"/zu "$W"/zf; do [ -d "$m/dev" ] && node "$REPO/dist/daemon/cli.js" stop --mount "$m" >/dev/null 2>&1; done
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
  [ -n "$KZ" ] && echo 1 > /sys/block/zram0/reset
  [ -n "$URING_WAS" ] && echo "$URING_WAS" > "$URING_PARAM"
  sleep 0.5
  rm -rf "$W"
}
trap cleanup EXIT
trap "exit 130" INT TERM HUP

if [ "$AWAKE" = 1 ]; then
  python3 -c 'import os,struct,time; f=os.open("/dev/cpu_dma_latency",os.O_WRONLY); os.write(f,struct.pack("i",0)); time.sleep(1e9)' &
  PIDS+=($!)
fi

# The C ceiling (libfuse3 low level): built here, as it needs only Debian's libfuse3-dev.
C_OK=0
if pkg-config --exists fuse3 2>/dev/null; then
  cc -O2 -Wall -o "$W/ramfile" "$REPO/bench/ceiling-c/ramfile.c" $(pkg-config --cflags --libs fuse3) && C_OK=1
else
  echo "# no libfuse3-dev (pkg-config fuse3): the C ceiling is left out" >&2
fi

declare -A FILE
TARGETS=()
wait_for() { for _ in $(seq 100); do [ -e "$1" ] && return 0; sleep 0.1; done; echo "$0: $1 did not appear" >&2; return 1; }
if [ "$C_OK" = 1 ]; then
  mkdir -p "$W/c1" "$W/cm"
  "$W/ramfile" "$W/c1" "$SIZE_MB" -s 2>"$W/c1.log" & PIDS+=($!)
  "$W/ramfile" "$W/cm" "$SIZE_MB" 2>"$W/cm.log" & PIDS+=($!)
  wait_for "$W/c1/dev/zram0"; wait_for "$W/cm/dev/zram0"
  FILE[c1]="$W/c1/dev/zram0"; FILE[cm]="$W/cm/dev/zram0"; TARGETS+=(c1 cm)
fi
mkdir -p "$W/fn" "$W/zn" "$W/zf"
node "$REPO/dist/bench/ceiling.js" --mount "$W/fn" --size "${SIZE_MB}M" 2>"$W/fn.log" & PIDS+=($!)
node "$REPO/dist/daemon/cli.js" start --mount "$W/zn" --disksize "${SIZE_MB}M" 2>"$W/zn.log" & PIDS+=($!)
node "$REPO/dist/daemon/cli.js" start --mount "$W/zf" --disksize "${SIZE_MB}M" --transport fuse-native 2>"$W/zf.log" & PIDS+=($!)
wait_for "$W/fn/dev/zram0"; wait_for "$W/zn/dev/zram0"; wait_for "$W/zf/dev/zram0"
FILE[fn]="$W/fn/dev/zram0"; FILE[zn]="$W/zn/dev/zram0"
TARGETS+=(fn zn)
if [ -w "$URING_PARAM" ]; then
  URING_WAS="$(cat "$URING_PARAM")"
  echo Y > "$URING_PARAM"
  mkdir -p "$W/zu"
  node "$REPO/dist/daemon/cli.js" start --mount "$W/zu" --disksize "${SIZE_MB}M" --fuse-uring on 2>"$W/zu.log" & PIDS+=($!)
  wait_for "$W/zu/dev/zram0"; FILE[zu]="$W/zu/dev/zram0"; TARGETS+=(zu)
else
  echo "# no $URING_PARAM (kernel without FUSE over io_uring, or not root): the io_uring target is left out" >&2
fi
FILE[zf]="$W/zf/dev/zram0"; TARGETS+=(zf)
if [ -e /sys/block/zram0/disksize ] && ! grep -q '^/dev/zram0 ' /proc/swaps && ! grep -q '^/dev/zram0 ' /proc/mounts; then
  echo 1 > /sys/block/zram0/reset
  echo lz4 > /sys/block/zram0/comp_algorithm
  echo "${SIZE_MB}M" > /sys/block/zram0/disksize
  KZ=1; FILE[kz]=/dev/zram0; TARGETS+=(kz)
fi

FIO_DATA=(--buffer_compress_percentage=50 --refill_buffers --randseed=27)
for t in "${TARGETS[@]}"; do
  fio --name=fill --filename="${FILE[$t]}" --direct=1 --rw=write --bs=1M --size=$((SIZE_MB - 16))M "${FIO_DATA[@]}" --output-format=terse >/dev/null
done

JOBS=("randread 4k 1" "randwrite 4k 1" "randread 4k 4" "read 128k 1" "write 128k 1" "read 1M 1" "write 1M 1")
declare -A FIG
for round in $(seq "$ROUNDS"); do
  for job in "${JOBS[@]}"; do
    set -- $job
    for t in "${TARGETS[@]}"; do
      iops=$(fio --name=j --filename="${FILE[$t]}" --direct=1 --ioengine=psync --rw="$1" --bs="$2" --numjobs="$3" --group_reporting \
        --size=$((SIZE_MB - 16))M --runtime="$SECONDS_PER_JOB" --time_based "${FIO_DATA[@]}" --output-format=json 2>/dev/null |
        python3 -c 'import json,sys; j=json.load(sys.stdin)["jobs"][0]; r=j["read"] if j["read"]["io_bytes"] else j["write"]; print(int(r["iops"]))')
      FIG["$job|$t"]="${FIG["$job|$t"]:-} $iops"
    done
  done
done

declare -A NAME=([c1]="C libfuse3, 1 thread" [cm]="C libfuse3, multi-threaded" [fn]="fuse-native RAM file" [zn]="zramfuse lz4, native" [zu]="zramfuse lz4, native over io_uring" [zf]="zramfuse lz4, fuse-native" [kz]="kernel zram lz4")
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print int((a[NR/2]+a[NR/2+1])/2)}'; }
echo "# Transport against the C ceiling, $(date -u +%FT%TZ), $(git -C "$REPO" rev-parse --short HEAD), ${ROUNDS} rounds of ${SECONDS_PER_JOB} s, $( [ "$AWAKE" = 1 ] && echo awake || echo 'vCPUs halting when idle'), cpuidle driver ${IDLE_DRIVER}"
echo
printf '| job (IOPS, median; ratio to C 1 thread) |'; for t in "${TARGETS[@]}"; do printf ' %s |' "${NAME[$t]}"; done; echo
printf '|---|'; for _ in "${TARGETS[@]}"; do printf -- '---:|'; done; echo
for job in "${JOBS[@]}"; do
  set -- $job
  label="$2 $1$( [ "$3" = 1 ] && echo ' QD1' || echo ", $3 jobs")"
  base=$(echo "${FIG["$job|c1"]:-}" | median)
  printf '| %s |' "$label"
  for t in "${TARGETS[@]}"; do
    m=$(echo "${FIG["$job|$t"]}" | median)
    if [ -n "$base" ] && [ "$base" -gt 0 ]; then printf ' %s (%.2fx) |' "$m" "$(echo "$m / $base" | bc -l)"; else printf ' %s |' "$m"; fi
  done
  echo
done
