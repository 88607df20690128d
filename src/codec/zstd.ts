import type { Codec } from './codec'

/*
 * @mongodb-js/zstd 1.2.2 is the newest release that installs without a network download. Its JS
 * wrapper drops the level argument, but the native binding it wraps honours it, so we call the
 * binding directly. Both calls are asynchronous (they run on libuv's thread pool).
 */
interface ZstdBinding {
  compress(data: Buffer, level?: number | null): Promise<Buffer>
  decompress(data: Buffer): Promise<Buffer>
}
// eslint-disable-next-line @typescript-eslint/no-require-imports
const binding = require('@mongodb-js/zstd/bindings') as ZstdBinding

/** The kernel's zstd backend default (ZSTD_defaultCLevel() is 3). */
const DEFAULT_LEVEL = 3

export const zstd: Codec = {
  name: 'zstd',
  sync: false,
  defaultLevel: DEFAULT_LEVEL,
  levelRange: [-131072, 22],
  compress(page: Buffer, level: number | null): Promise<Buffer> {
    return binding.compress(page, level ?? DEFAULT_LEVEL)
  },
  async decompress(src: Buffer, out: Buffer): Promise<void> {
    const plain = await binding.decompress(src)
    if (plain.length !== out.length) {
      throw new Error(`zstd: decompressed ${plain.length} bytes, expected ${out.length}`)
    }
    plain.copy(out)
  },
}
