/**
 * recompress_store's argument loop (mainline drivers/block/zram/zram_drv.c, 7.1 merge window),
 * before it looks at the device:
 *
 *     args = skip_spaces(buf);
 *     while (*args) { args = next_arg(args, &param, &val); if (!val || !*val) return -EINVAL; ... }
 *     if (threshold >= huge_class_size) return -EINVAL;
 *
 * - type=idle|huge|huge_idle selects the pages; any other value leaves the mode as it was (a
 *   plain strcmp chain with no error: `type=foo` recompresses every page);
 * - max_pages= kstrtoull base 10, threshold= kstrtouint base 10, priority= kstrtouint base 10:
 *   their EINVAL / ERANGE are returned as they are;
 * - priority=0 means 1 (the primary is never a recompression algorithm), and priority=N limits
 *   the run to that one priority (prio_max = N + 1);
 * - algo= is taken as is (looked up later, against the configured slots);
 * - unknown keys are ignored; a repeated key keeps its last value.
 */
import { Errno, ErrnoError } from '../errno'
import { RECOMPRESS_HUGE, RECOMPRESS_IDLE, type RecompressRequest } from '../device/recompressor'
import { parseKeyValues, parseU32, parseU64 } from './parse'

const ZRAM_PRIMARY_COMP = 0
const ZRAM_SECONDARY_COMP = 1

export function parseRecompress(text: string, hugeClassSize: number): RecompressRequest {
  const req: RecompressRequest = {
    mode: 0, threshold: 0, maxPages: Infinity, prio: ZRAM_SECONDARY_COMP, prioMax: null, algo: null,
  }
  for (const { key, value } of parseKeyValues(text)) {
    if (value === null || value === '') throw new ErrnoError(Errno.EINVAL, `recompress: "${key}" has no value`)
    switch (key) {
      case 'type':
        if (value === 'idle') req.mode = RECOMPRESS_IDLE
        if (value === 'huge') req.mode = RECOMPRESS_HUGE
        if (value === 'huge_idle') req.mode = RECOMPRESS_IDLE | RECOMPRESS_HUGE
        break
      case 'max_pages':
        // u64; ULLONG_MAX (the default) and anything near it never runs out.
        req.maxPages = Number(parseU64(value, 10))
        break
      case 'threshold':
        req.threshold = parseU32(value, 10)
        break
      case 'algo':
        req.algo = value
        break
      case 'priority': {
        let prio = parseU32(value, 10)
        if (prio === ZRAM_PRIMARY_COMP) prio = ZRAM_SECONDARY_COMP
        req.prio = prio
        // u32 arithmetic: priority=4294967295 wraps prio_max to 0 (refused later as out of range).
        req.prioMax = (prio + 1) >>> 0
        break
      }
      default:
        break
    }
  }
  if (req.threshold >= hugeClassSize) {
    throw new ErrnoError(Errno.EINVAL, `recompress: threshold ${req.threshold} is not below huge_class_size ${hugeClassSize}`)
  }
  return req
}
