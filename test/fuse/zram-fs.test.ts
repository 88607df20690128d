// The FUSE operations without a mount: how attribute reads and writes reach show() and store(),
// byte for byte as sysfs (kernfs + seq_file) hands them over on Linux 6.18.
import t from 'tap'
import type { Operations, Stat } from 'fuse-native'
import { DeviceSet } from '../../src/device/device-set'
import { Errno } from '../../src/errno'
import type { EventLog } from '../../src/log'
import { ZramFs } from '../../src/fuse/zram-fs'

const O_RDONLY = 0
const O_WRONLY = 1

interface Fixture {
  ops: Operations
  set: DeviceSet
  lines: Record<string, unknown>[]
}

function fixture(): Fixture {
  const set = new DeviceSet({ workers: 0 })
  set.add()
  const lines: Record<string, unknown>[] = []
  const capture = (obj: object): void => {
    lines.push({ ...obj })
  }
  const log: EventLog = { info: capture, warn: capture, error: capture, debug: () => {} }
  return { ops: new ZramFs(set, log).operations(), set, lines }
}

/** Every operation here answers synchronously: run it and return what it answered. */
function answer<R extends unknown[]>(invoke: (cb: (...r: R) => void) => void): R {
  let got: R | null = null
  invoke((...r: R) => {
    got = r
  })
  if (got === null) throw new Error('the operation did not answer synchronously')
  return got
}

function open(f: Fixture, path: string, flags: number): number {
  const [code, fd] = answer<[number, number?]>((cb) => f.ops.open!(path, flags, cb))
  if (code !== 0 || fd === undefined) throw new Error(`open ${path}: ${code}`)
  return fd
}

/** pread: the bytes read (latin1), or the negative errno. */
function pread(f: Fixture, path: string, fd: number, pos: number, len = 4096): string | number {
  const buf = Buffer.alloc(len)
  const [n] = answer<[number]>((cb) => f.ops.read!(path, fd, buf, len, pos, cb))
  return n < 0 ? n : buf.toString('latin1', 0, n)
}

/** pwrite of exact bytes: the count answered, or the negative errno. */
function pwrite(f: Fixture, path: string, fd: number, bytes: Buffer, pos = 0): number {
  const [n] = answer<[number]>((cb) => f.ops.write!(path, fd, bytes, bytes.length, pos, cb))
  return n
}

function release(f: Fixture, path: string, fd: number): void {
  answer<[number]>((cb) => f.ops.release!(path, fd, cb))
}

const SYS = '/sys/block/zram0'
const HOT_ADD = '/sys/class/zram-control/hot_add'

t.test('reads follow seq_file: show again at offset 0 and after a seek, not when reading on', async (t) => {
  const f = fixture()
  const fd = open(f, HOT_ADD, O_RDONLY)
  t.equal(pread(f, HOT_ADD, fd, 0, 1), '1', 'the first read creates zram1')
  t.equal(pread(f, HOT_ADD, fd, 1), '\n', 'reading on serves the same content')
  t.equal(pread(f, HOT_ADD, fd, 2), '', 'then end of file')
  t.same(f.set.ids(), [0, 1], 'a sequential reader (cat) creates one device')
  t.equal(pread(f, HOT_ADD, fd, 0), '2\n', 'a read from offset 0 shows again: zram2')
  t.equal(pread(f, HOT_ADD, fd, 1), '\n', 'a read elsewhere than where the last ended shows again: zram3')
  t.same(f.set.ids(), [0, 1, 2, 3])
  release(f, HOT_ADD, fd)

  // The same rule on an attribute whose content changes between reads (checked against 6.18's
  // comp_algorithm with pread: see test/e2e/kernel-oracle.test.ts for the end-to-end check).
  const path = `${SYS}/disksize`
  const r = open(f, path, O_RDONLY)
  const w = open(f, path, O_WRONLY)
  t.equal(pread(f, path, r, 0, 1), '0')
  t.equal(pwrite(f, path, w, Buffer.from('4M')), 2)
  t.equal(pread(f, path, r, 1), '\n', 'reading on: the old content')
  t.equal(pread(f, path, r, 3), '4304\n', 'elsewhere: shown again (4194304)')
  t.equal(pread(f, path, r, 0), '4194304\n')
})

t.test('writes reach the store as bytes (latin1), cut at 4096, answered with the count taken', async (t) => {
  const f = fixture()
  const algo = `${SYS}/comp_algorithm`
  const fd = open(f, algo, O_WRONLY)
  // As UTF-8, 0xA0 alone is invalid and decodes to U+FFFD; as bytes it is the kernel's no-break
  // space, which sysfs_streq does not strip: EINVAL either way here, but the log shows the byte.
  t.equal(pwrite(f, algo, fd, Buffer.from([0x6c, 0x7a, 0x34, 0xa0])), -Errno.EINVAL)
  const refused = f.lines.at(-1)
  t.equal(refused?.value, 'lz4\xa0', 'the refused value is logged byte for byte')
  t.equal(refused?.errno, 'EINVAL')
  t.equal(pwrite(f, algo, fd, Buffer.from('zstd\n\n')), 6, 'lz4\\n\\n-style double newline accepted')
  t.equal(f.set.get(0)!.algorithm, 'zstd')

  const limit = `${SYS}/mem_limit`
  const lfd = open(f, limit, O_WRONLY)
  const long = Buffer.alloc(5000, 0x78)
  long[0] = 0x31 // "1xxxx...": memparse reads 1 and ignores the rest
  t.equal(pwrite(f, limit, lfd, long), 4096, 'a longer write is short, as kernfs cuts it to PAGE_SIZE')
  t.match(pread(f, `${SYS}/mm_stat`, open(f, `${SYS}/mm_stat`, O_RDONLY), 0), /^ +0 +0 +0 +4096 /)
  const stored = f.lines.at(-1)
  t.equal(stored?.event, 'attr_store')
  t.equal(String(stored?.value).length, 256, 'the log line carries at most 256 chars of the value')

  const before = f.lines.length
  t.equal(pwrite(f, limit, lfd, Buffer.alloc(0)), 0, 'an empty write returns 0')
  t.equal(f.lines.length, before, 'and never reaches the store (no log line)')

  // A NUL ends the string for the kernel's parsers: UTF-8 and latin1 agree on it, the store sees it.
  t.equal(pwrite(f, algo, fd, Buffer.from('lz4\0junk')), 8)
  t.equal(f.set.get(0)!.algorithm, 'lz4')
})

t.test('readdir of a file is ENOTDIR', async (t) => {
  const f = fixture()
  t.same(answer<[number, string[]?]>((cb) => f.ops.readdir!(`${SYS}/disksize`, cb)), [-Errno.ENOTDIR])
  const [code, names = []] = answer<[number, string[]?]>((cb) => f.ops.readdir!(SYS, cb))
  t.equal(code, 0)
  t.notOk(names.includes('max_comp_streams'), 'max_comp_streams is gone, as in mainline')
})

t.test('hot_add is 0400, as in the kernel', async (t) => {
  const f = fixture()
  const [code, stat] = answer<[number, Stat?]>((cb) => f.ops.getattr!(HOT_ADD, cb))
  t.equal(code, 0)
  t.equal((stat?.mode ?? 0) & 0o777, 0o400)
})

t.test('fsync of the block file answers once kcompressd has committed what was staged', async (t) => {
  const set = new DeviceSet({ workers: 1, kcompressd: { inlineWhenCheaper: false, delayMs: 20 } })
  const dev = set.add()
  t.teardown(() => dev.close())
  const ops = new ZramFs(set, { info() {}, warn() {}, error() {}, debug() {} }).operations()
  dev.setAlgorithm('zstd')
  dev.initialise(64 * 4096)
  await dev.workersReady()
  const fd = answer<[number, number?]>((cb) => ops.open!('/dev/zram0', O_WRONLY, cb))[1] as number
  const data = Buffer.alloc(8 * 4096)
  for (let i = 0; i < data.length; i++) data[i] = (i * 31) & 0xff ^ (i >> 9)
  t.same(answer<[number]>((cb) => ops.write!('/dev/zram0', fd, data, data.length, 0, cb)), [data.length])
  t.ok(dev.kcompressdStats().fifoDepth > 0, 'precondition: pages staged')
  const code = await new Promise<number>((resolve) => ops.fsync!('/dev/zram0', fd, false, resolve))
  t.equal(code, 0)
  t.equal(dev.kcompressdStats().fifoDepth, 0, 'nothing staged when fsync answers')
  t.equal(dev.kcompressdStats().reserved, 0, 'no reservation held either')
  t.equal(dev.stats().comprDataSize > 0, true, 'compr_data_size counts the pages')
  t.equal(dev.blockStat.flushIos, 1, 'counted as a flush in stat')
})

t.test('namespace operations are answered as sysfs answers them: EACCES to create, EPERM to the rest', async (t) => {
  const f = fixture()
  const call = (op: string, ...args: unknown[]): number =>
    answer<[number]>((cb) => (f.ops[op] as (...a: unknown[]) => void)(...args, cb))[0]
  t.equal(call('create', `${SYS}/x`, 0o644), -Errno.EACCES, 'create (touch, >) in a device directory')
  t.equal(call('create', '/dev/x', 0o644), -Errno.EACCES, 'and under dev/')
  t.equal(call('mknod', `${SYS}/x`, 0o10644, 0), -Errno.EPERM, 'mknod')
  t.equal(call('mkdir', `${SYS}/x`, 0o755), -Errno.EPERM, 'mkdir')
  t.equal(call('mkdir', '/dev/x', 0o755), -Errno.EPERM, 'mkdir under dev/')
  t.equal(call('unlink', `${SYS}/disksize`), -Errno.EPERM, 'rm of an attribute')
  t.equal(call('unlink', '/dev/zram0'), -Errno.EPERM, 'rm of the block file')
  t.equal(call('rmdir', `${SYS}/zramfuse`), -Errno.EPERM, 'rmdir')
  t.equal(call('rename', `${SYS}/disksize`, `${SYS}/y`), -Errno.EPERM, 'mv')
  t.equal(call('link', `${SYS}/disksize`, `${SYS}/y`), -Errno.EPERM, 'ln')
  t.equal(call('symlink', 'disksize', `${SYS}/y`), -Errno.EPERM, 'ln -s')
  t.equal(call('readlink', `${SYS}/disksize`), -Errno.EINVAL, 'readlink of a file that is no link')
  t.notOk(f.lines.some((l) => l.errno === 'ENOSYS'), 'nothing answered ENOSYS')
  const refused = f.lines.filter((l) => l.event === 'refused')
  t.equal(refused.length, 11, 'one log line per refused operation')
  t.same(refused.at(-1), { event: 'refused', op: 'symlink', path: `${SYS}/y`, errno: 'EPERM', reason: 'sysfs has no symlink', other: 'disksize' })
})

t.test('chmod, chown and utimes are kept per node, and open checks the mode bits as kernfs does', async (t) => {
  const f = fixture()
  const stat = (path: string): Stat => answer<[number, Stat?]>((cb) => f.ops.getattr!(path, cb))[1] as Stat
  const call = (op: string, ...args: unknown[]): number =>
    answer<[number]>((cb) => (f.ops[op] as (...a: unknown[]) => void)(...args, cb))[0]
  const disksize = `${SYS}/disksize`
  t.equal(call('chmod', disksize, 0o100000), 0, 'chmod 000 disksize')
  t.equal(stat(disksize).mode, 0o100000, 'the mode is kept, the file type too')
  const [readCode] = answer<[number, number?]>((cb) => f.ops.open!(disksize, O_RDONLY, cb))
  t.equal(readCode, -Errno.EACCES, 'no read bit: not even root opens it for reading (kernfs_fop_open)')
  t.equal(call('chmod', disksize, 0o644), 0)
  t.equal(pread(f, disksize, open(f, disksize, O_RDONLY), 0), '0\n', 'readable again')

  // A read-only attribute made writable opens for writing; the write is EIO (dev_attr_store).
  const mmStat = `${SYS}/mm_stat`
  t.equal(answer<[number, number?]>((cb) => f.ops.open!(mmStat, O_WRONLY, cb))[0], -Errno.EACCES, '0444: not writable')
  t.equal(call('chmod', mmStat, 0o666), 0)
  t.equal(pwrite(f, mmStat, open(f, mmStat, O_WRONLY), Buffer.from('1\n')), -Errno.EIO, 'opened, the write is EIO')
  // And a write-only one made readable: the read is EIO (class_attr_show).
  const hotRemove = '/sys/class/zram-control/hot_remove'
  t.equal(call('chmod', hotRemove, 0o644), 0)
  t.equal(pread(f, hotRemove, open(f, hotRemove, O_RDONLY), 0), -Errno.EIO)

  t.equal(call('chown', '/dev/zram0', 65534, 0xffffffff), 0, 'chown nobody')
  t.equal(stat('/dev/zram0').uid, 65534)
  t.equal(stat('/dev/zram0').gid, process.getgid?.() ?? 0, 'gid -1 leaves the group')
  t.equal(call('utimens', disksize, 0, 0), 0)
  t.equal(stat(disksize).mtime.getTime(), 0, 'utimes is kept (sysfs keeps it)')
  t.equal(call('chmod', `${SYS}/nope`, 0o644), -Errno.ENOENT)

  // The device's nodes start over when the device goes and comes back.
  t.equal(call('chmod', `${SYS}/comp_algorithm`, 0o600), 0)
  f.set.remove(0)
  f.set.add()
  t.equal(stat(`${SYS}/comp_algorithm`).mode & 0o7777, 0o644, 'a new zram0 has the default modes')
  t.equal(stat(hotRemove).mode & 0o7777, 0o644, 'zram-control keeps its own for the mount\'s life')
})
