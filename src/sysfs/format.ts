/**
 * Pure copies of the kernel's sysfs output formats for zram and the block layer.
 *
 * Sources (mainline): drivers/block/zram/zram_drv.c io_stat_show, mm_stat_show, bd_stat_show,
 * debug_stat_show, disksize_show, backing_dev_show, recomp_algorithm_show; zcomp.c
 * zcomp_available_show; block/genhd.c part_stat_show.
 *
 * printf semantics copied here: `%8llu` / `%8lu` / `%8u` / `%8ld` pad with spaces on the left to at
 * least 8 characters and never truncate; the value is first converted to the C type of the
 * conversion (x86_64: long = 64 bits, int = 32 bits), so out-of-range inputs wrap as they would in
 * the kernel (a negative `%8u` prints as 2^32 - n; a negative `%8ld` prints with its '-').
 * Inputs are `number | bigint`; a fractional number is truncated toward zero (C's conversion of a
 * double to an integer, and div_u64 for the block layer's millisecond fields); NaN and infinities
 * throw a RangeError (a programming error, not a kernel behaviour).
 */

export type Counter = number | bigint

function toBigInt(n: Counter, what: string): bigint {
  if (typeof n === 'bigint') return n
  if (!Number.isFinite(n)) throw new RangeError(`${what}: ${n} is not a finite number`)
  return BigInt(Math.trunc(n))
}

/** unsigned long long / unsigned long (64-bit) */
const u64 = (n: Counter, what: string): bigint => BigInt.asUintN(64, toBigInt(n, what))
/** long (64-bit) */
const s64 = (n: Counter, what: string): bigint => BigInt.asIntN(64, toBigInt(n, what))
/** unsigned int */
const u32 = (n: Counter, what: string): bigint => BigInt.asUintN(32, toBigInt(n, what))
/** int */
const s32 = (n: Counter, what: string): bigint => BigInt.asIntN(32, toBigInt(n, what))

/** `%8<conv>`: right aligned in at least 8 columns. */
const w8 = (v: bigint): string => v.toString().padStart(8, ' ')

export interface IoStat {
  failedReads: Counter
  failedWrites: Counter
  notifyFree: Counter
}

/** io_stat: `"%8llu %8llu 0 %8llu\n"` (the 0 is a literal: the retired invalid_io counter). */
export function formatIoStat(s: IoStat): string {
  return `${w8(u64(s.failedReads, 'failedReads'))} ${w8(u64(s.failedWrites, 'failedWrites'))} 0 ` +
    `${w8(u64(s.notifyFree, 'notifyFree'))}\n`
}

export interface MmStat {
  /** bytes (pages_stored << PAGE_SHIFT) */
  origDataSize: Counter
  comprDataSize: Counter
  /** bytes (zsmalloc pool pages << PAGE_SHIFT) */
  memUsedTotal: Counter
  /** bytes (limit_pages << PAGE_SHIFT), 0 = no limit */
  memLimit: Counter
  /** bytes (max_used_pages << PAGE_SHIFT); a signed long in the kernel */
  memUsedMax: Counter
  samePages: Counter
  pagesCompacted: Counter
  hugePages: Counter
  hugePagesSince: Counter
}

/** mm_stat: `"%8llu %8llu %8llu %8lu %8ld %8llu %8lu %8llu %8llu\n"`. */
export function formatMmStat(s: MmStat): string {
  return [
    w8(u64(s.origDataSize, 'origDataSize')),
    w8(u64(s.comprDataSize, 'comprDataSize')),
    w8(u64(s.memUsedTotal, 'memUsedTotal')),
    w8(u64(s.memLimit, 'memLimit')),
    w8(s64(s.memUsedMax, 'memUsedMax')),
    w8(u64(s.samePages, 'samePages')),
    w8(u64(s.pagesCompacted, 'pagesCompacted')),
    w8(u64(s.hugePages, 'hugePages')),
    w8(u64(s.hugePagesSince, 'hugePagesSince')),
  ].join(' ') + '\n'
}

export interface BdStat {
  /** 4 KiB blocks in use on the backing device */
  count: Counter
  /** cumulative 4 KiB blocks read from it */
  reads: Counter
  /** cumulative 4 KiB blocks written to it */
  writes: Counter
}

/** bd_stat: `"%8llu %8llu %8llu\n"` (values already in 4 KiB units: FOUR_K() is 1x for 4 KiB pages). */
export function formatBdStat(s: BdStat): string {
  return `${w8(u64(s.count, 'count'))} ${w8(u64(s.reads, 'reads'))} ${w8(u64(s.writes, 'writes'))}\n`
}

export interface DebugStat {
  missFree: Counter
}

/**
 * debug_stat: mainline prints `"version: %d\n0 %8llu\n"` with version 1: the second line starts
 * with an UNPADDED literal "0" (the removed writestall counter), then miss_free padded to 8.
 * e.g. "version: 1\n0        0\n". (Kernels before the writestall removal printed
 * "%8llu %8llu", i.e. a padded first field; we copy mainline.)
 */
export function formatDebugStat(s: DebugStat): string {
  return `version: 1\n0 ${w8(u64(s.missFree, 'missFree'))}\n`
}

export interface BlockStat {
  readIos: Counter
  /** zram is bio based and never merges: leave out or pass 0 */
  readMerges?: Counter
  readSectors: Counter
  readTicksMs: Counter
  writeIos: Counter
  /** always 0 for zram */
  writeMerges?: Counter
  writeSectors: Counter
  writeTicksMs: Counter
  inFlight: Counter
  ioTicksMs: Counter
  timeInQueueMs: Counter
  discardIos: Counter
  /** always 0 for zram */
  discardMerges?: Counter
  discardSectors: Counter
  discardTicksMs: Counter
  flushIos: Counter
  flushTicksMs: Counter
}

/**
 * /sys/block/<dev>/stat, block/genhd.c part_stat_show:
 *
 *     "%8lu %8lu %8llu %8u "  read:    ios, merges, sectors, ms
 *     "%8lu %8lu %8llu %8u "  write:   ios, merges, sectors, ms
 *     "%8u %8u %8u "          in_flight, io_ticks ms, time_in_queue ms
 *     "%8lu %8lu %8llu %8u "  discard: ios, merges, sectors, ms
 *     "%8lu %8u"              flush:   ios, ms
 *     "\n"
 *
 * The `%8u` fields are unsigned int in the kernel (they wrap at 2^32 ms).
 */
export function formatBlockStat(s: BlockStat): string {
  return [
    w8(u64(s.readIos, 'readIos')),
    w8(u64(s.readMerges ?? 0, 'readMerges')),
    w8(u64(s.readSectors, 'readSectors')),
    w8(u32(s.readTicksMs, 'readTicksMs')),
    w8(u64(s.writeIos, 'writeIos')),
    w8(u64(s.writeMerges ?? 0, 'writeMerges')),
    w8(u64(s.writeSectors, 'writeSectors')),
    w8(u32(s.writeTicksMs, 'writeTicksMs')),
    w8(u32(s.inFlight, 'inFlight')),
    w8(u32(s.ioTicksMs, 'ioTicksMs')),
    w8(u32(s.timeInQueueMs, 'timeInQueueMs')),
    w8(u64(s.discardIos, 'discardIos')),
    w8(u64(s.discardMerges ?? 0, 'discardMerges')),
    w8(u64(s.discardSectors, 'discardSectors')),
    w8(u32(s.discardTicksMs, 'discardTicksMs')),
    w8(u64(s.flushIos, 'flushIos')),
    w8(u32(s.flushTicksMs, 'flushTicksMs')),
  ].join(' ') + '\n'
}

/**
 * comp_algorithm (zcomp_available_show): every backend name followed by one space, the selected
 * one (exact strcmp match) as "[name] ", then "\n". e.g. "lzo-rle lzo [lz4] zstd \n".
 * With no selection (null) or an unknown one, nothing is bracketed.
 */
export function formatAlgorithmList(names: readonly string[], selected: string | null): string {
  let out = ''
  for (const name of names) out += selected !== null && name === selected ? `[${name}] ` : `${name} `
  return out + '\n'
}

/**
 * recomp_algorithm: for each recompression priority 1..3 that has an algorithm, "#%d: " followed
 * by the algorithm list with that one bracketed; e.g. "#1: lzo-rle lzo lz4 [zstd] \n".
 * "" when none is configured.
 *
 * @param compAlgs the device's algorithm per priority (index 0, the primary, is not shown).
 */
export function formatRecompAlgorithmList(
  names: readonly string[],
  compAlgs: readonly (string | null | undefined)[],
): string {
  let out = ''
  for (let prio = 1; prio < 4; prio++) {
    const alg = compAlgs[prio]
    if (!alg) continue
    out += `#${prio}: ${formatAlgorithmList(names, alg)}`
  }
  return out
}

/** `"%llu\n"` (disksize, writeback_limit, size, ...). */
export function formatU64(n: Counter): string {
  return `${u64(n, 'value')}\n`
}

/** `"%u\n"` (initstate, writeback_batch_size). */
export function formatU32(n: Counter): string {
  return `${u32(n, 'value')}\n`
}

/** `"%d\n"` (hot_add, and bools shown with %d: writeback_limit_enable, compressed_writeback). */
export function formatInt(n: Counter | boolean): string {
  return `${s32(typeof n === 'boolean' ? (n ? 1 : 0) : n, 'value')}\n`
}

/** backing_dev: the path and "\n", or "none\n" when unset. */
export function formatBackingDev(path: string | null): string {
  return path === null ? 'none\n' : `${path}\n`
}
