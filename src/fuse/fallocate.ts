/**
 * fallocate(2) on the block file: the only way discard and write-zeroes reach us over FUSE.
 *
 * fuse-native gets the operation from patches/fuse-native+2.2.6+fallocate.patch (applied and built
 * by scripts/build-fuse-native.sh at npm install); its JS signature is
 *   ops.fallocate(path, fd, mode, offset, length, cb)   cb(0) or cb(-errno)
 * with `mode` the FALLOC_FL_* bits below, exactly as the kernel sent them.
 *
 * What reaches the daemon (observed on Linux 6.18, matching the kernel sources):
 * - fs/fuse (fuse_file_fallocate) forwards only combinations of KEEP_SIZE, PUNCH_HOLE and
 *   ZERO_RANGE (anything else fails with EOPNOTSUPP in the kernel), and vfs_fallocate already
 *   refuses PUNCH_HOLE without KEEP_SIZE, offset < 0 and length <= 0. So in practice the daemon
 *   sees the modes 0, KEEP_SIZE, PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE and ZERO_RANGE|KEEP_SIZE.
 * - A loop device over the block file (drivers/block/loop.c, do_req_filebacked/lo_fallocate) ORs
 *   KEEP_SIZE into every request:
 *     REQ_OP_DISCARD (blkdiscard, fstrim, swapon --discard, mkfs's discard) -> PUNCH_HOLE|KEEP_SIZE
 *     REQ_OP_WRITE_ZEROES with REQ_NOUNMAP (BLKZEROOUT = `blkdiscard -z`, fallocate ZERO_RANGE on
 *       the loop device)                                                 -> ZERO_RANGE|KEEP_SIZE
 *     REQ_OP_WRITE_ZEROES without REQ_NOUNMAP (fallocate PUNCH_HOLE on the loop device, which the
 *       block layer turns into a may-unmap zeroout)                      -> PUNCH_HOLE|KEEP_SIZE
 *   So PUNCH_HOLE must read back as zeros afterwards (it also carries write-zeroes), which is why
 *   partial pages at the edges are zeroed in place rather than skipped as zram's own discard does.
 * - The errno matters to the loop device: anything but EINVAL and EOPNOTSUPP becomes EIO on the
 *   block request, and one EOPNOTSUPP answer to a discard or write-zeroes makes the loop device
 *   clear its discard (and, for ZERO_RANGE, write-zeroes) limits for good (seen on 6.18:
 *   queue/discard_max_bytes drops to 0 and "operation not supported error" is logged). Answer the
 *   two supported modes with 0, EINVAL (bad range) or EIO (internal failure), never EOPNOTSUPP.
 * - Never answer ENOSYS: the kernel then marks the whole mount no_fallocate and every later
 *   fallocate fails with EOPNOTSUPP without reaching us.
 *
 * The rules below are those of the kernel's own block devices (block/fops.c, blkdev_fallocate, as
 * in 6.13+ where NO_HIDE_STALE is gone): `fallocate /dev/zram0` accepts exactly
 * PUNCH_HOLE|KEEP_SIZE, ZERO_RANGE and ZERO_RANGE|KEEP_SIZE and fails anything else, including
 * plain preallocation (mode 0 or KEEP_SIZE alone: a block device has nothing to allocate), with
 * EOPNOTSUPP; an offset at or past the end is EINVAL; a range running past the end is clamped
 * when KEEP_SIZE is set and EINVAL otherwise. Unlike a block device, a file is not limited to
 * logical-block alignment: a loop device sends 512-byte granularity, so unaligned edges are
 * allowed here; the device zeroes them in place (ZramDevice.discard).
 */
import { Errno } from '../errno'

/** Linux include/uapi/linux/falloc.h */
export const FALLOC_FL_ALLOCATE_RANGE = 0x00
export const FALLOC_FL_KEEP_SIZE = 0x01
export const FALLOC_FL_PUNCH_HOLE = 0x02
/** reserved; block devices took PUNCH_HOLE|KEEP_SIZE|NO_HIDE_STALE as a plain discard until 6.12 */
export const FALLOC_FL_NO_HIDE_STALE = 0x04
export const FALLOC_FL_COLLAPSE_RANGE = 0x08
export const FALLOC_FL_ZERO_RANGE = 0x10
export const FALLOC_FL_INSERT_RANGE = 0x20
export const FALLOC_FL_UNSHARE_RANGE = 0x40
/** Linux 6.17+: zero with unmap-capable write-zeroes; fs/fuse does not forward it */
export const FALLOC_FL_WRITE_ZEROES = 0x80

/**
 * - 'punch': PUNCH_HOLE|KEEP_SIZE — free the pages in the range (discard); reads return zeros.
 * - 'zero': ZERO_RANGE, with or without KEEP_SIZE — the range reads as zeros afterwards; for zram
 *   that is the same as punch (a zero page is a free page, as zram's write-zeroes path frees too).
 * - 'allocate': mode 0 or KEEP_SIZE alone — preallocation, which a block device refuses with
 *   EOPNOTSUPP (planFallocate does so).
 * - 'unsupported': everything else (PUNCH_HOLE without KEEP_SIZE, NO_HIDE_STALE, COLLAPSE,
 *   INSERT, UNSHARE, WRITE_ZEROES, unknown bits, combinations of modes) — EOPNOTSUPP.
 */
export type FallocateKind = 'punch' | 'zero' | 'allocate' | 'unsupported'

/** Classify a fallocate mode by blkdev_fallocate's rules. Pure; any number is accepted. */
export function classifyFallocate(mode: number): FallocateKind {
  switch (mode) {
    case FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE:
      return 'punch'
    case FALLOC_FL_ZERO_RANGE:
    case FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE:
      return 'zero'
    case FALLOC_FL_ALLOCATE_RANGE:
    case FALLOC_FL_KEEP_SIZE:
      return 'allocate'
    default:
      return 'unsupported'
  }
}

export type FallocatePlan =
  | { readonly ok: true; readonly kind: 'punch' | 'zero'; readonly offset: number; readonly length: number }
  /** errno is positive (src/errno.ts); the FUSE callback gets -errno */
  | { readonly ok: false; readonly errno: number; readonly reason: string }

/**
 * The whole blkdev_fallocate decision for a block file of `size` bytes: the kind, and the range
 * to act on (clamped to the end when KEEP_SIZE allows it), or the errno to answer.
 */
export function planFallocate(mode: number, offset: number, length: number, size: number): FallocatePlan {
  const kind = classifyFallocate(mode)
  if (kind === 'allocate') {
    return { ok: false, errno: Errno.EOPNOTSUPP, reason: `fallocate mode ${hex(mode)}: a block device cannot be preallocated` }
  }
  if (kind === 'unsupported') {
    return { ok: false, errno: Errno.EOPNOTSUPP, reason: `fallocate mode ${hex(mode)} is not supported` }
  }
  if (!Number.isSafeInteger(offset) || !Number.isSafeInteger(length) || offset < 0 || length <= 0) {
    return { ok: false, errno: Errno.EINVAL, reason: `fallocate range offset=${offset} length=${length} is invalid` }
  }
  if (offset >= size) {
    return { ok: false, errno: Errno.EINVAL, reason: `fallocate offset ${offset} is at or past the end (${size})` }
  }
  if (offset + length > size) {
    if ((mode & FALLOC_FL_KEEP_SIZE) === 0) {
      return { ok: false, errno: Errno.EINVAL, reason: `fallocate range ${offset}+${length} runs past the end (${size}) without KEEP_SIZE` }
    }
    length = size - offset
  }
  return { ok: true, kind, offset, length }
}

function hex(n: number): string {
  return Number.isInteger(n) && n >= 0 ? '0x' + n.toString(16) : String(n)
}
