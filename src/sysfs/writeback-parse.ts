import { Errno, ErrnoError } from '../errno'
import { MODE_NAMES, type WritebackRequest } from '../writeback/writeback-request'
import { cString, einval, parseBool, parseKeyValues, parseU32, parseU64 } from './kstrtox'

/**
 * writeback_store's argument loop (drivers/block/zram/zram_drv.c), parameter by parameter:
 *   - a parameter without a value is the legacy mode word (idle, huge, huge_idle, incompressible):
 *     scan [lo, hi) for it and stop parsing;
 *   - type=MODE: the same;
 *   - page_index=N (kstrtoul base 10; N >= pages -> ERANGE): scan that one page, go on;
 *   - page_indexes=LO-HI (no '-' -> EINVAL; LO or HI >= pages, or LO > HI -> ERANGE; inclusive);
 *   - anything else is ignored.
 * lo/hi start as the whole device and keep the last page_index(es) range, so "page_indexes=1-3
 * type=huge" scans pages 1..3 for any page, then 1..3 for huge ones, as the kernel does. An error
 * anywhere refuses the whole write (nothing is written back). The init and backing-device checks
 * (EINVAL, ENODEV) come first, in the caller.
 */
export function parseWritebackRequest(text: string, pages: number): WritebackRequest {
  let lo = 0
  let hi = pages
  const scans: WritebackRequest['scans'] = []
  for (const { key, value } of parseKeyValues(text)) {
    if (value === null || value === '') {
      scans.push({ mode: parseMode(key), lo, hi })
      break
    }
    if (key === 'type') {
      scans.push({ mode: parseMode(value), lo, hi })
      break
    }
    if (key === 'page_index') {
      lo = pageIndex(value, pages)
      hi = lo + 1
      scans.push({ mode: 0, lo, hi })
      continue
    }
    if (key === 'page_indexes') {
      const dash = value.indexOf('-')
      if (dash < 0) throw new ErrnoError(Errno.EINVAL, `page_indexes=${value}: expected LO-HI`)
      lo = pageIndex(value.slice(0, dash), pages)
      const last = Number(parseU64(value.slice(dash + 1), 10))
      if (last >= pages || lo > last) throw new ErrnoError(Errno.ERANGE, `page_indexes=${value} is outside 0..${pages - 1} or reversed`)
      hi = last + 1
      scans.push({ mode: 0, lo, hi })
    }
  }
  return { scans }
}

/** parse_mode: exact names (strcmp, no trailing newline: next_arg already split it off). */
function parseMode(word: string): number {
  const mode = MODE_NAMES[word]
  if (mode === undefined) throw new ErrnoError(Errno.EINVAL, `unknown writeback mode ${JSON.stringify(word)}`)
  return mode
}

/** kstrtoul base 10 (its EINVAL/ERANGE as is), then >= pages -> ERANGE. */
function pageIndex(text: string, pages: number): number {
  const v = parseU64(text, 10)
  if (v >= BigInt(pages)) throw new ErrnoError(Errno.ERANGE, `page index ${v} is outside 0..${pages - 1}`)
  return Number(v)
}

/** include/uapi/linux/limits.h */
const PATH_MAX = 4096

/** writeback_limit_store: kstrtoull(buf, 10), any failure (even ERANGE) -> EINVAL. 4 KiB units. */
export function parseWritebackLimit(text: string): bigint {
  try {
    return parseU64(text, 10)
  } catch {
    return einval(`writeback_limit: ${JSON.stringify(text)} is not a number`)
  }
}

/** writeback_limit_enable_store: kstrtoull(buf, 10), any failure -> EINVAL; stored as a bool. */
export function parseWritebackLimitEnable(text: string): boolean {
  return parseWritebackLimit(text) !== 0n
}

/** writeback_batch_size_store: kstrtouint(buf, 10), any failure -> EINVAL; 0 -> EINVAL. */
export function parseWritebackBatchSize(text: string): number {
  let value: number
  try {
    value = parseU32(text, 10)
  } catch {
    return einval(`writeback_batch_size: ${JSON.stringify(text)} is not a number`)
  }
  if (value === 0) einval('writeback_batch_size: 0 written')
  return value
}

/**
 * compressed_writeback_store (mainline since 7.0; linux-next's writeback_compressed): kstrtobool, failure ->
 * EINVAL. The store checks EBUSY (initialised) after this.
 */
export function parseCompressedWriteback(text: string): boolean {
  return parseBool(text)
}

/**
 * backing_dev_store: strscpy into a PATH_MAX buffer (longer input is cut to PATH_MAX - 1 chars),
 * then one trailing "\n" is dropped. Opening the path (ENOENT, ENOTBLK, ...) is the caller's I/O;
 * the store checks EBUSY (initialised) before this.
 */
export function parseBackingDev(text: string): string {
  let s = cString(text)
  if (s.length > PATH_MAX - 1) s = s.slice(0, PATH_MAX - 1)
  if (s.endsWith('\n')) s = s.slice(0, -1)
  return s
}
