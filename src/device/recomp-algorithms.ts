/**
 * The recompression algorithms of one device: zram's comp_algs[1..3] and params[1..3]
 * (CONFIG_ZRAM_MULTI_COMP). Priority 0, the primary algorithm, stays with the device (kcompressd
 * reads it); these are set before disksize (recomp_algorithm, algorithm_params priority=N) and get
 * one codec context each at disksize, as disksize_store creates comps[prio] for every configured slot.
 */
import { type Codec, type CodecContext, type CodecParams } from '../codec/codec'
import { findCodec } from '../codec/registry'

/**
 * drivers/block/zram/zram_drv.h: priorities of the primary and recompression algorithms, and
 * ZRAM_MAX_COMPS as with CONFIG_ZRAM_MULTI_COMP (without it the kernel has 1 and refuses priority=1..3).
 * The one definition: sysfs's parsers and the device both read these.
 */
export const ZRAM_PRIMARY_COMP = 0
export const ZRAM_SECONDARY_COMP = 1
export const ZRAM_MAX_COMPS = 4

const NO_PARAMS: CodecParams = { level: null, dict: null }

export class RecompAlgorithms {
  /** comp_algs[prio] for prio 1..3 (index 0 unused: the device's primary). */
  private readonly codecs: (Codec | null)[] = [null, null, null, null]
  private readonly params: CodecParams[] = [NO_PARAMS, NO_PARAMS, NO_PARAMS, NO_PARAMS]
  private contexts: (CodecContext | null)[] = [null, null, null, null]

  /** recomp_algorithm_store (the caller checked EBUSY): comp_algorithm_set(zram, prio, alg). */
  set(prio: number, name: string): void {
    const codec = findCodec(name)
    if (!codec) throw new RangeError(`unknown algorithm ${name}`)
    this.codecs[prio] = codec
  }

  /** algorithm_params priority=N (N >= 1): kept for the slot whether or not it has an algorithm yet. */
  setParams(prio: number, params: CodecParams): void {
    this.params[prio] = params
  }

  nameOf(prio: number): string | null {
    return this.codecs[prio]?.name ?? null
  }

  codecOf(prio: number): Codec | null {
    return this.codecs[prio]
  }

  /** params[prio]: level and dictionary, as algorithm_params set them. */
  paramsOf(prio: number): CodecParams {
    return this.params[prio]
  }

  /** The context of a configured slot after disksize, else null. */
  contextOf(prio: number): CodecContext | null {
    return this.contexts[prio]
  }

  /**
   * disksize_store's zcomp_create per configured slot. Throws what the backend throws (a
   * CodecParamsError for parameters it refuses); nothing is kept then.
   */
  createContexts(): void {
    const made: (CodecContext | null)[] = [null, null, null, null]
    for (let p = ZRAM_SECONDARY_COMP; p < ZRAM_MAX_COMPS; p++) {
      const codec = this.codecs[p]
      if (codec !== null) made[p] = codec.createContext(this.params[p])
    }
    this.contexts = made
  }

  /** zram_destroy_comps + zram_comp_params_reset: reset drops every slot and its parameters. */
  reset(): void {
    this.codecs.fill(null)
    this.params.fill(NO_PARAMS)
    this.contexts = [null, null, null, null]
  }
}
