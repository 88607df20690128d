import { execFileSync } from 'node:child_process'
import { resolve } from 'node:path'
import type { Logger } from 'pino'
import { DeviceSet } from '../src/device/device-set'
import { findCodec } from '../src/codec/registry'
import { MAX_IO_BYTES, type Mounted, mountFs } from '../src/fuse/mount'
import { DEFAULT_FUSE_POLL_US, MAX_FUSE_POLL_US, mountNative, nativeMaxIoBytes, URING_MODES, type UringMode } from '../src/fuse/kernel/mount'
import { ZramFs } from '../src/fuse/zram-fs'
import { storeAttribute } from '../src/sysfs/device-attributes'
import type { ZramDevice } from '../src/device/zram-device'
import { ErrnoError, errnoName } from '../src/errno'
import { DEFAULT_FIFO_SIZE, MAX_FIFO_SIZE, MAX_WORKERS } from '../src/kcompressd/limits'
import { findAttachments } from './attachments'
import { pinNoSwap, unpinNoSwap } from './cgroup'
import { sweepStaleCgroups } from './cgroup-sweep'
import { createLogger } from './logger'
import { loadMemlock, madviseShimPath } from './memlock'
import { isMounted, prepareMountPoint } from './mount-point'
import { pidFilePath, readPidFile, removePidFile, writePidFile } from './runtime-files'
import { fuseDaemonAlive } from './procfs'
import { applySwapSafety, ensureMadviseShim, swapSafetyVerdict } from './swap-safety'
import { ReadyChannel } from './background'
import { applyConfig } from './config/apply'
import { ConfigError } from './config/ini'
import { hostMemTotalMb, loadConfig, type ZramConfig } from './config/zram-generator'
import { parseListenAddress, serveMetrics, ZramMetrics } from './metrics'
import { Notifier } from './notify'
import { placeKcompressdWorkers } from './kcompressd-cpus'
import { clearLeftovers, EXIT_CONFIG, StartError } from './service-guard'
import { setUpDevices, tearDownDevices, type ManagedAttachment } from './setup-devices'
import { rmSync, writeFileSync } from 'node:fs'

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
  /** CPU list for every kcompressd worker thread (kcompressd-cpus.ts); default: the daemon's CPUs */
  kcompressdCpus?: string | undefined
  /** zram0's backing_dev: the lower file for writeback (created 0600 when missing). */
  backingFile?: string | undefined
  /** page (the kernel's default), compressed (compressed_writeback=1) or packed (ours). */
  writebackFormat?: string | undefined
  /** Automatic writeback (the zswap-like shrinker), for every device. */
  shrinker?: boolean
  /** The shrinker's pool limit for zram0 (zramfuse/pool_limit); default: mem_limit. */
  poolLimit?: string | undefined
  logLevel: string
  /**
   * Lock the daemon's memory and mark it an IO_FLUSHER (swap-safety.ts). Default: on as root (who
   * alone can make it swap); false is `--no-mlock`.
   */
  mlock?: boolean | undefined
  /** a zram-generator.conf: sets up every device it names (and swap / mkfs / mount) */
  config?: string | undefined
  /** serve Prometheus metrics on [HOST:]PORT (default host 127.0.0.1) */
  metrics?: string | undefined
  /** also write the daemon's pid here (removed at exit) */
  pidFile?: string | undefined
  /** the pipe to a waiting `start --background` (see background.ts) */
  ready?: ReadyChannel
  /** native (our own FUSE session on /dev/fuse, the default) or fuse-native (libfuse 2.9 through fuse-native) */
  transport?: string | undefined
  /** with the native transport: FUSE over io_uring, auto | on | off (default off: see docs/transport.md) */
  fuseUring?: string | undefined
  /** with the native transport: microseconds to keep reading /dev/fuse once it is empty (mount.ts DEFAULT_FUSE_POLL_US) */
  fusePollUs?: string | undefined
}

export const TRANSPORTS = ['native', 'fuse-native'] as const
export type Transport = (typeof TRANSPORTS)[number]
/** The daemon's FUSE connection ended without a stop (aborted, `umount -l`): EX_IOERR. */
export const EXIT_CONNECTION_LOST = 74

/** Options that set up zram0 by hand, which a --config file does instead. */
const DEVICE_FLAGS = [['disksize', 'disksize'], ['algorithm', 'algorithm'], ['memLimit', 'mem-limit'],
  ['backingFile', 'backing-file'], ['writebackFormat', 'writeback-format'], ['poolLimit', 'pool-limit']] as const

function intOption(name: string, text: string | undefined, dflt: number, min: number, max: number): number {
  if (text === undefined) return dflt
  if (!/^\d+$/.test(text) || Number(text) < min || Number(text) > max) throw new Error(`--${name} must be an integer ${min}..${max}`)
  return Number(text)
}

/**
 * Apply swap safety when asked; log one line with both results. When it cannot be applied, an
 * error line and a throw (the CLI exits 1): a swap device whose daemon can be reclaimed would hang
 * the machine under pressure, which is worse than not starting.
 */
function lockForSwap(wanted: boolean, whyNot: string, log: Logger): void {
  if (!wanted) {
    log.warn({ event: 'swap_safety', applied: false, reason: whyNot },
      'memory not locked, IO_FLUSHER not set: do not use this device as swap under memory pressure')
    return
  }
  const fail = (why: string, fields: Record<string, unknown>): never => {
    log.error({ event: 'swap_safety', applied: false, ...fields }, `${why} (--no-mlock to start anyway)`)
    throw new Error(`swap safety: ${why} (--no-mlock to start anyway)`)
  }
  let addon
  try {
    addon = loadMemlock()
  } catch (err) {
    return fail(err instanceof Error ? err.message : String(err), {})
  }
  // Re-executes this process (same pid) when the shim is not loaded yet: the next start() goes on.
  const shimError = ensureMadviseShim(addon, madviseShimPath())
  if (shimError !== null) return fail(shimError, {})
  const report = applySwapSafety(addon)
  const fields = { mlockall: report.mlockall, ioFlusher: report.ioFlusher }
  const verdict = swapSafetyVerdict(report)
  if (!verdict.start) return fail(verdict.message, fields)
  log[verdict.level]({ event: 'swap_safety', applied: true, ...fields }, verdict.message)
}

/** Run the daemon in the foreground until SIGINT/SIGTERM or `zramfuse stop`. */
/**
 * A command-line option applied as a write to its attribute (src/sysfs/device-attributes.ts): the
 * same checks, in the same order, as a write to the file; a refusal names the option and the errno.
 */
async function applyOption(dev: ZramDevice, option: string, path: string, text: string): Promise<void> {
  try {
    await storeAttribute(dev, path, text)
  } catch (err) {
    const errno = err instanceof ErrnoError ? ` (${errnoName(err.errno)})` : ''
    throw new Error(`${option} ${text}: ${path} refused it: ${(err as Error).message}${errno}`)
  }
}

export async function start(opts: StartOptions): Promise<void> {
  const log = createLogger(opts.logLevel)
  const mount = resolve(opts.mount)
  // First, before the kcompressd workers and the FUSE thread exist: they inherit IO_FLUSHER.
  lockForSwap(opts.mlock ?? process.getuid?.() === 0, opts.mlock === false ? '--no-mlock' : 'not root', log)
  const ready = opts.ready ?? new ReadyChannel()
  ready.hideFromChildren()
  const notifier = new Notifier(log)
  if (opts.config !== undefined) {
    const clash = DEVICE_FLAGS.filter(([k]) => opts[k] !== undefined).map(([, flag]) => `--${flag}`)
    if (clash.length > 0) throw new StartError(`--config sets the devices up: drop ${clash.join(', ')} (or use the config's keys)`, EXIT_CONFIG)
  }
  let metricsAddr
  try {
    metricsAddr = opts.metrics === undefined ? null : parseListenAddress(opts.metrics)
  } catch (err) {
    throw new StartError((err as Error).message, EXIT_CONFIG)
  }
  // Never start over the swap of a daemon that died with it on; detach its idle loop devices (service-guard.ts).
  const previous = readPidFile(mount)
  if (previous === null || !fuseDaemonAlive(previous)) clearLeftovers(mount, log)

  const transport = (opts.transport ?? 'native') as Transport
  if (!TRANSPORTS.includes(transport)) throw new StartError(`--transport must be one of ${TRANSPORTS.join(', ')}`, EXIT_CONFIG)
  const fuseUring = (opts.fuseUring ?? 'off') as UringMode
  if (!URING_MODES.includes(fuseUring)) throw new StartError(`--fuse-uring must be one of ${URING_MODES.join(', ')}`, EXIT_CONFIG)
  if (fuseUring === 'on' && transport !== 'native') throw new StartError('--fuse-uring on needs --transport native', EXIT_CONFIG)
  const fusePollUs = intOption('fuse-poll-us', opts.fusePollUs, DEFAULT_FUSE_POLL_US, 0, MAX_FUSE_POLL_US)
  const workers = opts.workers === undefined ? 'auto' : intOption('workers', opts.workers, 0, 0, MAX_WORKERS)
  const fifoSize = intOption('fifo-size', opts.fifoSize, DEFAULT_FIFO_SIZE, 1, MAX_FIFO_SIZE)
  if (opts.kcompressdCpus !== undefined) {
    // Before any worker starts: every one is placed as it comes up.
    try {
      placeKcompressdWorkers(opts.kcompressdCpus, log)
    } catch (err) {
      throw new StartError((err as Error).message, EXIT_CONFIG)
    }
  }
  const devices = new DeviceSet({ workers, fifoSize, log })
  const zram0 = devices.add()
  // zram0's options are writes to its attributes, in the order a script would make them.
  if (opts.algorithm !== undefined) {
    if (!findCodec(opts.algorithm)) throw new Error(`unknown --algorithm ${opts.algorithm}`)
    await applyOption(zram0, '--algorithm', 'comp_algorithm', opts.algorithm)
  }
  if (opts.memLimit !== undefined) await applyOption(zram0, '--mem-limit', 'mem_limit', opts.memLimit)
  if (opts.writebackFormat !== undefined) {
    if (!['page', 'compressed', 'packed'].includes(opts.writebackFormat)) throw new Error('--writeback-format must be page, compressed or packed')
    if (opts.backingFile === undefined) throw new Error('--writeback-format needs --backing-file')
    await applyOption(zram0, '--writeback-format', 'compressed_writeback', opts.writebackFormat === 'page' ? '0' : '1')
    await applyOption(zram0, '--writeback-format', 'zramfuse/writeback_packed', opts.writebackFormat === 'packed' ? '1' : '0')
  }
  if (opts.backingFile !== undefined) await applyOption(zram0, '--backing-file', 'backing_dev', opts.backingFile)
  if (opts.poolLimit !== undefined) await applyOption(zram0, '--pool-limit', 'zramfuse/pool_limit', opts.poolLimit)
  if (opts.shrinker === true) {
    if (opts.backingFile === undefined) throw new Error('--shrinker needs --backing-file')
    await applyOption(zram0, '--shrinker', 'zramfuse/shrinker_enabled', '1')
  }
  if (opts.disksize !== undefined) await applyOption(zram0, '--disksize', 'disksize', opts.disksize)
  let config: ZramConfig | null = null
  if (opts.config !== undefined) {
    try {
      config = loadConfig(opts.config, { memTotalMb: hostMemTotalMb() })
      for (const w of config.warnings) log.warn({ event: 'config_warning', file: config.file }, w)
      await applyConfig(devices, config, log)
    } catch (err) {
      if (err instanceof ConfigError) throw new StartError(err.message, EXIT_CONFIG)
      throw err
    }
    if (opts.shrinker === true) {
      const withLower = devices.all().filter((d) => d.lower.hasBackingDev)
      if (withLower.length === 0) throw new StartError('--shrinker needs a device with writeback-device in the config', EXIT_CONFIG)
      for (const d of withLower) await applyOption(d, '--shrinker', 'zramfuse/shrinker_enabled', '1')
    }
  }
  // Start the workers before the first write (each takes a few ms to come up).
  await Promise.all(devices.all().map((d) => d.workersReady()))
  // Bind the metrics port before mounting: a taken port fails the start with nothing to undo.
  const metricsServer = metricsAddr === null ? null : await serveMetrics(new ZramMetrics(devices), metricsAddr, log)

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

  let mounted: Mounted
  let maxIoBytes = MAX_IO_BYTES
  try {
    if (transport === 'native') {
      maxIoBytes = nativeMaxIoBytes()
      const native = await mountNative(mount, new ZramFs(devices, log, maxIoBytes).operations(), log, maxIoBytes, fuseUring, fusePollUs)
      native.onLost((e) => {
        // Nothing can reach the devices any more: their data is gone with the connection.
        // An aborted connection leaves its mount behind (ENOTCONN): detach it, as the next start would.
        const detached = isMounted(mount) ? native.detachDead() : null
        log.error({ event: 'fuse_connection_lost', reason: e.reason, detail: e.detail, detachedMount: detached === 0 },
          'the FUSE connection ended without a stop: exiting')
        removePidFile(mount)
        if (opts.pidFile !== undefined) rmSync(opts.pidFile, { force: true })
        unpinNoSwap(pin)
        log.flush()
        process.exit(EXIT_CONNECTION_LOST)
      })
      mounted = native
    } else {
      mounted = await mountFs(mount, new ZramFs(devices, log).operations())
    }
  } catch (err) {
    unpinNoSwap(pin)
    metricsServer?.server.close()
    throw err
  }
  writePidFile(mount)
  if (opts.pidFile !== undefined) writeFileSync(opts.pidFile, `${process.pid}\n`)
  const removePidFiles = (): void => {
    removePidFile(mount)
    if (opts.pidFile !== undefined) rmSync(opts.pidFile, { force: true })
  }
  // What zram-generator + systemd do after the devices exist: swap, or mkfs + mount.
  let managed: ManagedAttachment[] = []
  if (config !== null) {
    try {
      managed = await setUpDevices(mount, config, log, maxIoBytes)
    } catch (err) {
      await mounted.unmount().catch(() => execFileSync('fusermount', ['-uz', mount], { stdio: 'ignore' }))
      await devices.close().catch(() => {})
      metricsServer?.server.close()
      unpinNoSwap(pin)
      removePidFiles()
      throw err
    }
  }
  log.info({ event: 'ready', mount, transport, maxIoBytes, fusePollUs: transport === 'native' ? fusePollUs : undefined, devices: devices.ids().map((id) => `zram${id}`),
    disksize: zram0.disksize, algorithm: zram0.algorithm, workers: zram0.workers, fifoSize,
    backingDev: zram0.lower.backingPath, writebackFormat: zram0.lower.hasBackingDev ? zram0.lower.format : undefined,
    shrinker: zram0.shrinker.enabled, poolLimit: zram0.poolLimitPages() * 4096, config: opts.config,
    attachments: managed.map((a) => ({ device: a.device, loop: a.loop, fsType: a.fsType, mountPoint: a.mountPoint })),
    pidFile: opts.pidFile ?? pidFilePath(mount) }, 'mounted')
  ready.ready()
  void notifier.ready(`serving ${mount}: ${devices.ids().map((id) => `zram${id}`).join(' ')}` +
    managed.map((a) => ` ${a.device}=${a.fsType === 'swap' ? `swap on ${a.loop}` : `${a.fsType} at ${a.mountPoint ?? '-'}`}`).join(''))

  let stopping = false
  let tearingDown = false
  const shutdown = (signal: string): void => {
    if (stopping || tearingDown) return
    if (managed.length > 0) {
      // Undo our own swap / mounts first (swapoff reads back through us: asynchronously).
      tearingDown = true
      void notifier.stopping(`undoing ${managed.map((a) => a.device).join(' ')}`)
      log.info({ event: 'teardown', signal, attachments: managed.map((a) => a.loop) })
      tearDownDevices(mount, managed, log)
        .then(() => {
          managed = []
          tearingDown = false
          shutdown(signal)
        }, (err: unknown) => {
          tearingDown = false
          log.error({ event: 'stop_refused', signal, err: (err as Error).message },
            'could not undo the configured swap / mounts: still serving')
          void notifier.status(`stop refused: ${(err as Error).message}`)
        })
      return
    }
    const found = devices.ids().map((id) => findAttachments(`${mount}/dev/zram${id}`))
    const swaps = found.flatMap((a) => a.swaps)
    if (swaps.length > 0) {
      // Exiting now would SIGBUS every process with pages in this swap: keep serving.
      log.error({ event: 'stop_refused', signal, swaps },
        'refusing to stop while the device is active swap: swapoff first (scripts/zram-swap.sh off)')
      return
    }
    stopping = true
    void notifier.stopping('unmounting')
    metricsServer?.server.close()
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
      removePidFiles()
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
