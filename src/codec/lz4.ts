import type { Codec, CodecContext, CodecParams } from './codec'
import { createAddonContext, zcodec } from './native'

/*
 * The kernel's backend_lz4: the bare LZ4 block of LZ4_compress_fast with the level as the
 * acceleration (1, the default, is LZ4_compress_default); with a dictionary, LZ4_loadDict once and
 * LZ4_compress_fast_continue from a copy of that stream for every page. The dictionary must load
 * whole (8 bytes to 64 KiB), else EINVAL, as the kernel's lz4_setup_params.
 */
const ACCELERATION_DEFAULT = 1
const ACCELERATION_MAX = 65537

export const lz4: Codec = {
  name: 'lz4',
  defaultLevel: ACCELERATION_DEFAULT,
  levelRange: [ACCELERATION_DEFAULT, ACCELERATION_MAX],
  supportsDict: true,
  createContext(params: CodecParams): CodecContext {
    return createAddonContext(() => zcodec.lz4Create(params.level ?? ACCELERATION_DEFAULT, params.dict))
  },
}
