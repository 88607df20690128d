/**
 * The native/fusedev addon (native/fusedev/fusedev.c, built by scripts/build-fusedev.sh): raw /dev/fuse
 * on the JavaScript thread. Every call is one system call made synchronously (fusermount: a child
 * process waited for); what the kernel refuses is answered as a negative errno, never thrown. A wrong
 * argument type throws a TypeError, a value out of range (a negative fd, a length past the buffer) a
 * RangeError.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'

/** What poll() returns: stop() is idempotent and may be called from inside the callback. */
export interface FusedevPoller {
  stop(): void
}

export interface FusedevAddon {
  /** open("/dev/fuse", O_RDWR | O_CLOEXEC | O_NONBLOCK): the fd, or -errno */
  open(): number
  /** close(2): 0 or -errno */
  close(fd: number): number
  /** pipe2(O_CLOEXEC | O_NONBLOCK): [readFd, writeFd], a stand-in channel for tests; throws on failure */
  pipe(): [number, number]
  /** mount(2) as is: 0 or -errno. data e.g. "fd=5,rootmode=40000,user_id=0,group_id=0,max_read=1048576" */
  mount(source: string, target: string, fstype: string, flags: number, data: string): number
  /** umount2(2): 0 or -errno */
  umount(target: string, flags: number): number
  /**
   * The unprivileged mount, as libfuse does it: `fusermount3 -o options -- target` (else fusermount)
   * sends back the /dev/fuse fd (non-blocking, close-on-exec); the fd, or -errno: -EIO when fusermount
   * exited without sending one (it says why on stderr), -EINVAL when options name auto_unmount.
   * Blocks until fusermount has exited.
   */
  fusermount(target: string, options: string): number
  /** `fusermount3 -u [-z] -- target`: its exit status (128 + signal when killed), or -errno when it could not start */
  fusermountUnmount(target: string, lazy: boolean): number
  /**
   * read(2) into buf[offset, buf.length) (offset 0 by default): bytes read, or -errno (EAGAIN, EINTR,
   * ENODEV, ...). With pollUs (0..1000000), an EAGAIN is retried for up to that long, yielding the CPU
   * between tries.
   */
  read(fd: number, buf: Uint8Array, offset?: number, pollUs?: number): number
  /** write(2) of buf[0, len): bytes written, or -errno */
  write(fd: number, buf: Uint8Array, len: number): number
  /** writev(2) of a[0, aLen) then b[0, bLen) (bLen may be 0): bytes written, or -errno */
  writev(fd: number, a: Uint8Array, aLen: number, b: Uint8Array, bLen: number): number
  /**
   * uv_poll_start(UV_READABLE) in this thread's event loop: callback(0) whenever fd is readable
   * (level-triggered), callback(status < 0) on a poll error (libuv has stopped watching then; /dev/fuse
   * reports a dead connection so, as -9, and read() answers -ENODEV). Keeps the loop alive until stop().
   * What the callback throws goes to 'uncaughtException'. Throws an Error (code, errno, syscall) when
   * libuv refuses the fd: EBADF, EPERM (a regular file), EEXIST (already polled in this loop).
   */
  poll(fd: number, callback: (status: number) => void): FusedevPoller
  /** A second /dev/fuse fd on the connection of fd (FUSE_DEV_IOC_CLONE), non-blocking, close-on-exec; or -errno */
  cloneFd(fd: number): number
  /**
   * FUSE over io_uring (native/fusedev/fusedev.c, "FUSE over io_uring"). uringSetup makes a ring of
   * `entries` SQEs (SQE128, COOP_TASKRUN, SINGLE_ISSUER: only this thread may use it): its handle, or
   * -errno. Register and commit queue one command each (-EBUSY when the SQ stays full); the header and
   * payload Buffers must stay referenced while the ring lives. uringReap copies completions as
   * (tag, res) pairs into out and returns how many.
   */
  uringSetup(entries: number, mode: number): number
  uringFd(ring: number): number
  uringRegister(ring: number, fuseFd: number, qid: number, tag: number, header: Uint8Array, payload: Uint8Array): number
  uringCommit(ring: number, fuseFd: number, qid: number, tag: number, commitId: number): number
  /** io_uring_enter for what is queued: SQEs submitted, or -errno */
  uringSubmit(ring: number): number
  uringReap(ring: number, out: Int32Array): number
  uringClose(ring: number): number
  readonly MNT_DETACH: number
  readonly MS_NOSUID: number
  readonly MS_NODEV: number
  readonly MS_NOEXEC: number
  readonly MS_NOATIME: number
}

const FUNCTIONS = [
  'open', 'close', 'pipe', 'mount', 'umount', 'fusermount', 'fusermountUnmount', 'read', 'write', 'writev', 'poll', 'cloneFd',
  'uringSetup', 'uringFd', 'uringRegister', 'uringCommit', 'uringSubmit', 'uringReap', 'uringClose',
] as const
const CONSTANTS = ['MNT_DETACH', 'MS_NOSUID', 'MS_NODEV', 'MS_NOEXEC', 'MS_NOATIME'] as const

const BUILD = join('native', 'fusedev', 'build', 'Release')

/**
 * The built addon, at the repository's root: three levels up from src/fuse/kernel/ when run from
 * source, four from dist/src/fuse/kernel/ (tsconfig.json: rootDir ".", outDir "dist").
 */
export function fusedevAddonPath(): string {
  const candidates = [join(__dirname, '..', '..', '..', BUILD, 'fusedev.node'), join(__dirname, '..', '..', '..', '..', BUILD, 'fusedev.node')]
  return candidates.find((p) => existsSync(p)) ?? candidates[candidates.length - 1]!
}

export function isFusedevAddon(m: unknown): m is FusedevAddon {
  if (typeof m !== 'object' || m === null) return false
  const o = m as Record<string, unknown>
  return FUNCTIONS.every((f) => typeof o[f] === 'function') && CONSTANTS.every((c) => Number.isInteger(o[c]))
}

/** Load the addon; throws with what to do when it is missing or not ours. */
export function loadFusedev(path = fusedevAddonPath()): FusedevAddon {
  if (!existsSync(path)) throw new Error(`${path} is missing: build it with bash scripts/build-fusedev.sh (npm ci does)`)
  const m: unknown = require(path)
  if (!isFusedevAddon(m)) throw new Error(`${path} does not export the fusedev functions: rebuild with bash scripts/build-fusedev.sh --force`)
  return m
}
