/**
 * FUSE over io_uring (kernel 6.14+): the second mode of the native transport. After INIT (answered on
 * /dev/fuse with FUSE_OVER_IO_URING), every possible CPU gets a queue of ring entries; the kernel
 * puts each request into an entry of the queue of the CPU its caller runs on, and the answer goes
 * back in place with COMMIT_AND_FETCH, which also arms the entry for the next request. INIT, FORGET
 * and INTERRUPT keep coming through read(2) of /dev/fuse, so the classic channel stays open beside
 * the ring, and answers to requests read there still go out with write(2).
 *
 * An entry is a 288-byte header (fuse_uring_req_header: the in header, then the out header, in
 * `in_out`; the opcode's fixed argument in `op_in`; payload_sz and commit_id in `ring_ent_in_out`)
 * and a payload (names, write data, answers). Both are one Buffer here, the payload after a prefix:
 * the in header and op_in (at most 168 bytes) are copied in front of the payload, so the session
 * parses the request exactly as if read(2) had delivered it, write data included, with no copy of
 * the data. A read answer is built in the entry itself (out header in the prefix, data in the
 * payload), so it is decompressed straight where the kernel takes it from.
 */
import { readFileSync } from 'node:fs'
import { errnoName, Errno } from '../../errno'
import type { EventLog } from '../../log'
import { IN_HEADER, Op, OUT_HEADER } from './abi'
import type { FusedevAddon } from './fusedev-addon'
import type { FuseChannel } from './session'

/** struct fuse_uring_req_header */
export const URING_HEADER = 288
const IN_OUT = 0
const OP_IN = 128
const OP_IN_SIZE = 128
const ENT_COMMIT_ID = 256 + 8
const ENT_PAYLOAD_SZ = 256 + 16
/** Room in front of the payload for the in header and op_in (and, when answering, the out header). */
const PREFIX = 256
/** Entries per queue: enough for fio's 4 jobs and the kernel's async reads on one CPU (max_background 64 over all). */
export const DEFAULT_ENTRIES_PER_QUEUE = 8
/**
 * How the kernel's task work (a request copied into an entry, in our context) reaches the JavaScript
 * thread: fusedev.c uringSetup mode 2, DEFER_TASKRUN, run when we reap after an eventfd wakeup. In
 * three interleaved rounds on this VM (no cpuidle driver, so idle vCPUs halt; docs/transport.md) it served 4k QD1 reads at 1.01x / 1.26x /
 * 1.01x of the classic channel, where COOP_TASKRUN gave 0.80x / 0.83x / 0.55x and the default
 * (an interruption per request) 0.79x / 1.08x / 0.68x; 4k writes 0.88x / 0.94x / 0.74x (COOP 0.67-0.87x).
 */
const URING_TASKRUN = 2

/**
 * Bytes of the opcode's first argument, which the kernel puts in op_in (0: the first argument is a
 * name, or there is none: it comes in the payload). include/uapi/linux/fuse.h; the kernel sends a
 * zero first argument for LOOKUP, UNLINK, RMDIR, SYMLINK, READLINK and STATFS (fuse_set_zero_arg0).
 */
export function opInSize(opcode: number): number {
  switch (opcode) {
    case Op.GETATTR: return 16 // fuse_getattr_in
    case Op.SETATTR: return 88
    case Op.MKNOD: return 16
    case Op.MKDIR: return 8
    case Op.RENAME: return 8
    case Op.LINK: return 8
    case Op.OPEN: case Op.OPENDIR: return 8 // fuse_open_in
    case Op.READ: case Op.READDIR: case Op.READDIRPLUS: return 40
    case Op.WRITE: return 40
    case Op.RELEASE: case Op.RELEASEDIR: case Op.FLUSH: return 24 // fuse_release_in / fuse_flush_in
    case Op.FSYNC: case Op.FSYNCDIR: return 16
    case Op.SETXATTR: return 16
    case Op.GETXATTR: case Op.LISTXATTR: return 8
    case Op.ACCESS: return 8
    case Op.CREATE: return 16
    case Op.FALLOCATE: return 32
    case Op.RENAME2: return 16
    case Op.LSEEK: return 24
    default: return 0
  }
}

/** The kernel's queue count: one per possible CPU (/sys/devices/system/cpu/possible, e.g. "0-1" or "0,2-3"). */
export function possibleCpus(text = readFileSync('/sys/devices/system/cpu/possible', 'utf8')): number {
  let highest = -1
  for (const part of text.trim().split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part)
    if (m === null) throw new Error(`cannot parse the possible CPUs: ${JSON.stringify(text)}`)
    highest = Math.max(highest, Number(m[2] ?? m[1]))
  }
  return highest + 1
}

/** enable_uring, the fuse module's switch ('Y' or 'N'), or null when this kernel has no FUSE over io_uring. */
export function uringEnabled(path = '/sys/module/fuse/parameters/enable_uring'): boolean | null {
  try {
    return readFileSync(path, 'utf8').trim() === 'Y'
  } catch {
    return null
  }
}

interface Entry {
  readonly tag: number
  readonly qid: number
  readonly header: Buffer
  /** PREFIX bytes, then the payload the kernel fills and reads. */
  readonly buf: Buffer
  readonly payload: Buffer
  /** The unique of the request in it, while it is ours (0: armed, waiting for the kernel). */
  unique: number
  /** What the kernel matches the commit with (ring_ent_in_out.commit_id: the request's unique). */
  commitId: number
}

export interface UringStats {
  /** Requests that came through the ring. */
  requests: number
  /** io_uring_enter calls that submitted commits. */
  submits: number
  /** Commits or registrations the kernel refused (the entry was registered again). */
  refused: number
}

/**
 * The ring beside a /dev/fuse channel. Requests go to `deliver` (the session's), answers come back
 * through write() with the request's unique: those of ring requests are committed (in one submission
 * per wakeup while a batch is open), the rest go to the classic channel.
 */
export class UringChannel implements FuseChannel {
  private readonly addon: FusedevAddon
  private readonly classic: FuseChannel & { readonly fd: number }
  private readonly log: EventLog
  private readonly ring: number
  private readonly entries: Entry[] = []
  private readonly byUnique = new Map<number, Entry>()
  private readonly cqes: Int32Array
  private poller: { stop(): void } | null = null
  private batching = false
  private queued = 0
  private closed = false
  private deliver: ((buf: Buffer, n: number) => void) | null = null
  private onFailure: ((detail: string) => void) | null = null
  readonly stats: UringStats = { requests: 0, submits: 0, refused: 0 }

  /** Throws when the ring cannot be made (the caller stays on the classic channel). */
  constructor(addon: FusedevAddon, classic: FuseChannel & { readonly fd: number }, log: EventLog, queues: number, perQueue: number, payloadBytes: number) {
    this.addon = addon
    this.classic = classic
    this.log = log
    const total = queues * perQueue
    const ring = addon.uringSetup(total, URING_TASKRUN)
    if (ring < 0) throw new Error(`io_uring_setup: ${errnoName(-ring)}`)
    this.ring = ring
    this.cqes = new Int32Array(2 * 2 * total)
    for (let q = 0, tag = 0; q < queues; q++) {
      for (let i = 0; i < perQueue; i++, tag++) {
        const buf = Buffer.allocUnsafeSlow(PREFIX + payloadBytes)
        this.entries.push({ tag, qid: q, header: Buffer.alloc(URING_HEADER), buf, payload: buf.subarray(PREFIX), unique: 0, commitId: 0 })
      }
    }
  }

  /**
   * Register every entry and start serving: requests go to `deliver`; `failed` is told once when the
   * kernel refuses the ring (it then goes on sending everything through /dev/fuse).
   */
  start(deliver: (buf: Buffer, n: number) => void, failed: (detail: string) => void): void {
    this.deliver = deliver
    this.onFailure = failed
    for (const e of this.entries) this.register(e)
    this.submit()
    this.poller = this.addon.poll(this.addon.uringFd(this.ring), () => this.pump())
  }

  get entryCount(): number {
    return this.entries.length
  }

  get queueCount(): number {
    return this.entries.length === 0 ? 0 : this.entries[this.entries.length - 1]!.qid + 1
  }

  // ---- FuseChannel: the classic channel, with ring answers diverted ----

  read(buf: Buffer): number {
    return this.classic.read(buf)
  }

  write(buf: Buffer, len: number): number {
    const unique = buf.readUInt32LE(8) + buf.readUInt32LE(12) * 0x1_0000_0000
    const e = this.byUnique.get(unique)
    if (e === undefined) return this.classic.write(buf, len)
    this.byUnique.delete(unique)
    e.unique = 0
    // out header into in_out; the answer's data into the payload unless it was built there
    buf.copy(e.header, IN_OUT, 0, OUT_HEADER)
    const data = len - OUT_HEADER
    if (data > 0 && !(buf.buffer === e.buf.buffer && buf.byteOffset === e.buf.byteOffset + PREFIX - OUT_HEADER)) {
      buf.copy(e.payload, 0, OUT_HEADER, len)
    }
    e.header.writeUInt32LE(data, ENT_PAYLOAD_SZ)
    const r = this.addon.uringCommit(this.ring, this.classic.fd, e.qid, e.tag, e.commitId)
    if (r < 0) return r
    this.queued++
    if (!this.batching) this.submit()
    return len
  }

  /** Where a read answer for `unique` is built: its entry (out header, then the data in the payload). */
  replyBuffer(unique: number): Buffer | undefined {
    const e = this.byUnique.get(unique)
    return e === undefined ? undefined : e.buf.subarray(PREFIX - OUT_HEADER)
  }

  /** True when `unique` is a ring request (its buffers are its entry's until it is answered). */
  owns(unique: number): boolean {
    return this.byUnique.has(unique)
  }

  watch(onReadable: () => void): void {
    this.classic.watch(onReadable)
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.poller?.stop()
    this.poller = null
    this.byUnique.clear()
    this.addon.uringClose(this.ring)
    this.classic.close()
  }

  // ---- the ring ----

  /** Reap every completion: each is a request in its entry (or the kernel's refusal of a command). */
  pump(): void {
    if (this.closed) return
    this.batching = true
    try {
      for (;;) {
        const n = this.addon.uringReap(this.ring, this.cqes)
        for (let i = 0; i < n && !this.closed; i++) this.completed(this.cqes[2 * i]!, this.cqes[2 * i + 1]!)
        if (n < this.cqes.length / 2 || this.closed) break
      }
    } finally {
      this.batching = false
    }
    if (!this.closed) this.submit()
  }

  private completed(tag: number, res: number): void {
    const e = this.entries[tag]
    if (e === undefined) return
    if (res < 0) {
      // The connection is going (unmount, abort): the classic channel reads ENODEV and ends the session.
      if (res === -Errno.ENOTCONN || res === -Errno.ECONNABORTED || res === -Errno.ECANCELED) return
      this.stats.refused++
      if (res === -Errno.EOPNOTSUPP || res === -Errno.EINVAL) {
        this.onFailure?.(`the kernel refused the ring: ${errnoName(-res)}`)
        this.onFailure = null
        return
      }
      // A commit it could not match: that entry is stuck in the kernel; arm the buffers again.
      this.log.warn({ event: 'fuse_uring_refused', tag, errno: errnoName(-res) })
      this.register(e)
      return
    }
    const h = e.header
    const opcode = h.readUInt32LE(IN_OUT + 4)
    const unique = h.readUInt32LE(IN_OUT + 8) + h.readUInt32LE(IN_OUT + 12) * 0x1_0000_0000
    const payloadSz = h.readUInt32LE(ENT_PAYLOAD_SZ)
    const arg = opInSize(opcode)
    const start = PREFIX - IN_HEADER - arg
    // What the session validates is what arrived: a payload_sz past the buffer is cut to it, and the
    // request's own length then disagrees with what it says (answered EIO, as any malformed one).
    const end = PREFIX + Math.min(payloadSz, e.payload.length)
    h.copy(e.buf, start, IN_OUT, IN_HEADER)
    h.copy(e.buf, PREFIX - arg, OP_IN, OP_IN + Math.min(arg, OP_IN_SIZE))
    e.buf.writeUInt32LE(IN_HEADER + arg + payloadSz, start)
    const commitId = h.readUInt32LE(ENT_COMMIT_ID) + h.readUInt32LE(ENT_COMMIT_ID + 4) * 0x1_0000_0000
    if (commitId === 0 || unique === 0) {
      // Nothing the kernel would match a commit with (it never sends one; libfuse aborts on it): the
      // entry is armed again rather than answered into the void.
      this.stats.refused++
      this.log.warn({ event: 'fuse_malformed', opcode, unique, reason: 'an io_uring request with commit_id or unique 0' })
      this.register(e)
      return
    }
    e.unique = unique
    e.commitId = commitId
    this.byUnique.set(unique, e)
    this.stats.requests++
    this.deliver!(e.buf.subarray(start, end), end - start)
  }

  private register(e: Entry): void {
    const r = this.addon.uringRegister(this.ring, this.classic.fd, e.qid, e.tag, e.header, e.payload)
    if (r < 0) {
      this.onFailure?.(`registering a ring entry: ${errnoName(-r)}`)
      this.onFailure = null
      return
    }
    this.queued++
  }

  private submit(): void {
    if (this.queued === 0 || this.closed) return
    this.queued = 0
    this.stats.submits++
    const r = this.addon.uringSubmit(this.ring)
    if (r < 0) this.log.error({ event: 'fuse_uring_submit_failed', errno: errnoName(-r) })
  }
}
