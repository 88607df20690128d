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
 * - max_pages= kstrtoull base 10, threshold= kstrtouint base 10, priority= kstrtoint base 10:
 *   their EINVAL / ERANGE are returned as they are;
 * - priority= and algo= are taken as they are; the store checks them against the configured
 *   slots once the device is known to be initialised (resolveAlgoPriority: no autocorrection,
 *   one priority per run since "zram: remove chained recompression", mainline 7.1);
 * - unknown keys are ignored; a repeated key keeps its last value.
 */
import { Errno, ErrnoError } from '../errno'
import { RECOMPRESS_HUGE, RECOMPRESS_IDLE } from '../device/recompressor'
import { parseKeyValues, parseS32, parseU32, parseU64 } from './kstrtox'

/** recompress's arguments: the request, and the priority= / algo= it names (null when not given). */
export interface RecompressArgs {
  mode: number
  threshold: number
  maxPages: number
  priority: number | null
  algo: string | null
}

export function parseRecompress(text: string, hugeClassSize: number): RecompressArgs {
  const req: RecompressArgs = { mode: 0, threshold: 0, maxPages: Infinity, priority: null, algo: null }
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
      case 'priority':
        req.priority = parseS32(value, 10)
        break
      default:
        break
    }
  }
  if (req.threshold >= hugeClassSize) {
    throw new ErrnoError(Errno.EINVAL, `recompress: threshold ${req.threshold} is not below huge_class_size ${hugeClassSize}`)
  }
  return req
}
