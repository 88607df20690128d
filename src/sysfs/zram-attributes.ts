import type { ZramDevice } from '../device/zram-device'
import type { DeviceSet } from '../device/device-set'
import { readDictionary } from '../codec/dictionary'
import { codecNames, findCodec } from '../codec/registry'
import { Errno, ErrnoError } from '../errno'
import { type Attribute, MODE_RO, MODE_RO_ROOT, MODE_RW, MODE_WO } from './attribute'
import {
  formatAlgorithmList, formatBlockStat, formatDebugStat, formatIoStat, formatMmStat, formatU64,
} from './format'
import { bdStatAttribute, idleAttribute, writebackAttributes } from './writeback-attributes'
import { configuredAlgorithms, recompressAttributes } from './recompress-attributes'
import { parseAlgorithmName, parseAlgorithmParamsArgs, resolveAlgorithmParams } from './algorithm-parse'
import { pageAlign, parseDisksize, parseHotRemove, parseMemLimit, parseMemUsedMax, parseReset } from './device-parse'

const SECTOR_SHIFT = 9

/**
 * /sys/block/zramN/: the kernel's names, modes, formats and errno, in zram_disk_attrs order, as of
 * mainline (drivers/block/zram/zram_drv.c, 7.1 merge window; the interface of 6.18 plus
 * writeback_batch_size and compressed_writeback), with CONFIG_ZRAM_WRITEBACK and CONFIG_ZRAM_MULTI_COMP. Every store parses with a src/sysfs/*-parse.ts
 * function (on kstrtox.ts, the kernel's primitives) that copies the kernel function named in its comment, and keeps the kernel's order of checks (parse
 * errors before EBUSY). The FUSE layer hands a store the written bytes one char per byte (latin1),
 * cut at 4096 as sysfs does, and logs one JSON line for each store it refuses.
 */
export const zramAttributes: readonly Attribute<ZramDevice>[] = [
  {
    name: 'disksize',
    mode: MODE_RW,
    show: (dev) => formatU64(dev.disksize),
    store: (dev, text) => {
      // disksize_store: memparse, 0 -> EINVAL; initialised -> EBUSY; PAGE_ALIGN; the table (ENOMEM).
      const bytes = parseDisksize(text)
      if (dev.initialised) throw new ErrnoError(Errno.EBUSY, 'cannot change disksize of an initialised device')
      const aligned = pageAlign(bytes)
      // Within a page of 2^64 PAGE_ALIGN wraps to 0 and the kernel's vzalloc(0) fails; beyond 2^53
      // bytes the table (2^41 pages) could not be allocated either: both ENOMEM, as on 6.18.
      if (aligned === 0n || aligned > BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new ErrnoError(Errno.ENOMEM, `cannot allocate a page table for a disksize of ${bytes} bytes`)
      }
      dev.initialise(Number(aligned))
    },
  },
  {
    name: 'initstate',
    mode: MODE_RO,
    show: (dev) => (dev.initialised ? '1\n' : '0\n'),
  },
  {
    name: 'reset',
    mode: MODE_WO,
    store: (dev, text) => {
      // reset_store: kstrtou16 (EINVAL / ERANGE), 0 -> EINVAL, then open -> EBUSY.
      parseReset(text)
      dev.reset()
    },
  },
  {
    name: 'compact',
    mode: MODE_WO,
    // compact_store: the written bytes are not looked at; EINVAL while uninitialised.
    store: (dev) => {
      dev.compact()
    },
  },
  {
    name: 'mem_limit',
    mode: MODE_WO,
    store: (dev, text) => {
      // mem_limit_store: memparse, nothing parsed -> EINVAL, PAGE_ALIGN; writable any time.
      dev.setMemLimit(Number(parseMemLimit(text)))
    },
  },
  {
    name: 'mem_used_max',
    mode: MODE_WO,
    store: (dev, text) => {
      // mem_used_max_store: kstrtoul, any error or a non-zero value -> EINVAL.
      parseMemUsedMax(text)
      dev.resetMemUsedMax()
    },
  },
  idleAttribute,
  {
    name: 'comp_algorithm',
    mode: MODE_RW,
    show: (dev) => formatAlgorithmList(codecNames(), dev.algorithm),
    store: (dev, text) => {
      // __comp_algorithm_store: >= 128 bytes -> E2BIG, unknown -> EINVAL, then initialised -> EBUSY.
      dev.setAlgorithm(parseAlgorithmName(text, codecNames()))
    },
  },
  bdStatAttribute,
  ...writebackAttributes,
  {
    name: 'io_stat',
    mode: MODE_RO,
    show: (dev) => formatIoStat(dev.stats()),
  },
  {
    name: 'mm_stat',
    mode: MODE_RO,
    show: (dev) => formatMmStat(dev.stats()),
  },
  {
    name: 'debug_stat',
    mode: MODE_RO,
    show: (dev) => formatDebugStat(dev.stats()),
  },
  ...recompressAttributes,
  {
    name: 'algorithm_params',
    mode: MODE_WO,
    store: (dev, text) => {
      // The kernel's order: parse, then EBUSY, then resolve algo= against the configured slots
      // (comp_algs[0..3]) and check the priority (0..3; a slot with no algorithm yet is accepted).
      const args = parseAlgorithmParamsArgs(text)
      if (dev.initialised) throw new ErrnoError(Errno.EBUSY, 'cannot change algorithm parameters of an initialised device')
      const p = resolveAlgorithmParams(args, configuredAlgorithms(dev))
      const name = p.priority === 0 ? dev.algorithm : dev.recomp.nameOf(p.priority)
      // Checked now when the slot has its algorithm; otherwise by the backend at disksize (EINVAL there).
      const codec = name === null ? undefined : findCodec(name)
      if (p.level !== null && codec !== undefined) {
        const range = codec.levelRange
        if (!range || p.level < range[0] || p.level > range[1]) {
          throw new ErrnoError(Errno.EINVAL, `level ${p.level} is not valid for ${name}`)
        }
      }
      if (p.dict === null) {
        dev.setParams({ level: p.level, dict: null }, p.priority)
        return
      }
      if (codec !== undefined && !codec.supportsDict) throw new ErrnoError(Errno.EINVAL, `${name} takes no dictionary`)
      // comp_params_store: the old parameters go first, so a dictionary that cannot be read
      // leaves the defaults (EINVAL). The backend checks the dictionary itself at disksize.
      dev.setParams({ level: null, dict: null }, p.priority)
      const path = p.dict
      return readDictionary(path).then(
        (dict) => dev.setParams({ level: p.level, dict }, p.priority),
        (err: unknown) => {
          throw new ErrnoError(Errno.EINVAL, `dict: ${err instanceof Error ? err.message : String(err)}`)
        },
      )
    },
  },
  // Block-layer attributes the kernel adds to every disk.
  {
    name: 'size',
    mode: MODE_RO,
    show: (dev) => formatU64(BigInt(dev.disksize) >> BigInt(SECTOR_SHIFT)),
  },
  {
    name: 'stat',
    mode: MODE_RO,
    show: (dev) => {
      const b = dev.blockStat
      return formatBlockStat({
        readIos: b.readIos, readMerges: 0, readSectors: b.readSectors, readTicksMs: Math.round(b.readTicksMs),
        writeIos: b.writeIos, writeMerges: 0, writeSectors: b.writeSectors, writeTicksMs: Math.round(b.writeTicksMs),
        inFlight: b.inFlight, ioTicksMs: Math.round(b.ioTicksMs), timeInQueueMs: Math.round(b.timeInQueueMs),
        discardIos: b.discardIos, discardMerges: 0, discardSectors: b.discardSectors,
        discardTicksMs: Math.round(b.discardTicksMs), flushIos: b.flushIos, flushTicksMs: Math.round(b.flushTicksMs),
      })
    },
  },
]

/** /sys/class/zram-control/. */
export const controlAttributes: readonly Attribute<DeviceSet>[] = [
  {
    name: 'hot_add',
    // 0400 in the kernel ("must be set to 0400"): reading it changes the system.
    mode: MODE_RO_ROOT,
    // Reading creates a device. The FUSE layer calls show as seq_file does, on every read from
    // offset 0 and on a read anywhere but where the last one ended: a sequential reader (cat)
    // creates one device, each re-read from offset 0 of the same open file another, as in the kernel.
    show: (set) => `${set.add().id}\n`,
  },
  {
    name: 'hot_remove',
    mode: MODE_WO,
    store: (set, text) => {
      // hot_remove_store: kstrtoint base 10 (EINVAL / ERANGE), negative -> EINVAL; then ENODEV / EBUSY.
      set.remove(parseHotRemove(text))
    },
  },
]
