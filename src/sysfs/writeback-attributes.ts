import type { ZramDevice } from '../device/zram-device'
import { Errno, ErrnoError } from '../errno'
import { type Attribute, MODE_RO, MODE_RW, MODE_WO } from './attribute'
import { formatBackingDev, formatBdStat, formatInt, formatU32, formatU64 } from './format'
import { parseIdle } from './device-parse'
import { memparse, parseBool, parseU32 } from './kstrtox'
import {
  parseBackingDev, parseCompressedWriteback, parseWritebackBatchSize, parseWritebackLimit, parseWritebackLimitEnable,
  parseWritebackRequest,
} from './writeback-parse'

/** Largest writeback_limit we keep exactly (the kernel's is a u64; ours a double). */
const LIMIT_MAX = BigInt(Number.MAX_SAFE_INTEGER)

/**
 * /sys/block/zramN/ attributes of CONFIG_ZRAM_WRITEBACK (and idle, which writeback and recompress
 * share), in zram_disk_attrs order: each parses with the kernel's parser, then checks state, in
 * the kernel's order, so the errno matches for every input.
 */
export const idleAttribute: Attribute<ZramDevice> = {
  name: 'idle',
  mode: MODE_WO,
  store: (dev, text) => {
    // idle_store: parse ("all" or kstrtouint base 0; else EINVAL), then EINVAL if not initialised.
    dev.markIdle(parseIdle(text))
  },
}

export const writebackAttributes: readonly Attribute<ZramDevice>[] = [
  {
    name: 'backing_dev',
    mode: MODE_RW,
    show: (dev) => formatBackingDev(dev.lower.backingPath),
    store: (dev, text) => {
      // backing_dev_store: EBUSY first, then open the path (its errno as is).
      if (dev.initialised) throw new ErrnoError(Errno.EBUSY, 'cannot set the backing device of an initialised device')
      dev.lower.setBackingDev(parseBackingDev(text))
    },
  },
  {
    name: 'writeback',
    mode: MODE_WO,
    store: async (dev, text) => {
      // writeback_store: EINVAL uninitialised, ENODEV without a backing device, then the grammar.
      if (!dev.initialised) throw new ErrnoError(Errno.EINVAL, 'writeback on an uninitialised device')
      if (!dev.lower.hasBackingDev) throw new ErrnoError(Errno.ENODEV, 'no backing device')
      await dev.lower.writeback(parseWritebackRequest(text, dev.disksize / 4096))
    },
  },
  {
    name: 'writeback_limit',
    mode: MODE_RW,
    show: (dev) => formatU64(dev.lower.limit),
    store: (dev, text) => {
      const v = parseWritebackLimit(text)
      dev.lower.limit = Number(v > LIMIT_MAX ? LIMIT_MAX : v)
    },
  },
  {
    name: 'writeback_limit_enable',
    mode: MODE_RW,
    show: (dev) => formatInt(dev.lower.limitEnable),
    store: (dev, text) => {
      dev.lower.limitEnable = parseWritebackLimitEnable(text)
    },
  },
  {
    name: 'writeback_batch_size',
    mode: MODE_RW,
    show: (dev) => formatU32(dev.lower.batchSize),
    store: (dev, text) => {
      dev.lower.batchSize = parseWritebackBatchSize(text)
    },
  },
  {
    // Mainline's name since 7.0 (linux-next had writeback_compressed): kstrtobool, then EBUSY once initialised.
    name: 'compressed_writeback',
    mode: MODE_RW,
    show: (dev) => formatInt(dev.lower.compressed),
    store: (dev, text) => {
      const v = parseCompressedWriteback(text)
      if (dev.initialised) throw new ErrnoError(Errno.EBUSY, 'compressed_writeback is set before disksize')
      dev.lower.compressed = v
    },
  },
]

export const bdStatAttribute: Attribute<ZramDevice> = {
  name: 'bd_stat',
  mode: MODE_RO,
  show: (dev) => {
    const s = dev.lower.stats()
    return formatBdStat({ count: s.bdCount, reads: s.bdReads, writes: s.bdWrites })
  },
}

/** zramfuse/ extensions of the writeback tier. */
export const writebackExtensionAttributes: readonly Attribute<ZramDevice>[] = [
  {
    // Pack compressed records densely into segments (on by default; applies when
    // compressed_writeback=1). Set before disksize, like compressed_writeback.
    name: 'writeback_packed',
    mode: MODE_RW,
    show: (dev) => formatInt(dev.lower.packed),
    store: (dev, text) => {
      const v = parseBool(text)
      if (dev.initialised) throw new ErrnoError(Errno.EBUSY, 'writeback_packed is set before disksize')
      dev.lower.packed = v
    },
  },
  { name: 'writeback_format', mode: MODE_RO, show: (dev) => `${dev.lower.format}\n` },
  { name: 'written_back_pages', mode: MODE_RO, show: (dev) => formatU64(dev.lower.stats().writtenBackPages) },
  { name: 'checksum_errors', mode: MODE_RO, show: (dev) => formatU64(dev.lower.stats().checksumErrors) },
  { name: 'lower_errors', mode: MODE_RO, show: (dev) => formatU64(dev.lower.stats().lowerErrors) },
  { name: 'segments_cleaned', mode: MODE_RO, show: (dev) => formatU64(dev.lower.stats().segmentsCleaned) },
  { name: 'lower_live_bytes', mode: MODE_RO, show: (dev) => formatU64(dev.lower.stats().liveBytes) },
  { name: 'lower_allocated_bytes', mode: MODE_RO, show: (dev) => formatU64(dev.lower.allocatedBytes()) },
  // ---- the shrinker (src/writeback): automatic writeback, off by default ----
  {
    name: 'shrinker_enabled',
    mode: MODE_RW,
    show: (dev) => formatInt(dev.shrinker.enabled),
    store: (dev, text) => {
      dev.shrinker.enabled = parseBool(text)
      dev.shrinker.poke()
    },
  },
  {
    // The pool's limit for the shrinker, memparse bytes; 0 (default) = mem_limit.
    name: 'pool_limit',
    mode: MODE_RW,
    show: (dev) => formatU64(dev.poolLimitBytes),
    store: (dev, text) => {
      const v = memparse(text)
      if (v > LIMIT_MAX) throw new ErrnoError(Errno.EINVAL, 'pool_limit too large')
      dev.setPoolLimit(Number(v))
    },
  },
  {
    name: 'accept_threshold_percent',
    mode: MODE_RW,
    show: (dev) => formatU32(dev.shrinker.acceptThresholdPercent),
    store: (dev, text) => {
      // zswap's param: 0..100.
      const v = parseU32(text, 10)
      if (v > 100) throw new ErrnoError(Errno.EINVAL, 'accept_threshold_percent must be 0..100')
      dev.shrinker.acceptThresholdPercent = v
    },
  },
  {
    name: 'writeback_pause_ms',
    mode: MODE_RW,
    show: (dev) => formatU32(dev.shrinker.pauseMs),
    store: (dev, text) => {
      dev.shrinker.pauseMs = parseU32(text, 10)
    },
  },
  { name: 'pool_limit_hit', mode: MODE_RO, show: (dev) => formatU64(dev.shrinker.poolLimitHit) },
  { name: 'shrinker_runs', mode: MODE_RO, show: (dev) => formatU64(dev.shrinker.runs) },
  { name: 'shrinker_paused', mode: MODE_RO, show: (dev) => formatU64(dev.shrinker.paused) },
]
