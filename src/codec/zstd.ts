import type { Codec, CodecContext, CodecParams } from './codec'
import { createAddonContext, zcodec } from './native'

/*
 * The kernel's backend_zstd: ZSTD_compressCCtx with the parameters zstd picks for the level and a
 * 4 KiB source (the kernel's zstd_get_params(level, PAGE_SIZE)); with a dictionary, a CDict made
 * with ZSTD_getCParams(level, 4 KiB, dict size) and a DDict, once. One CCtx and one DCtx per
 * context, reused for every page.
 */
/** ZSTD_defaultCLevel(), what the kernel's backend uses when no level is set. */
const DEFAULT_LEVEL = 3

export const zstd: Codec = {
  name: 'zstd',
  defaultLevel: DEFAULT_LEVEL,
  // ZSTD_minCLevel() .. ZSTD_maxCLevel()
  levelRange: [-131072, 22],
  supportsDict: true,
  createContext(params: CodecParams): CodecContext {
    return createAddonContext(() => zcodec.zstdCreate(params.level ?? DEFAULT_LEVEL, params.dict))
  },
}
