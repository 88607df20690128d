// native/fileio (built by scripts/build-fileio.sh) and LowerFile.punchHole over it: fallocate(2)
// PUNCH_HOLE|KEEP_SIZE on libuv's thread pool, errors as fs-style errnos, arguments checked in C.
// A file system without hole punching is a ramfs mounted in a temp dir (root only; skipped
// otherwise) and unmounted in teardown.
import t, { type Test } from 'tap'
import { spawnSync } from 'node:child_process'
import { closeSync, existsSync, fstatSync, fsyncSync, mkdtempSync, openSync, readdirSync, readlinkSync, readSync, rmSync, statSync, writeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileio } from '../../src/backing/fileio'
import { LowerFile } from '../../src/backing/lower-file'
import { PackedLayout, type RecordOwner } from '../../src/backing/packed-layout'
import { prng, seedFromEnv } from '../helpers/pages'

const seed = seedFromEnv(2626)
t.comment(`seed ${seed} (replay with ZRAMFUSE_SEED=${seed})`)

const KiB = 1024
const MiB = 1024 * KiB

function tmpDir(t: Test, under: string): string {
  const dir = mkdtempSync(join(under, 'zf-fileio-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

/** A file of `bytes` non-zero bytes, on disk (fsync'd, so its blocks are allocated); open O_RDWR. */
function filledFile(t: Test, dir: string, bytes: number): { path: string; fd: number } {
  const path = join(dir, 'f')
  const fd = openSync(path, 'w+')
  t.teardown(() => closeSync(fd))
  writeSync(fd, Buffer.alloc(bytes, 0xa5), 0, bytes, 0)
  fsyncSync(fd)
  return { path, fd }
}

function rejection(p: Promise<unknown>): Promise<NodeJS.ErrnoException> {
  return p.then(() => { throw new Error('resolved') }, (err: NodeJS.ErrnoException) => err)
}

const asRoot = process.getuid?.() === 0
const RAMFS_SKIP = asRoot ? false : 'mounting a ramfs needs root'

/** Mount a ramfs (no fallocate at all: EOPNOTSUPP) in a temp dir, unmounted in teardown. */
function ramfs(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'zf-ramfs-'))
  const r = spawnSync('mount', ['-t', 'ramfs', '-o', 'mode=700', 'zf-ramfs', dir], { encoding: 'utf8' })
  if (r.status !== 0) {
    rmSync(dir, { recursive: true, force: true })
    throw new Error(`mount -t ramfs failed: ${r.stderr}`)
  }
  t.teardown(() => {
    // Lazily when a descriptor on it is still open: detached now, gone once it closes.
    if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir])
    rmSync(dir, { recursive: true, force: true })
  })
  return dir
}

t.test('the addon is built and exports punchHole', async (t) => {
  t.ok(existsSync(join(__dirname, '..', '..', 'native', 'fileio', 'build', 'Release', 'fileio.node')), 'built by scripts/build-fileio.sh')
  t.type(fileio.punchHole, 'function')
})

for (const [what, under] of [['/var/tmp (disk)', '/var/tmp'], ['/dev/shm (tmpfs)', '/dev/shm']] as const) {
  t.test(`punchHole on ${what}: the range's blocks go back, it reads as zeros, the size stays`, { skip: existsSync(under) ? false : `no ${under}` }, async (t) => {
    const { fd } = filledFile(t, tmpDir(t, under), 1 * MiB)
    const before = fstatSync(fd)
    t.ok(before.blocks * 512 >= 1 * MiB, `allocated before: ${before.blocks} sectors`)
    const p = fileio.punchHole(fd, 256 * KiB, 512 * KiB)
    t.type(p, Promise, 'a Promise')
    t.equal(await p, undefined)
    const after = fstatSync(fd)
    t.comment(`st_blocks ${before.blocks} -> ${after.blocks}`)
    t.ok(before.blocks - after.blocks >= (512 * KiB) / 512, 'st_blocks dropped by at least the 512 KiB punched')
    t.equal(after.size, before.size, 'KEEP_SIZE: the size is unchanged')
    const back = Buffer.alloc(1 * MiB)
    t.equal(readSync(fd, back, 0, back.length, 0), back.length)
    t.ok(back.subarray(0, 256 * KiB).every((b) => b === 0xa5), 'before the hole: intact')
    t.ok(back.subarray(256 * KiB, 768 * KiB).every((b) => b === 0), 'the hole reads as zeros')
    t.ok(back.subarray(768 * KiB).every((b) => b === 0xa5), 'after the hole: intact')
  })
}

t.test('the punch runs on the thread pool: it is done while the JavaScript thread never yields', async (t) => {
  const { fd } = filledFile(t, tmpDir(t, '/var/tmp'), 8 * MiB)
  const before = fstatSync(fd).blocks
  let settled = false
  const p = fileio.punchHole(fd, 0, 8 * MiB).then(() => { settled = true })
  // Spin without returning to the event loop: only another thread can free the blocks meanwhile.
  const deadline = Date.now() + 10_000
  let freedWhileBusy = false
  while (Date.now() < deadline) {
    if (fstatSync(fd).blocks < before) {
      freedWhileBusy = true
      break
    }
  }
  t.ok(freedWhileBusy, 'the blocks were freed with the JavaScript thread busy')
  t.notOk(settled, 'and the Promise settles only once the thread comes back to the event loop')
  await p
  t.ok(settled)
})

t.test('errors come back as fs-style errnos', async (t) => {
  const dir = tmpDir(t, '/var/tmp')
  const { path, fd } = filledFile(t, dir, 64 * KiB)

  const closed = openSync(path, 'r+')
  closeSync(closed)
  let e = await rejection(fileio.punchHole(closed, 0, 4096))
  t.equal(e.code, 'EBADF', 'a closed descriptor: EBADF')
  t.equal(e.errno, -9, 'errno negative, as Node\'s fs gives it')
  t.equal(e.syscall, 'fallocate')
  t.match(e.message, /^EBADF: .+, fallocate$/)
  t.ok(e instanceof Error)

  const ro = openSync(path, 'r')
  t.teardown(() => closeSync(ro))
  e = await rejection(fileio.punchHole(ro, 0, 4096))
  t.equal(e.code, 'EBADF', 'a read-only descriptor: EBADF (vfs_fallocate wants FMODE_WRITE)')

  e = await rejection(fileio.punchHole(fd, 0, 0))
  t.equal(e.code, 'EINVAL', 'a length of 0: the kernel\'s EINVAL')

  const devNull = openSync('/dev/null', 'r+')
  t.teardown(() => closeSync(devNull))
  e = await rejection(fileio.punchHole(devNull, 0, 4096))
  t.equal(e.code, 'ENODEV', 'a character device: ENODEV')

  const dirFd = openSync(dir, 'r')
  t.teardown(() => closeSync(dirFd))
  e = await rejection(fileio.punchHole(dirFd, 0, 4096))
  t.equal(e.code, 'EBADF', 'a directory (read-only by necessity): EBADF')
})

t.test('a file system without hole punching (ramfs): EOPNOTSUPP', { skip: RAMFS_SKIP }, async (t) => {
  const dir = ramfs(t)
  const { fd } = filledFile(t, dir, 64 * KiB)
  const e = await rejection(fileio.punchHole(fd, 0, 4096))
  t.equal(e.code, 'EOPNOTSUPP')
  t.equal(e.errno, -95)
})

t.test('bad arguments are a TypeError or RangeError, thrown at once, and the process lives on', async (t) => {
  const { fd } = filledFile(t, tmpDir(t, '/var/tmp'), 4096)
  const call = fileio.punchHole as unknown as (...args: unknown[]) => unknown
  const types: unknown[][] = [[], [fd], [fd, 0], ['3', 0, 4096], [fd, '0', 4096], [fd, 0, null], [fd, 0n, 4096], [{}, 0, 4096], [fd, 0, undefined]]
  for (const args of types) t.throws(() => call(...args), TypeError, `TypeError for (${args.map(String).join(', ')})`)
  const ranges: unknown[][] = [
    [-1, 0, 4096], [1.5, 0, 4096], [2 ** 31, 0, 4096], [NaN, 0, 4096], [Infinity, 0, 4096],
    [fd, -1, 4096], [fd, 0.5, 4096], [fd, 2 ** 53, 4096], [fd, NaN, 4096],
    [fd, 0, -4096], [fd, 0, 4096.5], [fd, 0, 2 ** 53], [fd, 0, -Infinity],
  ]
  for (const args of ranges) t.throws(() => call(...args), RangeError, `RangeError for (${args.map(String).join(', ')})`)
  // The largest values accepted reach the kernel, which refuses the sum past its file size limit.
  const e = await rejection(fileio.punchHole(fd, 2 ** 53 - 1, 2 ** 53 - 1))
  t.ok(e.code === 'EFBIG' || e.code === 'EINVAL', `2^53-1 twice: ${e.code} from the kernel, not a crash`)
})

/** Descriptors of this process open on path. */
function fdsOn(path: string): number {
  let n = 0
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${name}`) === path) n++
    } catch {
      // closed meanwhile (readdir's own descriptor)
    }
  }
  return n
}

t.test('LowerFile.punchHole: a refused argument rejects and does not hold the descriptor open', async (t) => {
  const path = join(tmpDir(t, '/var/tmp'), 'lower')
  const file = LowerFile.open(path)
  t.equal(fdsOn(path), 1)
  const e = await rejection(file.punchHole(-4096, 4096))
  t.ok(e instanceof RangeError, 'RangeError, as a rejection')
  file.close()
  t.equal(fdsOn(path), 0, 'closed at once: the refused punch was never counted in flight')
})

t.test('LowerFile.punchHole holds the descriptor until the punch is done', async (t) => {
  const path = join(tmpDir(t, '/var/tmp'), 'lower')
  const file = LowerFile.open(path)
  await file.pwrite(Buffer.alloc(4 * MiB, 1), 0, 4 * MiB, 0)
  const p = file.punchHole(0, 4 * MiB)
  file.close()
  t.equal(fdsOn(path), 1, 'still open while the punch is in flight')
  await p
  t.equal(fdsOn(path), 0, 'closed once it finished')
})

/** A page table stand-in: page index -> location. */
class Owner implements RecordOwner {
  at = new Map<number, number>()
  lens = new Map<number, number>()
  constructor(private readonly layout: PackedLayout) {}
  isAt(index: number, location: number): boolean {
    return this.at.get(index) === location
  }
  relocate(index: number, from: number, to: number): boolean {
    if (this.at.get(index) !== from) return false
    this.at.set(index, to)
    this.layout.free(from, this.lens.get(index) as number)
    return true
  }
}

t.test('packed cleaning on a ramfs: every punch fails with EOPNOTSUPP, is counted, and cleaning carries on', { skip: RAMFS_SKIP }, async (t) => {
  const dir = ramfs(t)
  const path = join(dir, 'lower')
  const file = LowerFile.open(path)
  t.teardown(() => file.close())
  const seg = 64 * KiB
  const layout = new PackedLayout({ file, devicePages: 1024, segmentBytes: seg })
  const owner = new Owner(layout)
  const rand = prng(seed)
  const pages = 256
  const data = new Map<number, Buffer>()
  for (let round = 0; round < 4; round++) {
    const writes: Promise<void>[] = []
    for (let i = 0; i < pages; i++) {
      if (round > 0 && rand() < 0.3) continue
      const p = Buffer.alloc(200 + Math.floor(rand() * 1500), (round * 31 + i) & 0xff)
      const old = owner.at.get(i)
      owner.at.delete(i)
      if (old !== undefined) layout.free(old, owner.lens.get(i) as number)
      owner.lens.set(i, p.length)
      data.set(i, p)
      writes.push(layout.append(i, p, 0, false).then((loc) => { owner.at.set(i, loc) }))
    }
    await layout.flush()
    await Promise.all(writes)
    await layout.clean(owner)
    await layout.punchesSettled()
  }
  t.comment(`${layout.segmentsCleaned} cleaned, ${layout.punchErrors} punches refused, ${layout.segmentsInUse} segments in use`)
  t.ok(layout.segmentsCleaned > 0, 'segments were cleaned')
  t.ok(layout.punchErrors > 0, 'the refused punches are counted')
  t.equal(layout.segmentsPunched, 0, 'none punched')
  t.equal((layout.lastPunchError as NodeJS.ErrnoException).code, 'EOPNOTSUPP')
  // Retired segments went back to the free list despite the failed punch: what is in use is what
  // cleaning leaves (segments at least half live), plus the open one, and the file stays that short.
  const bound = Math.ceil((2 * layout.liveBytes) / seg) + 1
  t.ok(layout.segmentsInUse <= bound, `${layout.segmentsInUse} segments in use for ${layout.liveBytes} live bytes (at most ${bound})`)
  t.ok(statSync(path).size <= (bound + 1) * seg, `the file spans ${statSync(path).size} bytes`)
  for (const [i, p] of data) {
    const back = await layout.read(owner.at.get(i) as number, i, p.length)
    if (!Buffer.from(back).equals(p)) {
      t.fail(`page ${i} reads back wrong`)
      return
    }
  }
  t.pass('every page reads back')
})
