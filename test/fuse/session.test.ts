// The FUSE protocol session against a fake channel in place of /dev/fuse: requests built as the
// kernel builds them (include/uapi/linux/fuse.h), answers parsed back. Truncated headers, wrong
// lengths, unknown opcodes, interrupts and over-long writes must each get an answer (or, for a
// header too short to carry a unique, a log line) and never throw.
import t from 'tap'
import { DeviceSet } from '../../src/device/device-set'
import { Errno } from '../../src/errno'
import type { EventLog } from '../../src/log'
import { ZramFs } from '../../src/fuse/zram-fs'
import { FOPEN_DIRECT_IO, FOPEN_PARALLEL_DIRECT_WRITES, InitFlag, Op } from '../../src/fuse/kernel/abi'
import { type FuseChannel, FuseSession } from '../../src/fuse/kernel/session'
import { request, rwBody } from './requests'

interface Answer { len: number; error: number; unique: number; body: Buffer }

class FakeChannel implements FuseChannel {
  readonly queue: Buffer[] = []
  readonly answers: Answer[] = []
  closed = false
  read(buf: Buffer): number {
    const next = this.queue.shift()
    if (next === undefined) return this.closed ? -Errno.ENODEV : -Errno.EAGAIN
    next.copy(buf)
    return next.length
  }
  write(buf: Buffer, len: number): number {
    const h = { len: buf.readUInt32LE(0), error: buf.readInt32LE(4), unique: buf.readUInt32LE(8) + buf.readUInt32LE(12) * 2 ** 32 }
    if (h.len !== len) throw new Error(`answer header says ${h.len}, wrote ${len}`)
    this.answers.push({ ...h, body: Buffer.from(buf.subarray(16, len)) })
    return len
  }
  watch(): void {}
  close(): void {
    this.closed = true
  }
}

function initBody(minor = 45, flags = 0x7fffffff): Buffer {
  const b = Buffer.alloc(64)
  b.writeUInt32LE(7, 0)
  b.writeUInt32LE(minor, 4)
  b.writeUInt32LE(128 * 1024, 8)
  b.writeUInt32LE(flags >>> 0, 12)
  return b
}

function name(s: string): Buffer {
  return Buffer.from(s + '\0')
}

function fixture(maxIoBytes = 1 << 20) {
  const set = new DeviceSet({ workers: 0 })
  set.add()
  const lines: Record<string, unknown>[] = []
  const capture = (o: object): void => {
    lines.push({ ...o })
  }
  const log: EventLog = { info: capture, warn: capture, error: capture, debug: capture }
  const ch = new FakeChannel()
  const s = new FuseSession(ch, new ZramFs(set, log, maxIoBytes).operations(), log, { maxIoBytes, maxBackground: 64 })
  const send = (...reqs: Buffer[]): Answer[] => {
    const before = ch.answers.length
    ch.queue.push(...reqs)
    s.pump()
    return ch.answers.slice(before)
  }
  return { set, ch, s, send, lines }
}

function initialised() {
  const f = fixture()
  const [a] = f.send(request(Op.INIT, 0, initBody()))
  if (a === undefined || a.error !== 0) throw new Error('INIT failed')
  return f
}

function lookup(f: ReturnType<typeof fixture>, parent: number, n: string): number {
  const [a] = f.send(request(Op.LOOKUP, parent, name(n)))
  if (a === undefined || a.error !== 0) throw new Error(`lookup ${n}: ${a?.error}`)
  return Number(a.body.readBigUInt64LE(0))
}

function openBody(flags: number): Buffer {
  const b = Buffer.alloc(8)
  b.writeUInt32LE(flags, 0)
  return b
}

t.test('INIT: version, the flags we want of those offered, 1 MiB requests', async (t) => {
  const f = fixture()
  const [a] = f.send(request(Op.INIT, 0, initBody(45, InitFlag.ASYNC_READ | InitFlag.MAX_PAGES | InitFlag.ASYNC_DIO | (1 << 3))))
  t.equal(a!.error, 0)
  t.equal(a!.len, 16 + 64)
  t.equal(a!.body.readUInt32LE(0), 7)
  t.equal(a!.body.readUInt32LE(4), 38, 'our minor, lower than the kernel\'s')
  t.equal(a!.body.readUInt32LE(12), InitFlag.ASYNC_READ | InitFlag.MAX_PAGES | InitFlag.ASYNC_DIO, 'ATOMIC_O_TRUNC was not asked for')
  t.equal(a!.body.readUInt32LE(20), 1 << 20, 'max_write')
  t.equal(a!.body.readUInt16LE(28), 256, 'max_pages')
  t.equal(a!.body.readUInt16LE(16), 64, 'max_background')
  t.ok(f.s.isInitialised)
})

t.test('INIT from a kernel without FUSE_MAX_PAGES is refused with EPROTO and ends the session', async (t) => {
  const f = fixture()
  const [a] = f.send(request(Op.INIT, 0, initBody(27, InitFlag.ASYNC_READ)))
  t.equal(a!.error, -71)
  let ended = ''
  f.s.onEnd((e) => (ended = e.reason))
  t.equal(ended, 'protocol')
})

t.test('a request before INIT gets EIO', async (t) => {
  const f = fixture()
  const [a] = f.send(request(Op.GETATTR, 1, Buffer.alloc(16)))
  t.equal(a!.error, -Errno.EIO)
})

t.test('lookup, getattr, open, write and read the block file; the open reply asks for direct, parallel writes', async (t) => {
  const f = initialised()
  const dev = lookup(f, 1, 'dev')
  const zram0 = lookup(f, dev, 'zram0')
  t.not(dev, zram0)
  t.equal(lookup(f, 1, 'dev'), dev, 'one id per path')
  const sys = lookup(f, lookup(f, lookup(f, 1, 'sys'), 'block'), 'zram0')
  const disksize = lookup(f, sys, 'disksize')
  const [o1] = f.send(request(Op.OPEN, disksize, openBody(1)))
  const afh = o1!.body.readUInt32LE(0)
  const [w1] = f.send(request(Op.WRITE, disksize, Buffer.concat([rwBody(afh, 0, 4), Buffer.from('64M\n')])))
  t.equal(w1!.error, 0)
  t.equal(w1!.body.readUInt32LE(0), 4)
  f.send(request(Op.RELEASE, disksize, Buffer.alloc(24)))

  const [attr] = f.send(request(Op.GETATTR, zram0, Buffer.alloc(16)))
  t.equal(attr!.error, 0)
  t.equal(Number(attr!.body.readBigUInt64LE(16 + 8)), 64 << 20, 'size is disksize')
  t.equal(Number(attr!.body.readBigUInt64LE(16)), zram0, 'ino is the node id')
  const [o] = f.send(request(Op.OPEN, zram0, openBody(2)))
  t.equal(o!.error, 0)
  t.equal(o!.body.readUInt32LE(8), FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES)
  const fh = o!.body.readUInt32LE(0)
  const data = Buffer.alloc(8192)
  for (let i = 0; i < data.length; i++) data[i] = (i * 7) & 0xff
  const [w] = f.send(request(Op.WRITE, zram0, Buffer.concat([rwBody(fh, 4096, 8192), data])))
  t.equal(w!.error, 0)
  t.equal(w!.body.readUInt32LE(0), 8192)
  await f.set.get(0)!.flush()
  const [r] = f.send(request(Op.READ, zram0, rwBody(fh, 4096, 8192)))
  t.equal(r!.error, 0)
  t.same(r!.body, data, 'read back what was written')
})

t.test('readdir lists . and .. and the names, in pieces by offset', async (t) => {
  const f = initialised()
  const [od] = f.send(request(Op.OPENDIR, 1, openBody(0)))
  t.equal(od!.error, 0)
  const [a] = f.send(request(Op.READDIR, 1, rwBody(0, 0, 4096)))
  const names: string[] = []
  let last = 0
  for (let at = 0; at < a!.body.length;) {
    const nl = a!.body.readUInt32LE(at + 16)
    names.push(a!.body.toString('utf8', at + 24, at + 24 + nl))
    last = Number(a!.body.readBigUInt64LE(at + 8))
    at += (24 + nl + 7) & ~7
  }
  t.same(names, ['.', '..', 'dev', 'sys'])
  const [b] = f.send(request(Op.READDIR, 1, rwBody(0, last, 4096)))
  t.equal(b!.body.length, 0, 'nothing after the last offset')
  const [c] = f.send(request(Op.READDIR, 1, rwBody(0, 2, 4096)))
  t.equal(c!.body.readUInt32LE(16), 3, 'from offset 2: dev')
})

t.test('namespace operations are answered as sysfs answers them', async (t) => {
  const f = initialised()
  const dev = lookup(f, 1, 'dev')
  const [c] = f.send(request(Op.CREATE, dev, Buffer.concat([Buffer.alloc(16), name('x')])))
  t.equal(c!.error, -Errno.EACCES)
  const [m] = f.send(request(Op.MKDIR, dev, Buffer.concat([Buffer.alloc(8), name('d')])))
  t.equal(m!.error, -Errno.EPERM)
  const [u] = f.send(request(Op.UNLINK, dev, name('zram0')))
  t.equal(u!.error, -Errno.EPERM)
  const [l] = f.send(request(Op.LOOKUP, dev, name('zram9')))
  t.equal(l!.error, -Errno.ENOENT)
})

t.test('malformed requests: each answered or logged, none throws', async (t) => {
  const f = initialised()
  const before = f.lines.length
  // A header cut short: nothing to answer (no unique), one log line.
  const short = request(Op.GETATTR, 1, Buffer.alloc(0)).subarray(0, 20)
  t.same(f.send(short), [])
  t.ok(f.lines.length > before)
  // The header's length disagrees with what was read.
  const [a] = f.send(request(Op.GETATTR, 1, Buffer.alloc(16), { len: 999 }))
  t.equal(a!.error, -Errno.EIO)
  // An opcode's arguments missing.
  const [b] = f.send(request(Op.READ, 1, Buffer.alloc(8)))
  t.equal(b!.error, -Errno.EIO)
  // Unknown opcodes: ENOSYS, as libfuse answers what it does not implement.
  const [c] = f.send(request(9999, 1, Buffer.alloc(0)))
  t.equal(c!.error, -Errno.ENOSYS)
  const [x] = f.send(request(Op.GETATTR + 19, 1, Buffer.alloc(0))) // GETXATTR
  t.equal(x!.error, -Errno.ENOSYS)
  // An unknown node id.
  const [d] = f.send(request(Op.GETATTR, 12345, Buffer.alloc(16)))
  t.equal(d!.error, -Errno.ENOENT)
  // A write longer than negotiated, and one whose size disagrees with the request.
  const zram0 = lookup(f, lookup(f, 1, 'dev'), 'zram0')
  const [e] = f.send(request(Op.WRITE, zram0, Buffer.concat([rwBody(1, 0, (1 << 20) + 4096), Buffer.alloc(16)])))
  t.equal(e!.error, -Errno.EIO)
  const [g] = f.send(request(Op.WRITE, zram0, Buffer.concat([rwBody(1, 0, 8192), Buffer.alloc(4096)])))
  t.equal(g!.error, -Errno.EIO)
  // A read on a file handle that was never opened.
  const [h] = f.send(request(Op.READ, zram0, rwBody(77, 0, 4096)))
  t.equal(h!.error, -Errno.EBADF)
  // An empty name.
  const [i] = f.send(request(Op.LOOKUP, 1, Buffer.alloc(0)))
  t.equal(i!.error, -Errno.ENOENT)
  t.ok(f.s.stats.malformed >= 4)
})

t.test('INTERRUPT: unknown and already answered get nothing; not yet read gets EAGAIN; waiting gets EINTR', async (t) => {
  const f = initialised()
  const intr = (target: number): Buffer => {
    const b = Buffer.alloc(8)
    b.writeUInt32LE(target, 0)
    return request(Op.INTERRUPT, 0, b, { unique: target | 1 })
  }
  t.same(f.send(intr(6)), [], 'an answered request: no answer')
  const [a] = f.send(intr(1 << 30))
  t.equal(a!.error, -Errno.EAGAIN, 'not read yet: the kernel queues the interrupt again')
  t.equal(a!.unique, (1 << 30) | 1)

  // A request that waits (an fsync behind a kcompressd drain): EINTR now, its late answer dropped.
  let held: ((r: number) => void) | null = null
  const log: EventLog = { info: () => {}, warn: () => {}, error: () => {}, debug: () => {} }
  const ch = new FakeChannel()
  const stat = { mode: 0o100600, uid: 0, gid: 0, size: 0, nlink: 1, mtime: new Date(0), atime: new Date(0), ctime: new Date(0) }
  const ops = {
    getattr: (_p: string, cb: (e: number, st?: typeof stat) => void) => cb(0, stat),
    fsync: (_p: string, _fd: number, _d: boolean, cb: (r: number) => void) => {
      held = cb
    },
  }
  const s = new FuseSession(ch, ops, log, { maxIoBytes: 1 << 20, maxBackground: 64 })
  ch.queue.push(request(Op.INIT, 0, initBody()), request(Op.FSYNC, 1, Buffer.alloc(16), { unique: 100 }))
  s.pump()
  t.equal(ch.answers.length, 1, 'only INIT is answered: the fsync waits')
  ch.queue.push(intr(100))
  s.pump()
  t.equal(ch.answers.length, 2)
  t.equal(ch.answers[1]!.unique, 100)
  t.equal(ch.answers[1]!.error, -Errno.EINTR)
  held!(0)
  t.equal(ch.answers.length, 2, 'the late answer is dropped')
  t.equal(s.stats.interrupted, 1)
})

t.test('the connection going away (ENODEV) ends the session once, with the reason', async (t) => {
  const f = initialised()
  const ends: string[] = []
  f.s.onEnd((e) => ends.push(e.reason))
  f.ch.closed = true
  f.s.pump()
  f.s.pump()
  t.same(ends, ['unmounted'])
})

t.test('one wakeup serves at most 64 requests: the event loop gets its turn under a full queue', async (t) => {
  const f = initialised()
  const reqs = Array.from({ length: 100 }, () => request(Op.GETATTR, 1, Buffer.alloc(16)))
  const first = f.send(...reqs)
  t.equal(first.length, 64)
  t.equal(f.ch.queue.length, 36, 'the rest waits for the next wakeup')
  f.s.pump()
  t.equal(f.ch.queue.length, 0)
})
