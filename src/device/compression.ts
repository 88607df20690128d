/**
 * The device's algorithms: the primary (comp_algorithm, algorithm_params priority 0) and the
 * recompression ones (recomp-algorithms.ts), their parameters, and the codec contexts made at
 * disksize, as the kernel's zcomp streams are.
 */
import { type Codec, type CodecContext, type CodecParams, CodecParamsError } from '../codec/codec'
import { codecs, DEFAULT_ALGORITHM, findCodec } from '../codec/registry'
import { Errno, ErrnoError } from '../errno'
import type { RecompressConfig } from '../kcompressd/recompress-offload'
import { RecompAlgorithms } from './recomp-algorithms'

const NO_PARAMS: CodecParams = { level: null, dict: null }

export class Compression {
  /** recomp_algorithm and algorithm_params priority=1..3 (CONFIG_ZRAM_MULTI_COMP). */
  readonly recomp = new RecompAlgorithms()
  private primary: Codec = findCodec(DEFAULT_ALGORITHM) as Codec
  /** algorithm_params of the primary; the dictionary lives in shared memory for kcompressd. */
  private params: CodecParams = NO_PARAMS
  /** Made at initialise (as the kernel's zcomp_create at disksize_store); the default before. */
  private primaryCtx: CodecContext = this.primary.createContext(this.params)

  get algorithm(): string {
    return this.primary.name
  }

  get level(): number | null {
    return this.params.level
  }

  /** The dictionary set by algorithm_params dict= (in shared memory), or null. */
  get dict(): Uint8Array | null {
    return this.params.dict
  }

  /** The primary algorithm's context: every page written is compressed with it. */
  get ctx(): CodecContext {
    return this.primaryCtx
  }

  /** The primary codec's index in the registry (packed records carry it). */
  get algorithmId(): number {
    return codecs.indexOf(this.primary)
  }

  /** comp_algorithm_store after parsing: an unknown name is EINVAL, then a busy device EBUSY. */
  setAlgorithm(name: string, busy: boolean): void {
    const codec = findCodec(name)
    if (!codec) throw new ErrnoError(Errno.EINVAL, `unknown compression algorithm ${JSON.stringify(name)}`)
    if (busy) throw new ErrnoError(Errno.EBUSY, 'cannot change the algorithm of an initialised device')
    this.primary = codec
  }

  /**
   * algorithm_params: level (null: the backend's default) and dictionary (null: none) of priority
   * prio, replacing both as the kernel's comp_params_store does. The backend checks them at
   * createContexts.
   */
  setParams(params: CodecParams, prio: number): void {
    if (prio !== 0) {
      this.recomp.setParams(prio, params)
      return
    }
    let dict: Uint8Array | null = null
    if (params.dict !== null && params.dict.length > 0) {
      // Shared memory: kcompressd's workers see it without a copy per batch.
      dict = new Uint8Array(new SharedArrayBuffer(params.dict.length))
      dict.set(params.dict)
    }
    this.params = { level: params.level, dict }
  }

  /**
   * zcomp_create at disksize_store: the backends check their parameters now (an lz4 dictionary over
   * 64 KiB, a corrupt zstd dictionary); EINVAL, and nothing changes.
   */
  createContexts(): void {
    try {
      this.primaryCtx = this.primary.createContext(this.params)
      this.recomp.createContexts()
    } catch (err) {
      if (err instanceof CodecParamsError) throw new ErrnoError(Errno.EINVAL, `compression parameters refused: ${err.message}`)
      throw new ErrnoError(Errno.ENOMEM, `cannot create a compression context: ${String(err)}`)
    }
  }

  /** comp_algs[prio]: the primary's name at 0, else the recompression slot's, or null. */
  algorithmOf(prio: number): string | null {
    return prio === 0 ? this.primary.name : this.recomp.nameOf(prio)
  }

  /** The codec context of a priority (comps[prio]); null when the slot has none. */
  contextFor(prio: number): CodecContext | null {
    return prio === 0 ? this.primaryCtx : this.recomp.contextOf(prio)
  }

  /** The registry index of priority prio's codec (the primary's for an empty slot). */
  algorithmIdOf(prio: number): number {
    return codecs.indexOf(prio === 0 ? this.primary : this.recomp.codecOf(prio) ?? this.primary)
  }

  /** comp_algs[prio] and params[prio], as the worker of a recompression run needs them. */
  configOf(prio: number): RecompressConfig {
    if (prio === 0) return { algorithm: this.primary.name, level: this.params.level, dict: this.params.dict }
    const codec = this.recomp.codecOf(prio)
    if (codec === null) throw new ErrnoError(Errno.EINVAL, `no algorithm at priority ${prio}`)
    const p = this.recomp.paramsOf(prio)
    return { algorithm: codec.name, level: p.level, dict: p.dict }
  }

  /** reset_store: the default algorithm, no parameters, no recompression slots. */
  reset(): void {
    this.primary = findCodec(DEFAULT_ALGORITHM) as Codec
    this.params = NO_PARAMS
    this.primaryCtx = this.primary.createContext(this.params)
    this.recomp.reset()
  }
}
