import { availableParallelism } from 'node:os'
import type { ZramDevice } from '../device/zram-device'
import type { DeviceSet } from '../device/device-set'
import { readDictionary } from '../codec/dictionary'
import { codecNames, findCodec } from '../codec/registry'
import { Errno, ErrnoError } from '../errno'
import { type Attribute, MODE_RO, MODE_RW, MODE_WO } from './attribute'
import {
  formatAlgorithmList, formatBlockStat, formatDebugStat, formatIoStat, formatMmStat, formatU64,
} from './format'
import { memparse, parseAlgorithmParamsArgs, parseDisksize, parseU64, resolveAlgorithmParams } from './parse'

const SECTOR_SHIFT = 9

function toSafeNumber(v: bigint, what: string): number {
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new ErrnoError(Errno.EINVAL, `${what} too large`)
  return Number(v)
}

/** /sys/block/zramN/: the kernel's names, modes, formats and errno, in zram_disk_attrs order. */
export const zramAttributes: readonly Attribute<ZramDevice>[] = [
  {
    name: 'disksize',
    mode: MODE_RW,
    show: (dev) => formatU64(dev.disksize),
    store: (dev, text) => {
      // disksize_store: memparse, 0 (or nothing parsed) -> EINVAL, then EBUSY once initialised.
      const bytes = parseDisksize(text)
      if (bytes === 0n) throw new ErrnoError(Errno.EINVAL, 'disksize must be non-zero')
      if (dev.initialised) throw new ErrnoError(Errno.EBUSY, 'cannot change disksize of an initialised device')
      dev.initialise(toSafeNumber(bytes, 'disksize'))
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
      // reset_store: kstrtou16, zero -> EINVAL, open -> EBUSY.
      const v = parseU64(text, 10)
      if (v > 0xffffn) throw new ErrnoError(Errno.ERANGE, 'reset value out of range')
      if (v === 0n) throw new ErrnoError(Errno.EINVAL, 'reset needs a non-zero value')
      dev.reset()
    },
  },
  {
    name: 'compact',
    mode: MODE_WO,
    store: (dev) => {
      dev.compact()
    },
  },
  {
    name: 'mem_limit',
    mode: MODE_WO,
    store: (dev, text) => {
      dev.setMemLimit(toSafeNumber(memparse(text), 'mem_limit'))
    },
  },
  {
    name: 'mem_used_max',
    mode: MODE_WO,
    store: (dev, text) => {
      // mem_used_max_store: kstrtoul, any error or a non-zero value -> EINVAL.
      let v: bigint
      try {
        v = parseU64(text, 10)
      } catch {
        throw new ErrnoError(Errno.EINVAL, 'mem_used_max accepts only 0')
      }
      if (v !== 0n) throw new ErrnoError(Errno.EINVAL, 'mem_used_max accepts only 0')
      dev.resetMemUsedMax()
    },
  },
  {
    name: 'max_comp_streams',
    mode: MODE_RW,
    // Deprecated in the kernel: shows the online CPU count, accepts and ignores writes.
    show: () => `${availableParallelism()}\n`,
    store: () => {},
  },
  {
    name: 'comp_algorithm',
    mode: MODE_RW,
    show: (dev) => formatAlgorithmList(codecNames(), dev.algorithm),
    store: (dev, text) => {
      const name = text.replace(/\n$/, '')
      if (!findCodec(name)) throw new ErrnoError(Errno.EINVAL, `unknown compression algorithm ${JSON.stringify(name)}`)
      dev.setAlgorithm(name)
    },
  },
  {
    name: 'algorithm_params',
    mode: MODE_WO,
    store: (dev, text) => {
      // The kernel's order: parse, then EBUSY, then resolve algo= against the configured slots.
      const args = parseAlgorithmParamsArgs(text)
      if (dev.initialised) throw new ErrnoError(Errno.EBUSY, 'cannot change algorithm parameters of an initialised device')
      const p = resolveAlgorithmParams(args, [dev.algorithm])
      // Priority 0 is the primary algorithm; recompression priorities come with recomp_algorithm.
      if (p.priority !== 0) throw new ErrnoError(Errno.EINVAL, `priority ${p.priority} has no algorithm`)
      const codec = findCodec(dev.algorithm)
      if (p.level !== null) {
        const range = codec?.levelRange
        if (!range || p.level < range[0] || p.level > range[1]) {
          throw new ErrnoError(Errno.EINVAL, `level ${p.level} is not valid for ${dev.algorithm}`)
        }
      }
      if (p.dict === null) {
        dev.setParams({ level: p.level, dict: null })
        return
      }
      if (!codec?.supportsDict) throw new ErrnoError(Errno.EINVAL, `${dev.algorithm} takes no dictionary`)
      // comp_params_store: the old parameters go first, so a dictionary that cannot be read
      // leaves the defaults (EINVAL). The backend checks the dictionary itself at disksize.
      dev.setParams({ level: null, dict: null })
      const path = p.dict
      return readDictionary(path).then(
        (dict) => dev.setParams({ level: p.level, dict }),
        (err: unknown) => {
          throw new ErrnoError(Errno.EINVAL, `dict: ${err instanceof Error ? err.message : String(err)}`)
        },
      )
    },
  },
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
    mode: MODE_RO,
    // Reading creates a device: the FUSE layer calls show once per open file, so one cat, one device.
    show: (set) => `${set.add().id}\n`,
  },
  {
    name: 'hot_remove',
    mode: MODE_WO,
    store: (set, text) => {
      // hot_remove_store: kstrtoint base 10, negative -> EINVAL.
      const trimmed = text.replace(/\n$/, '')
      if (!/^[+-]?\d+$/.test(trimmed)) throw new ErrnoError(Errno.EINVAL, `bad device id ${JSON.stringify(trimmed)}`)
      const id = Number(trimmed)
      if (id < 0) throw new ErrnoError(Errno.EINVAL, 'negative device id')
      if (id > 0x7fffffff) throw new ErrnoError(Errno.ERANGE, 'device id out of range')
      set.remove(id)
    },
  },
]
