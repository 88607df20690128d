import t from 'tap'
import { DeviceSet } from '../../src/device/device-set'
import type { ZramDevice } from '../../src/device/zram-device'
import { Errno, ErrnoError } from '../../src/errno'
import { controlAttributes, zramAttributes } from '../../src/sysfs/zram-attributes'
import { MODE_RO, MODE_RW, MODE_WO } from '../../src/sysfs/attribute'

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
    mm_stat: MODE_RO, debug_stat: MODE_RO, stat: MODE_RO, max_comp_streams: MODE_RW, size: MODE_RO,
  }
  for (const [name, mode] of Object.entries(modes)) {
    const a = attr(name)
    t.equal(a.mode, mode, `${name} mode ${mode.toString(8)}`)
    t.equal(a.show !== undefined, (mode & 0o444) !== 0, `${name} readable iff it has show`)
    t.equal(a.store !== undefined, (mode & 0o200) !== 0, `${name} writable iff it has store`)
  }
  t.equal(controlAttributes.find((a) => a.name === 'hot_add')!.mode, MODE_RO)
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
