/**
 * Long because it is the whole protocol loop: one small handler per opcode served, sharing the
 * session's buffers, node table and reply path (the wire layout is abi.ts, mounting mount.ts).
 *
 * The FUSE protocol on a /dev/fuse descriptor, served on the JavaScript thread: when the channel is
 * readable, every request that is ready is read and dispatched to the same file-system operations
 * fuse-native calls (src/fuse/zram-fs.ts), and answered with one write(2) from the buffer the
 * answer was built in. A read decompresses straight into its reply buffer; a write compresses or
 * stages straight from the request buffer, which stays the request's until it is answered.
 *
 * The kernel names files by node id; ids map onto paths of the path tree, one id per path for the
 * mount's life (the tree is small and finite, so FORGET only counts).
 */
import type { Operations, Stat } from 'fuse-native'
import { Errno } from '../../errno'
import type { EventLog } from '../../log'
import {
  ATTR_OUT, ATTR_SIZE, BATCH_FORGET_IN, DIRENT_HEADER, ENTRY_OUT, FALLOCATE_IN, FATTR_ATIME, FATTR_ATIME_NOW, FATTR_GID,
  FATTR_MODE, FATTR_MTIME, FATTR_MTIME_NOW, FATTR_SIZE, FATTR_UID, FOPEN_DIRECT_IO, FOPEN_PARALLEL_DIRECT_WRITES, FSYNC_IN,
  FUSE_FSYNC_FDATASYNC, FUSE_KERNEL_MINOR, FUSE_KERNEL_VERSION, FUSE_MIN_KERNEL_MINOR, FUSE_MIN_READ_BUFFER, FUSE_ROOT_ID, IN_HEADER,
  INIT_IN_FLAGS2, INIT_IN_MIN, INIT_OUT, INIT_OUT_FLAGS2, InitFlag, InitFlag2, INTERRUPT_IN, Op, OPEN_IN, OPEN_OUT, OUT_HEADER, READ_IN, RELEASE_IN, SETATTR, SETATTR_IN,
  STATFS_OUT, WRITE_IN, WRITE_OUT,
} from './abi'

/** What the session reads requests from and writes answers to: /dev/fuse, or a stand-in in tests. */
export interface FuseChannel {
  /** One request into buf; its length, or -errno (-EAGAIN: none ready; -ENODEV: the connection is gone). */
  read(buf: Buffer): number
  /** One answer: buf[0, len); the bytes written or -errno (-ENOENT: the request was interrupted meanwhile). */
  write(buf: Buffer, len: number): number
  /**
   * Where a read answer for `unique` is to be built (out header at 0, data after it), when the
   * channel has a buffer of its own for it (io_uring: the request's entry); else the session's.
   */
  replyBuffer?(unique: number): Buffer | undefined
  /** True when the channel owns the request's buffers until it is answered (io_uring entries). */
  owns?(unique: number): boolean
  /** Call onReadable whenever a request may be ready, until stop(). */
  watch(onReadable: () => void): void
  /** Stop watching and close the descriptor. */
  close(): void
}

export interface SessionOptions {
  /** The largest read or write the file system takes in one request (FUSE_MAX_PAGES): 1 MiB by default. */
  maxIoBytes: number
  /** max_background: requests the kernel keeps in flight to us at once (async reads and direct I/O). */
  maxBackground: number
  /** Accept FUSE_OVER_IO_URING when the kernel offers it (the caller then registers the ring's entries). */
  uring?: boolean
}

export type SessionEnd = { reason: 'unmounted' | 'destroyed' | 'protocol' | 'error'; detail: string }

interface NodeEntry {
  readonly path: string
  nlookup: number
}

/** Requests answered later: their uniques, so an INTERRUPT finds them and a late answer is dropped. */
interface Pending {
  done: boolean
  /** Its buffers are the channel's (an io_uring entry): it cannot be answered before its operation ends. */
  owned: boolean
}

const S_IFDIR = 0o040000
const S_IFMT = 0o170000
const DT_DIR = 4
const DT_REG = 8
/** Request and read-answer buffers kept for reuse beyond the ones in use. */
const SPARE_BUFFERS = 8
/**
 * Requests served per wakeup before the event loop gets a turn (the poll is level-triggered, so it
 * comes straight back): with a deep queue kept full, timers, kcompressd results, recompression
 * slices and signals would otherwise never run.
 */
const MAX_PER_WAKEUP = 64

export class FuseSession {
  private readonly ops: Operations
  private readonly ch: FuseChannel
  private readonly log: EventLog
  private readonly maxIo: number
  private readonly maxBackground: number
  private readonly uringWanted: boolean
  private readonly bufSize: number
  private readonly byId = new Map<number, NodeEntry>()
  private readonly byPath = new Map<string, number>()
  private nextId = FUSE_ROOT_ID + 1
  private readonly pending = new Map<number, Pending>()
  private highestUnique = 0
  private initialised = false
  private uringGrantedFlag = false
  private ended: SessionEnd | null = null
  private readonly endListeners: Array<(e: SessionEnd) => void> = []
  private readonly initListeners: Array<() => void> = []
  /** Spare request buffers (the request in use owns its own until it is answered). */
  private readonly spare: Buffer[] = []
  /** The buffer the next request is read into. */
  private req: Buffer
  /** Small answers (headers, entries, attributes, directory listings) are built here and written at once. */
  private readonly small = Buffer.alloc(OUT_HEADER + 64 * 1024)
  /** Read answers: header + data, decompressed in place; a read answered later gets its own. */
  private readBuf: Buffer
  private readonly readSpare: Buffer[] = []
  /** Counts, for status and tests. */
  readonly stats = { requests: 0, malformed: 0, interrupted: 0, unknownOps: 0 }

  constructor(ch: FuseChannel, ops: Operations, log: EventLog, opts: SessionOptions) {
    this.ch = ch
    this.ops = ops
    this.log = log
    this.maxIo = opts.maxIoBytes
    this.maxBackground = opts.maxBackground
    this.uringWanted = opts.uring === true
    // The kernel refuses a read(2) smaller than the largest request it may send.
    this.bufSize = Math.max(FUSE_MIN_READ_BUFFER, IN_HEADER + WRITE_IN + this.maxIo)
    this.req = Buffer.allocUnsafeSlow(this.bufSize)
    this.readBuf = Buffer.allocUnsafeSlow(OUT_HEADER + this.maxIo)
    this.byId.set(FUSE_ROOT_ID, { path: '/', nlookup: 1 })
    this.byPath.set('/', FUSE_ROOT_ID)
  }

  /** Start serving. */
  start(): void {
    this.ch.watch(() => this.pump())
  }

  onEnd(fn: (e: SessionEnd) => void): void {
    if (this.ended !== null) fn(this.ended)
    else this.endListeners.push(fn)
  }

  /** Called once INIT has been answered: the mount serves from then on. */
  onInit(fn: () => void): void {
    if (this.initialised) fn()
    else this.initListeners.push(fn)
  }

  get isInitialised(): boolean {
    return this.initialised
  }

  /** INIT granted FUSE_OVER_IO_URING: requests go to the ring once its entries are registered. */
  get uringGranted(): boolean {
    return this.uringGrantedFlag
  }

  /** A request that arrived by another way than read() (an io_uring entry): served as one read. */
  deliver(buf: Buffer, n: number): void {
    if (this.ended !== null) return
    this.stats.requests++
    this.dispatch(buf, n)
  }

  /** Read and serve every request that is ready. */
  pump(): void {
    for (let served = 0; this.ended === null && served < MAX_PER_WAKEUP; served++) {
      const buf = this.req
      const n = this.ch.read(buf)
      if (n < 0) {
        if (n === -Errno.EAGAIN) return
        if (n === -Errno.EINTR) continue
        // ENOENT: the request was interrupted before it could be copied; read again.
        if (n === -Errno.ENOENT) continue
        if (n === -Errno.ENODEV) return this.end({ reason: 'unmounted', detail: 'the FUSE connection was closed (unmounted or aborted)' })
        return this.end({ reason: 'error', detail: `read /dev/fuse: errno ${-n}` })
      }
      this.stats.requests++
      this.dispatch(buf, n)
    }
  }

  /** End the session: stop reading, tell the listeners once. */
  end(e: SessionEnd): void {
    if (this.ended !== null) return
    this.ended = e
    this.ch.close()
    for (const p of this.pending.values()) p.done = true
    this.pending.clear()
    for (const fn of this.endListeners.splice(0)) fn(e)
  }

  // ---- requests ----

  private dispatch(buf: Buffer, n: number): void {
    if (n < IN_HEADER) {
      this.stats.malformed++
      this.log.warn({ event: 'fuse_malformed', bytes: n, reason: 'shorter than the request header' })
      return
    }
    const len = buf.readUInt32LE(0)
    const opcode = buf.readUInt32LE(4)
    const unique = buf.readUInt32LE(8) + buf.readUInt32LE(12) * 0x1_0000_0000
    const nodeid = buf.readUInt32LE(16) + buf.readUInt32LE(20) * 0x1_0000_0000
    if (len !== n) return this.malformed(unique, opcode, `header says ${len} bytes, read ${n}`)
    // An INTERRUPT's own unique is its target's with FUSE_INT_REQ_BIT: not a request read.
    if (opcode !== Op.INTERRUPT && unique > this.highestUnique) this.highestUnique = unique
    if (!this.initialised && opcode !== Op.INIT) return this.malformed(unique, opcode, 'request before INIT')
    try {
      this.serve(opcode, unique, nodeid, buf, n)
    } catch (err) {
      this.log.error({ event: 'fuse_internal_error', opcode, err: String(err), stack: (err as Error)?.stack })
      this.replyError(unique, Errno.EIO)
    }
  }

  private malformed(unique: number, opcode: number, reason: string): void {
    this.stats.malformed++
    this.log.warn({ event: 'fuse_malformed', opcode, unique, reason })
    this.replyError(unique, Errno.EIO)
  }

  private serve(op: number, unique: number, nodeid: number, b: Buffer, n: number): void {
    const A = IN_HEADER
    const need = (bytes: number): boolean => {
      if (n >= A + bytes) return true
      this.malformed(unique, op, `opcode ${op} needs ${A + bytes} bytes, got ${n}`)
      return false
    }
    switch (op) {
      case Op.INIT:
        if (need(INIT_IN_MIN)) this.init(unique, b, n)
        return
      case Op.FORGET:
        if (n >= A + 8) this.forget(nodeid, readU64(b, A))
        return
      case Op.BATCH_FORGET: {
        if (n < A + BATCH_FORGET_IN) return
        const count = b.readUInt32LE(A)
        for (let i = 0, at = A + BATCH_FORGET_IN; i < count && at + 16 <= n; i++, at += 16) this.forget(readU64(b, at), readU64(b, at + 8))
        return
      }
      case Op.INTERRUPT:
        if (need(INTERRUPT_IN)) this.interrupt(unique, readU64(b, A))
        return
      case Op.DESTROY:
        this.replyError(unique, 0)
        this.end({ reason: 'destroyed', detail: 'the kernel sent DESTROY' })
        return
    }
    const path = this.pathOf(nodeid)
    if (path === undefined) return this.replyError(unique, Errno.ENOENT)
    switch (op) {
      case Op.LOOKUP:
        return this.lookup(unique, path, cString(b, A, n))
      case Op.GETATTR:
        return this.ops.getattr!(path, (err, st) => this.replyAttr(unique, nodeid, err, st))
      case Op.SETATTR:
        if (need(SETATTR_IN)) this.setattr(unique, nodeid, path, b)
        return
      case Op.OPEN:
        if (need(OPEN_IN)) this.open(unique, path, b.readUInt32LE(A))
        return
      case Op.READ:
        if (need(READ_IN)) this.read(unique, path, b)
        return
      case Op.WRITE:
        if (need(WRITE_IN)) this.write(unique, path, b, n)
        return
      case Op.RELEASE:
        if (!need(RELEASE_IN)) return
        return this.ops.release!(path, b.readUInt32LE(A), (err) => this.replyError(unique, -err))
      case Op.FLUSH:
        return this.ops.flush!(path, b.readUInt32LE(A), (err) => this.replyError(unique, -err))
      case Op.FSYNC:
        if (!need(FSYNC_IN)) return
        this.later(unique, (done) => this.ops.fsync!(path, b.readUInt32LE(A), (b.readUInt32LE(A + 8) & FUSE_FSYNC_FDATASYNC) !== 0, done),
          (r) => this.replyError(unique, -r))
        return
      case Op.FALLOCATE:
        if (!need(FALLOCATE_IN)) return
        this.later(unique, (done) => this.ops.fallocate!(path, b.readUInt32LE(A), b.readUInt32LE(A + 24), readU64(b, A + 8), readU64(b, A + 16), done),
          (r) => this.replyError(unique, -r))
        return
      case Op.OPENDIR:
        return this.ops.getattr!(path, (err, st) => {
          if (err !== 0) return this.replyError(unique, -err)
          if (st === undefined || (st.mode & S_IFMT) !== S_IFDIR) return this.replyError(unique, Errno.ENOTDIR)
          this.replyOpen(unique, 0, 0)
        })
      case Op.READDIR:
        if (need(READ_IN)) this.readdir(unique, nodeid, path, readU64(b, A + 8), b.readUInt32LE(A + 16))
        return
      case Op.RELEASEDIR:
      case Op.FSYNCDIR:
        return this.replyError(unique, 0)
      case Op.STATFS:
        return this.ops.statfs!(path, (err, st) => this.replyStatfs(unique, err, st))
      case Op.READLINK:
        return (this.ops.readlink as (p: string, cb: (e: number) => void) => void)(path, (err) => this.replyError(unique, err === 0 ? Errno.EINVAL : -err))
      case Op.CREATE:
        return this.namespace(unique, 'create', path, cString(b, A + 16, n))
      case Op.MKNOD:
        return this.namespace(unique, 'mknod', path, cString(b, A + 16, n))
      case Op.MKDIR:
        return this.namespace(unique, 'mkdir', path, cString(b, A + 8, n))
      case Op.UNLINK:
        return this.namespace(unique, 'unlink', path, cString(b, A, n))
      case Op.RMDIR:
        return this.namespace(unique, 'rmdir', path, cString(b, A, n))
      case Op.SYMLINK:
        return this.namespace(unique, 'symlink', path, cString(b, A, n))
      case Op.RENAME:
        return this.namespace(unique, 'rename', path, cString(b, A + 8, n))
      case Op.RENAME2:
        return this.namespace(unique, 'rename', path, cString(b, A + 16, n))
      case Op.LINK:
        return this.namespace(unique, 'link', path, cString(b, A + 8, n))
      default:
        // ENOSYS makes the kernel stop asking (xattrs, locks, statx, lseek, ...), as for libfuse
        // without the operation.
        this.stats.unknownOps++
        this.log.debug({ event: 'fuse_unsupported', opcode: op })
        return this.replyError(unique, Errno.ENOSYS)
    }
  }

  private init(unique: number, b: Buffer, n: number): void {
    const A = IN_HEADER
    const major = b.readUInt32LE(A)
    const minor = b.readUInt32LE(A + 4)
    const maxReadahead = b.readUInt32LE(A + 8)
    const flags = b.readUInt32LE(A + 12)
    if (major > FUSE_KERNEL_VERSION) {
      // A newer major: answer with ours only, and the kernel sends INIT again (fuse_lowlevel.c do_init).
      const o = this.outHeader(unique, 8)
      this.small.writeUInt32LE(FUSE_KERNEL_VERSION, OUT_HEADER)
      this.small.writeUInt32LE(FUSE_KERNEL_MINOR, OUT_HEADER + 4)
      this.ch.write(this.small, o)
      return
    }
    if (major < FUSE_KERNEL_VERSION || minor < FUSE_MIN_KERNEL_MINOR || (flags & InitFlag.MAX_PAGES) === 0) {
      this.log.error({ event: 'fuse_init_refused', major, minor, flags, reason: `needs protocol 7.${FUSE_MIN_KERNEL_MINOR} with FUSE_MAX_PAGES` })
      this.replyError(unique, Errno.EPROTO)
      return this.end({ reason: 'protocol', detail: `kernel FUSE protocol ${major}.${minor} is too old` })
    }
    const want = InitFlag.ASYNC_READ | InitFlag.BIG_WRITES | InitFlag.ASYNC_DIO | InitFlag.MAX_PAGES | InitFlag.PARALLEL_DIROPS
    const flags2 = (flags & InitFlag.INIT_EXT) !== 0 && n >= IN_HEADER + INIT_IN_FLAGS2 + 4 ? b.readUInt32LE(A + INIT_IN_FLAGS2) : 0
    const uring = this.uringWanted && (flags2 & InitFlag2.OVER_IO_URING) !== 0
    const granted = ((want & flags) | (uring ? InitFlag.INIT_EXT : 0)) >>> 0
    const o = this.outHeader(unique, INIT_OUT)
    const s = this.small
    s.fill(0, OUT_HEADER, OUT_HEADER + INIT_OUT)
    s.writeUInt32LE(FUSE_KERNEL_VERSION, OUT_HEADER)
    s.writeUInt32LE(Math.min(minor, FUSE_KERNEL_MINOR), OUT_HEADER + 4)
    s.writeUInt32LE(maxReadahead, OUT_HEADER + 8)
    s.writeUInt32LE(granted, OUT_HEADER + 12)
    s.writeUInt16LE(this.maxBackground, OUT_HEADER + 16)
    s.writeUInt16LE(Math.max(1, Math.floor(this.maxBackground * 3 / 4)), OUT_HEADER + 18)
    s.writeUInt32LE(this.maxIo, OUT_HEADER + 20)
    s.writeUInt32LE(1, OUT_HEADER + 24) // time_gran: nanoseconds
    s.writeUInt16LE(Math.ceil(this.maxIo / 4096), OUT_HEADER + 28)
    if (uring) s.writeUInt32LE(InitFlag2.OVER_IO_URING, OUT_HEADER + INIT_OUT_FLAGS2)
    this.initialised = true
    this.uringGrantedFlag = uring
    this.log.info({ event: 'fuse_init', kernel: `${major}.${minor}`, minor: Math.min(minor, FUSE_KERNEL_MINOR), flags: granted, maxWrite: this.maxIo,
      maxBackground: this.maxBackground, uring })
    this.ch.write(s, o)
    for (const fn of this.initListeners.splice(0)) fn()
  }

  private forget(nodeid: number, nlookup: number): void {
    const e = this.byId.get(nodeid)
    if (e !== undefined && nodeid !== FUSE_ROOT_ID) e.nlookup = Math.max(0, e.nlookup - nlookup)
  }

  private interrupt(unique: number, target: number): void {
    const p = this.pending.get(target)
    if (p !== undefined && p.owned) {
      // An io_uring entry: its buffers are the operation's until it ends (bounded: a kcompressd drain or
      // a lower-file read), and committing the entry hands them to the next request: answered then.
      this.log.info({ event: 'fuse_interrupt_deferred', unique: target })
    } else if (p !== undefined) {
      // A request waiting on kcompressd or the lower file: answered EINTR now; its own answer is dropped.
      p.done = true
      this.pending.delete(target)
      this.stats.interrupted++
      this.log.info({ event: 'fuse_interrupted', unique: target })
      this.replyError(target, Errno.EINTR)
    } else if (target > this.highestUnique) {
      // Not read yet: EAGAIN makes the kernel queue the interrupt again.
      this.replyError(unique, Errno.EAGAIN)
    }
    // Otherwise it was answered already: nothing to do (an INTERRUPT has no answer of its own).
  }

  private pathOf(nodeid: number): string | undefined {
    return this.byId.get(nodeid)?.path
  }

  private idOf(path: string): number {
    let id = this.byPath.get(path)
    if (id === undefined) {
      id = this.nextId++
      this.byPath.set(path, id)
      this.byId.set(id, { path, nlookup: 0 })
    }
    return id
  }

  private lookup(unique: number, parent: string, name: string): void {
    if (name.length === 0 || name.includes('/')) return this.replyError(unique, Errno.ENOENT)
    const path = parent === '/' ? `/${name}` : `${parent}/${name}`
    this.ops.getattr!(path, (err, st) => {
      if (err !== 0 || st === undefined) return this.replyError(unique, err !== 0 ? -err : Errno.ENOENT)
      const id = this.idOf(path)
      this.byId.get(id)!.nlookup++
      const o = this.outHeader(unique, ENTRY_OUT)
      const s = this.small
      s.fill(0, OUT_HEADER, OUT_HEADER + 40)
      writeU64(s, OUT_HEADER, id)
      // generation, entry_valid, attr_valid and their nsec stay 0: no caching, as attr/entry_timeout=0.
      encodeAttr(s, OUT_HEADER + 40, id, st)
      this.ch.write(s, o)
    })
  }

  private replyAttr(unique: number, nodeid: number, err: number, st: Stat | undefined): void {
    if (err !== 0 || st === undefined) return this.replyError(unique, err !== 0 ? -err : Errno.ENOENT)
    const o = this.outHeader(unique, ATTR_OUT)
    this.small.fill(0, OUT_HEADER, OUT_HEADER + 16)
    encodeAttr(this.small, OUT_HEADER + 16, nodeid, st)
    this.ch.write(this.small, o)
  }

  private setattr(unique: number, nodeid: number, path: string, b: Buffer): void {
    const A = IN_HEADER
    const valid = b.readUInt32LE(A + SETATTR.valid)
    const steps: Array<(cb: (err: number) => void) => void> = []
    if (valid & FATTR_MODE) steps.push((cb) => (this.ops.chmod as (p: string, m: number, c: (e: number) => void) => void)(path, b.readUInt32LE(A + SETATTR.mode), cb))
    if (valid & (FATTR_UID | FATTR_GID)) {
      steps.push((cb) => this.ops.getattr!(path, (err, st) => {
        if (err !== 0 || st === undefined) return cb(err !== 0 ? err : -Errno.ENOENT)
        const uid = valid & FATTR_UID ? b.readUInt32LE(A + SETATTR.uid) : st.uid
        const gid = valid & FATTR_GID ? b.readUInt32LE(A + SETATTR.gid) : st.gid;
        (this.ops.chown as (p: string, u: number, g: number, c: (e: number) => void) => void)(path, uid, gid, cb)
      }))
    }
    if (valid & FATTR_SIZE) steps.push((cb) => this.ops.truncate!(path, readU64(b, A + SETATTR.size), cb))
    if (valid & (FATTR_ATIME | FATTR_MTIME | FATTR_ATIME_NOW | FATTR_MTIME_NOW)) {
      steps.push((cb) => this.ops.getattr!(path, (err, st) => {
        if (err !== 0 || st === undefined) return cb(err !== 0 ? err : -Errno.ENOENT)
        const now = Date.now()
        const time = (flag: number, nowFlag: number, at: number, nsAt: number, old: Date): number =>
          valid & nowFlag ? now : valid & flag ? readU64(b, A + at) * 1000 + Math.floor(b.readUInt32LE(A + nsAt) / 1e6) : old.getTime()
        this.ops.utimens!(path, time(FATTR_ATIME, FATTR_ATIME_NOW, SETATTR.atime, SETATTR.atimensec, st.atime),
          time(FATTR_MTIME, FATTR_MTIME_NOW, SETATTR.mtime, SETATTR.mtimensec, st.mtime), cb)
      }))
    }
    const next = (i: number): void => {
      if (i === steps.length) return this.ops.getattr!(path, (err, st) => this.replyAttr(unique, nodeid, err, st))
      steps[i]!((err) => (err !== 0 ? this.replyError(unique, -err) : next(i + 1)))
    }
    next(0)
  }

  private open(unique: number, path: string, flags: number): void {
    this.ops.getattr!(path, (err, st) => {
      if (err !== 0 || st === undefined) return this.replyError(unique, err !== 0 ? -err : Errno.ENOENT)
      const isDir = (st.mode & S_IFMT) === S_IFDIR
      this.ops.open!(path, flags, (e, fd) => {
        if (e !== 0) return this.replyError(unique, -e)
        // No page cache (sysfs values are read fresh; block I/O reaches us at the caller's sizes),
        // and writes to the block file are not serialised on its inode.
        this.replyOpen(unique, fd ?? 0, isDir ? 0 : FOPEN_DIRECT_IO | FOPEN_PARALLEL_DIRECT_WRITES)
      })
    })
  }

  private replyOpen(unique: number, fh: number, openFlags: number): void {
    const o = this.outHeader(unique, OPEN_OUT)
    const s = this.small
    writeU64(s, OUT_HEADER, fh)
    s.writeUInt32LE(openFlags, OUT_HEADER + 8)
    s.writeInt32LE(0, OUT_HEADER + 12)
    this.ch.write(s, o)
  }

  private read(unique: number, path: string, b: Buffer): void {
    const A = IN_HEADER
    const fh = b.readUInt32LE(A)
    const offset = readU64(b, A + 8)
    const size = b.readUInt32LE(A + 16)
    if (size > this.maxIo) return this.malformed(unique, Op.READ, `read of ${size} bytes, more than max_read ${this.maxIo}`)
    const own = this.ch.replyBuffer?.(unique)
    const out = own ?? this.readBuf
    let waiting = false
    waiting = this.later(unique, (done) => this.ops.read!(path, fh, out.subarray(OUT_HEADER, OUT_HEADER + size), size, offset, (r) => {
      done(r)
      if (waiting && own === undefined && this.readSpare.length < SPARE_BUFFERS) this.readSpare.push(out)
    }), (r) => {
      if (r < 0) return this.replyError(unique, -r)
      out.writeUInt32LE(OUT_HEADER + r, 0)
      out.writeInt32LE(0, 4)
      writeU64(out, 8, unique)
      const w = this.ch.write(out, OUT_HEADER + r)
      if (w < 0 && w !== -Errno.ENOENT) this.log.warn({ event: 'fuse_reply_failed', unique, errno: -w })
    })
    // Answered later (kcompressd drain, lower file): the buffer is this request's until then.
    if (waiting && own === undefined) this.readBuf = this.readSpare.pop() ?? Buffer.allocUnsafeSlow(OUT_HEADER + this.maxIo)
  }

  private write(unique: number, path: string, b: Buffer, n: number): void {
    const A = IN_HEADER
    const fh = b.readUInt32LE(A)
    const offset = readU64(b, A + 8)
    const size = b.readUInt32LE(A + 16)
    const at = A + WRITE_IN
    if (size > this.maxIo) return this.malformed(unique, Op.WRITE, `write of ${size} bytes, more than max_write ${this.maxIo}`)
    if (at + size !== n) return this.malformed(unique, Op.WRITE, `write of ${size} bytes in a request of ${n}`)
    const mine = b === this.req
    let waiting = false
    waiting = this.later(unique, (done) => this.ops.write!(path, fh, b.subarray(at, at + size), size, offset, (r) => {
      if (waiting && mine) this.releaseRequestBuffer(b)
      done(r)
    }), (r) => {
      if (r < 0) return this.replyError(unique, -r)
      const o = this.outHeader(unique, WRITE_OUT)
      this.small.writeUInt32LE(r, OUT_HEADER)
      this.small.writeUInt32LE(0, OUT_HEADER + 4)
      this.ch.write(this.small, o)
    })
    // The data stays in this buffer until the device has taken it: read the next requests elsewhere.
    if (waiting && mine) this.req = this.spare.pop() ?? Buffer.allocUnsafeSlow(this.bufSize)
  }

  private releaseRequestBuffer(b: Buffer): void {
    if (this.spare.length < SPARE_BUFFERS) this.spare.push(b)
  }

  /**
   * Start an operation that may answer later; true when it did not answer at once (it is then
   * tracked for INTERRUPT until it does, and an answer after an interrupt is dropped).
   */
  private later(unique: number, start: (done: (r: number) => void) => void, answer: (r: number) => void): boolean {
    let sync = true
    let answered = false
    const pend: Pending = { done: false, owned: this.ch.owns?.(unique) === true }
    start((r) => {
      if (pend.done || answered) return
      answered = true
      if (!sync) this.pending.delete(unique)
      answer(r)
    })
    sync = false
    if (!answered) this.pending.set(unique, pend)
    return !answered
  }

  private readdir(unique: number, nodeid: number, path: string, offset: number, size: number): void {
    this.ops.readdir!(path, (err, names) => {
      if (err !== 0 || names === undefined) return this.replyError(unique, err !== 0 ? -err : Errno.EIO)
      const parent = path === '/' ? '/' : path.slice(0, path.lastIndexOf('/')) || '/'
      const entries = ['.', '..', ...names]
      const s = this.small
      const limit = Math.min(size, s.length - OUT_HEADER)
      let used = 0
      for (let i = offset; i < entries.length; i++) {
        const name = entries[i]!
        const nameLen = Buffer.byteLength(name)
        const rec = (DIRENT_HEADER + nameLen + 7) & ~7
        if (used + rec > limit) break
        const child = name === '.' ? path : name === '..' ? parent : path === '/' ? `/${name}` : `${path}/${name}`
        const at = OUT_HEADER + used
        writeU64(s, at, name === '.' ? nodeid : this.idOf(child))
        writeU64(s, at + 8, i + 1)
        s.writeUInt32LE(nameLen, at + 16)
        s.writeUInt32LE(name === '.' || name === '..' || this.isDir(child) ? DT_DIR : DT_REG, at + 20)
        s.write(name, at + DIRENT_HEADER)
        s.fill(0, at + DIRENT_HEADER + nameLen, at + rec)
        used += rec
      }
      this.ch.write(s, this.outHeader(unique, used))
    })
  }

  private isDir(path: string): boolean {
    let dir = false
    this.ops.getattr!(path, (err, st) => {
      dir = err === 0 && st !== undefined && (st.mode & S_IFMT) === S_IFDIR
    })
    return dir
  }

  private replyStatfs(unique: number, err: number, st: Record<string, number> | undefined): void {
    if (err !== 0 || st === undefined) return this.replyError(unique, err !== 0 ? -err : Errno.EIO)
    const o = this.outHeader(unique, STATFS_OUT)
    const s = this.small
    s.fill(0, OUT_HEADER, OUT_HEADER + STATFS_OUT)
    writeU64(s, OUT_HEADER, st.blocks ?? 0)
    writeU64(s, OUT_HEADER + 8, st.bfree ?? 0)
    writeU64(s, OUT_HEADER + 16, st.bavail ?? 0)
    writeU64(s, OUT_HEADER + 24, st.files ?? 0)
    writeU64(s, OUT_HEADER + 32, st.ffree ?? 0)
    s.writeUInt32LE(st.bsize ?? 4096, OUT_HEADER + 40)
    s.writeUInt32LE(st.namemax ?? 255, OUT_HEADER + 44)
    s.writeUInt32LE(st.frsize ?? 4096, OUT_HEADER + 48)
    this.ch.write(s, o)
  }

  private namespace(unique: number, op: string, dirPath: string, name: string): void {
    const path = dirPath === '/' ? `/${name}` : `${dirPath}/${name}`
    const fn = this.ops[op] as ((...args: unknown[]) => void) | undefined
    if (typeof fn !== 'function') return this.replyError(unique, Errno.ENOSYS)
    const cb = (err: number): void => this.replyError(unique, err === 0 ? Errno.EIO : -err)
    switch (op) {
      case 'create': return fn(path, 0, cb)
      case 'mknod': return fn(path, 0, 0, cb)
      case 'mkdir': return fn(path, 0, cb)
      case 'symlink': return fn('', path, cb)
      case 'rename': case 'link': return fn(path, '', cb)
      default: return fn(path, cb)
    }
  }

  // ---- answers ----

  /** Write the out header for an answer of `bytes` after it into `small`; the total length. */
  private outHeader(unique: number, bytes: number): number {
    const s = this.small
    s.writeUInt32LE(OUT_HEADER + bytes, 0)
    s.writeInt32LE(0, 4)
    writeU64(s, 8, unique)
    return OUT_HEADER + bytes
  }

  /** An answer with no data: errno 0 is success; otherwise the negated errno goes to the caller. */
  private replyError(unique: number, errno: number): void {
    const s = this.small
    s.writeUInt32LE(OUT_HEADER, 0)
    s.writeInt32LE(errno === 0 ? 0 : -Math.abs(errno), 4)
    writeU64(s, 8, unique)
    const w = this.ch.write(s, OUT_HEADER)
    if (w < 0 && w !== -Errno.ENOENT) this.log.warn({ event: 'fuse_reply_failed', unique, errno: -w })
  }
}

/** fuse_attr at `at`, from the operations' Stat (times in ms since the epoch). */
function encodeAttr(s: Buffer, at: number, ino: number, st: Stat): void {
  s.fill(0, at, at + ATTR_SIZE)
  writeU64(s, at, ino)
  writeU64(s, at + 8, st.size)
  writeU64(s, at + 16, Math.ceil(st.size / 512))
  const times = [st.atime, st.mtime, st.ctime]
  for (let i = 0; i < 3; i++) {
    const ms = times[i]!.getTime()
    writeU64(s, at + 24 + 8 * i, Math.floor(ms / 1000))
    s.writeUInt32LE((ms % 1000) * 1_000_000, at + 48 + 4 * i)
  }
  s.writeUInt32LE(st.mode >>> 0, at + 60)
  s.writeUInt32LE(st.nlink, at + 64)
  s.writeUInt32LE(st.uid >>> 0, at + 68)
  s.writeUInt32LE(st.gid >>> 0, at + 72)
  s.writeUInt32LE(st.rdev ?? 0, at + 76)
  s.writeUInt32LE(st.blksize ?? 4096, at + 80)
}

function readU64(b: Buffer, at: number): number {
  return b.readUInt32LE(at) + b.readUInt32LE(at + 4) * 0x1_0000_0000
}

function writeU64(b: Buffer, at: number, v: number): void {
  b.writeUInt32LE(v >>> 0, at)
  b.writeUInt32LE(Math.floor(v / 0x1_0000_0000) >>> 0, at + 4)
}

/** A NUL-terminated name from `at` (the kernel sends names with their NUL). */
function cString(b: Buffer, at: number, end: number): string {
  if (at >= end) return ''
  const nul = b.indexOf(0, at)
  return b.toString('utf8', at, nul < 0 || nul > end ? end : nul)
}
