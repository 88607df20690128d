/**
 * Long because every contact the harness has with the machine registers with the one Cleanup, whose
 * order of undoing is the point; each helper is short.
 *
 * The harness's contact with the machine: child processes, FUSE daemons, loop devices, the kernel's
 * zram, /proc. Everything it sets up is registered with the Cleanup, which undoes it in the only safe
 * order (stop I/O, losetup -d, stop daemons, fusermount -uz what is left, reset zram0) on success,
 * failure and signals alike.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { appendFileSync, closeSync, existsSync, openSync, readFileSync, readdirSync, rmSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { mountPoints, processAlive } from '../daemon/procfs'
import { cpuidleDriver, cpuidleHonoursQos } from './cpuidle'

export const BENCH_TMP = '/tmp/zramfuse-bench'
export const SHM_PREFIX = '/dev/shm/zramfuse-bench-'
export const KERNEL_ZRAM = '/sys/block/zram0'

const sleepSync = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}
export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

export function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return null
  }
}

export function cmdline(pid: number): string {
  return (readText(`/proc/${pid}/cmdline`) ?? '').split('\0').join(' ').trim()
}

/** rm -rf, unless something is still mounted under `dir` (never recurse into a live mount). */
export function safeRemove(dir: string, log: (m: string) => void): void {
  const under = mountPoints().filter((m) => m === dir || m.startsWith(dir + '/'))
  if (under.length > 0) {
    log(`not removing ${dir}: still mounted there: ${under.join(', ')}`)
    return
  }
  try {
    rmSync(dir, { recursive: true, force: true })
  } catch (err) {
    log(`could not remove ${dir}: ${String(err)}`)
  }
}

/** Loop devices whose backing file starts with `prefix`. */
export function loopsBackedBy(prefix: string): string[] {
  const out: string[] = []
  for (const name of readdirSync('/sys/block').filter((n) => n.startsWith('loop'))) {
    const bf = readText(`/sys/block/${name}/loop/backing_file`)
    if (bf !== null && bf.trim().replace(/ \(deleted\)$/, '').startsWith(prefix)) out.push(`/dev/${name}`)
  }
  return out
}

export interface CmdResult {
  code: number | null
  signal: string | null
  stdout: string
  stderr: string
  wallS: number
}

export interface DaemonProc {
  kind: 'ceiling' | 'ceiling-c' | 'zramfuse'
  pid: number
  mount: string
  child: ChildProcess
  logPath: string
  exited: Promise<void>
  /** the fields of its "ready" log line */
  ready: Record<string, unknown>
}

/** Everything that must be undone, and the synchronous undoing of it (safe in signal handlers). */
export class Cleanup {
  readonly children = new Set<ChildProcess>()
  readonly loops = new Set<string>()
  readonly daemons = new Map<number, DaemonProc>()
  kernelZramTouched = false
  private readonly dirs: string[] = []
  private done = false

  /**
   * @param workDir where every child the harness starts runs (its cwd): fio writes verify state
   *   files (`<job>-<n>-verify.state`) into its cwd, and they must land in the run's scratch space
   */
  constructor(private readonly log: (msg: string) => void, readonly workDir: string) {}

  removeDirAtEnd(dir: string): void {
    this.dirs.push(dir)
  }

  /** Idempotent; never throws. */
  runSync(): void {
    if (this.done) return
    this.done = true
    // 1. stop I/O: fio and dd first, so nothing holds the loop devices or zram0 open
    for (const c of this.children) {
      try {
        c.kill('SIGKILL')
      } catch {
        // already gone
      }
    }
    for (const c of this.children) {
      const pid = c.pid
      for (let i = 0; pid !== undefined && processAlive(pid) && i < 100; i++) sleepSync(50)
    }
    // 2. losetup -d: before any daemon stops, or its shutdown would find them attached
    for (const loop of this.loops) {
      detachLoopSync(loop, this.log)
    }
    this.loops.clear()
    // 3. SIGTERM the daemons, wait for them to unmount
    for (const d of this.daemons.values()) {
      try {
        process.kill(d.pid, 'SIGTERM')
      } catch {
        // already gone
      }
    }
    for (const d of this.daemons.values()) {
      for (let i = 0; processAlive(d.pid) && i < 200; i++) sleepSync(50)
      if (processAlive(d.pid)) {
        this.log(`cleanup: ${d.kind} daemon ${d.pid} did not stop in 10 s: SIGKILL`)
        try {
          process.kill(d.pid, 'SIGKILL')
        } catch {
          // gone meanwhile
        }
      }
    }
    // 4. lazy-unmount whatever is still mounted
    const mounts = new Set(mountPoints())
    for (const d of this.daemons.values()) {
      if (mounts.has(d.mount)) {
        this.log(`cleanup: fusermount -uz ${d.mount}`)
        try {
          execFileSync('fusermount', ['-uz', d.mount], { stdio: 'ignore', timeout: 10_000 })
        } catch {
          // nothing more to do
        }
      }
    }
    this.daemons.clear()
    // 5. the kernel's zram back to uninitialised
    if (this.kernelZramTouched) {
      if (!kernelZramResetSync()) this.log('cleanup: could not reset /sys/block/zram0 (still busy?)')
      this.kernelZramTouched = false
    }
    for (const dir of this.dirs) safeRemove(dir, this.log)
  }
}

/** Run a program to completion, output collected; registered so a signal kills it. Never throws. */
export function run(cleanup: Cleanup, file: string, args: string[], timeoutMs = 300_000): Promise<CmdResult> {
  const t0 = process.hrtime.bigint()
  return new Promise((resolve) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], cwd: cleanup.workDir })
    cleanup.children.add(child)
    const out: Buffer[] = []
    const err: Buffer[] = []
    child.stdout.on('data', (b: Buffer) => out.push(b))
    child.stderr.on('data', (b: Buffer) => err.push(b))
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
    const finish = (code: number | null, signal: string | null, extra = ''): void => {
      clearTimeout(timer)
      cleanup.children.delete(child)
      resolve({
        code, signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8') + extra,
        wallS: Number(process.hrtime.bigint() - t0) / 1e9,
      })
    }
    child.on('error', (e) => finish(127, null, e.message))
    child.on('close', (code, signal) => finish(code, signal))
  })
}

export async function must(cleanup: Cleanup, file: string, args: string[], timeoutMs?: number): Promise<CmdResult> {
  const r = await run(cleanup, file, args, timeoutMs)
  if (r.code !== 0) {
    throw new Error(`${file} ${args.join(' ')}: exit ${String(r.code)}${r.signal ? ` (${r.signal})` : ''}: ${(r.stderr || r.stdout).trim().slice(0, 600)}`)
  }
  return r
}

/**
 * Start a daemon (zramfuse or the ceiling) in its own process group, so a Ctrl-C on the terminal
 * reaches only us and we stop things in order. Its stderr goes to a file, never to a pipe we could
 * fail to drain. Resolves once it logs "event":"ready". `cpus`: a taskset CPU list the daemon starts on
 * (every thread it creates inherits it; taskset execs node, so the pid is the daemon's).
 */
export async function startDaemon(cleanup: Cleanup, kind: 'ceiling' | 'zramfuse', script: string, args: string[], mount: string, logPath: string, pidsFile: string,
  cpus: string | null = null): Promise<DaemonProc> {
  return startProgram(cleanup, kind, process.execPath, [script, ...args], mount, logPath, pidsFile, cpus)
}

/**
 * startDaemon for any executable (the C ceiling): the same process group, log, ready line, pinning
 * (taskset execs it, so the pid is the program's) and cleanup.
 */
export async function startProgram(cleanup: Cleanup, kind: DaemonProc['kind'], program: string, args: string[], mount: string, logPath: string, pidsFile: string,
  cpus: string | null = null): Promise<DaemonProc> {
  const fd = openSync(logPath, 'a')
  let child: ChildProcess
  try {
    const [file, argv] = cpus === null ? [program, args] : ['taskset', ['-c', cpus, program, ...args]]
    child = spawn(file, argv, { detached: true, stdio: ['ignore', 'ignore', fd], cwd: cleanup.workDir })
  } finally {
    closeSync(fd)
  }
  const pid = child.pid
  if (pid === undefined) throw new Error(`could not start ${kind}: no pid`)
  const exited = new Promise<void>((res) => child.once('exit', () => res()))
  let exitCode: number | null | undefined
  child.once('exit', (code) => {
    exitCode = code
  })
  const d: DaemonProc = { kind, pid, mount, child, logPath, exited, ready: {} }
  cleanup.daemons.set(pid, d)
  appendFileSync(pidsFile, `${pid} ${mount}\n`)
  const deadline = Date.now() + 30_000
  for (;;) {
    const log = readText(logPath) ?? ''
    const line = log.split('\n').find((l) => /"event":"ready"/.test(l))
    if (line !== undefined) {
      try {
        const parsed: unknown = JSON.parse(line)
        if (typeof parsed === 'object' && parsed !== null) d.ready = parsed as Record<string, unknown>
      } catch {
        // a ready line that is not JSON: mounted all the same
      }
      return d
    }
    if (exitCode !== undefined) throw new Error(`${kind} exited (${String(exitCode)}) before ready: ${log.trim().split('\n').slice(-5).join(' | ')}`)
    if (Date.now() > deadline) throw new Error(`${kind} not ready after 30 s: ${log.trim().split('\n').slice(-5).join(' | ')}`)
    await sleep(50)
  }
}

/** SIGTERM and wait; SIGKILL + fusermount -uz if it does not go. Loop devices must be detached first. */
export async function stopDaemon(cleanup: Cleanup, d: DaemonProc, log: (m: string) => void): Promise<void> {
  try {
    process.kill(d.pid, 'SIGTERM')
  } catch {
    // already gone
  }
  const timeout = sleep(15_000).then(() => 'timeout' as const)
  const r = await Promise.race([d.exited.then(() => 'exited' as const), timeout])
  if (r === 'timeout') {
    log(`${d.kind} ${d.pid} did not stop in 15 s: SIGKILL`)
    try {
      process.kill(d.pid, 'SIGKILL')
    } catch {
      // gone
    }
  }
  if (mountPoints().includes(d.mount)) {
    try {
      execFileSync('fusermount', ['-uz', d.mount], { stdio: 'ignore', timeout: 10_000 })
    } catch {
      // nothing more to do
    }
  }
  cleanup.daemons.delete(d.pid)
}

/** losetup --direct-io=on; returns the device and whether direct I/O is really on. */
export async function attachLoop(cleanup: Cleanup, file: string): Promise<{ dev: string; dio: boolean }> {
  const r = await must(cleanup, 'losetup', ['--direct-io=on', '--find', '--show', file], 30_000)
  const dev = r.stdout.trim()
  cleanup.loops.add(dev)
  const dio = (readText(`/sys/block/${dev.replace('/dev/', '')}/loop/dio`) ?? '0').trim() === '1'
  return { dev, dio }
}

export function detachLoopSync(dev: string, log: (m: string) => void): void {
  try {
    execFileSync('losetup', ['-d', dev], { stdio: 'ignore', timeout: 30_000 })
  } catch (err) {
    log(`losetup -d ${dev} failed: ${String(err)}`)
  }
  // the kernel detaches asynchronously: wait for the backing file to go
  const name = dev.replace('/dev/', '')
  for (let i = 0; i < 100 && readText(`/sys/block/${name}/loop/backing_file`) !== null; i++) sleepSync(50)
}

export function detachLoop(cleanup: Cleanup, dev: string, log: (m: string) => void): void {
  detachLoopSync(dev, log)
  cleanup.loops.delete(dev)
}

// --- the kernel's zram -------------------------------------------------------------------------

export interface KernelZramCheck {
  ok: boolean
  reason: string
  /** set when we found it initialised but unused and reset it */
  resetNote: string | null
}

/** Can we use /sys/block/zram0 with lz4? Never touches it while it is swap, mounted or held. */
export function checkKernelZram(): KernelZramCheck {
  const no = (reason: string): KernelZramCheck => ({ ok: false, reason, resetNote: null })
  if (!existsSync(KERNEL_ZRAM)) return no('no kernel zram on this machine (/sys/block/zram0 absent; modprobe zram to get it): kernel column skipped')
  if (!existsSync('/dev/zram0')) return no('/sys/block/zram0 exists but /dev/zram0 does not: kernel column skipped')
  const algs = readText(`${KERNEL_ZRAM}/comp_algorithm`) ?? ''
  if (!/(^|[\s[])lz4([\s\]]|$)/.test(algs)) return no(`the kernel zram has no lz4 (comp_algorithm: ${algs.trim()}): kernel column skipped`)
  if ((readText('/proc/swaps') ?? '').split('\n').some((l) => l.startsWith('/dev/zram0 '))) return no('/dev/zram0 is in use as swap: left alone, kernel column skipped')
  if ((readText('/proc/self/mounts') ?? '').split('\n').some((l) => l.startsWith('/dev/zram0 '))) return no('/dev/zram0 is mounted: left alone, kernel column skipped')
  let holders: string[] = []
  try {
    holders = readdirSync(`${KERNEL_ZRAM}/holders`)
  } catch {
    // no holders directory
  }
  if (holders.length > 0) return no(`/dev/zram0 is held by ${holders.join(', ')}: left alone, kernel column skipped`)
  const disksize = Number((readText(`${KERNEL_ZRAM}/disksize`) ?? '0').trim())
  let resetNote: string | null = null
  if (disksize !== 0) {
    if (!kernelZramResetSync()) return no('/dev/zram0 is initialised and cannot be reset (open?): kernel column skipped')
    resetNote = `/dev/zram0 was initialised (disksize ${disksize}) but unused (no swap, mount or holder): reset it before starting`
  }
  return { ok: true, reason: '', resetNote }
}

export function kernelZramResetSync(): boolean {
  for (let i = 0; i < 40; i++) {
    try {
      execFileSync('sh', ['-c', `echo 1 > ${KERNEL_ZRAM}/reset`], { stdio: 'ignore', timeout: 10_000 })
      if ((readText(`${KERNEL_ZRAM}/disksize`) ?? '').trim() === '0') return true
    } catch {
      // EBUSY while something still has it open: retry
    }
    sleepSync(250)
  }
  return false
}

/** Reset, select the algorithm, set disksize (the order the kernel demands). */
export function kernelZramInit(cleanup: Cleanup, algorithm: string, disksize: number): void {
  cleanup.kernelZramTouched = true
  if (!kernelZramResetSync()) throw new Error('cannot reset /sys/block/zram0')
  execFileSync('sh', ['-c', `echo ${algorithm} > ${KERNEL_ZRAM}/comp_algorithm && echo ${disksize} > ${KERNEL_ZRAM}/disksize`], { stdio: 'pipe', timeout: 10_000 })
}

export function kernelZramReset(cleanup: Cleanup): void {
  if (!kernelZramResetSync()) throw new Error('cannot reset /sys/block/zram0')
  cleanup.kernelZramTouched = false
}

// --- /proc ---------------------------------------------------------------------------------------

let clkTckCache: number | null = null
/**
 * --awake: a PM QoS request for 0 us CPU wake-up latency (/dev/cpu_dma_latency), held while the
 * returned file is open (the kernel drops it on close, so also when the process dies). The guest's
 * cpuidle then polls instead of halting: on this VM a halted vCPU is slow to come back, which every
 * target pays per request at QD1 and a polling kcompressd worker spares its own CPU.
 */
export function holdNoHalt(): number {
  const driver = cpuidleDriver(readText)
  if (!cpuidleHonoursQos(driver)) {
    throw new Error(`--awake cannot keep CPUs from halting here: the cpuidle driver is ${JSON.stringify(driver)} ` +
      '(/sys/devices/system/cpu/cpuidle/current_driver), so idle CPUs halt whatever PM QoS asks; run without --awake')
  }
  const fd = openSync('/dev/cpu_dma_latency', 'w')
  writeSync(fd, new Uint8Array(new Int32Array([0]).buffer))
  return fd
}

export function clkTck(): number {
  if (clkTckCache === null) {
    try {
      clkTckCache = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100
    } catch {
      clkTckCache = 100
    }
  }
  return clkTckCache
}

/** utime + stime of a process (or of its thread `tid`), in clock ticks; null when it is gone. */
export function cpuTicks(pid: number, tid?: number): number | null {
  const stat = readText(tid === undefined ? `/proc/${pid}/stat` : `/proc/${pid}/task/${tid}/stat`)
  if (stat === null) return null
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  // after the comm: state is field 3, utime 14, stime 15 (1-based) -> indexes 11, 12 here
  return Number(fields[11]) + Number(fields[12])
}

export function vmRssBytes(pid: number): number | null {
  const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(readText(`/proc/${pid}/status`) ?? '')
  return m ? Number(m[1]) * 1024 : null
}

export interface CpuSnapshot {
  atMs: number
  /** busy ticks of the whole machine (/proc/stat: user nice system irq softirq steal) */
  machineBusy: number
  /** ticks of this process, its reaped children (fio, dd) and the daemons given */
  own: number
  /** ticks per live process */
  procs: Map<number, number>
}

function procTicksWithChildren(pid: number): number {
  const stat = readText(`/proc/${pid}/stat`)
  if (stat === null) return 0
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])
}

export function cpuSnapshot(daemonPids: readonly number[]): CpuSnapshot {
  const line = (readText('/proc/stat') ?? '').split('\n')[0] ?? ''
  const v = line.trim().split(/\s+/).slice(1).map(Number)
  const machineBusy = (v[0] ?? 0) + (v[1] ?? 0) + (v[2] ?? 0) + (v[5] ?? 0) + (v[6] ?? 0) + (v[7] ?? 0)
  let own = procTicksWithChildren(process.pid)
  for (const p of daemonPids) own += cpuTicks(p) ?? 0
  const procs = new Map<number, number>()
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue
    const t = cpuTicks(Number(name))
    if (t !== null) procs.set(Number(name), t)
  }
  return { atMs: Date.now(), machineBusy, own, procs }
}

export interface Background {
  wallS: number
  /** CPU used by everything but the bench, its fio/dd and its daemons, percent of one CPU */
  othersPct: number
  /** the biggest of those, "pid name NN%" */
  top: string[]
}

/** What else ran between two snapshots (kernel threads included: loop workers show up here). */
export function backgroundBetween(a: CpuSnapshot, b: CpuSnapshot, exclude: ReadonlySet<number>): Background {
  const wallS = Math.max(0.001, (b.atMs - a.atMs) / 1000)
  const hz = clkTck()
  const othersPct = Math.max(0, ((b.machineBusy - a.machineBusy) - (b.own - a.own)) / hz / wallS * 100)
  const top: { pid: number; pct: number }[] = []
  for (const [pid, t1] of b.procs) {
    if (exclude.has(pid) || pid === process.pid) continue
    const t0 = a.procs.get(pid)
    if (t0 === undefined) continue
    const pct = (t1 - t0) / hz / wallS * 100
    if (pct >= 2) top.push({ pid, pct })
  }
  return {
    wallS, othersPct,
    top: top.sort((x, y) => y.pct - x.pct).slice(0, 5).map(({ pid, pct }) => {
      const cmd = cmdline(pid) || `[${(readText(`/proc/${pid}/comm`) ?? '?').trim()}]`
      return `${pid} ${cmd.slice(0, 80)} ${pct.toFixed(0)}%`
    }),
  }
}

/** Processes (not ours) that used more than `minPct` of a CPU over `ms`, "pid name NN%". */
export async function busyProcesses(ms: number, minPct: number, exclude: ReadonlySet<number>): Promise<string[]> {
  const sample = (): Map<number, number> => {
    const m = new Map<number, number>()
    for (const name of readdirSync('/proc')) {
      if (!/^\d+$/.test(name)) continue
      const t = cpuTicks(Number(name))
      if (t !== null) m.set(Number(name), t)
    }
    return m
  }
  const a = sample()
  await sleep(ms)
  const b = sample()
  const out: { pid: number; pct: number }[] = []
  for (const [pid, t1] of b) {
    if (exclude.has(pid)) continue
    const t0 = a.get(pid)
    if (t0 === undefined) continue
    const pct = ((t1 - t0) / clkTck()) / (ms / 1000) * 100
    if (pct >= minPct) out.push({ pid, pct })
  }
  return out.sort((x, y) => y.pct - x.pct).map(({ pid, pct }) => {
    const cmd = cmdline(pid) || (readText(`/proc/${pid}/comm`) ?? '?').trim()
    return `${pid} ${cmd.slice(0, 80)} ${pct.toFixed(0)}%`
  })
}

/**
 * Undo what a killed earlier bench run left behind: its work dir is BENCH_TMP/<pid>; when that pid
 * is gone, detach loops backed by files under it, stop the daemons it recorded, lazy-unmount, and
 * remove it. Other people's mounts are never touched.
 */
export function cleanStale(log: (m: string) => void): string[] {
  const notes: string[] = []
  let entries: string[] = []
  try {
    entries = readdirSync(BENCH_TMP)
  } catch {
    return notes
  }
  for (const name of entries) {
    if (!/^\d+$/.test(name)) continue
    const owner = Number(name)
    if (owner === process.pid) continue
    if (processAlive(owner) && /bench\/\w+\.js/.test(cmdline(owner))) continue
    const dir = join(BENCH_TMP, name)
    for (const loop of loopsBackedBy(dir + '/')) detachLoopSync(loop, log)
    const pids = (readText(join(dir, 'pids')) ?? '').split('\n').map((l) => l.split(' ')).filter((p) => p.length === 2)
    for (const [p, mount] of pids) {
      const pid = Number(p)
      if (mount !== undefined && processAlive(pid) && cmdline(pid).includes(mount)) {
        try {
          process.kill(pid, 'SIGTERM')
        } catch {
          // gone
        }
        for (let i = 0; processAlive(pid) && i < 100; i++) sleepSync(50)
      }
    }
    for (const m of mountPoints().filter((mp) => mp.startsWith(dir + '/'))) {
      try {
        execFileSync('fusermount', ['-uz', m], { stdio: 'ignore', timeout: 10_000 })
      } catch {
        // leave it
      }
    }
    safeRemove(dir, log)
    safeRemove(SHM_PREFIX + name, log)
    notes.push(`cleaned up after an earlier bench run (pid ${owner}) that did not finish: ${dir}`)
  }
  return notes
}
