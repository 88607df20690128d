// FUSE over io_uring against a fake ring in place of the kernel's: requests are put into the
// registered entries as fs/fuse/dev_uring.c puts them (the in header in in_out, the opcode's first
// argument in op_in, the rest in the payload, commit_id and payload_sz in ring_ent_in_out), and the
// commits are read back as the kernel reads them. The session and the file system are the real ones.
import t from 'tap'
import { DeviceSet } from '../../src/device/device-set'
import { Errno } from '../../src/errno'
import type { EventLog } from '../../src/log'
import { ZramFs } from '../../src/fuse/zram-fs'
import { InitFlag, InitFlag2, Op } from '../../src/fuse/kernel/abi'
import type { FusedevAddon } from '../../src/fuse/kernel/fusedev-addon'
import { type FuseChannel, FuseSession } from '../../src/fuse/kernel/session'
import { request, rwBody } from './requests'
import { opInSize, possibleCpus, URING_HEADER, UringChannel, uringEnabled } from '../../src/fuse/kernel/uring'

interface Registered { qid: number; header: Buffer; payload: Buffer; armed: boolean }
interface Commit { tag: number; commitId: number; error: number; unique: number; payload: Buffer }

/** The kernel's side of the ring, as much as the channel sees of it. */
class FakeRing {
  readonly entries: Registered[] = []
  readonly commits: Commit[] = []
  readonly cqes: Array<[number, number]> = []
  submits = 0
  closed = false
  addon(): FusedevAddon {
    const fake: Partial<FusedevAddon> = {
      uringSetup: () => 0,
      uringFd: () => 99,
      uringRegister: (_r, _fd, qid, tag, header, payload) => {
        this.entries[tag] = { qid, header: Buffer.from(header.buffer, header.byteOffset, header.byteLength), payload: Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength), armed: true }
        return 0
      },
      uringCommit: (_r, _fd, _qid, tag, commitId) => {
        const e = this.entries[tag]!
        const h = e.header
        const size = h.readUInt32LE(256 + 16)
        this.commits.push({ tag, commitId, error: h.readInt32LE(4), unique: h.readUInt32LE(8) + h.readUInt32LE(12) * 2 ** 32, payload: Buffer.from(e.payload.subarray(0, size)) })
        e.armed = true
        return 0
      },
      uringSubmit: () => ++this.submits,
      uringReap: (_r, out) => {
        let n = 0
        while (this.cqes.length > 0 && 2 * n + 1 < out.length) {
          const [tag, res] = this.cqes.shift()!
          out[2 * n] = tag
          out[2 * n + 1] = res
          n++
        }
        return n
      },
      uringClose: () => {
        this.closed = true
        return 0
      },
      poll: () => ({ stop: () => {} }),
    }
    return fake as FusedevAddon
  }

  /** fuse_uring_copy_to_ring into an armed entry: returns its tag. */
  send(opcode: number, nodeid: number, unique: number, opIn: Buffer, payload: Buffer, qid = 0): number {
    const tag = this.entries.findIndex((e) => e !== undefined && e.armed && e.qid === qid)
    if (tag < 0) throw new Error(`no armed entry on queue ${qid}`)
    const e = this.entries[tag]!
    e.armed = false
    const h = e.header
    h.fill(0xee) // what the last answer left there must not matter
    h.fill(0, 0, 40)
    h.writeUInt32LE(40 + opIn.length + payload.length, 0)
    h.writeUInt32LE(opcode, 4)
    h.writeUInt32LE(unique, 8)
    h.writeUInt32LE(nodeid, 16)
    opIn.copy(h, 128)
    h.writeUInt32LE(unique, 256 + 8)
    h.writeUInt32LE(0, 256 + 12)
    h.writeUInt32LE(payload.length, 256 + 16)
    payload.copy(e.payload)
    this.cqes.push([tag, 0])
    return tag
  }
}

class ClassicChannel implements FuseChannel {
  readonly fd = 7
  readonly queue: Buffer[] = []
  readonly answers: Array<{ unique: number; error: number; body: Buffer }> = []
  read(buf: Buffer): number {
    const next = this.queue.shift()
    if (next === undefined) return -Errno.EAGAIN
    next.copy(buf)
    return next.length
  }
  write(buf: Buffer, len: number): number {
    this.answers.push({ unique: buf.readUInt32LE(8), error: buf.readInt32LE(4), body: Buffer.from(buf.subarray(16, len)) })
    return len
  }
  watch(): void {}
  close(): void {}
}

function initBody(flags2: number): Buffer {
  const b = Buffer.alloc(64)
  b.writeUInt32LE(7, 0)
  b.writeUInt32LE(45, 4)
  b.writeUInt32LE(128 * 1024, 8)
  b.writeUInt32LE((InitFlag.ASYNC_READ | InitFlag.MAX_PAGES | InitFlag.INIT_EXT) >>> 0, 12)
  b.writeUInt32LE(flags2, 16)
  return b
}

function fixture(opts: { uring?: boolean; offered?: boolean } = {}) {
  const set = new DeviceSet({ workers: 0 })
  set.add()
  const lines: Record<string, unknown>[] = []
  const capture = (o: object): void => {
    lines.push({ ...o })
  }
  const log: EventLog = { info: capture, warn: capture, error: capture, debug: capture }
  const kernel = new FakeRing()
  const classic = new ClassicChannel()
  const ring = new UringChannel(kernel.addon(), classic, log, 2, 2, 1 << 20)
  // The operations the session serves: a test may wrap one of them (the session calls them by name).
  const ops = new ZramFs(set, log, 1 << 20).operations()
  const s = new FuseSession(ring, ops, log, { maxIoBytes: 1 << 20, maxBackground: 64, uring: opts.uring ?? true })
  classic.queue.push(request(Op.INIT, 0, initBody(opts.offered === false ? 0 : InitFlag2.OVER_IO_URING), { unique: 1 }))
  s.pump()
  let failed = ''
  if (s.uringGranted) ring.start((buf, n) => s.deliver(buf, n), (d) => (failed = d))
  let unique = 100
  /** The kernel sends one request through the ring; what was committed for it. */
  const viaRing = (opcode: number, nodeid: number, opIn: Buffer, payload: Buffer, qid = 0): Commit => {
    const u = (unique += 2)
    const before = kernel.commits.length
    kernel.send(opcode, nodeid, u, opIn, payload, qid)
    ring.pump()
    const c = kernel.commits.slice(before).find((x) => x.unique === u)
    if (c === undefined) throw new Error(`opcode ${opcode}: no commit`)
    return c
  }
  const name = (n: string): Buffer => Buffer.from(n + '\0')
  const lookup = (parent: number, n: string): number => {
    const c = viaRing(Op.LOOKUP, parent, Buffer.alloc(0), name(n))
    if (c.error !== 0) throw new Error(`lookup ${n}: ${c.error}`)
    return Number(c.payload.readBigUInt64LE(0))
  }
  const open = (node: number, flags: number): number => {
    const b = Buffer.alloc(8)
    b.writeUInt32LE(flags, 0)
    const c = viaRing(Op.OPEN, node, b, Buffer.alloc(0))
    if (c.error !== 0) throw new Error(`open ${node}: ${c.error}`)
    return Number(c.payload.readBigUInt64LE(0))
  }
  return { set, kernel, classic, ring, s, ops, viaRing, lookup, open, name, lines, failed: () => failed }
}

t.test('INIT grants FUSE_OVER_IO_URING only when asked to and offered', async (t) => {
  const f = fixture()
  const a = f.classic.answers[0]!
  t.equal(a.error, 0)
  t.ok(a.body.readUInt32LE(12) & InitFlag.INIT_EXT, 'INIT_EXT in the answer: flags2 is read')
  t.equal(a.body.readUInt32LE(32), InitFlag2.OVER_IO_URING, 'flags2: FUSE_OVER_IO_URING')
  t.ok(f.s.uringGranted)
  t.equal(f.kernel.entries.filter((e) => e !== undefined).length, 4, 'two entries on each of two queues')
  t.same([...new Set(f.kernel.entries.map((e) => e.qid))], [0, 1])
  t.ok(f.kernel.entries.every((e) => e.header.length === URING_HEADER && e.payload.length === 1 << 20), '288-byte headers, 1 MiB payloads')
  for (const [what, opts] of [['not asked', { uring: false }], ['not offered', { offered: false }]] as const) {
    const g = fixture(opts)
    const b = g.classic.answers[0]!
    t.equal(b.body.readUInt32LE(32), 0, `${what}: no flags2`)
    t.notOk(g.s.uringGranted, `${what}: classic only`)
    t.equal(g.kernel.entries.length, 0, `${what}: nothing registered`)
  }
})

t.test('requests through the ring: lookup, getattr, open, write and read the block file, answered in place', async (t) => {
  const f = fixture()
  const dev = f.lookup(1, 'dev')
  const sys = f.lookup(1, 'sys')
  const block = f.lookup(sys, 'block')
  const zram = f.lookup(block, 'zram0')
  const disksize = f.lookup(zram, 'disksize')
  const open = f.open
  const afh = open(disksize, 1)
  const w = f.viaRing(Op.WRITE, disksize, rwBody(afh, 0, 4), Buffer.from('64M\n'))
  t.equal(w.error, 0)
  t.equal(w.payload.readUInt32LE(0), 4, 'write_out.size')
  const zram0 = f.lookup(dev, 'zram0')
  const attr = f.viaRing(Op.GETATTR, zram0, Buffer.alloc(16), Buffer.alloc(0))
  t.equal(Number(attr.payload.readBigUInt64LE(16 + 8)), 64 << 20, 'getattr (op_in fuse_getattr_in): size is disksize')
  const fh = open(zram0, 2)
  const data = Buffer.alloc(64 * 1024)
  for (let i = 0; i < data.length; i++) data[i] = (i * 7 + (i >> 12)) & 0xff
  const wr = f.viaRing(Op.WRITE, zram0, rwBody(fh, 1 << 20, data.length), data, 1)
  t.equal(wr.error, 0)
  t.equal(wr.payload.readUInt32LE(0), data.length, 'a 64 KiB write on queue 1, its data taken from the payload')
  const rd = f.viaRing(Op.READ, zram0, rwBody(fh, 1 << 20, data.length), Buffer.alloc(0))
  t.equal(rd.error, 0)
  t.ok(rd.payload.equals(data), 'read back: decompressed straight into the entry payload')
  const e = f.kernel.entries[rd.tag]!
  t.equal(e.header.readUInt32LE(256 + 16), data.length, 'payload_sz is the answer\'s data')
  t.equal(rd.commitId, rd.unique, 'committed with the commit_id the kernel gave')
  const st = f.viaRing(Op.STATFS, 1, Buffer.alloc(0), Buffer.alloc(0))
  t.equal(st.error, 0, 'statfs (no arguments)')
  t.equal(f.ring.stats.requests, 13, 'every request but INIT came through the ring')
  t.equal(f.classic.answers.length, 1, 'only INIT was answered on /dev/fuse')
})

t.test('answers to requests read from /dev/fuse still go there; a batch of completions is one submission', async (t) => {
  const f = fixture()
  f.classic.queue.push(request(Op.GETATTR, 1, Buffer.alloc(16), { unique: 4242 }))
  f.s.pump()
  t.equal(f.classic.answers.at(-1)!.unique, 4242, 'a request from read(2) answered by write(2)')
  const submits = f.kernel.submits
  f.kernel.send(Op.GETATTR, 1, 501, Buffer.alloc(16), Buffer.alloc(0), 0)
  f.kernel.send(Op.GETATTR, 1, 503, Buffer.alloc(16), Buffer.alloc(0), 0)
  f.kernel.send(Op.STATFS, 1, 505, Buffer.alloc(0), Buffer.alloc(0), 1)
  f.ring.pump()
  t.same(f.kernel.commits.slice(-3).map((c) => c.unique), [501, 503, 505])
  t.equal(f.kernel.submits - submits, 1, 'three commits, one io_uring_enter')
})

t.test('the ring\'s malformed requests and refusals: answered or handled, none throws', async (t) => {
  const f = fixture()
  const zram0 = f.lookup(f.lookup(1, 'dev'), 'zram0')
  const bad = f.viaRing(Op.WRITE, zram0, rwBody(0, 0, 8192), Buffer.alloc(4096))
  t.equal(bad.error, -Errno.EIO, 'a write whose size is not what payload_sz says: EIO')
  const unknown = f.viaRing(31 /* GETLK */, 1, Buffer.alloc(0), Buffer.alloc(0))
  t.equal(unknown.error, -Errno.ENOSYS, 'an unknown opcode: ENOSYS')
  // A request with commit_id 0 (the kernel never sends one): not served, the entry armed again.
  const tag0 = f.kernel.send(Op.GETATTR, 1, 777, Buffer.alloc(16), Buffer.alloc(0))
  f.kernel.entries[tag0]!.header.writeUInt32LE(0, 256 + 8)
  f.ring.pump()
  t.notOk(f.kernel.commits.some((c) => c.unique === 777), 'commit_id 0: not answered')
  t.ok(f.kernel.entries[tag0]!.armed, 'its entry registered again')
  t.ok(f.lines.some((l) => l.event === 'fuse_malformed'))
  // A commit the kernel could not match: the entry is registered again.
  const regs = f.kernel.entries.length
  f.kernel.entries[0]!.armed = false
  f.kernel.cqes.push([0, -Errno.ENOENT])
  f.ring.pump()
  t.ok(f.kernel.entries[0]!.armed, 'registered again')
  t.equal(f.kernel.entries.length, regs)
  t.equal(f.ring.stats.refused, 2)
  // The connection going away: nothing to do on the ring (the classic channel reads ENODEV).
  f.kernel.cqes.push([1, -Errno.ENOTCONN])
  f.ring.pump()
  t.equal(f.failed(), '')
  // The kernel refusing the ring itself: told once.
  f.kernel.cqes.push([2, -Errno.EOPNOTSUPP], [3, -Errno.EOPNOTSUPP])
  f.ring.pump()
  t.match(f.failed(), /refused the ring: ENOTSUP/)
  t.ok(f.lines.some((l) => l.event === 'fuse_uring_refused'), 'logged')
})

t.test('an INTERRUPT of a ring request waiting on the device is answered when its operation ends', async (t) => {
  const f = fixture()
  const disksize = f.lookup(f.lookup(f.lookup(f.lookup(1, 'sys'), 'block'), 'zram0'), 'disksize')
  t.equal(f.viaRing(Op.WRITE, disksize, rwBody(f.open(disksize, 1), 0, 3), Buffer.from('1M\n')).error, 0)
  const zram0 = f.lookup(f.lookup(1, 'dev'), 'zram0')
  const fh = f.open(zram0, 2)
  // hold the operation: a read that waits (as on a kcompressd drain) until released
  const ops = f.ops as unknown as { read: (...a: unknown[]) => void }
  const real = ops.read
  let release: (() => void) | null = null
  ops.read = (...a: unknown[]) => {
    release = () => real(...a)
  }
  const u = 9001
  f.kernel.send(Op.READ, zram0, u, rwBody(fh, 0, 4096), Buffer.alloc(0))
  f.ring.pump()
  t.ok(f.ring.owns(u), 'in flight in its entry')
  const intr = Buffer.alloc(8)
  intr.writeUInt32LE(u, 0)
  f.classic.queue.push(request(Op.INTERRUPT, 0, intr, { unique: u | 1 }))
  f.s.pump()
  t.notOk(f.kernel.commits.some((c) => c.unique === u), 'not answered early: the entry\'s buffer is the read\'s')
  t.ok(f.lines.some((l) => l.event === 'fuse_interrupt_deferred'))
  release!()
  const c = f.kernel.commits.find((x) => x.unique === u)
  t.equal(c?.error, 0, 'answered when the read ended')
  t.equal(c?.payload.length, 4096)
})

t.test('op_in sizes, possible CPUs, enable_uring', async (t) => {
  t.equal(opInSize(Op.READ), 40)
  t.equal(opInSize(Op.WRITE), 40)
  t.equal(opInSize(Op.GETATTR), 16)
  t.equal(opInSize(Op.LOOKUP), 0, 'the name comes in the payload')
  t.equal(opInSize(Op.CREATE), 16)
  t.equal(possibleCpus('0-1\n'), 2)
  t.equal(possibleCpus('0'), 1)
  t.equal(possibleCpus('0,2-5'), 6)
  t.throws(() => possibleCpus('x'))
  t.equal(uringEnabled('/nonexistent/enable_uring'), null, 'no parameter: no FUSE over io_uring in this kernel')
})
