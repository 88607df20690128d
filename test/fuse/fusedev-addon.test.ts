// native/fusedev (the addon, built by scripts/build-fusedev.sh) and its loader src/fuse/kernel/fusedev-addon.ts,
// without mounting anything: read/write/writev and poll against the addon's own pipe() (a stand-in for
// /dev/fuse), the argument checks, open()'s flags on a /dev/fuse that is not attached to a mount (skipped
// without /dev/fuse), and fusermount's plumbing (argv, _FUSE_COMMFD, the descriptors the child gets, the
// fd sent back over SCM_RIGHTS) against a stand-in fusermount3 written in Python (skipped without python3).
// What needs a fresh event loop or environment (the handle keeping the loop alive, a callback that throws,
// fusermount's PATH) runs in a child process.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fusedevAddonPath, isFusedevAddon, loadFusedev } from '../../src/fuse/kernel/fusedev-addon'

const ADDON = fusedevAddonPath()
const m = loadFusedev()

const ENOENT = 2
const EIO = 5
const EBADF = 9
const EAGAIN = 11
const EINVAL = 22
const ENOTTY = 25
const EPIPE = 32
const O_ACCMODE = 0o3
const O_RDWR = 0o2
const O_NONBLOCK = 0o4000
const O_CLOEXEC = 0o2000000

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms))

/** The "flags:" field of /proc/self/fdinfo/<fd> (octal). */
function fdFlags(fd: number): number {
  const m = /^flags:\s*([0-7]+)$/m.exec(readFileSync(`/proc/self/fdinfo/${fd}`, 'utf8'))
  if (m === null) throw new Error(`no flags in /proc/self/fdinfo/${fd}`)
  return parseInt(m[1]!, 8)
}

/** Run `code` in a fresh node (the addon as `m`); its last stdout line parsed as JSON. */
function child(code: string, env: NodeJS.ProcessEnv = {}): { status: number | null; signal: string | null; out: unknown; stderr: string } {
  const childEnv: NodeJS.ProcessEnv = { ...process.env, ...env }
  delete childEnv.NODE_OPTIONS // no coverage hooks in the child
  const r = spawnSync(process.execPath, ['-e', `const m = require(${JSON.stringify(ADDON)}); ${code}`], { encoding: 'utf8', env: childEnv, timeout: 30_000 })
  let out: unknown = null
  try {
    out = JSON.parse(r.stdout.trim().split('\n').pop() ?? 'null')
  } catch {
    out = r.stdout
  }
  return { status: r.status, signal: r.signal, out, stderr: r.stderr }
}

t.test('the addon is built and loads with every function and constant', async (t) => {
  t.ok(existsSync(ADDON), `${ADDON} exists (scripts/build-fusedev.sh)`)
  t.ok(isFusedevAddon(m))
  t.notOk(isFusedevAddon({ open: () => 0 }), 'the type guard wants every function')
  t.notOk(isFusedevAddon(null))
  t.same([m.MNT_DETACH, m.MS_NOSUID, m.MS_NODEV, m.MS_NOEXEC, m.MS_NOATIME], [2, 2, 4, 8, 1024], "the kernel's values")
  t.throws(() => loadFusedev('/nonexistent/fusedev.node'), /build-fusedev\.sh/)
})

t.test('pipe(), read, write, writev and close', async (t) => {
  const [r, w] = m.pipe()
  t.ok(Number.isInteger(r) && Number.isInteger(w) && r >= 0 && w >= 0 && r !== w, `two descriptors (${r}, ${w})`)
  for (const fd of [r, w]) t.equal(fdFlags(fd) & (O_NONBLOCK | O_CLOEXEC), O_NONBLOCK | O_CLOEXEC, `fd ${fd} is non-blocking and close-on-exec`)
  const buf = Buffer.alloc(16, 0xee)
  t.equal(m.read(r, buf), -EAGAIN, 'an empty non-blocking pipe answers -EAGAIN')

  t.equal(m.write(w, Buffer.from('hello world'), 5), 5, 'write takes len bytes')
  t.equal(m.read(r, buf), 5)
  t.equal(buf.toString('latin1', 0, 5), 'hello')

  buf.fill(0xee)
  t.equal(m.writev(w, Buffer.from('head'), 4, Buffer.from('bodyXX'), 4), 8, 'writev: both pieces')
  t.equal(m.read(r, buf, 2), 8, 'read at an offset')
  t.equal(buf.toString('latin1', 2, 10), 'headbody')
  t.same([buf[0], buf[1], buf[10]], [0xee, 0xee, 0xee], 'nothing written outside [offset, offset + n)')

  t.equal(m.writev(w, Buffer.from('abc'), 3, Buffer.alloc(0), 0), 3, 'writev with bLen 0')
  t.equal(m.writev(w, Buffer.from('abc'), 0, Buffer.from('de'), 2), 2, 'writev with aLen 0')
  t.equal(m.read(r, buf), 5)
  t.equal(buf.toString('latin1', 0, 5), 'abcde')

  // Uint8Array views: the bytes from their byteOffset, not from their ArrayBuffer's start
  const big = new Uint8Array(16)
  t.equal(m.write(w, new Uint8Array(Buffer.from('..wxyz..')).subarray(2, 6), 4), 4)
  t.equal(m.read(r, big.subarray(4, 12)), 4)
  t.same(Buffer.from(big).toString('latin1'), '\0\0\0\0wxyz\0\0\0\0\0\0\0\0')
  t.equal(m.read(r, buf, buf.length), 0, 'a read of 0 bytes (offset at the end)')

  t.equal(m.close(w), 0)
  t.equal(m.read(r, buf), 0, 'end of file once the writer is closed')
  t.equal(m.close(r), 0)
  t.equal(m.close(r), -EBADF, 'a second close answers -EBADF')
  t.equal(m.write(w, buf, 1), -EBADF)

  const [r2, w2] = m.pipe()
  m.close(r2)
  t.equal(m.write(w2, buf, 1), -EPIPE, 'no reader: -EPIPE (Node ignores SIGPIPE)')
  m.close(w2)
})

t.test('read with pollUs: an empty descriptor is read again until the time is up, and data that comes meanwhile is taken', async (t) => {
  const { Worker } = await import('node:worker_threads')
  const [r, w] = m.pipe()
  t.teardown(() => {
    m.close(r)
    m.close(w)
  })
  const buf = Buffer.alloc(16)
  let t0 = process.hrtime.bigint()
  t.equal(m.read(r, buf, 0, 20_000), -EAGAIN, 'nothing came: -EAGAIN')
  const waited = Number(process.hrtime.bigint() - t0) / 1e6
  t.ok(waited >= 19, `it kept reading for the 20 ms asked (${waited.toFixed(1)} ms)`)
  t0 = process.hrtime.bigint()
  t.equal(m.read(r, buf, 0, 0), -EAGAIN, 'pollUs 0: one read')
  // A thread writes 5 ms from now, while this one polls for up to a second.
  const writer = new Worker(`
    const { workerData } = require('node:worker_threads')
    const m = require(workerData.addon)
    setTimeout(() => m.write(workerData.w, Buffer.from('late'), 4), 5)
  `, { eval: true, workerData: { addon: ADDON, w } })
  await new Promise((resolve) => writer.once('online', resolve))
  t0 = process.hrtime.bigint()
  t.equal(m.read(r, buf, 0, 1_000_000), 4, 'the data that came while it polled')
  t.equal(buf.toString('latin1', 0, 4), 'late')
  t.ok(Number(process.hrtime.bigint() - t0) / 1e6 < 900, 'and at once, not at the end of the second')
  await writer.terminate()
  t.throws(() => m.read(r, buf, 0, 1_000_001), /pollUs/, 'pollUs above a second is refused')
  t.throws(() => m.read(r, buf, 0, -1), /pollUs/, 'a negative pollUs is refused')
})

t.test('arguments are checked before any system call', async (t) => {
  const buf = Buffer.alloc(4)
  const type = { name: 'TypeError' }
  const range = { name: 'RangeError' }
  // none of these may reach read(0) or write(0): the test runner's stdin and stdout
  t.throws(() => m.read('0' as unknown as number, buf), type, 'fd a string')
  t.throws(() => m.read(0, 'abcd' as unknown as Uint8Array), type, 'buf a string')
  t.throws(() => m.read(0, new Uint16Array(2) as unknown as Uint8Array), type, 'buf a Uint16Array')
  t.throws(() => m.read(0, buf, '1' as unknown as number), type, 'offset a string')
  t.throws(() => (m.write as unknown as (fd: number, buf: Uint8Array) => number)(1, buf), type, 'len missing')
  t.throws(() => m.writev(1, buf, 4, null as unknown as Uint8Array, 0), type, 'b null')
  t.throws(() => m.poll(0, 'f' as unknown as () => void), type, 'poll without a function')
  t.throws(() => m.mount('a', 'b', 'c', 0, 1 as unknown as string), type, 'mount data a number')
  t.throws(() => m.fusermountUnmount('/x', 1 as unknown as boolean), type, 'lazy a number')
  t.throws(() => m.fusermount('/x', undefined as unknown as string), type, 'options missing')
  t.throws(() => m.read(-1, buf), range, 'a negative fd')
  t.throws(() => m.read(1.5, buf), range, 'a fractional fd')
  t.throws(() => m.read(2 ** 31, buf), range, 'an fd past int32')
  t.throws(() => m.read(0, buf, 5), range, 'offset past the end')
  t.throws(() => m.write(1, buf, 5), range, 'len past the end')
  t.throws(() => m.write(1, buf, -1), range, 'a negative len')
  t.throws(() => m.writev(1, buf, 4, buf, 5), range, 'bLen past the end')
  t.throws(() => m.umount('/x', -1), range, 'negative flags')
  t.equal(m.fusermount('/nonexistent', 'rw,auto_unmount'), -EINVAL, 'auto_unmount is refused (fusermount3 would unmount at once)')
})

t.test('poll: the callback fires when the fd becomes readable, and not after stop()', async (t) => {
  const [r, w] = m.pipe()
  const buf = Buffer.alloc(64)
  const statuses: number[] = []
  let wake: (() => void) | null = null
  const p = m.poll(r, (status) => {
    statuses.push(status)
    m.read(r, buf) // drained: level-triggered, it would fire again otherwise
    wake?.()
  })
  await sleep(30)
  t.same(statuses, [], 'quiet while the pipe is empty')
  const fired = new Promise<void>((resolve) => (wake = resolve))
  t.equal(m.write(w, Buffer.from('x'), 1), 1)
  await fired
  t.same(statuses, [0], 'callback(0) once the pipe is readable')
  p.stop()
  p.stop()
  t.pass('stop() twice')
  t.equal(m.write(w, Buffer.from('y'), 1), 1)
  await sleep(50)
  t.same(statuses, [0], 'no callback after stop()')

  // polled again once stopped; stop() from inside the callback, with the pipe left readable: one call
  let calls = 0
  let woke: (() => void) | null = null
  const again = new Promise<void>((resolve) => (woke = resolve))
  const p2 = m.poll(r, () => {
    calls++
    p2.stop()
    woke?.()
  })
  t.throws(() => m.poll(r, () => {}), { code: 'EEXIST', syscall: 'uv_poll_init' }, 'one poll per fd and loop: EEXIST')
  await again
  await sleep(30)
  t.equal(calls, 1, 'stop() inside the callback: no further call though the pipe stays readable')

  const [r3, w3] = m.pipe()
  m.close(r3)
  m.close(w3)
  t.throws(() => m.poll(r3, () => {}), { code: 'EBADF', errno: -EBADF, syscall: 'uv_poll_init' }, 'a closed fd: an fs-style error')
  m.close(r)
  m.close(w)
})

t.test('poll keeps the loop alive until stop(); ticks and promise jobs run right after the callback', async (t) => {
  const r = child(`
    const [r, w] = m.pipe()
    const order = []
    const p = m.poll(r, (status) => {
      const n = m.read(r, Buffer.alloc(8))
      p.stop()
      setImmediate(() => { order.push('immediate'); console.log(JSON.stringify({ status, n, order })) })
      Promise.resolve().then(() => order.push('microtask'))
      process.nextTick(() => order.push('tick'))
    })
    setTimeout(() => m.write(w, Buffer.from('x'), 1), 200).unref() // only the poll handle keeps the process up
  `)
  t.equal(r.status, 0, r.stderr)
  t.same(r.out, { status: 0, n: 1, order: ['tick', 'microtask', 'immediate'] })

  const s = child(`const [r] = m.pipe(); const p = m.poll(r, () => {}); p.stop(); console.log(JSON.stringify('exited'))`)
  t.equal(s.status, 0, s.stderr)
  t.equal(s.out, 'exited', 'a stopped handle does not hold the process')
})

t.test("what the callback throws goes to 'uncaughtException'", async (t) => {
  const r = child(`
    const [r, w] = m.pipe()
    const p = m.poll(r, () => { throw new Error('boom') })
    process.on('uncaughtException', (e) => { p.stop(); console.log(JSON.stringify({ caught: e.message })) })
    m.write(w, Buffer.from('x'), 1)
  `)
  t.equal(r.status, 0, r.stderr)
  t.same(r.out, { caught: 'boom' })
  const u = child(`const [r, w] = m.pipe(); m.poll(r, () => { throw new Error('boom') }); m.write(w, Buffer.from('x'), 1)`)
  t.equal(u.status, 1, 'no handler: the process dies of it')
  t.match(u.stderr, /Error: boom/)
})

/** Why /dev/fuse cannot be opened here, or false. */
function devFuseSkip(): string | false {
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse on this machine'
  const fd = m.open()
  if (fd < 0) return `open("/dev/fuse") answered ${fd} (no access here)`
  m.close(fd)
  return false
}

t.test('/dev/fuse: open() is read-write, non-blocking and close-on-exec', { skip: devFuseSkip() }, async (t) => {
  const fd = m.open()
  const flags = fdFlags(fd)
  t.equal(flags & O_CLOEXEC, O_CLOEXEC, `flags ${flags.toString(8)}: O_CLOEXEC`)
  t.equal(flags & O_NONBLOCK, O_NONBLOCK, 'O_NONBLOCK')
  t.equal(flags & O_ACCMODE, O_RDWR, 'O_RDWR')
  const n = m.read(fd, Buffer.alloc(8192))
  t.ok(n < 0, `a read before any mount is refused (${n}: -EPERM on Linux)`)
  const c = m.cloneFd(fd)
  t.ok(c < 0 && c !== -ENOTTY, `FUSE_DEV_IOC_CLONE is the device's ioctl: an unattached fd is refused (${c}), not -ENOTTY`)
  const [pr, pw] = m.pipe()
  t.equal(m.cloneFd(pr), -EINVAL, 'cloning a pipe: -EINVAL')
  m.close(pr)
  m.close(pw)
  // an unattached /dev/fuse polls as POLLERR, which libuv hands over as UV_EBADF and stops watching
  const status = await new Promise<number>((resolve) => {
    const p = m.poll(fd, (s) => {
      p.stop()
      resolve(s)
    })
  })
  t.equal(status, -EBADF, 'a poll error: callback(-EBADF)')
  t.equal(m.close(fd), 0)
})

/** The real path of python3 (not a pyenv shim), for the stand-in's #! line; '' without one. */
function pythonPath(): string {
  const py = spawnSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' })
  return py.status === 0 ? py.stdout.trim() : ''
}
const python = pythonPath()

t.test('fusermount: argv, _FUSE_COMMFD, the child\'s descriptors, the fd sent back (a stand-in fusermount3)', { skip: python === '' ? 'no python3 for the stand-in fusermount3' : false }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zramfuse-fusedev-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  // Records what it was given, then sends a descriptor of its own back (FAKE_MODE=send) or fails
  // without one, as fusermount does when it refuses a mount.
  const script = `#!${python}
import fcntl, json, os, socket, stat, sys
commfd = os.environ.get('_FUSE_COMMFD')
fds = []
for fd in range(256):
    try:
        fcntl.fcntl(fd, fcntl.F_GETFD)
        fds.append(fd)
    except OSError:
        pass
report = {'prog': os.path.basename(sys.argv[0]), 'args': sys.argv[1:], 'commfd': commfd, 'fds': fds,
          'socket': commfd is not None and stat.S_ISSOCK(os.fstat(int(commfd)).st_mode)}
with open(os.environ['FAKE_REPORT'], 'w') as f:
    json.dump(report, f)
if os.environ.get('FAKE_MODE') == 'send':
    fd = os.open(os.environ['FAKE_REPORT'], os.O_RDONLY)
    socket.send_fds(socket.socket(fileno=int(commfd)), [b'\\0'], [fd])
    sys.exit(0)
sys.stderr.write('stand-in fusermount: refusing\\n')
sys.exit(3)
`
  const bin3 = join(dir, 'bin3')
  const bin2 = join(dir, 'bin2')
  const empty = join(dir, 'empty')
  for (const [d, name] of [[bin3, 'fusermount3'], [bin2, 'fusermount']] as const) {
    mkdirSync(d)
    writeFileSync(join(d, name), script)
    chmodSync(join(d, name), 0o755)
  }
  mkdirSync(empty)
  const reportFile = join(dir, 'report.json')
  const target = join(dir, 'mnt')
  interface Report { prog: string; args: string[]; commfd: string | null; fds: number[]; socket: boolean }
  const run = (code: string, path: string, mode: string): { status: number | null; out: unknown; stderr: string; report: Report | null } => {
    rmSync(reportFile, { force: true })
    // a stale _FUSE_COMMFD in our environment must not reach the child
    const r = child(code, { PATH: path, FAKE_REPORT: reportFile, FAKE_MODE: mode, TARGET: target, _FUSE_COMMFD: '99' })
    const report = existsSync(reportFile) ? (JSON.parse(readFileSync(reportFile, 'utf8')) as Report) : null
    return { status: r.status, out: r.out, stderr: r.stderr, report }
  }
  // The child's flags of fd; the descriptors beyond stdio it inherited without close-on-exec (from
  // whatever started this test): not ours, they pass through any exec.
  const helpers = `
    const fs = require('fs')
    const flagsOf = (fd) => parseInt(/^flags:\\s*([0-7]+)$/m.exec(fs.readFileSync('/proc/self/fdinfo/' + fd, 'utf8'))[1], 8)
    const inherited = () => fs.readdirSync('/proc/self/fd').map(Number).filter((fd) => {
      try { return fd > 2 && (flagsOf(fd) & ${O_CLOEXEC}) === 0 } catch { return false }
    })`
  const mount = (opts: string): string => `${helpers}
    const before = inherited()
    const fd = m.fusermount(process.env.TARGET, ${JSON.stringify(opts)})
    let flags = null
    if (fd >= 0) { flags = flagsOf(fd); m.close(fd) }
    console.log(JSON.stringify({ fd, flags, inherited: before }))`
  const unmount = (lazy: boolean): string => `${helpers}
    const before = inherited()
    console.log(JSON.stringify({ status: m.fusermountUnmount(process.env.TARGET, ${lazy}), inherited: before }))`
  const sorted = (fds: number[]): number[] => [...fds].sort((a, b) => a - b)

  const sent = run(mount('rw,fsname=zramfuse,subtype=zramfuse'), bin3, 'send')
  t.equal(sent.status, 0, sent.stderr)
  const got = sent.out as { fd: number; flags: number | null; inherited: number[] }
  t.ok(got.fd >= 0, `the descriptor sent back is returned (${got.fd})`)
  t.equal((got.flags ?? 0) & (O_NONBLOCK | O_CLOEXEC), O_NONBLOCK | O_CLOEXEC, 'and made non-blocking and close-on-exec')
  const rep = sent.report
  t.ok(rep !== null, 'the stand-in ran')
  if (rep !== null) {
    t.equal(rep.prog, 'fusermount3')
    t.same(rep.args, ['-o', 'rw,fsname=zramfuse,subtype=zramfuse', '--', target], 'argv as libfuse passes it')
    t.ok(rep.commfd !== null && /^\d+$/.test(rep.commfd) && rep.commfd !== '99', `_FUSE_COMMFD=${rep.commfd}, ours`)
    t.ok(rep.socket, '_FUSE_COMMFD is an open socket in the child')
    t.same(rep.fds, sorted([0, 1, 2, Number(rep.commfd), ...got.inherited]), `the child has stdio and the socket, nothing else of ours (inherited from outside: ${JSON.stringify(got.inherited)})`)
  }

  const refused = run(mount(''), bin3, 'fail')
  t.match(refused.out, { fd: -EIO, flags: null }, 'exited without sending a descriptor: -EIO')
  t.match(refused.stderr, /stand-in fusermount: refusing/, "fusermount's stderr is ours")
  t.same(refused.report?.args, ['--', target], 'no -o for empty options')

  const fallback = run(mount('rw'), bin2, 'send')
  t.equal(fallback.report?.prog, 'fusermount', 'no fusermount3 on PATH: fusermount')
  t.ok((fallback.out as { fd: number }).fd >= 0)

  const none = run(`console.log(JSON.stringify([m.fusermount(process.env.TARGET, 'rw'), m.fusermountUnmount(process.env.TARGET, false)]))`, empty, 'fail')
  t.same(none.out, [-ENOENT, -ENOENT], 'neither on PATH: -ENOENT')

  const lazy = run(unmount(true), bin3, 'fail')
  const lazyOut = lazy.out as { status: number; inherited: number[] }
  t.equal(lazyOut.status, 3, "fusermountUnmount answers fusermount's exit status")
  t.same(lazy.report?.args, ['-u', '-z', '--', target])
  t.equal(lazy.report?.commfd, null, 'no _FUSE_COMMFD for an unmount')
  t.same(lazy.report?.fds, sorted([0, 1, 2, ...lazyOut.inherited]), 'stdio only of ours')
  const plain = run(unmount(false), bin3, 'fail')
  t.same(plain.report?.args, ['-u', '--', target])
})
