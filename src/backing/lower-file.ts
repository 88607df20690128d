import { closeSync, constants, fstatSync, openSync, read, readFileSync, write } from 'node:fs'
import { Errno, ErrnoError } from '../errno'
import { fileio } from './fileio'

/**
 * The lower file (zram's backing_dev): a regular file, created 0600 when missing, or a block device.
 * All data I/O is asynchronous (libuv's thread pool), so a disk write never holds up a FUSE request.
 * Opening is synchronous: it happens once, when backing_dev is written.
 */
export class LowerFile {
  readonly path: string
  readonly isBlockDevice: boolean
  /** Bytes the lower file may hold: a block device's size; a regular file grows (Infinity). */
  readonly capacityBytes: number
  private fd: number
  /** Reads and writes handed to libuv and not yet finished. */
  private inFlight = 0
  private closing = false

  private constructor(path: string, fd: number, isBlockDevice: boolean, capacityBytes: number) {
    this.path = path
    this.fd = fd
    this.isBlockDevice = isBlockDevice
    this.capacityBytes = capacityBytes
  }

  /** open(2) O_RDWR|O_CREAT 0600; the errno open(2) gives becomes the writer's errno. */
  static open(path: string): LowerFile {
    let fd: number
    try {
      fd = openSync(path, constants.O_RDWR | constants.O_CREAT, 0o600)
    } catch (err) {
      throw new ErrnoError(errnoOf(err, Errno.EINVAL), `cannot open backing file ${JSON.stringify(path)}: ${String(err)}`)
    }
    try {
      const st = fstatSync(fd)
      if (st.isBlockDevice()) {
        const bytes = blockDeviceBytes(st.rdev)
        // backing_dev_store: a zero-sized device is refused (also prevents self reference).
        if (bytes < 4096) throw new ErrnoError(Errno.EINVAL, `backing device ${path} is empty`)
        return new LowerFile(path, fd, true, bytes)
      }
      if (!st.isFile()) throw new ErrnoError(Errno.ENOTBLK, `${path} is neither a regular file nor a block device`)
      return new LowerFile(path, fd, false, Infinity)
    } catch (err) {
      closeSync(fd)
      throw err
    }
  }

  get isOpen(): boolean {
    return this.fd >= 0 && !this.closing
  }

  pread(buf: Uint8Array, off: number, len: number, pos: number): Promise<number> {
    if (this.fd < 0 || this.closing) return Promise.reject(new ErrnoError(Errno.EIO, `${this.path} is closed`))
    this.inFlight++
    return new Promise<number>((resolve, reject) => {
      read(this.fd, buf, off, len, pos, (err, n) => (err ? reject(err) : resolve(n)))
    }).finally(() => this.settled())
  }

  /** Write all len bytes at pos (a short write is retried for the rest). */
  pwrite(buf: Uint8Array, off: number, len: number, pos: number): Promise<void> {
    if (this.fd < 0 || this.closing) return Promise.reject(new ErrnoError(Errno.EIO, `${this.path} is closed`))
    this.inFlight++
    return new Promise<void>((resolve, reject) => {
      const step = (o: number, l: number, p: number): void => {
        write(this.fd, buf, o, l, p, (err, n) => {
          if (err) reject(err)
          else if (n >= l) resolve()
          else if (n === 0) reject(new ErrnoError(Errno.EIO, `short write to ${this.path}`))
          else step(o + n, l - n, p + n)
        })
      }
      step(off, len, pos)
    }).finally(() => this.settled())
  }

  /**
   * Give a range back to the file system: fallocate(2) PUNCH_HOLE|KEEP_SIZE on the descriptor we
   * hold (native/fileio), on libuv's thread pool like our reads and writes, so neither the request
   * path nor the JavaScript thread waits for it; it works after the file was deleted. Rejects with
   * the kernel's errno as an fs-style error (code 'EOPNOTSUPP' on a file system without hole
   * punching). Block devices are left alone.
   */
  punchHole(pos: number, len: number): Promise<void> {
    if (this.isBlockDevice || this.fd < 0 || this.closing) return Promise.resolve()
    let punched: Promise<void>
    try {
      punched = fileio.punchHole(this.fd, pos, len)
    } catch (err) {
      return Promise.reject(err)
    }
    // In flight like a write: the descriptor must stay ours until the thread pool has used it.
    this.inFlight++
    return punched.finally(() => this.settled())
  }

  /** Bytes the file occupies on its file system (st_blocks * 512); 0 once closed. */
  allocatedBytes(): number {
    if (this.fd < 0 || this.closing) return 0
    return fstatSync(this.fd).blocks * 512
  }

  /** The directory entry is gone (the open descriptor keeps the data reachable). */
  isDeleted(): boolean {
    return this.fd >= 0 && !this.closing && !this.isBlockDevice && fstatSync(this.fd).nlink === 0
  }

  /**
   * Close the file; with I/O still in flight (a reset during writeback), only once it has finished:
   * closing the descriptor under a pending write could send that write to whatever file reuses
   * the number.
   */
  close(): void {
    if (this.fd < 0 || this.closing) return
    this.closing = true
    if (this.inFlight === 0) this.closeNow()
  }

  private settled(): void {
    this.inFlight--
    if (this.closing && this.inFlight === 0) this.closeNow()
  }

  private closeNow(): void {
    closeSync(this.fd)
    this.fd = -1
  }
}

/** A Node fs error's errno as a positive number, or the fallback. */
export function errnoOf(err: unknown, fallback: number): number {
  if (err instanceof ErrnoError) return err.errno
  const e = (err as { errno?: unknown }).errno
  return typeof e === 'number' && e !== 0 ? Math.abs(e) : fallback
}

function blockDeviceBytes(rdev: number): number {
  // Linux's new_encode_dev layout, as Node reports st_rdev.
  const major = (rdev >> 8) & 0xfff
  const minor = (rdev & 0xff) | ((rdev >> 12) & 0xfff00)
  const sectors = Number(readFileSync(`/sys/dev/block/${major}:${minor}/size`, 'utf8').trim())
  return sectors * 512
}
