/**
 * The native transport: our own FUSE session (session.ts) on a /dev/fuse descriptor opened with
 * O_CLOEXEC (a child of the daemon never holds the mount), mounted with mount(2) and `fd=` as root,
 * or through fusermount's descriptor passing otherwise. Served on the JavaScript thread: libuv polls
 * the descriptor, and each wakeup reads every request that is ready (no thread hop, no copy of the
 * request into another buffer). Mount options match the fuse-native transport's (src/fuse/mount.ts):
 * default_permissions, no allow_other, every timeout 0, direct I/O on every open file.
 */
import { readFileSync } from 'node:fs'
import type { Operations } from 'fuse-native'
import { errnoName } from '../../errno'
import type { EventLog } from '../../log'
import type { Mounted } from '../mount'
import { type FusedevAddon, loadFusedev } from './fusedev-addon'
import { type FuseChannel, FuseSession, type SessionEnd } from './session'
import { DEFAULT_ENTRIES_PER_QUEUE, possibleCpus, UringChannel, type UringStats, uringEnabled } from './uring'

/** --fuse-uring: on needs it (the mount fails without it), auto uses it where the kernel allows, off never. */
export const URING_MODES = ['auto', 'on', 'off'] as const
export type UringMode = (typeof URING_MODES)[number]

/** The largest request we ask for (FUSE_MAX_PAGES): 1 MiB, as the kernel's zram takes in one bio. */
export const NATIVE_MAX_IO_BYTES = 1 << 20
/** Requests the kernel may keep in flight to us (async reads, async direct I/O). */
export const MAX_BACKGROUND = 64

/** The largest request this kernel will send: 1 MiB, or less when fs.fuse.max_pages_limit says so (6.13+). */
export function nativeMaxIoBytes(): number {
  try {
    const limit = Number(readFileSync('/proc/sys/fs/fuse/max_pages_limit', 'utf8').trim())
    if (Number.isInteger(limit) && limit > 0) return Math.min(NATIVE_MAX_IO_BYTES, limit * 4096)
  } catch {
    // older kernels: 256 pages
  }
  return NATIVE_MAX_IO_BYTES
}

/**
 * How long the loop keeps reading /dev/fuse after it finds no request, before it goes back to libuv
 * to sleep (--fuse-poll-us). A QD1 caller (fio, a guest's swap-in, a loop device) sends its next
 * request some microseconds after our answer; sleeping in between costs a wake-up per request, which
 * on this VM (idle vCPUs halt) was most of a 4k round trip: 50 us doubled 4k QD1 IOPS here
 * (docs/transport.md). The CPU it costs is bounded by the request rate: at most 50 us per request.
 */
export const DEFAULT_FUSE_POLL_US = 50
export const MAX_FUSE_POLL_US = 1000

/** /dev/fuse through the addon: non-blocking reads, one write per answer, libuv's poll. */
export class DevFuseChannel implements FuseChannel {
  private readonly addon: FusedevAddon
  readonly fd: number
  /** microseconds a read retries an EAGAIN (0: none); the io_uring channel, which reads here only FORGET and INTERRUPT, sets 0 */
  pollUs: number
  private poller: { stop(): void } | null = null
  private closed = false

  constructor(addon: FusedevAddon, fd: number, pollUs = 0) {
    this.addon = addon
    this.fd = fd
    this.pollUs = pollUs
  }

  read(buf: Buffer): number {
    return this.addon.read(this.fd, buf, 0, this.pollUs)
  }

  write(buf: Buffer, len: number): number {
    return this.addon.write(this.fd, buf, len)
  }

  watch(onReadable: () => void): void {
    // A poll error (status < 0) is read too: the read then answers with the errno (ENODEV).
    this.poller = this.addon.poll(this.fd, () => onReadable())
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.poller?.stop()
    this.poller = null
    this.addon.close(this.fd)
  }
}

export interface NativeMounted extends Mounted {
  readonly maxIoBytes: number
  /** The ring's counts while requests come through FUSE over io_uring; null on the classic channel. */
  uring(): UringStats | null
  /** Called once when the connection ends without unmount() (aborted, `umount -l`, a protocol error). */
  onLost(fn: (e: SessionEnd) => void): void
  /** After a lost connection: detach the dead mount (ENOTCONN for everyone) if it is still there; 0 or -errno. */
  detachDead(): number
}

/**
 * Mount `ops` at mountPoint (which must exist) over our own FUSE session. Resolves once the kernel
 * has sent INIT and the session answered it, so the mount serves when this returns.
 */
export function mountNative(mountPoint: string, ops: Operations, log: EventLog, maxIoBytes = nativeMaxIoBytes(), uringMode: UringMode = 'off',
  pollUs = DEFAULT_FUSE_POLL_US): Promise<NativeMounted> {
  const addon = loadFusedev()
  const enabled = uringMode === 'off' ? null : uringEnabled()
  if (uringMode === 'on' && enabled !== true) {
    throw new Error(enabled === null ? 'FUSE over io_uring: this kernel has none (no /sys/module/fuse/parameters/enable_uring)'
      : 'FUSE over io_uring is off in this kernel: as root, echo Y > /sys/module/fuse/parameters/enable_uring')
  }
  const uid = process.getuid?.() ?? 0
  const gid = process.getgid?.() ?? 0
  const common = ['default_permissions', `max_read=${maxIoBytes}`]
  let fd: number
  let viaFusermount = false
  if (uid === 0) {
    fd = addon.open()
    if (fd < 0) throw new Error(`open /dev/fuse: ${errnoName(-fd)}`)
    const data = [`fd=${fd}`, 'rootmode=40000', `user_id=${uid}`, `group_id=${gid}`, ...common].join(',')
    const r = addon.mount('zramfuse', mountPoint, 'fuse.zramfuse', addon.MS_NOSUID | addon.MS_NODEV, data)
    if (r < 0) {
      addon.close(fd)
      throw new Error(`mount ${mountPoint}: ${errnoName(-r)}`)
    }
  } else {
    fd = addon.fusermount(mountPoint, ['fsname=zramfuse', 'subtype=zramfuse', ...common].join(','))
    if (fd < 0) throw new Error(`fusermount ${mountPoint}: ${errnoName(-fd)}`)
    viaFusermount = true
  }
  const classic = new DevFuseChannel(addon, fd, pollUs)
  let ring: UringChannel | null = null
  if (enabled === true) {
    try {
      ring = new UringChannel(addon, classic, log, possibleCpus(), DEFAULT_ENTRIES_PER_QUEUE, maxIoBytes)
    } catch (err) {
      if (uringMode === 'on') {
        classic.close()
        throw err
      }
      log.warn({ event: 'fuse_uring_unavailable', reason: String((err as Error).message) }, 'FUSE over io_uring could not start: serving on /dev/fuse')
    }
  }
  if (ring !== null) classic.pollUs = 0
  const channel: FuseChannel = ring ?? classic
  const session = new FuseSession(channel, ops, log, { maxIoBytes, maxBackground: MAX_BACKGROUND, uring: ring !== null })
  let ringServing = false
  let unmounting = false
  const lost: Array<(e: SessionEnd) => void> = []
  let ended: SessionEnd | null = null
  session.onEnd((e) => {
    ended = e
    if (!unmounting) for (const fn of lost) fn(e)
  })
  const unmount = (): Promise<void> => new Promise<void>((resolve, reject) => {
    unmounting = true
    if (ended !== null) return resolve()
    const r = viaFusermount ? addon.fusermountUnmount(mountPoint, false) : addon.umount(mountPoint, 0)
    if (r !== 0) {
      unmounting = false
      return reject(new Error(`unmount ${mountPoint}: ${r < 0 ? errnoName(-r) : `fusermount exited ${r}`}`))
    }
    // The kernel ends the connection with the superblock: the next read sees ENODEV.
    session.onEnd(() => resolve())
    session.pump()
  })
  return new Promise<NativeMounted>((resolve, reject) => {
    session.onEnd((e) => {
      if (!session.isInitialised) reject(new Error(`FUSE session ended before INIT: ${e.detail}`))
    })
    const detachDead = (): number => (viaFusermount ? addon.fusermountUnmount(mountPoint, true) : addon.umount(mountPoint, addon.MNT_DETACH))
    session.onInit(() => {
      if (ring !== null && session.uringGranted) {
        ringServing = true
        ring.start((buf, n) => session.deliver(buf, n), (detail) => {
          // The kernel turns the ring off for the connection and sends everything through /dev/fuse.
          ringServing = false
          log.warn({ event: 'fuse_uring_refused', detail }, 'FUSE over io_uring refused: serving on /dev/fuse')
        })
        log.info({ event: 'fuse_uring', queues: ring.queueCount, entries: ring.entryCount })
      } else if (uringMode === 'on') {
        unmounting = true
        session.end({ reason: 'protocol', detail: 'the kernel did not offer FUSE_OVER_IO_URING at INIT' })
        detachDead()
        return reject(new Error('FUSE over io_uring: the kernel did not offer it at INIT'))
      }
      resolve({
        mountPoint, maxIoBytes, unmount, detachDead, onLost: (fn) => (ended !== null && !unmounting ? fn(ended) : lost.push(fn)),
        uring: () => (ringServing && ring !== null ? ring.stats : null),
      })
    })
    session.start()
    session.pump()
  })
}

