import { compressSync, uncompressSync } from 'lz4-napi'
import type { Codec } from './codec'

/*
 * lz4-napi's block API prepends the uncompressed length as 4 little-endian bytes. The kernel's
 * lz4 backend stores the bare block, so we strip the prefix to keep compr_data_size comparable
 * with the kernel's, and put it back (into a scratch buffer) before decompressing.
 */
const PREFIX_BYTES = 4
let scratch = Buffer.alloc(PREFIX_BYTES + 4096 + 64)

export const lz4: Codec = {
  name: 'lz4',
  sync: true,
  defaultLevel: null,
  levelRange: null,
  compress(page: Buffer): Buffer {
    return compressSync(page).subarray(PREFIX_BYTES)
  },
  decompress(src: Buffer, out: Buffer): void {
    const need = PREFIX_BYTES + src.length
    if (scratch.length < need) scratch = Buffer.alloc(need)
    scratch.writeUInt32LE(out.length, 0)
    src.copy(scratch, PREFIX_BYTES)
    const plain = uncompressSync(scratch.subarray(0, need))
    if (plain.length !== out.length) {
      throw new Error(`lz4: decompressed ${plain.length} bytes, expected ${out.length}`)
    }
    plain.copy(out)
  },
}
