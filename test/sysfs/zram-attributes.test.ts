import t from 'tap'
import { DeviceSet } from '../../src/device/device-set'
import type { ZramDevice } from '../../src/device/zram-device'
import { Errno, ErrnoError } from '../../src/errno'
import { controlAttributes, zramAttributes } from '../../src/sysfs/zram-attributes'
import { extensionAttributes } from '../../src/sysfs/zramfuse-attributes'
import { MODE_RO, MODE_RO_ROOT, MODE_RW, MODE_WO } from '../../src/sysfs/attribute'

function attr(name: string) {
  const a = zramAttributes.find((x) => x.name === name)
  if (!a) throw new Error(`no attribute ${name}`)
  return a
}

function show(dev: ZramDevice, name: string): string {
  return attr(name).show!(dev)
}

/** Store text; returns 0 on success or the errno the writer would see. */
function store(dev: ZramDevice, name: string, text: string): number {
  try {
    attr(name).store!(dev, text)
    return 0
  } catch (err) {
    if (err instanceof ErrnoError) return err.errno
    throw err
  }
}

t.test('modes are the kernel\'s', async (t) => {
  const modes: Record<string, number> = {
    disksize: MODE_RW, initstate: MODE_RO, reset: MODE_WO, compact: MODE_WO, mem_limit: MODE_WO,
    mem_used_max: MODE_WO, comp_algorithm: MODE_RW, algorithm_params: MODE_WO, io_stat: MODE_RO,
    mm_stat: MODE_RO, debug_stat: MODE_RO, stat: MODE_RO, size: MODE_RO,
  }
  for (const [name, mode] of Object.entries(modes)) {
    const a = attr(name)
    t.equal(a.mode, mode, `${name} mode ${mode.toString(8)}`)
    t.equal(a.show !== undefined, (mode & 0o444) !== 0, `${name} readable iff it has show`)
    t.equal(a.store !== undefined, (mode & 0o200) !== 0, `${name} writable iff it has store`)
  }
  t.equal(controlAttributes.find((a) => a.name === 'hot_add')!.mode, MODE_RO_ROOT, 'hot_add is 0400 in the kernel')
  t.equal(controlAttributes.find((a) => a.name === 'hot_remove')!.mode, MODE_WO)
})

t.test('disksize, initstate and the errno of a second disksize', async (t) => {
  const dev = new DeviceSet().add()
  t.equal(show(dev, 'initstate'), '0\n')
  t.equal(show(dev, 'disksize'), '0\n')
  t.equal(store(dev, 'disksize', '0\n'), Errno.EINVAL, 'zero')
  t.equal(store(dev, 'disksize', 'junk\n'), Errno.EINVAL, 'no number')
  t.equal(store(dev, 'disksize', '1G\n'), 0)
  t.equal(show(dev, 'disksize'), '1073741824\n')
  t.equal(show(dev, 'initstate'), '1\n')
  t.equal(show(dev, 'size'), '2097152\n', 'size in 512-byte sectors')
  t.equal(store(dev, 'disksize', '2G\n'), Errno.EBUSY, 'twice')
})

t.test('comp_algorithm and algorithm_params', async (t) => {
  const dev = new DeviceSet().add()
  t.equal(show(dev, 'comp_algorithm'), '[lz4] zstd \n')
  t.equal(store(dev, 'comp_algorithm', 'lzo-rle\n'), Errno.EINVAL, 'unknown')
  t.equal(store(dev, 'comp_algorithm', 'zstd\n'), 0)
  t.equal(show(dev, 'comp_algorithm'), 'lz4 [zstd] \n')
  t.equal(store(dev, 'algorithm_params', 'level=9\n'), 0)
  t.equal(dev.compressionLevel, 9)
  t.equal(store(dev, 'algorithm_params', 'algo=zstd level=5\n'), 0)
  t.equal(dev.compressionLevel, 5)
  t.equal(store(dev, 'algorithm_params', 'level\n'), Errno.EINVAL, 'key without value')
  t.equal(store(dev, 'algorithm_params', 'level=99\n'), Errno.EINVAL, 'level out of range')
  t.equal(store(dev, 'algorithm_params', 'algo=lz4 level=1\n'), Errno.EINVAL, 'not the selected algorithm')
  t.equal(store(dev, 'disksize', '1M\n'), 0)
  t.equal(store(dev, 'comp_algorithm', 'lz4\n'), Errno.EBUSY, 'after init')
  t.equal(store(dev, 'comp_algorithm', 'nope\n'), Errno.EINVAL, 'unknown is EINVAL even after init, as the kernel checks it first')
  t.equal(store(dev, 'algorithm_params', 'level=3\n'), Errno.EBUSY, 'params after init')
})

t.test('mem_used_max, mem_limit, compact, reset', async (t) => {
  const dev = new DeviceSet().add()
  t.equal(store(dev, 'compact', '1\n'), Errno.EINVAL, 'compact before init')
  t.equal(store(dev, 'mem_used_max', '1\n'), Errno.EINVAL)
  t.equal(store(dev, 'mem_used_max', 'x\n'), Errno.EINVAL)
  t.equal(store(dev, 'mem_used_max', '0\n'), 0)
  t.equal(store(dev, 'mem_limit', '64M\n'), 0)
  t.equal(store(dev, 'mem_limit', 'lots\n'), Errno.EINVAL)
  t.equal(store(dev, 'disksize', '4M\n'), 0)
  t.match(show(dev, 'mm_stat'), /^ +0 +0 +0 67108864 +0 +0 +0 +0 +0\n$/)
  t.equal(store(dev, 'compact', '1\n'), 0)
  t.equal(store(dev, 'reset', '0\n'), Errno.EINVAL, 'reset 0')
  t.equal(store(dev, 'reset', 'x\n'), Errno.EINVAL, 'reset junk')
  dev.opened()
  t.equal(store(dev, 'reset', '1\n'), Errno.EBUSY, 'reset while open')
  dev.released()
  t.equal(store(dev, 'reset', '1\n'), 0)
  t.equal(show(dev, 'initstate'), '0\n')
  t.match(show(dev, 'mm_stat'), /^ +0 +0 +0 +0 +0 +0 +0 +0 +0\n$/, 'reset clears mem_limit too')
})

t.test('stat formats', async (t) => {
  const dev = new DeviceSet().add()
  store(dev, 'disksize', '1M\n')
  await dev.write(Buffer.alloc(8192, 3), 0)
  t.equal(show(dev, 'io_stat'), '       0        0 0        0\n')
  t.equal(show(dev, 'debug_stat'), 'version: 1\n0        0\n')
  const stat = show(dev, 'stat').trim().split(/\s+/).map(Number)
  t.equal(stat.length, 17)
  t.equal(stat[4], 1, 'one write I/O')
  t.equal(stat[6], 16, '16 sectors written')
  t.match(show(dev, 'mm_stat'), /^ +8192 +0 +0 +0 +0 +2 +0 +0 +0\n$/)
})

t.test('hot_add creates exactly one device per read; hot_remove errno', async (t) => {
  const set = new DeviceSet()
  set.add()
  const hotAdd = controlAttributes.find((a) => a.name === 'hot_add')!
  const hotRemove = controlAttributes.find((a) => a.name === 'hot_remove')!
  t.equal(hotAdd.show!(set), '1\n')
  t.same(set.ids(), [0, 1])
  const remove = (text: string): number => {
    try {
      hotRemove.store!(set, text)
      return 0
    } catch (err) {
      return (err as ErrnoError).errno
    }
  }
  t.equal(remove('7\n'), Errno.ENODEV)
  t.equal(remove('-1\n'), Errno.EINVAL)
  t.equal(remove('one\n'), Errno.EINVAL)
  set.get(1)!.opened()
  t.equal(remove('1\n'), Errno.EBUSY)
  set.get(1)!.released()
  t.equal(remove('1\n'), 0)
  t.same(set.ids(), [0])
  t.equal(hotAdd.show!(set), '1\n', 'the lowest free id is reused')
})

/**
 * zram_disk_attrs of mainline Linux 6.18 (drivers/block/zram/zram_drv.c), by the config option that
 * adds them; the block layer adds size and stat to every disk. max_comp_streams is gone (2025).
 */
const KERNEL_6_18_ATTRS = {
  always: ['disksize', 'initstate', 'reset', 'compact', 'mem_limit', 'mem_used_max', 'idle', 'comp_algorithm',
    'io_stat', 'mm_stat', 'debug_stat', 'algorithm_params'],
  CONFIG_ZRAM_WRITEBACK: ['bd_stat', 'backing_dev', 'writeback', 'writeback_limit', 'writeback_limit_enable'],
  CONFIG_ZRAM_MULTI_COMP: ['recomp_algorithm', 'recompress'],
  block: ['size', 'stat'],
  // Added to mainline after 6.18 (the writeback batching and compressed writeback series, 2025),
  // which the writeback tier copies too (issue 9).
  after_6_18: ['writeback_batch_size', 'compressed_writeback'],
}

t.test('attribute names are the kernel 6.18 interface: nothing the kernel does not have', async (t) => {
  const kernel = new Set(Object.values(KERNEL_6_18_ATTRS).flat())
  const ours = zramAttributes.map((a) => a.name)
  t.same(ours.filter((n) => !kernel.has(n)), [], 'every name we show exists in 6.18')
  t.notOk(ours.includes('max_comp_streams'), 'max_comp_streams is removed, as in mainline')
  t.equal(new Set(ours).size, ours.length, 'no name twice')
  const missing = [...kernel].filter((n) => !ours.includes(n))
  t.comment(`kernel 6.18 attributes not here yet: ${missing.join(' ')}`)
  t.same(controlAttributes.map((a) => a.name), ['hot_add', 'hot_remove'])
})

t.test('stores parse like the kernel (each failed before the stores used the kernel\'s parsers)', async (t) => {
  const dev = new DeviceSet().add()
  t.equal(store(dev, 'comp_algorithm', 'lz4\n\n'), 0, 'sysfs_streq takes one more newline')
  t.equal(store(dev, 'comp_algorithm', 'zstd\0junk'), 0, 'a C string ends at NUL')
  t.equal(show(dev, 'comp_algorithm'), 'lz4 [zstd] \n')
  t.equal(store(dev, 'comp_algorithm', 'x'.repeat(128)), Errno.E2BIG, 'a name of 128 bytes')
  t.equal(store(dev, 'comp_algorithm', 'x'.repeat(127)), Errno.EINVAL, 'a name of 127 bytes')
  t.equal(store(dev, 'comp_algorithm', 'lz4\xa0'), Errno.EINVAL, '0xA0 is not stripped by sysfs_streq')

  t.equal(store(dev, 'mem_limit', '15E'), 0, 'beyond 2^53 bytes: the kernel takes it')
  t.match(show(dev, 'mm_stat'), /^ +0 +0 +0 17293822569102704640 /, 'and shows it exactly')
  t.equal(store(dev, 'mem_limit', '18446744073709551615'), 0)
  t.match(show(dev, 'mm_stat'), /^ +0 +0 +0 +0 /, 'PAGE_ALIGN wrapped it to 0')
  t.equal(store(dev, 'mem_limit', '1'), 0)
  t.match(show(dev, 'mm_stat'), /^ +0 +0 +0 +4096 /, 'rounded up to a page')

  t.equal(store(dev, 'disksize', '18446744073709551615'), Errno.ENOMEM, 'PAGE_ALIGN wraps to 0: vzalloc fails')
  t.equal(store(dev, 'disksize', '8E'), Errno.ENOMEM)
  t.equal(store(dev, 'disksize', '16E'), Errno.EINVAL, 'memparse wraps to 0')
  t.equal(store(dev, 'disksize', ' 4M'), Errno.EINVAL, 'memparse skips no whitespace')
  t.equal(store(dev, 'disksize', '010'), 0, 'octal 8 bytes')
  t.equal(show(dev, 'disksize'), '4096\n', 'page aligned')
  t.equal(store(dev, 'disksize', '0'), Errno.EINVAL, 'parsed before the EBUSY check')

  t.equal(store(dev, 'reset', '+1'), 0)
  t.equal(store(dev, 'reset', '65536'), Errno.ERANGE)
  t.equal(store(dev, 'reset', '1\n\n'), Errno.EINVAL)
  t.equal(store(dev, 'mem_used_max', '99999999999999999999'), Errno.EINVAL, 'its ERANGE is EINVAL')
  t.equal(store(dev, 'mem_used_max', '00'), 0)
})

t.test('hot_remove parses with kstrtoint', async (t) => {
  const set = new DeviceSet()
  set.add()
  const hotRemove = controlAttributes.find((a) => a.name === 'hot_remove')!
  const remove = (text: string): number => {
    try {
      hotRemove.store!(set, text)
      return 0
    } catch (err) {
      return (err as ErrnoError).errno
    }
  }
  t.equal(remove('-2147483649'), Errno.ERANGE, 'below INT_MIN (was EINVAL)')
  t.equal(remove('2147483648'), Errno.ERANGE)
  t.equal(remove('99999999999999999999'), Errno.ERANGE)
  t.equal(remove('+5'), Errno.ENODEV)
  t.equal(remove('05\n'), Errno.ENODEV, 'base 10')
  t.equal(remove('0x5'), Errno.EINVAL)
  t.equal(remove('5\n\n'), Errno.EINVAL)
  t.equal(remove('\xa05'), Errno.EINVAL)
  t.same(set.ids(), [0])
  t.equal(remove('-0'), 0, '-0 is 0: zram0 goes')
  t.same(set.ids(), [])
})

t.test('a write past the end counts as invalid_io, not failed_writes', async (t) => {
  const dev = new DeviceSet().add()
  store(dev, 'disksize', '1M\n')
  let errno = 0
  try {
    void dev.write(Buffer.alloc(4096), 1024 * 1024)
  } catch (err) {
    errno = (err as ErrnoError).errno
  }
  t.equal(errno, Errno.ENOSPC, 'refused')
  t.equal(show(dev, 'io_stat'), '       0        0 0        0\n', 'io_stat: the third field is a literal 0 (6.18)')
  const invalidIo = extensionAttributes.find((a) => a.name === 'invalid_io')!
  t.equal(invalidIo.show!(dev), '1\n')
  store(dev, 'reset', '1')
  t.equal(invalidIo.show!(dev), '0\n', 'reset clears it')
})

t.test('zramfuse/ workers and fifo_size parse as kstrtouint', async (t) => {
  const dev = new DeviceSet({ workers: 0 }).add()
  const ext = (name: string, text: string): number => {
    try {
      extensionAttributes.find((a) => a.name === name)!.store!(dev, text)
      return 0
    } catch (err) {
      return (err as ErrnoError).errno
    }
  }
  t.equal(ext('workers', '4294967296'), Errno.ERANGE)
  t.equal(ext('workers', '-1'), Errno.EINVAL)
  t.equal(ext('workers', '99'), Errno.EINVAL, 'out of range')
  t.equal(ext('fifo_size', '4294967296\n'), Errno.ERANGE)
  t.equal(ext('fifo_size', '0'), Errno.EINVAL)
  t.equal(ext('fifo_size', '64\n'), 0)
  t.equal(extensionAttributes.find((a) => a.name === 'fifo_size')!.show!(dev), '64\n')
  await dev.close()
})

/** A store that may answer later (algorithm_params dict= reads its file asynchronously). */
async function storeAsync(dev: ZramDevice, name: string, text: string): Promise<number> {
  try {
    await attr(name).store!(dev, text)
    return 0
  } catch (err) {
    if (err instanceof ErrnoError) return err.errno
    throw err
  }
}

t.test('algorithm_params dict=: read when written, bad paths EINVAL and the old parameters gone', async (t) => {
  const dir = t.testdir({ 'zstd.dict': 'a dictionary: any bytes are raw content for zstd', 'empty.dict': '' })
  const dict = `${dir}/zstd.dict`
  const dev = new DeviceSet().add()
  t.equal(store(dev, 'comp_algorithm', 'zstd\n'), 0)
  t.equal(await storeAsync(dev, 'algorithm_params', `level=7 dict=${dict}\n`), 0)
  t.equal(dev.compressionLevel, 7)
  t.equal(Buffer.from(dev.compressionDict!).toString(), 'a dictionary: any bytes are raw content for zstd')
  t.equal(await storeAsync(dev, 'algorithm_params', `level=5 dict=${dir}/missing.dict\n`), Errno.EINVAL, 'missing file')
  t.equal(dev.compressionLevel, null, 'comp_params_store resets the parameters before reading the file')
  t.equal(dev.compressionDict, null)
  t.equal(await storeAsync(dev, 'algorithm_params', `dict=${dir}/empty.dict\n`), Errno.EINVAL, 'empty file')
  t.equal(await storeAsync(dev, 'algorithm_params', `dict=${dir}\n`), Errno.EINVAL, 'a directory')
  t.equal(await storeAsync(dev, 'algorithm_params', 'dict=zstd.dict\n'), Errno.EINVAL, 'a relative path')
  t.equal(await storeAsync(dev, 'algorithm_params', `"dict=${dict}"\n`), 0, 'quoted as next_arg allows')
  t.equal(await storeAsync(dev, 'algorithm_params', 'level=3\n'), 0, 'parameters without dict= drop the dictionary')
  t.equal(dev.compressionDict, null)
  t.equal(await storeAsync(dev, 'algorithm_params', `dict=${dict}\n`), 0)
  t.equal(store(dev, 'disksize', '1M\n'), 0)
  t.equal(await storeAsync(dev, 'algorithm_params', `dict=${dict}\n`), Errno.EBUSY, 'after init')
  await dev.write(Buffer.from('x'.repeat(4096)), 0)
  const out = Buffer.alloc(4096)
  await dev.read(out, 0)
  t.equal(out.toString(), 'x'.repeat(4096), 'the device works with its dictionary')
})
