import type { ZramDevice } from '../device/zram-device'
import { MAX_UNIT_PAGES } from '../device/unit-store'
import { codecNames } from '../codec/registry'
import { Errno, ErrnoError } from '../errno'
import { type Attribute, MODE_RO, MODE_RW, MODE_WO } from './attribute'
import { formatRecompAlgorithmList, formatU64 } from './format'
import { ZRAM_SECONDARY_COMP } from '../device/recomp-algorithms'
import { parseRecompAlgorithm, resolveAlgoPriority } from './algorithm-parse'
import { parseU32 } from './kstrtox'
import { parseRecompress } from './recompress-parse'

/** comp_algs[0..3] as the kernel's stores look them up. */
export function configuredAlgorithms(dev: ZramDevice): (string | null)[] {
  return [dev.algorithm, dev.recomp.nameOf(1), dev.recomp.nameOf(2), dev.recomp.nameOf(3)]
}

/**
 * /sys/block/zramN/ attributes of CONFIG_ZRAM_MULTI_COMP, in zram_disk_attrs order (they come
 * right after debug_stat and before algorithm_params).
 */
export const recompressAttributes: readonly Attribute<ZramDevice>[] = [
  {
    name: 'recomp_algorithm',
    mode: MODE_RW,
    // recomp_algorithm_show: "#N: " and the algorithm list, for each configured priority 1..3.
    show: (dev) => formatRecompAlgorithmList(codecNames(), configuredAlgorithms(dev)),
    store: (dev, text) => {
      // recomp_algorithm_store: the key=value loop, algo= required, priority 1..3, the name
      // (E2BIG / EINVAL), then __comp_algorithm_store's EBUSY once initialised.
      const { priority, algo } = parseRecompAlgorithm(text, codecNames())
      dev.setRecompAlgorithm(priority, algo)
    },
  },
  {
    name: 'recompress',
    mode: MODE_WO,
    store: async (dev, text) => {
      // recompress_store (mainline 7.1): the argument loop and the threshold check, then EINVAL
      // when uninitialised, for a priority outside 1..3, an algo= that priority= contradicts or
      // that is not configured, or no algorithm at the priority chosen (1 by default: one
      // priority per run, no chaining); the write returns once the run is over.
      const args = parseRecompress(text, dev.hugeLimit)
      if (!dev.initialised) throw new ErrnoError(Errno.EINVAL, 'recompress on an uninitialised device')
      const prio = resolveAlgoPriority('recompress', args.priority, args.algo, configuredAlgorithms(dev), ZRAM_SECONDARY_COMP) ??
        ZRAM_SECONDARY_COMP
      if (dev.contextFor(prio) === null) throw new ErrnoError(Errno.EINVAL, `recompress: no algorithm at priority ${prio}`)
      await dev.recompress({ mode: args.mode, threshold: args.threshold, maxPages: args.maxPages, prio })
    },
  },
]

function counter(name: string, value: (dev: ZramDevice) => number): Attribute<ZramDevice> {
  return { name, mode: MODE_RO, show: (dev) => formatU64(value(dev)) }
}

/** zramfuse/ extensions of recompression: multi-page units and what the runs cost. */
export const recompressExtensionAttributes: readonly Attribute<ZramDevice>[] = [
  {
    // 1 (default): recompress page by page, as the kernel; 2..16: runs of neighbouring selected
    // pages are compressed together as one unit. Read at the start of each recompress; reset -> 1.
    name: 'recompress_unit_pages',
    mode: MODE_RW,
    show: (dev) => formatU64(dev.recompressor.unitPages),
    store: (dev, text) => {
      const v = parseU32(text, 10)
      if (v < 1 || v > MAX_UNIT_PAGES) throw new ErrnoError(Errno.EINVAL, `recompress_unit_pages must be 1..${MAX_UNIT_PAGES}`)
      dev.recompressor.unitPages = v
    },
  },
  // Pages moved to a recompression algorithm (singly or into a unit), since reset.
  counter('recompressed_pages', (dev) => dev.recompressor.stats().recompressedPages),
  // Units in the pool now, their live member pages, and the pool bytes they requested.
  counter('units', (dev) => dev.units.stats().units),
  counter('unit_pages', (dev) => dev.units.stats().unitPages),
  counter('unit_bytes', (dev) => dev.units.stats().unitBytes),
  // Units written, and members split out of sparse units (by recompress or compact), since reset.
  counter('units_written', (dev) => dev.recompressor.stats().unitsWritten),
  counter('unit_members_split', (dev) => dev.recompressor.stats().membersSplit),
  // Reads of unit members served by a cached decoded unit, and those that decoded one.
  counter('unit_cache_hits', (dev) => dev.units.stats().cacheHits),
  counter('unit_cache_misses', (dev) => dev.units.stats().cacheMisses),
  // Main-thread nanoseconds spent recompressing, and the longest stretch between two yields
  // (what a read or write of another page may have waited for at most).
  counter('recompress_main_ns', (dev) => dev.recompressor.stats().mainNs),
  counter('recompress_max_slice_ns', (dev) => dev.recompressor.stats().maxSliceNs),
  // Stretches of work between two yields (recompress_main_ns / recompress_slices: the mean).
  counter('recompress_slices', (dev) => dev.recompressor.stats().slices),
]
