/**
 * The parse steps of the device's own stores (drivers/block/zram/zram_drv.c: disksize_store,
 * mem_limit_store, mem_used_max_store, reset_store, idle_store, hot_remove_store), each copied from
 * its store function on top of the kernel's primitives (kstrtox.ts, whose conventions apply). Where a
 * store interleaves a state check (EBUSY when initialised, ...) between parsing steps, the split is
 * documented on the function.
 */
import { PAGE_SIZE as PAGE_BYTES } from '../page'
import { U64_MAX, einval, memparse, memparseRaw, parseS32, parseU16, parseU32, parseU64, sysfsStreq } from './kstrtox'

/** PAGE_SIZE as a u64, for PAGE_ALIGN on values past 2^53. */
const PAGE_SIZE = BigInt(PAGE_BYTES)

/**
 * memparse as disksize_store uses it:
 *
 *     disksize = memparse(buf, NULL);
 *     if (!disksize) return -EINVAL;
 *
 * It never looks at where parsing stopped, so trailing junk is ignored ("1Gjunk" = 1 GiB) and any
 * input whose value is 0 is EINVAL: "0", "", "abc", " 2M" (no whitespace skipping), and a size that
 * wraps to 0 modulo 2^64 such as "16E". The result is in bytes, before PAGE_ALIGN (see pageAlign).
 * The store checks EBUSY (already initialised) after this parse.
 */
export function parseDisksize(text: string): bigint {
  const value = memparseRaw(text).value
  if (value === 0n) einval(`disksize ${JSON.stringify(text)} parses to 0`)
  return value
}

/**
 * mem_limit_store: memparse (nothing parsed -> EINVAL, anything after the number ignored), then
 * PAGE_ALIGN: the limit in bytes, 0 = none. The u64 arithmetic wraps as in the kernel ("16E" and
 * "18446744073709551615" both end as 0). The result is a multiple of 4 KiB below 2^64, which a
 * double holds exactly.
 */
export function parseMemLimit(text: string): bigint {
  return pageAlign(memparse(text))
}

/** PAGE_ALIGN on a u64 (4 KiB pages), wrapping modulo 2^64 like the kernel's macro. */
export function pageAlign(bytes: bigint): bigint {
  return (bytes + PAGE_SIZE - 1n) & ~(PAGE_SIZE - 1n) & U64_MAX
}

/** mem_used_max_store: kstrtoul(buf, 10) and the value must be 0; any failure (even ERANGE) -> EINVAL. */
export function parseMemUsedMax(text: string): void {
  let value: bigint
  try {
    value = parseU64(text, 10)
  } catch {
    return einval(`mem_used_max: ${JSON.stringify(text)} is not a number`)
  }
  if (value !== 0n) einval('mem_used_max: only 0 may be written')
}

/**
 * reset_store: kstrtou16(buf, 10) (its EINVAL / ERANGE are returned as is), then 0 -> EINVAL.
 * The store checks EBUSY (device open) after this.
 */
export function parseReset(text: string): number {
  const value = parseU16(text, 10)
  if (value === 0) einval('reset: 0 written')
  return value
}

/** hot_remove_store: kstrtoint(buf, 10) (errors returned as is), then negative -> EINVAL. */
export function parseHotRemove(text: string): number {
  const id = parseS32(text, 10)
  if (id < 0) einval(`hot_remove: negative id ${id}`)
  return id
}

/**
 * idle_store: "all" (sysfs_streq) -> 'all'; otherwise kstrtouint(buf, 0) gives an age in seconds
 * (CONFIG_ZRAM_TRACK_ENTRY_ACTIME assumed on); any failure -> EINVAL. The store then returns
 * EINVAL if the device is not initialised.
 */
export function parseIdle(text: string): 'all' | number {
  if (sysfsStreq(text, 'all')) return 'all'
  try {
    return parseU32(text, 0)
  } catch {
    return einval(`idle: ${JSON.stringify(text)} is neither "all" nor an age in seconds`)
  }
}
