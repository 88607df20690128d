/**
 * The zcodec addon (native/zcodec.c): the system's liblz4 and libzstd behind a few calls, built
 * from source at install by scripts/build-codec-addon.sh. Contexts are opaque handles owned by the
 * addon and freed when collected.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { type CodecContext, CodecParamsError } from './codec'

declare const nativeContext: unique symbol
/** An addon context (a tagged napi External): only the addon can make or read one. */
export type NativeContext = { readonly [nativeContext]: true }

export interface ZcodecBinding {
  lz4Create(acceleration: number, dict: Uint8Array | null): NativeContext
  zstdCreate(level: number, dict: Uint8Array | null): NativeContext
  compress(ctx: NativeContext, src: Uint8Array, dst: Uint8Array): number
  decompress(ctx: NativeContext, src: Uint8Array, dst: Uint8Array): void
  decompressAt(ctx: NativeContext, src: Uint8Array, srcOff: number, srcLen: number, tail: Uint8Array | null, tailOff: number,
    tailLen: number, dst: Uint8Array, dstOff: number, dstLen: number): void
  compressBatch(ctx: NativeContext, src: Uint8Array, srcOff: number, pages: number, dst: Uint8Array, stride: number,
    sizes: Int32Array): number
  decompressBatch(ctx: NativeContext, chunks: readonly Uint8Array[], desc: Int32Array, pages: number, dst: Uint8Array): number
  /** The batch calls' helper thread's kernel id (started now if it was not), to place it on CPUs; 0: it could not start. */
  helperThread(): number
  versions(): { lz4: string; zstd: string }
}

const ADDON = join('native', 'build', 'Release', 'zcodec.node')

function load(): ZcodecBinding {
  // src/codec (tests) or dist/src/codec (built): the repository root is two or three levels up.
  for (const up of [['..', '..'], ['..', '..', '..']]) {
    const path = join(__dirname, ...up, ADDON)
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    if (existsSync(path)) return require(path) as ZcodecBinding
  }
  throw new Error(`zcodec addon not built (${ADDON}): run scripts/setup.sh or npm ci`)
}

export const zcodec: ZcodecBinding = load()

/** A codec context over an addon context: one per device or worker thread, never per page. */
export class AddonContext implements CodecContext {
  private readonly native: NativeContext
  constructor(native: NativeContext) {
    this.native = native
  }

  compress(src: Uint8Array, dst: Uint8Array): number {
    return zcodec.compress(this.native, src, dst)
  }

  decompress(src: Uint8Array, dst: Uint8Array): void {
    zcodec.decompress(this.native, src, dst)
  }

  decompressAt(src: Uint8Array, srcOff: number, srcLen: number, tail: Uint8Array | null, tailOff: number, tailLen: number,
    dst: Uint8Array, dstOff: number, dstLen: number): void {
    zcodec.decompressAt(this.native, src, srcOff, srcLen, tail, tailOff, tailLen, dst, dstOff, dstLen)
  }

  compressBatch(src: Uint8Array, srcOff: number, pages: number, dst: Uint8Array, stride: number, sizes: Int32Array): number {
    return zcodec.compressBatch(this.native, src, srcOff, pages, dst, stride, sizes)
  }

  decompressBatch(chunks: readonly Uint8Array[], desc: Int32Array, pages: number, dst: Uint8Array): number {
    return zcodec.decompressBatch(this.native, chunks, desc, pages, dst)
  }
}

/** Make an addon context; the library refusing the parameters (code EINVAL) is a CodecParamsError. */
export function createAddonContext(make: () => NativeContext): AddonContext {
  try {
    return new AddonContext(make())
  } catch (err) {
    if (err instanceof Error && (err as { code?: unknown }).code === 'EINVAL') throw new CodecParamsError(err.message)
    throw err
  }
}
