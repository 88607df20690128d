// Start a real zramfuse daemon for an end-to-end test, and always take it down in the only
// safe order: swapoff, umount, losetup -d (for everything backed by its block file), then
// SIGTERM the daemon and wait, then remove the directories.
//
// - The daemon's stderr (pino JSON lines) goes to a file, never to a pipe: a test blocked in a
//   synchronous swapoff can then never deadlock a daemon that is writing logs.
// - If a step before the kill fails (e.g. swapoff), the daemon is LEFT RUNNING and the test
//   fails: killing it would take the swapped-out memory of other processes with it.
// - If the test process is interrupted (SIGINT/SIGTERM/SIGHUP, or exits without running its
//   teardown), a synchronous emergency cleanup does the same steps.
//
// ZRAMFUSE_E2E_CLI=/path/to/cli.js runs another build of the CLI (default dist/daemon/cli.js).
import t, { type Test } from 'tap'
import { spawn, execFileSync } from 'node:child_process'
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readdirSync, readFileSync, rmdirSync, statSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { detachSafely, detachSafelyAsync, findAttachments, mountDeviceOf, type FindOptions } from '../../daemon/attachments'
import { processAlive } from '../../daemon/procfs'
import { isMountPoint, mountsUnder, parseMmStat, REPO, run, type MmStat, type RunResult, sleep, which } from './util'

export interface DaemonOptions {
  /** --disksize; default 512M; null: start without --disksize (zram0 uninitialised) */
  disksize?: string | null
  algorithm?: string
  memLimit?: string
  extraArgs?: string[]
  /** --transport (default: the daemon's, native; ZRAMFUSE_TEST_TRANSPORT overrides it for a whole run) */
  transport?: 'native' | 'fuse-native'
  /**
   * FUSE over io_uring (--fuse-uring on, the native transport): enable_uring is Y only until the
   * daemon is up (the connection keeps its ring), then put back. Check uringSkipReason() first.
   */
  uring?: boolean
  /** the test whose teardown stops the daemon (default: the file's root tap object) */
  test?: Test
  /** how long to wait for the `ready` event (default 30 s) */
  readyTimeoutMs?: number
}

export interface Daemon {
  /** the mount directory */
  mount: string
  /** <mount>/dev/zram0 */
  blockFile: string
  /** <mount>/sys/block/zram0 */
  sys: string
  pid: number
  /** a scratch directory next to the mount (removed at teardown when empty) */
  base: string
  /** the daemon's stderr (pino JSON lines) */
  logFile: string
  /** full teardown (idempotent): detach, SIGTERM, wait, unmount leftovers, remove directories */
  stop(): Promise<void>
  /** the daemon's log so far */
  log(): string
  /**
   * Resolves once the log has a line of this pino `event`, or the daemon has exited, or timeoutMs
   * (default 30 s) has passed, whichever comes first: the caller asserts what it needs.
   */
  waitForEvent(event: string, timeoutMs?: number): Promise<void>
  /**
   * Resolves when the daemon process exits. Waiting on it keeps this process alive meanwhile (up
   * to a minute): the child handle is unref'd, so a test that awaited the exit event alone could
   * see the process gone (processAlive false for a zombie) and then its event loop empty before
   * that event came: tap reported "test unfinished" (CI, 2026-12-02).
   */
  exited: PromiseLike<{ code: number | null; signal: NodeJS.Signals | null }>
  /** a fresh empty directory under base, removed (rmdir, never recursively) at teardown */
  scratch(name: string): string
  /** mm_stat of zram0 */
  mmStat(): MmStat
}

/** An attribute of zram0 as read(2) returns it. */
export function readAttr(d: Daemon, name: string): string {
  return readFileSync(join(d.sys, name), 'utf8')
}

/** A one-number attribute of zram0. */
export function attrNumber(d: Daemon, name: string): number {
  return Number(readAttr(d, name).trim())
}

/**
 * Write an attribute the way a shell does (echo value > attr); resolves with the exit code and
 * stderr. bash, because dash's echo reports every failed write as "I/O error" whatever the errno.
 */
export async function echoAttr(d: Daemon, name: string, value: string): Promise<{ code: number | null; stderr: string }> {
  const r = await run('/bin/bash', ['-c', 'echo "$1" > "$2"', 'bash', value, join(d.sys, name)])
  return { code: r.code, stderr: r.stderr }
}

export const URING_PARAM = '/sys/module/fuse/parameters/enable_uring'

/** Why a daemon cannot be started over io_uring here (DaemonOptions.uring), or null when it can. */
export function uringSkipReason(): string | null {
  if (!existsSync(URING_PARAM)) return 'this kernel has no FUSE over io_uring (no enable_uring parameter)'
  try {
    writeFileSync(URING_PARAM, readFileSync(URING_PARAM, 'utf8').trim())
  } catch (err) {
    return `enable_uring cannot be set here: ${(err as Error).message}`
  }
  if (process.env.ZRAMFUSE_TEST_TRANSPORT === 'fuse-native') return 'the run is on the fuse-native transport'
  return null
}

/**
 * Abort the FUSE connection of `mount` through /sys/fs/fuse/connections/N/abort, mounting fusectl
 * for the test (and unmounting it at its end) where it is not mounted; false, with a comment, where
 * it cannot be mounted (containers).
 */
export async function abortConnection(test: Test, mount: string): Promise<boolean> {
  if (!existsSync('/sys/fs/fuse/connections/0') && readdirSync('/sys/fs/fuse/connections').length === 0) {
    const m = await run('mount', ['-t', 'fusectl', 'fusectl', '/sys/fs/fuse/connections'])
    if (m.code !== 0) {
      test.comment(`skipped: fusectl cannot be mounted here: ${m.stderr.trim()}`)
      return false
    }
    test.teardown(() => run('umount', ['/sys/fs/fuse/connections']))
  }
  const dev = statSync(mount).dev
  writeFileSync(`/sys/fs/fuse/connections/${(dev & 0xff) | ((dev >> 12) & 0xfff00)}/abort`, '1')
  return true
}

export const CLI = process.env.ZRAMFUSE_E2E_CLI ?? join(REPO, 'dist', 'daemon', 'cli.js')

/** The environment for the daemon and CLI: without tap's coverage hooks (they slow the hot path). */
export function daemonEnv(): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...process.env }
  delete env.NODE_OPTIONS
  delete env.NODE_V8_COVERAGE
  for (const k of Object.keys(env)) if (k.startsWith('_TAPJS_PROCESSINFO')) delete env[k]
  return env
}

/** Run the zramfuse CLI (stop, status, ...) and collect its output. */
export function cli(args: string[], timeoutMs = 120_000): Promise<RunResult> {
  return run(process.execPath, [CLI, ...args], { timeoutMs, env: daemonEnv() })
}

/**
 * Why end-to-end tests cannot run here, or null when they can. `tools` adds programs the
 * test needs besides losetup.
 */
export function e2eSkipReason(tools: string[] = []): string | null {
  if (typeof process.getuid !== 'function' || process.getuid() !== 0) return 'end-to-end tests need root (losetup, mount, swapon)'
  if (!existsSync('/dev/fuse')) return '/dev/fuse is missing (modprobe fuse)'
  for (const tool of ['losetup', ...tools]) {
    if (which(tool) === null) return `${tool} is not installed (run scripts/setup.sh)`
  }
  return null
}

/**
 * Call at the top of an e2e test file: when the machine cannot run it, records a skip with the
 * reason and returns false. A missing build is a failure, not a skip.
 */
export function canRunE2E(test: Test, tools: string[] = []): boolean {
  const why = e2eSkipReason(tools)
  if (why !== null) {
    test.skip(`end-to-end: ${why}`, () => {})
    return false
  }
  if (!existsSync(CLI)) {
    test.fail(`${CLI} is missing: run npm run build (scripts/test.sh does)`)
    return false
  }
  return true
}

interface Live {
  mount: string
  base: string
  blockFile: string
  logFile: string
  pid: number
  /** `major:minor` of the FUSE mount, once ready: finds our loop devices even after a lazy unmount */
  find: FindOptions
  scratch: string[]
  done: boolean
  exitCode: number | null
  exitSignal: NodeJS.Signals | null
  exited: boolean
}

const live = new Set<Live>()

function tail(text: string, lines = 60): string {
  return text.split('\n').slice(-lines).join('\n')
}

function readLog(d: Live): string {
  try {
    return readFileSync(d.logFile, 'utf8')
  } catch {
    return ''
  }
}

/** `text` (pino JSON lines) has a line of this event. */
function hasEvent(text: string, event: string): boolean {
  return text.split('\n').some((line) => {
    if (!line.includes(`"${event}"`)) return false
    try {
      return (JSON.parse(line) as { event?: unknown }).event === event
    } catch {
      return false
    }
  })
}

/** Poll the daemon's log file (no event tells us it grew) until `event`, its exit or the deadline. */
async function waitForEvent(d: Live, event: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!hasEvent(readLog(d), event) && !d.exited && Date.now() < deadline) await sleep(50)
}

function removeDirs(d: Live, errors: string[]): void {
  const left = mountsUnder(d.base)
  if (left.length > 0) {
    errors.push(`not removing ${d.base}: still mounted: ${left.join(', ')}`)
    return
  }
  for (const dir of [...d.scratch].reverse()) {
    try {
      rmdirSync(dir)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(`rmdir ${dir}: ${(err as Error).message}`)
    }
  }
  try {
    rmdirSync(d.mount)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') errors.push(`rmdir ${d.mount}: ${(err as Error).message}`)
  }
  // the log's tail goes into the error message of a failed teardown: remove it either way
  try {
    unlinkSync(d.logFile)
    rmdirSync(d.base)
  } catch (err) {
    errors.push(`removing ${d.base}: ${(err as Error).message}`)
  }
}

/** Unmount a FUSE mount whose daemon is gone (lazy, so a busy one does not block us). */
function forceUnmount(mount: string): string | null {
  for (const [file, args] of [
    ['fusermount', ['-u', '-z', mount]],
    ['umount', ['-l', mount]],
  ] as const) {
    try {
      execFileSync(file, [...args], { stdio: 'ignore', timeout: 30_000 })
      if (!isMountPoint(mount)) return null
    } catch {
      // try the next way
    }
  }
  return isMountPoint(mount) ? `${mount} is still mounted` : null
}

async function shutdown(d: Live): Promise<void> {
  if (d.done) return
  const errors: string[] = []
  // 1-3: swapoff, umount, losetup -d for everything backed by the block file
  try {
    await detachSafelyAsync(d.blockFile, () => {}, d.find)
  } catch (err) {
    errors.push((err as Error).message)
  }
  const left = findAttachments(d.blockFile, d.find)
  if (left.swaps.length > 0) {
    // Killing the daemon now would destroy the memory swapped out to it. Leave it running.
    d.done = true
    live.delete(d)
    throw new Error(
      `${errors.join('; ')}\nSWAP IS STILL ACTIVE on ${left.swaps.join(', ')} (backed by ${d.blockFile}): ` +
        `the daemon (pid ${d.pid}) was LEFT RUNNING. Clean up by hand: swapoff ${left.swaps.join(' ')}; ` +
        `losetup -d ${left.loops.join(' ')}; kill ${d.pid}`,
    )
  }
  // 4: SIGTERM and wait
  if (processAlive(d.pid)) {
    try {
      process.kill(d.pid, 'SIGTERM')
    } catch {
      // already gone
    }
    const deadline = Date.now() + 30_000
    while (!d.exited && Date.now() < deadline) await sleep(50)
    if (!d.exited) {
      errors.push(`daemon ${d.pid} did not exit within 30 s of SIGTERM (killed)`)
      try {
        process.kill(d.pid, 'SIGKILL')
      } catch {
        // gone meanwhile
      }
      const killDeadline = Date.now() + 5_000
      while (!d.exited && Date.now() < killDeadline) await sleep(50)
    } else if (d.exitCode !== 0) {
      errors.push(`daemon exited with code ${String(d.exitCode)} signal ${String(d.exitSignal)} after SIGTERM`)
    }
  }
  // 5: a mount left behind by a daemon that did not unmount
  if (isMountPoint(d.mount)) {
    errors.push(`${d.mount} was still mounted after the daemon exited`)
    const err = forceUnmount(d.mount)
    if (err !== null) errors.push(err)
  }
  // 6: directories
  const log = readLog(d)
  removeDirs(d, errors)
  d.done = true
  live.delete(d)
  if (errors.length > 0) {
    throw new Error(`teardown of the daemon on ${d.mount}: ${errors.join('; ')}\n--- daemon log (last lines) ---\n${tail(log)}`)
  }
}

/** A thenable of `p` whose every then() holds a ref'd timer until p settles (at most maxMs). */
function keptAliveUntil<T>(p: Promise<T>, maxMs: number): PromiseLike<T> {
  return {
    then<A = T, B = never>(onFulfilled?: ((v: T) => A | PromiseLike<A>) | null, onRejected?: ((e: unknown) => B | PromiseLike<B>) | null): Promise<A | B> {
      const timer = setTimeout(() => {}, maxMs)
      return p.finally(() => clearTimeout(timer)).then(onFulfilled, onRejected)
    },
  }
}

/** The same steps, synchronously, for a process that is about to die. */
function emergencyCleanupSync(): void {
  for (const d of live) {
    if (d.done) continue
    d.done = true
    process.stderr.write(`# e2e emergency cleanup of the daemon on ${d.mount} (pid ${d.pid})\n`)
    try {
      detachSafely(d.blockFile, (m) => process.stderr.write(`#   ${m}\n`), d.find)
    } catch (err) {
      process.stderr.write(`#   ${(err as Error).message}\n#   LEAVING daemon pid ${d.pid} RUNNING (swap or mounts still use it)\n`)
      continue
    }
    try {
      process.kill(d.pid, 'SIGTERM')
    } catch {
      // gone
    }
    const deadline = Date.now() + 10_000
    while (processAlive(d.pid) && Date.now() < deadline) Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50)
    if (processAlive(d.pid)) {
      try {
        process.kill(d.pid, 'SIGKILL')
      } catch {
        // gone
      }
    }
    if (isMountPoint(d.mount)) forceUnmount(d.mount)
    const errors: string[] = []
    removeDirs(d, errors)
  }
  live.clear()
}

/**
 * One teardown per test for all of its daemons, newest first: tap skips the remaining teardowns
 * of a test once one throws, so a failure to stop one daemon must not leave the others running.
 */
const perTest = new WeakMap<Test, Live[]>()
function registerTeardown(test: Test, d: Live): void {
  let list = perTest.get(test)
  if (list === undefined) {
    const daemons: Live[] = []
    list = daemons
    perTest.set(test, daemons)
    test.teardown(async () => {
      const errors: string[] = []
      for (const one of [...daemons].reverse()) {
        try {
          await shutdown(one)
        } catch (err) {
          errors.push((err as Error).message)
        }
      }
      if (errors.length > 0) throw new Error(errors.join('\n\n'))
    })
  }
  list.push(d)
}

let handlersInstalled = false
function installEmergencyHandlers(): void {
  if (handlersInstalled) return
  handlersInstalled = true
  process.on('exit', emergencyCleanupSync)
  for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(sig, () => {
      emergencyCleanupSync()
      process.kill(process.pid, sig)
    })
  }
}

/**
 * Start `zramfuse start --mount <fresh dir> ...`, wait for its `ready` event, and register its
 * teardown on `opts.test` (default: the file's root test), which always runs.
 */
export async function startDaemon(opts: DaemonOptions = {}): Promise<Daemon> {
  const test = opts.test ?? t
  if (!existsSync(CLI)) throw new Error(`${CLI} is missing: run npm run build`)
  installEmergencyHandlers()
  const base = mkdtempSync('/tmp/zramfuse-e2e-')
  const mount = join(base, 'mnt')
  const logFile = join(base, 'daemon.log')
  mkdirSync(mount)
  const args = [CLI, 'start', '--mount', mount]
  const disksize = opts.disksize === undefined ? '512M' : opts.disksize
  if (disksize !== null) args.push('--disksize', disksize)
  if (opts.algorithm !== undefined) args.push('--algorithm', opts.algorithm)
  if (opts.memLimit !== undefined) args.push('--mem-limit', opts.memLimit)
  const transport = opts.uring === true ? 'native' : opts.transport ?? process.env.ZRAMFUSE_TEST_TRANSPORT
  if (transport !== undefined && transport !== '') args.push('--transport', transport)
  if (opts.uring === true) args.push('--fuse-uring', 'on')
  args.push(...(opts.extraArgs ?? []))
  const uringWas = opts.uring === true ? readFileSync(URING_PARAM, 'utf8').trim() : null
  if (uringWas !== null) writeFileSync(URING_PARAM, 'Y')
  try {
    return await spawnUntilReady(test, opts, args, base, mount, logFile)
  } finally {
    if (uringWas !== null) writeFileSync(URING_PARAM, uringWas)
  }
}

async function spawnUntilReady(test: Test, opts: DaemonOptions, args: string[], base: string, mount: string, logFile: string): Promise<Daemon> {

  const logFd = openSync(logFile, 'a')
  const child = spawn(process.execPath, args, { stdio: ['ignore', logFd, logFd], env: daemonEnv() })
  closeSync(logFd)
  if (child.pid === undefined) throw new Error(`could not start ${process.execPath} ${args.join(' ')}`)
  const d: Live = {
    mount,
    base,
    blockFile: join(mount, 'dev', 'zram0'),
    logFile,
    pid: child.pid,
    find: {},
    scratch: [],
    done: false,
    exitCode: null,
    exitSignal: null,
    exited: false,
  }
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.on('exit', (code, signal) => {
      d.exitCode = code
      d.exitSignal = signal
      d.exited = true
      resolve({ code, signal })
    })
  })
  // do not let a daemon keep this process alive: if a test gets stuck, the process can still
  // exit, and the exit handler cleans up
  child.unref()
  live.add(d)
  registerTeardown(test, d)

  // wait for {"event":"ready"}
  const timeoutMs = opts.readyTimeoutMs ?? 30_000
  const deadline = Date.now() + timeoutMs
  for (;;) {
    const text = readLog(d)
    if (hasEvent(text, 'ready')) {
      const dev = mountDeviceOf(mount)
      if (dev !== null) d.find = { mountDevice: dev }
      break
    }
    if (d.exited || Date.now() > deadline) {
      const why = d.exited
        ? `the daemon exited (code ${String(d.exitCode)}, signal ${String(d.exitSignal)}) before "ready"`
        : `no "ready" event within ${timeoutMs / 1000} s`
      const log = text
      try {
        await shutdown(d)
      } catch (err) {
        process.stderr.write(`# ${(err as Error).message}\n`)
      }
      throw new Error(`${why}: node ${args.join(' ')}\n--- daemon stderr ---\n${tail(log)}`)
    }
    await sleep(50)
  }

  return {
    mount,
    blockFile: d.blockFile,
    sys: join(mount, 'sys', 'block', 'zram0'),
    pid: d.pid,
    base,
    logFile,
    stop: () => shutdown(d),
    log: () => readLog(d),
    waitForEvent: (event, timeoutMs = 30_000) => waitForEvent(d, event, timeoutMs),
    exited: keptAliveUntil(exited, 60_000),
    scratch(name: string): string {
      const dir = join(base, name)
      mkdirSync(dir)
      d.scratch.push(dir)
      return dir
    },
    mmStat: () => parseMmStat(readFileSync(join(mount, 'sys', 'block', 'zram0', 'mm_stat'), 'utf8')),
  }
}
