/**
 * One interface for every compression backend, like the kernel's zcomp ops table
 * (backend_lz4.c, backend_zstd.c ...). The device never names an algorithm: it asks the registry.
 *
 * A backend may be synchronous (lz4-napi has a sync API) or asynchronous (@mongodb-js/zstd 1.2.2
 * has only an async one). Callers handle both shapes; a sync backend lets the hot path run without
 * a single await.
 */
export interface Codec {
  /** The name `comp_algorithm` prints and accepts. */
  readonly name: string
  /** True when compress/decompress return plain values, never promises. */
  readonly sync: boolean
  /** Level used when algorithm_params sets none; null when the backend has no levels. */
  readonly defaultLevel: number | null
  /** Inclusive range algorithm_params level= accepts, or null when levels are not supported. */
  readonly levelRange: readonly [number, number] | null
  /**
   * Compress one page. The result may be longer than the page (incompressible data); the caller
   * decides whether to keep it or store the page raw. The returned bytes are owned by the caller.
   */
  compress(page: Buffer, level: number | null): Buffer | Promise<Buffer>
  /** Decompress `src` into exactly `out.length` bytes of `out`; throws when the data is corrupt. */
  decompress(src: Buffer, out: Buffer): void | Promise<void>
}

export function isPromise<T>(v: T | Promise<T>): v is Promise<T> {
  return typeof v === 'object' && v !== null && typeof (v as { then?: unknown }).then === 'function'
}
