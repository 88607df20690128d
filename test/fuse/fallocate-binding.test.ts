// fallocate over FUSE, end to end through our patched fuse-native (patches/fuse-native+2.2.6+fallocate.patch,
// built by scripts/build-fuse-native.sh), plus unit tests of src/fuse/fallocate.ts.
//
// The binding part mounts a one-file file system with the daemon's own mount code (mountFs, same
// options) in a temp dir, runs util-linux's fallocate(1) in a child process against the file, and
// checks what ops.fallocate received (mode, offset, length — 64-bit values included) and that the
// errno it answers reaches the caller. It needs root, /dev/fuse, fusermount and fallocate; without
// them it skips with the reason. The child processes are always asynchronous: this process serves
// the FUSE requests on its own event loop, so a synchronous spawn would deadlock.
import t, { type Test as Tap } from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, rmdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Operations, Stat } from 'fuse-native'
import { mountFs, type Mounted } from '../../src/fuse/mount'
import {
  classifyFallocate, FALLOC_FL_COLLAPSE_RANGE, FALLOC_FL_INSERT_RANGE, FALLOC_FL_KEEP_SIZE,
  FALLOC_FL_NO_HIDE_STALE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_UNSHARE_RANGE, FALLOC_FL_WRITE_ZEROES,
  FALLOC_FL_ZERO_RANGE, planFallocate,
} from '../../src/fuse/fallocate'

const KEEP = FALLOC_FL_KEEP_SIZE
const PUNCH = FALLOC_FL_PUNCH_HOLE
const ZERO = FALLOC_FL_ZERO_RANGE
const EINVAL = 22
const EOPNOTSUPP = 95

// ---------------------------------------------------------------------------------------------
// unit: src/fuse/fallocate.ts
// ---------------------------------------------------------------------------------------------

t.test('FALLOC_FL_* values are Linux include/uapi/linux/falloc.h', async (t) => {
  t.equal(FALLOC_FL_KEEP_SIZE, 0x01)
  t.equal(FALLOC_FL_PUNCH_HOLE, 0x02)
  t.equal(FALLOC_FL_NO_HIDE_STALE, 0x04)
  t.equal(FALLOC_FL_COLLAPSE_RANGE, 0x08)
  t.equal(FALLOC_FL_ZERO_RANGE, 0x10)
  t.equal(FALLOC_FL_INSERT_RANGE, 0x20)
  t.equal(FALLOC_FL_UNSHARE_RANGE, 0x40)
  t.equal(FALLOC_FL_WRITE_ZEROES, 0x80)
})

t.test('classifyFallocate: blkdev_fallocate accepts exactly PUNCH|KEEP, ZERO and ZERO|KEEP', async (t) => {
  t.equal(classifyFallocate(PUNCH | KEEP), 'punch', 'a loop device discard (and may-unmap write-zeroes)')
  t.equal(classifyFallocate(ZERO | KEEP), 'zero', 'a loop device write-zeroes with NOUNMAP (blkdiscard -z)')
  t.equal(classifyFallocate(ZERO), 'zero', 'fallocate --zero-range without --keep-size')
  t.equal(classifyFallocate(0), 'allocate', 'plain preallocation')
  t.equal(classifyFallocate(KEEP), 'allocate', 'preallocation keeping the size')
  t.equal(classifyFallocate(PUNCH), 'unsupported', 'PUNCH_HOLE needs KEEP_SIZE')
  t.equal(classifyFallocate(PUNCH | KEEP | FALLOC_FL_NO_HIDE_STALE), 'unsupported', 'NO_HIDE_STALE is gone since 6.13')
  t.equal(classifyFallocate(PUNCH | ZERO | KEEP), 'unsupported', 'two modes at once')
  t.equal(classifyFallocate(FALLOC_FL_COLLAPSE_RANGE), 'unsupported')
  t.equal(classifyFallocate(FALLOC_FL_INSERT_RANGE), 'unsupported')
  t.equal(classifyFallocate(FALLOC_FL_UNSHARE_RANGE), 'unsupported')
  t.equal(classifyFallocate(FALLOC_FL_UNSHARE_RANGE | KEEP), 'unsupported')
  t.equal(classifyFallocate(FALLOC_FL_WRITE_ZEROES), 'unsupported')
  t.equal(classifyFallocate(-1), 'unsupported')
  t.equal(classifyFallocate(0.5), 'unsupported')
  t.equal(classifyFallocate(Number.NaN), 'unsupported')
  t.equal(classifyFallocate(0x100 | PUNCH | KEEP), 'unsupported', 'unknown bits')
  // every 8-bit mode: only the five listed are anything but unsupported
  const known = new Map([[PUNCH | KEEP, 'punch'], [ZERO, 'zero'], [ZERO | KEEP, 'zero'], [0, 'allocate'], [KEEP, 'allocate']])
  for (let mode = 0; mode < 0x200; mode++) {
    const want = known.get(mode) ?? 'unsupported'
    if (classifyFallocate(mode) !== want) t.fail(`mode 0x${mode.toString(16)}: ${classifyFallocate(mode)}, want ${want}`)
  }
})

t.test('planFallocate: blkdev_fallocate range rules and errnos', async (t) => {
  const size = 1 << 20
  t.same(planFallocate(PUNCH | KEEP, 4096, 8192, size), { ok: true, kind: 'punch', offset: 4096, length: 8192 })
  t.same(planFallocate(ZERO | KEEP, 0, size, size), { ok: true, kind: 'zero', offset: 0, length: size })
  t.same(planFallocate(ZERO, 512, 1024, size), { ok: true, kind: 'zero', offset: 512, length: 1024 }, 'unaligned is allowed on a file')
  t.same(planFallocate(PUNCH | KEEP, size - 4096, 65536, size), { ok: true, kind: 'punch', offset: size - 4096, length: 4096 },
    'KEEP_SIZE: clamped to the end')
  t.same(planFallocate(ZERO | KEEP, size - 1, 2, size), { ok: true, kind: 'zero', offset: size - 1, length: 1 })

  const err = (mode: number, offset: number, length: number): number | undefined => {
    const p = planFallocate(mode, offset, length, size)
    return p.ok ? undefined : p.errno
  }
  t.equal(err(ZERO, size - 4096, 8192), EINVAL, 'past the end without KEEP_SIZE')
  t.equal(err(PUNCH | KEEP, size, 4096), EINVAL, 'offset at the end')
  t.equal(err(ZERO | KEEP, size + 4096, 4096), EINVAL, 'offset past the end')
  t.equal(err(PUNCH | KEEP, -4096, 4096), EINVAL, 'negative offset')
  t.equal(err(PUNCH | KEEP, 0, 0), EINVAL, 'zero length')
  t.equal(err(PUNCH | KEEP, 0, -1), EINVAL, 'negative length')
  t.equal(err(PUNCH | KEEP, 0.5, 4096), EINVAL, 'fractional offset')
  t.equal(err(0, 0, 4096), EOPNOTSUPP, 'preallocation')
  t.equal(err(KEEP, 0, 4096), EOPNOTSUPP, 'preallocation, KEEP_SIZE')
  t.equal(err(PUNCH, 0, 4096), EOPNOTSUPP, 'PUNCH_HOLE without KEEP_SIZE')
  t.equal(err(FALLOC_FL_COLLAPSE_RANGE, 0, 4096), EOPNOTSUPP)
  t.equal(err(0, size * 2, 4096), EOPNOTSUPP, 'the mode is checked before the range, as in blkdev_fallocate')
  const bad = planFallocate(FALLOC_FL_INSERT_RANGE, 0, 4096, size)
  t.ok(!bad.ok && /0x20/.test(bad.reason), 'the reason names the mode')
})

// ---------------------------------------------------------------------------------------------
// binding: the patched fuse-native, mounted, driven by fallocate(1)
// ---------------------------------------------------------------------------------------------

interface Result { code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }

/** Run a program asynchronously (never spawnSync: this process serves the FUSE requests). */
function run(file: string, args: string[], timeoutMs = 20_000): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => { stdout += d })
    child.stderr.setEncoding('utf8').on('data', (d: string) => { stderr += d })
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    child.on('error', (e) => { clearTimeout(timer); reject(e) })
    child.on('close', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }) })
  })
}

function findTool(tool: string): string | null {
  for (const dir of (process.env.PATH ?? '').split(':').concat(['/usr/bin', '/bin', '/usr/sbin', '/sbin'])) {
    if (dir !== '' && existsSync(join(dir, tool))) return join(dir, tool)
  }
  return null
}

function skipReason(): string | null {
  if (process.platform !== 'linux') return 'not Linux'
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'not root'
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse'
  if (findTool('fusermount') === null) return 'fusermount is not installed'
  if (findTool('fallocate') === null) return 'fallocate (util-linux) is not installed'
  return null
}

interface Call { path: string; fd: number; mode: number; offset: number; length: number }

const FD = 7
// sparse and large: offsets and lengths past 4 GiB need both 32-bit halves of the marshalled values
const SIZE = 64 * 1024 * 1024 * 1024

const why = skipReason()
if (why !== null) {
  t.test('fuse-native fallocate binding', { skip: `needs a FUSE mount: ${why}` }, async () => {})
} else {
  t.test('fuse-native fallocate binding', async (t) => {
    const binding = require('fuse-native/build/Release/fuse.node') as Record<string, unknown>
    t.type(binding.op_fallocate, 'number', 'build/Release/fuse.node (the patched build) exports op_fallocate')
    t.type(binding.fuse_native_signal_fallocate, 'function')
    const loaded = Object.keys(require.cache).filter((k) => k.endsWith('.node') && k.includes('fuse-native'))
    t.notOk(loaded.some((k) => k.includes('/prebuilds/')), `not the unpatched prebuild (loaded: ${loaded.join(', ')})`)

    const dir = mkdtempSync(join(tmpdir(), 'zramfuse-fallocate-'))
    const file = join(dir, 'disk')
    const calls: Call[] = []
    let answer = 0
    const now = new Date()
    const ops: Operations = {
      getattr(path: string, cb: (err: number, stat?: Stat) => void) {
        if (path === '/') return cb(0, { mode: 0o40755, size: 4096, uid: 0, gid: 0, nlink: 2, mtime: now, atime: now, ctime: now })
        if (path === '/disk') return cb(0, { mode: 0o100600, size: SIZE, uid: 0, gid: 0, nlink: 1, mtime: now, atime: now, ctime: now })
        cb(-2)
      },
      open(_path: string, _flags: number, cb: (err: number, fd?: number) => void) { cb(0, FD) },
      release(_path: string, _fd: number, cb: (err: number) => void) { cb(0) },
      read(_path: string, _fd: number, buf: Buffer, len: number, _pos: number, cb: (n: number) => void) {
        buf.fill(0x5a, 0, len)
        cb(len)
      },
      write(_path: string, _fd: number, _buf: Buffer, len: number, _pos: number, cb: (n: number) => void) { cb(len) },
      fallocate(path: string, fd: number, mode: number, offset: number, length: number, cb: (err: number) => void) {
        calls.push({ path, fd, mode, offset, length })
        cb(answer)
      },
    }

    let mounted: Mounted | null = null
    t.teardown(async () => {
      if (mounted !== null) {
        try {
          await mounted.unmount()
        } catch {
          await run('fusermount', ['-uz', dir]).catch(() => undefined)
        }
      }
      try {
        rmdirSync(dir)
      } catch {
        // still mounted (lazy unmount pending): leave the empty directory rather than fail
      }
    })
    mounted = await mountFs(dir, ops)

    const fallocate = async (args: string[]): Promise<{ res: Result; seen: Call[] }> => {
      const before = calls.length
      const res = await run('fallocate', [...args, file])
      return { res, seen: calls.slice(before) }
    }
    const ok = (t: Tap, res: Result, what: string): void => {
      t.equal(res.code, 0, `${what}: fallocate exits 0${res.stderr !== '' ? ` (stderr: ${res.stderr.trim()})` : ''}`)
    }

    t.test('the other operations still work (op ids unchanged)', async (t) => {
      const res = await run('head', ['-c', '8', file])
      t.equal(res.code, 0)
      t.equal(res.stdout, 'ZZZZZZZZ', 'read reaches ops.read')
    })

    t.test('--punch-hole --keep-size: PUNCH_HOLE|KEEP_SIZE, as a loop device sends for discard', async (t) => {
      const { res, seen } = await fallocate(['--punch-hole', '--keep-size', '-o', '4096', '-l', '8192'])
      ok(t, res, 'punch')
      t.same(seen, [{ path: '/disk', fd: FD, mode: PUNCH | KEEP, offset: 4096, length: 8192 }])
    })

    t.test('--zero-range --keep-size: ZERO_RANGE|KEEP_SIZE, as a loop device sends for write-zeroes', async (t) => {
      const { res, seen } = await fallocate(['--zero-range', '--keep-size', '-o', '4096', '-l', '8192'])
      ok(t, res, 'zero-range keep-size')
      t.same(seen, [{ path: '/disk', fd: FD, mode: ZERO | KEEP, offset: 4096, length: 8192 }])
    })

    t.test('--zero-range alone: ZERO_RANGE', async (t) => {
      const { res, seen } = await fallocate(['--zero-range', '-o', '1048576', '-l', '65536'])
      ok(t, res, 'zero-range')
      t.same(seen, [{ path: '/disk', fd: FD, mode: ZERO, offset: 1048576, length: 65536 }])
    })

    t.test('64-bit offset and length (past 4 GiB, low halves with the top bit set)', async (t) => {
      const offset = 0x2_8000_3000 // 10 GiB + 12 KiB: high half 2, low half 0x80003000
      const length = 0x1_8000_2000 // 6 GiB + 8 KiB
      const { res, seen } = await fallocate(['--punch-hole', '--keep-size', '-o', String(offset), '-l', String(length)])
      ok(t, res, 'punch past 4 GiB')
      t.same(seen, [{ path: '/disk', fd: FD, mode: PUNCH | KEEP, offset, length }])

      const end = SIZE - 4096
      const z = await fallocate(['--zero-range', '--keep-size', '-o', String(end), '-l', '4096'])
      ok(t, z.res, 'zero-range at the last page of a 64 GiB file')
      t.same(z.seen, [{ path: '/disk', fd: FD, mode: ZERO | KEEP, offset: end, length: 4096 }])
    })

    t.test('the errno answered by ops.fallocate reaches the caller', async (t) => {
      answer = -EOPNOTSUPP
      try {
        const { res, seen } = await fallocate(['--punch-hole', '--keep-size', '-o', '0', '-l', '4096'])
        t.not(res.code, 0, 'EOPNOTSUPP: fallocate fails')
        // util-linux words EOPNOTSUPP as "Operation not supported", or with --keep-size as
        // "keep size mode is unsupported"
        t.match(res.stderr, /not supported|unsupported/i, `EOPNOTSUPP in its message: ${res.stderr.trim()}`)
        t.same(seen, [{ path: '/disk', fd: FD, mode: PUNCH | KEEP, offset: 0, length: 4096 }], 'the op was called')

        answer = -EINVAL
        const inval = await fallocate(['--zero-range', '--keep-size', '-o', '0', '-l', '4096'])
        t.not(inval.res.code, 0, 'EINVAL: fallocate fails')
        t.match(inval.res.stderr, /invalid argument/i, `EINVAL in its message: ${inval.res.stderr.trim()}`)
        t.equal(inval.seen.length, 1, 'EOPNOTSUPP did not switch fallocate off for the mount (only ENOSYS would)')
      } finally {
        answer = 0
      }
      const { res, seen } = await fallocate(['--punch-hole', '--keep-size', '-o', '8192', '-l', '4096'])
      ok(t, res, 'success again afterwards')
      t.equal(seen.length, 1)
    })

    t.test('modes the kernel refuses never reach the daemon', async (t) => {
      const { res, seen } = await fallocate(['--collapse-range', '-o', '0', '-l', '4096'])
      t.not(res.code, 0, 'collapse-range fails')
      t.same(seen, [], 'fs/fuse answered EOPNOTSUPP itself')
    })
  })
}
