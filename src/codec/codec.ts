/**
 * One interface for every compression backend, like the kernel's zcomp ops table
 * (backend_lz4.c, backend_zstd.c ...). The device never names an algorithm: it asks the registry.
 *
 * Every backend is synchronous and allocation-free: a context is made once per device (or per
 * worker thread) with its parameters, as the kernel's zcomp streams are, and compresses into and
 * decompresses from buffers the caller owns (pool memory, the FUSE request buffer, a staging slot
 * of a SharedArrayBuffer), at any byte offset.
 */

/** algorithm_params for one algorithm: level= (null: the backend's default) and dict= (the file's bytes). */
export interface CodecParams {
  level: number | null
  dict: Uint8Array | null
}

export interface CodecContext {
  /**
   * Compress all of src into dst; return the compressed length, or 0 when it does not fit in dst
   * (dst's bytes are then undefined). zstd may need a few bytes of room beyond its result while it
   * works; a dst of two pages always holds a page's result, as the kernel's stream buffer does.
   */
  compress(src: Uint8Array, dst: Uint8Array): number
  /** Decompress src into exactly dst.length bytes of dst; throw when src is corrupt or the length differs. */
  decompress(src: Uint8Array, dst: Uint8Array): void
  /**
   * decompress() of src[srcOff, +srcLen) followed by tail[tailOff, +tailLen) (a pool object that
   * crosses into its zspage's next frame; tail null: none) into dst[dstOff, +dstLen). No view is made
   * per call: on a 128k read making two per page (the object's, the destination's) cost about a third
   * as much as decompressing the page.
   */
  decompressAt(src: Uint8Array, srcOff: number, srcLen: number, tail: Uint8Array | null, tailOff: number, tailLen: number,
    dst: Uint8Array, dstOff: number, dstLen: number): void
  /**
   * compress() of `pages` whole pages src[srcOff + i*4096, +4096) into dst[i*stride, +stride), each
   * result's length (0: does not fit) in sizes[i]; -1, or the first page whose compression failed
   * (its size and those after it are then not to be used). The addon shares the pages between the
   * calling thread and a helper thread, so a large write compresses on two cores.
   */
  compressBatch(src: Uint8Array, srcOff: number, pages: number, dst: Uint8Array, stride: number, sizes: Int32Array): number
  /**
   * decompressAt() of up to 256 pages into dst, shared with the helper thread likewise. Page k is
   * desc[7k .. 7k+6]: index in chunks, offset and length of the object's first piece; index (-1:
   * none), offset and length of the rest; its offset in dst. -1, or the first page that failed.
   */
  decompressBatch(chunks: readonly Uint8Array[], desc: Int32Array, pages: number, dst: Uint8Array): number
}

export interface Codec {
  /** The name `comp_algorithm` prints and accepts. */
  readonly name: string
  /** Level used when algorithm_params sets none; null when the backend has no levels. */
  readonly defaultLevel: number | null
  /** Inclusive range algorithm_params level= accepts, or null when levels are not supported. */
  readonly levelRange: readonly [number, number] | null
  /** algorithm_params dict= is accepted. */
  readonly supportsDict: boolean
  /**
   * A context with these parameters. Throws a CodecParamsError when the backend refuses them (the
   * kernel's setup_params failing, which zram reports as EINVAL from disksize_store).
   */
  createContext(params: CodecParams): CodecContext
}

/** The backend refused its parameters (a level out of range, an unusable dictionary). */
export class CodecParamsError extends Error {
  override readonly name = 'CodecParamsError'
}
