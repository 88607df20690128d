import type { Operations, Stat } from 'fuse-native'
import type { DeviceSet } from '../device/device-set'
import { Errno, ErrnoError, errnoName } from '../errno'
import type { EventLog } from '../log'
import { planFallocate } from './fallocate'
import { MAX_IO_BYTES } from './mount'
import { NodeMetaStore } from './node-meta'
import { type Node, nodeDevice, PathTree } from './path-tree'

const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const O_ACCMODE = 3
const O_WRONLY = 1
const O_RDWR = 2
/** sysfs files report one page as their size; content is produced when read. */
const ATTR_FILE_SIZE = 4096
/**
 * kernfs_fop_write_iter cuts a write to a sysfs file to PAGE_SIZE bytes and answers with what the
 * store returned (zram's stores: that count), so a longer write(2) is short: 4096.
 */
const ATTR_MAX_WRITE = 4096
/** How much of a written value goes into a log line. */
const LOG_VALUE_CHARS = 256

/**
 * An open file: the node it names and, for attributes, the content of the last show() and where
 * the last read ended (seq_file's buffer and read_pos).
 */
interface OpenFile {
  node: Node
  content: Buffer | null
  readPos: number
}

/**
 * The FUSE operations: maps paths to the block device and the attribute tables, turns thrown
 * ErrnoErrors into the kernel's errno for the caller, and logs one JSON line per refused request.
 * Nothing a caller sends may throw out of here: an unexpected error becomes EIO and a log line.
 */
export class ZramFs {
  private readonly tree: PathTree
  private readonly log: EventLog
  private readonly files = new Map<number, OpenFile>()
  private nextFd = 1
  private readonly uid = process.getuid?.() ?? 0
  private readonly gid = process.getgid?.() ?? 0
  private readonly mountTime = new Date()
  private readonly meta = new NodeMetaStore()
  /** The scope of metadata of nodes that belong to no device (directories, zram-control). */
  private readonly devices: DeviceSet

  /** maxIoBytes: the largest read or write the transport takes (queue/max_hw_sectors_kb). */
  constructor(devices: DeviceSet, log: EventLog, maxIoBytes = MAX_IO_BYTES) {
    this.tree = new PathTree(devices, maxIoBytes)
    this.devices = devices
    this.log = log
  }

  operations(): Operations {
    return {
      getattr: (path, cb) => cb(...this.getattr(path)),
      fgetattr: (path, _fd, cb) => cb(...this.getattr(path)),
      readdir: (path, cb) => {
        const node = this.tree.resolve(path)
        if (!node) return cb(-Errno.ENOENT)
        if (node.kind !== 'dir') return cb(-Errno.ENOTDIR)
        cb(0, node.names())
      },
      open: (path, flags, cb) => this.guard('open', path, () => cb(0, this.open(path, flags)), cb),
      release: (_path, fd, cb) => {
        this.release(fd)
        cb(0)
      },
      read: (path, fd, buf, len, pos, cb) => this.read(path, fd, buf, len, pos, cb),
      write: (path, fd, buf, len, pos, cb) => this.write(path, fd, buf, len, pos, cb),
      truncate: (path, size, cb) => this.guard('truncate', path, () => cb(this.truncate(path, size)), cb),
      ftruncate: (path, _fd, size, cb) => this.guard('truncate', path, () => cb(this.truncate(path, size)), cb),
      fallocate: (path, fd, mode, offset, length, cb) => this.fallocate(path, fd, mode, offset, length, cb),
      flush: (_path, _fd, cb) => cb(0),
      fsync: (path, _fd, _datasync, cb) => {
        const node = this.tree.resolve(path)
        if (node?.kind !== 'block') {
          cb(0)
          return
        }
        node.dev.blockStat.flushIos++
        // Answered once kcompressd has committed what was staged (drain never rejects).
        void node.dev.flush().then(() => cb(0))
      },
      utimens: (path, atime, mtime, cb) => cb(this.utimens(path, atime, mtime)),
      chmod: (path: string, mode: number, cb: (err: number) => void) => cb(this.chmod(path, mode)),
      chown: (path: string, uid: number, gid: number, cb: (err: number) => void) => cb(this.chown(path, uid, gid)),
      readlink: (path: string, cb: (err: number) => void) => cb(this.tree.resolve(path) ? -Errno.EINVAL : -Errno.ENOENT),
      create: (path: string, _mode: number, cb: (err: number) => void) => cb(this.namespaceOp('create', path)),
      mknod: (path: string, _mode: number, _dev: number, cb: (err: number) => void) => cb(this.namespaceOp('mknod', path)),
      mkdir: (path: string, _mode: number, cb: (err: number) => void) => cb(this.namespaceOp('mkdir', path)),
      unlink: (path: string, cb: (err: number) => void) => cb(this.namespaceOp('unlink', path)),
      rmdir: (path: string, cb: (err: number) => void) => cb(this.namespaceOp('rmdir', path)),
      rename: (src: string, dest: string, cb: (err: number) => void) => cb(this.namespaceOp('rename', src, dest)),
      link: (src: string, dest: string, cb: (err: number) => void) => cb(this.namespaceOp('link', src, dest)),
      symlink: (target: string, path: string, cb: (err: number) => void) => cb(this.namespaceOp('symlink', path, target)),
      statfs: (_path, cb) => cb(0, {
        bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, favail: 0,
        fsid: 0, flag: 0, namemax: 255,
      }),
    }
  }

  private getattr(path: string): [number, Stat?] {
    const node = this.tree.resolve(path)
    if (!node) return [-Errno.ENOENT]
    const m = this.meta.get(this.scopeOf(node), path)
    const t = this.mountTime
    const base = {
      uid: m?.uid ?? this.uid, gid: m?.gid ?? this.gid, blksize: 4096,
      mtime: m?.mtimeMs != null ? new Date(m.mtimeMs) : t,
      atime: m?.atimeMs != null ? new Date(m.atimeMs) : t,
      ctime: m?.ctimeMs != null ? new Date(m.ctimeMs) : t,
    }
    const perm = m?.perm ?? defaultPerm(node)
    switch (node.kind) {
      case 'dir':
        return [0, { ...base, mode: S_IFDIR | perm, size: 0, nlink: 2 }]
      case 'block':
        return [0, { ...base, mode: S_IFREG | perm, size: node.dev.disksize, nlink: 1 }]
      default:
        return [0, { ...base, mode: S_IFREG | perm, size: ATTR_FILE_SIZE, nlink: 1 }]
    }
  }

  private scopeOf(node: Node): object {
    return nodeDevice(node) ?? this.devices
  }

  private permOf(node: Node, path: string): number {
    return this.meta.get(this.scopeOf(node), path)?.perm ?? defaultPerm(node)
  }

  /**
   * Creating, removing, renaming or linking names: sysfs has no such operations. The VFS answers
   * a create in a kernfs directory with EACCES (lookup_open: no ->create) and the others with
   * EPERM (vfs_mkdir, vfs_unlink, vfs_rename, ... without the inode operation; kernfs_iop_rename
   * without syscall ops). The same under dev/: the mount's names are the devices'.
   */
  namespaceOp(op: 'create' | 'mknod' | 'mkdir' | 'unlink' | 'rmdir' | 'rename' | 'link' | 'symlink', path: string, other?: string): number {
    const errno = op === 'create' ? Errno.EACCES : Errno.EPERM
    return this.refuse(op, path, new ErrnoError(errno, `sysfs has no ${op}`), other === undefined ? {} : { other })
  }

  /** chmod: kept (kernfs_iop_setattr), and what open() checks from then on. */
  chmod(path: string, mode: number): number {
    const node = this.tree.resolve(path)
    if (!node) return -Errno.ENOENT
    this.meta.chmod(this.scopeOf(node), path, mode)
    this.log.info({ event: 'chmod', path, mode: (mode & 0o7777).toString(8) })
    return 0
  }

  chown(path: string, uid: number, gid: number): number {
    const node = this.tree.resolve(path)
    if (!node) return -Errno.ENOENT
    this.meta.chown(this.scopeOf(node), path, uid, gid)
    this.log.info({ event: 'chown', path, uid, gid })
    return 0
  }

  utimens(path: string, atimeMs: number, mtimeMs: number): number {
    const node = this.tree.resolve(path)
    if (!node) return -Errno.ENOENT
    this.meta.utimens(this.scopeOf(node), path, atimeMs, mtimeMs)
    return 0
  }

  private open(path: string, flags: number): number {
    const node = this.tree.resolve(path)
    if (!node) throw new ErrnoError(Errno.ENOENT, 'no such file')
    if (node.kind === 'dir') throw new ErrnoError(Errno.EISDIR, 'is a directory')
    if (node.kind === 'block') {
      node.dev.opened()
    } else {
      // kernfs_fop_open checks the mode bits, for root too: no read bit, no reading; no write bit,
      // no writing. A file chmod'ed past what it has (a read-only attribute made 0666) opens, and
      // its read or write then fails with EIO, as dev_attr_show/dev_attr_store do.
      const acc = flags & O_ACCMODE
      const wantsRead = acc !== O_WRONLY
      const wantsWrite = acc === O_WRONLY || acc === O_RDWR
      const perm = this.permOf(node, path)
      if (wantsRead && (perm & 0o444) === 0) throw new ErrnoError(Errno.EACCES, `${node.attr.name} is not readable (mode ${perm.toString(8)})`)
      if (wantsWrite && (perm & 0o222) === 0) throw new ErrnoError(Errno.EACCES, `${node.attr.name} is not writable (mode ${perm.toString(8)})`)
    }
    const fd = this.nextFd++
    if (this.nextFd > 0x7fffffff) this.nextFd = 1
    this.files.set(fd, { node, content: null, readPos: 0 })
    return fd
  }

  private release(fd: number): void {
    const file = this.files.get(fd)
    if (!file) return
    this.files.delete(fd)
    if (file.node.kind === 'block') file.node.dev.released()
  }

  private truncate(path: string, size: number): number {
    const node = this.tree.resolve(path)
    if (!node) throw new ErrnoError(Errno.ENOENT, 'no such file')
    // Opening with O_TRUNC (shell redirection, dd of=) is ignored on sysfs files and on block
    // devices alike; FUSE turns it into a truncate we cannot tell apart, so truncate is a no-op.
    if (node.kind === 'dir') throw new ErrnoError(Errno.EISDIR, 'is a directory')
    return size >= 0 ? 0 : -Errno.EINVAL
  }

  private read(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (r: number) => void): void {
    const file = this.files.get(fd)
    if (!file) return cb(-Errno.EBADF)
    const node = file.node
    try {
      if (node.kind === 'block') {
        const r = node.dev.read(len === buf.length ? buf : buf.subarray(0, len), pos)
        if (typeof r === 'number') return cb(r)
        r.then(cb, (err: unknown) => cb(this.refuse('read', path, err, { pos, len })))
        return
      }
      if (node.kind === 'dir') return cb(-Errno.EISDIR)
      // As seq_file (fs/seq_file.c seq_read_iter), which sysfs reads go through: show() runs again
      // for a read at offset 0 and for a read anywhere but where the last one ended; a read that
      // goes on from there is served from the content already shown. So `cat` sees one show().
      if (file.content === null || pos === 0 || pos !== file.readPos) {
        const text = node.kind === 'attr' ? callShow(node.attr.show, node.target) : callShow(node.attr.show, node.target)
        file.content = Buffer.from(text, 'latin1')
      }
      const content = file.content
      const n = pos >= content.length ? 0 : content.copy(buf, 0, pos, Math.min(content.length, pos + len))
      file.readPos = pos + n
      cb(n)
    } catch (err) {
      cb(this.refuse('read', path, err, { pos, len }))
    }
  }

  private write(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (r: number) => void): void {
    const file = this.files.get(fd)
    if (!file) return cb(-Errno.EBADF)
    const node = file.node
    try {
      if (node.kind === 'block') {
        const r = node.dev.write(len === buf.length ? buf : buf.subarray(0, len), pos)
        if (r === undefined) return cb(len)
        r.then(() => cb(len), (err: unknown) => cb(this.refuse('write', path, err, { pos, len })))
        return
      }
      if (node.kind === 'dir') return cb(-Errno.EISDIR)
      // sysfs_kf_write: an empty write never reaches the store.
      if (len === 0) return cb(0)
      // The store sees bytes, as the kernel does: one char per byte (latin1), never UTF-8, so that
      // 0xA0 is the kernel's isspace() no-break space and a NUL ends the string where C's would.
      const count = Math.min(len, ATTR_MAX_WRITE)
      const text = buf.toString('latin1', 0, count)
      const r = node.kind === 'attr' ? callStore(node.attr.store, node.target, text) : callStore(node.attr.store, node.target, text)
      const done = (): void => {
        this.log.info({ event: 'attr_store', path, value: logValue(text) })
        cb(count)
      }
      // A store that waits for I/O (writeback) answers the write(2) when it is done.
      if (r === undefined) return done()
      r.then(done, (err: unknown) => cb(this.refuse('write', path, err, { pos, len, value: logValue(text) })))
    } catch (err) {
      const value = node.kind === 'block' ? undefined : logValue(buf.toString('latin1', 0, Math.min(len, LOG_VALUE_CHARS)))
      cb(this.refuse('write', path, err, { pos, len, value }))
    }
  }

  /**
   * fallocate on the block file: a loop device's DISCARD arrives as PUNCH_HOLE|KEEP_SIZE and its
   * WRITE_ZEROES as ZERO_RANGE|KEEP_SIZE (or PUNCH_HOLE). Never answer a supported mode with
   * EOPNOTSUPP: the loop device would turn discard off for good.
   */
  private fallocate(path: string, fd: number, mode: number, offset: number, length: number, cb: (r: number) => void): void {
    const file = this.files.get(fd)
    const node = file?.node ?? this.tree.resolve(path)
    if (!node) return cb(-Errno.ENOENT)
    const ctx = { mode, offset, length }
    if (node.kind !== 'block') return cb(this.refuse('fallocate', path, new ErrnoError(Errno.EOPNOTSUPP, 'not a block file'), ctx))
    const plan = planFallocate(mode, offset, length, node.dev.disksize)
    if (!plan.ok) return cb(this.refuse('fallocate', path, new ErrnoError(plan.errno, plan.reason), ctx))
    try {
      const r = node.dev.discard(plan.offset, plan.length, plan.kind === 'punch' ? 'discard' : 'write_zeroes')
      if (r === undefined) return cb(0)
      r.then(() => cb(0), (err: unknown) => cb(this.refuse('fallocate', path, err, ctx)))
    } catch (err) {
      cb(this.refuse('fallocate', path, err, ctx))
    }
  }

  /** Run a synchronous handler, answering its ErrnoError with the errno it carries. */
  private guard(op: string, path: string, fn: () => void, cb: (r: number) => void): void {
    try {
      fn()
    } catch (err) {
      cb(this.refuse(op, path, err, {}))
    }
  }

  /** Log one JSON line for a refused request and return the negative errno to answer it with. */
  private refuse(op: string, path: string, err: unknown, ctx: object): number {
    if (err instanceof ErrnoError) {
      const line = { event: 'refused', op, path, errno: errnoName(err.errno), reason: err.message, ...ctx }
      if (err.logged) this.log.debug(line)
      else this.log.warn(line)
      return -err.errno
    }
    this.log.error({ event: 'internal_error', op, path, err: String(err), stack: (err as Error)?.stack, ...ctx })
    return -Errno.EIO
  }
}

/** A written value for a log line: its bytes as written (no trimming: a 0xA0 or a tab matters), capped. */
function logValue(text: string): string {
  return text.slice(0, LOG_VALUE_CHARS).replace(/\n$/, '')
}

function callShow<T>(show: ((t: T) => string) | undefined, target: T): string {
  if (!show) throw new ErrnoError(Errno.EIO, 'the attribute has no show')
  return show(target)
}

function callStore<T>(store: ((t: T, text: string) => void | Promise<void>) | undefined, target: T, text: string): void | Promise<void> {
  if (!store) throw new ErrnoError(Errno.EIO, 'the attribute has no store')
  return store(target, text)
}

/** The mode a node has until chmod changes it: 0755 directories, the attribute's own, 0600 block files. */
function defaultPerm(node: Node): number {
  switch (node.kind) {
    case 'dir':
      return 0o755
    case 'block':
      return 0o600
    default:
      return node.attr.mode
  }
}
