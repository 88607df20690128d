import { execFileSync } from 'node:child_process'
import { resolve } from 'node:path'
import { DeviceSet } from '../src/device/device-set'
import { findCodec } from '../src/codec/registry'
import { mountFs } from '../src/fuse/mount'
import { ZramFs } from '../src/fuse/zram-fs'
import { memparse } from '../src/sysfs/parse'
import { DEFAULT_FIFO_SIZE, MAX_FIFO_SIZE, MAX_WORKERS } from '../src/kcompressd/kcompressd'
import { findAttachments } from './attachments'
import { pinNoSwap, unpinNoSwap } from './cgroup'
import { sweepStaleCgroups } from './cgroup-sweep'
import { createLogger } from './logger'
import { prepareMountPoint } from './mount-point'
import { removePidFile, writePidFile } from './runtime-files'

export interface StartOptions {
  mount: string
  disksize: string | undefined
  algorithm: string | undefined
  memLimit: string | undefined
  /**
   * kcompressd worker threads per device; 0 = compress inline. Default: defaultWorkers() for each
   * device's algorithm, following comp_algorithm.
   */
  workers?: string | undefined
  /** kcompressd FIFO length in pages (default 256) */
  fifoSize?: string | undefined
  /** zram0's backing_dev: the lower file for writeback (created 0600 when missing). */
  backingFile?: string | undefined
  /** page (the kernel's default), compressed (writeback_compressed=1) or packed (ours). */
  writebackFormat?: string | undefined
  /** Automatic writeback (the zswap-like shrinker), for every device. */
  shrinker?: boolean
  /** The shrinker's pool limit for zram0 (zramfuse/pool_limit); default: mem_limit. */
  poolLimit?: string | undefined
  logLevel: string
}

function intOption(name: string, text: string | undefined, dflt: number, min: number, max: number): number {
  if (text === undefined) return dflt
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) throw new Error(`--${name} must be an integer ${min}..${max}`)
  return Number(text)
}

/** Run the daemon in the foreground until SIGINT/SIGTERM or `zramfuse stop`. */
export async function start(opts: StartOptions): Promise<void> {
  const log = createLogger(opts.logLevel)
  const mount = resolve(opts.mount)

  const workers = opts.workers === undefined ? 'auto' : intOption('workers', opts.workers, 0, 0, MAX_WORKERS)
  const fifoSize = intOption('fifo-size', opts.fifoSize, DEFAULT_FIFO_SIZE, 1, MAX_FIFO_SIZE)
  const devices = new DeviceSet({ workers, fifoSize, log })
  const zram0 = devices.add()
  if (opts.algorithm !== undefined) {
    if (!findCodec(opts.algorithm)) throw new Error(`unknown --algorithm ${opts.algorithm}`)
    zram0.setAlgorithm(opts.algorithm)
  }
  if (opts.memLimit !== undefined) zram0.setMemLimit(Number(memparse(opts.memLimit)))
  if (opts.writebackFormat !== undefined) {
    if (!['page', 'compressed', 'packed'].includes(opts.writebackFormat)) throw new Error('--writeback-format must be page, compressed or packed')
    if (opts.backingFile === undefined) throw new Error('--writeback-format needs --backing-file')
    zram0.lower.compressed = opts.writebackFormat !== 'page'
    zram0.lower.packed = opts.writebackFormat === 'packed'
  }
  if (opts.backingFile !== undefined) zram0.lower.setBackingDev(opts.backingFile)
  if (opts.poolLimit !== undefined) zram0.setPoolLimit(Number(memparse(opts.poolLimit)))
  if (opts.shrinker === true) {
    if (opts.backingFile === undefined) throw new Error('--shrinker needs --backing-file')
    zram0.shrinker.enabled = true
  }
  if (opts.disksize !== undefined) zram0.initialise(Number(memparse(opts.disksize)))
  // Start the workers before the first write (each takes a few ms to come up).
  await zram0.workersReady()

  const { cleanedStale } = prepareMountPoint(mount)
  if (cleanedStale) log.warn({ event: 'stale_mount_cleaned', mount }, 'unmounted a dead mount left by a killed daemon')

  // The daemon must never be swapped out to its own device.
  const pin = pinNoSwap()
  if (pin.mode === 'none') {
    log.error({ event: 'no_swap_guard', detail: pin.detail },
      'cannot keep the daemon out of swap: do not use this device as swap under memory pressure')
  } else {
    log.info({ event: 'no_swap_guard', mode: pin.mode, path: pin.path, detail: pin.detail })
    const swept = pin.path ? sweepStaleCgroups(pin.path) : []
    if (swept.length) log.info({ event: 'stale_cgroups_removed', paths: swept })
  }

  let mounted
  try {
    mounted = await mountFs(mount, new ZramFs(devices, log).operations())
  } catch (err) {
    unpinNoSwap(pin)
    throw err
  }
  writePidFile(mount)
  log.info({ event: 'ready', mount, devices: devices.ids().map((id) => `zram${id}`),
    disksize: zram0.disksize, algorithm: zram0.algorithm, workers: zram0.workers, fifoSize,
    backingDev: zram0.lower.backingPath, writebackFormat: zram0.lower.hasBackingDev ? zram0.lower.format : undefined,
    shrinker: zram0.shrinker.enabled, poolLimit: zram0.poolLimitPages() * 4096 }, 'mounted')

  let stopping = false
  const shutdown = (signal: string): void => {
    if (stopping) return
    const found = devices.ids().map((id) => findAttachments(`${mount}/dev/zram${id}`))
    const swaps = found.flatMap((a) => a.swaps)
    if (swaps.length > 0) {
      // Exiting now would SIGBUS every process with pages in this swap: keep serving.
      log.error({ event: 'stop_refused', signal, swaps },
        'refusing to stop while the device is active swap: swapoff first (scripts/zram-swap.sh off)')
      return
    }
    stopping = true
    const attached = found.flatMap((a) => a.loops)
    if (attached.length > 0) {
      log.error({ event: 'stopping_while_attached', loops: attached },
        'loop devices still use the block files: their I/O will fail from now on')
    }
    log.info({ event: 'stopping', signal })
    mounted.unmount().catch((err: unknown) => {
      log.warn({ event: 'unmount_failed', err: String(err) }, 'lazy unmount with fusermount -uz')
      try {
        execFileSync('fusermount', ['-uz', mount], { stdio: 'ignore' })
      } catch {
        // Nothing more to do: the kernel drops the mount when our /dev/fuse descriptor closes.
      }
    }).then(() => devices.close()).catch((err: unknown) => {
      log.warn({ event: 'kcompressd_close_failed', err: String(err) })
    }).finally(() => {
      removePidFile(mount)
      unpinNoSwap(pin)
      log.info({ event: 'stopped' })
      log.flush()
      process.exit(0)
    })
  }
  process.on('SIGINT', () => shutdown('SIGINT'))
  process.on('SIGTERM', () => shutdown('SIGTERM'))
  process.on('uncaughtException', (err) => {
    // A bug must not take the device down with acknowledged data in it: log and keep serving.
    log.error({ event: 'uncaught_exception', err: String(err), stack: err.stack })
  })
}
