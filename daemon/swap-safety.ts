/**
 * Swap safety under host-wide memory pressure. The daemon serves swap: if its own pages were
 * reclaimed, or its allocations entered direct reclaim that waits on swap-out, it would wait on the
 * very I/O it must serve. Two kernel tools, applied at start:
 *
 * - mlockall(MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT): no page of the daemon (pool, page table, heap,
 *   code) is ever swapped out or reclaimed. ONFAULT: pages are locked as they are touched, so V8's
 *   large address-space reservations (heap cages, code range, thread stacks) are not populated
 *   up front and RSS does not jump.
 * - prctl(PR_SET_IO_FLUSHER) (Linux 5.6, CAP_SYS_RESOURCE; the man page names FUSE daemons): the
 *   thread's allocations are GFP_NOIO and it is not throttled as a dirtier. It is per thread and
 *   inherited by threads started later, so it is applied before the FUSE thread and the kcompressd
 *   workers exist; threads Node started before (V8 platform, libuv) do not carry it.
 *
 * V8 aborts when madvise(MADV_DONTNEED) fails, and the kernel refuses it on locked memory: under
 * mlockall the first GC that gives a page back kills the process. So before locking, the daemon
 * re-executes itself (same pid) with native/memlock's madvise-locked.so preloaded, which retries
 * such a call as MADV_DONTNEED_LOCKED (Linux 5.18).
 *
 * IO_FLUSHER needs CAP_SYS_RESOURCE. Where no process can ever hold it (it is not in the capability
 * bounding set: a default Docker container, some CI sandboxes) its absence is a warning and does not
 * stop the daemon; anywhere else a failure does, as does a failure of mlockall (swapSafetyVerdict).
 *
 * The memory cgroup guard (cgroup.ts) stays as a second line.
 */
import { READY_FD_ENV } from './background'
import { readFileSync, readdirSync } from 'node:fs'
import { errnoName, type MemlockAddon } from './memlock'

/** CAP_IPC_LOCK (include/uapi/linux/capability.h): mlock beyond RLIMIT_MEMLOCK */
export const CAP_IPC_LOCK = 14
/** CAP_SYS_RESOURCE: needed by PR_SET_IO_FLUSHER */
export const CAP_SYS_RESOURCE = 24

export interface ProcessMemory {
  vmRssBytes: number
  vmLckBytes: number
}

/** VmRSS and VmLck of /proc/<pid>/status; null when unreadable. */
export function readProcessMemory(pid: number | 'self' = 'self'): ProcessMemory | null {
  let text: string
  try {
    text = readFileSync(`/proc/${pid}/status`, 'utf8')
  } catch {
    return null
  }
  const kb = (field: string): number | null => {
    const m = new RegExp(`^${field}:\\s+(\\d+)\\s+kB`, 'm').exec(text)
    return m ? Number(m[1]) * 1024 : null
  }
  const rss = kb('VmRSS')
  const lck = kb('VmLck')
  return rss === null || lck === null ? null : { vmRssBytes: rss, vmLckBytes: lck }
}

/** A capability set from a /proc/<pid>/status text: 'CapEff' (effective) or 'CapBnd' (bounding), hex. */
export function parseCapSet(statusText: string, field: 'CapEff' | 'CapBnd'): bigint | null {
  const m = new RegExp(`^${field}:\\s+([0-9a-fA-F]+)$`, 'm').exec(statusText)
  return m ? BigInt(`0x${m[1]}`) : null
}

export function hasCapability(capEff: bigint | null, cap: number): boolean {
  return capEff !== null && (capEff & (1n << BigInt(cap))) !== 0n
}

export interface Rlimit {
  /** bytes, or null for unlimited */
  soft: number | null
  hard: number | null
}

/** "Max locked memory" of a /proc/<pid>/limits text; null when the line is absent. */
export function parseMemlockLimit(limitsText: string): Rlimit | null {
  const m = /^Max locked memory\s+(\S+)\s+(\S+)\s+bytes/m.exec(limitsText)
  if (!m) return null
  const v = (s: string): number | null => (s === 'unlimited' ? null : Number(s))
  return { soft: v(m[1]!), hard: v(m[2]!) }
}

export interface MlockResult {
  ok: boolean
  flags: string
  /** errno name when it failed, or why it was not tried */
  error: string | null
  rlimitMemlock: string
  capIpcLock: boolean
  before: ProcessMemory | null
  after: ProcessMemory | null
}

export interface IoFlusherResult {
  ok: boolean
  /** PR_GET_IO_FLUSHER after setting (1 = set), or null when the getter failed */
  value: number | null
  error: string | null
  capSysResource: boolean
  /** false where CAP_SYS_RESOURCE is not even in the bounding set: a failure then does not stop the daemon */
  required: boolean
  /** threads that existed when it was set and do not carry it (started by Node before us) */
  earlierThreads: number
}

export interface SwapSafetyReport {
  ok: boolean
  mlockall: MlockResult
  ioFlusher: IoFlusherResult
}

export interface SwapSafetyInputs {
  addon: MemlockAddon
  /** /proc/self/status text */
  status: string
  /** /proc/self/limits text */
  limits: string
  /** threads of this process when the call is made (ours included) */
  threads: number
}

function readInputs(addon: MemlockAddon): SwapSafetyInputs {
  const read = (p: string): string => {
    try {
      return readFileSync(p, 'utf8')
    } catch {
      return ''
    }
  }
  let threads = 1
  try {
    threads = readdirSync('/proc/self/task').length
  } catch {
    // keep 1
  }
  return { addon, status: read('/proc/self/status'), limits: read('/proc/self/limits'), threads }
}

function fmtLimit(l: Rlimit | null): string {
  if (l === null) return 'unknown'
  return l.soft === null ? 'unlimited' : `${l.soft} bytes`
}

/**
 * Apply both. mlockall is refused up front when the locked memory could hit RLIMIT_MEMLOCK (no
 * CAP_IPC_LOCK and a finite limit): with MCL_FUTURE, the pool's next allocation would then fail
 * instead of the start. Never throws; `ok` is false when either could not be applied.
 */
export function applySwapSafety(addon: MemlockAddon, inputs: SwapSafetyInputs = readInputs(addon)): SwapSafetyReport {
  const capEff = parseCapSet(inputs.status, 'CapEff')
  const limit = parseMemlockLimit(inputs.limits)
  const capIpcLock = hasCapability(capEff, CAP_IPC_LOCK)
  const capSysResource = hasCapability(capEff, CAP_SYS_RESOURCE)
  const capBnd = parseCapSet(inputs.status, 'CapBnd')
  const required = capBnd === null || hasCapability(capBnd, CAP_SYS_RESOURCE)

  const io: IoFlusherResult = {
    ok: false, value: null, error: null, capSysResource, required, earlierThreads: Math.max(0, inputs.threads - 1),
  }
  const set = addon.setIoFlusher(true)
  const got = addon.getIoFlusher()
  io.value = got >= 0 ? got : null
  const hint = set === 22 ? ' (kernel older than 5.6?)'
    : set === 1 ? (required ? ' (needs CAP_SYS_RESOURCE)' : ' (CAP_SYS_RESOURCE is not in the capability bounding set: not available here)') : ''
  if (set !== 0) io.error = `prctl(PR_SET_IO_FLUSHER): ${errnoName(set)}${hint}`
  else if (got !== 1) io.error = `PR_GET_IO_FLUSHER answers ${got < 0 ? errnoName(got) : String(got)} after setting it`
  io.ok = io.error === null

  const flags = addon.MCL_CURRENT | addon.MCL_FUTURE | addon.MCL_ONFAULT
  const ml: MlockResult = {
    ok: false, flags: 'MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT', error: null, rlimitMemlock: fmtLimit(limit), capIpcLock,
    before: readProcessMemory(), after: null,
  }
  if (!capIpcLock && (limit === null || limit.soft !== null)) {
    ml.error = `no CAP_IPC_LOCK and RLIMIT_MEMLOCK is ${fmtLimit(limit)}: the pool would hit the limit; ` +
      'run as root, or raise it (ulimit -l unlimited, systemd LimitMEMLOCK=infinity)'
  } else {
    const r = addon.mlockall(flags)
    if (r !== 0) ml.error = `mlockall(MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT): ${errnoName(r)}${r === 22 ? ' (MCL_ONFAULT needs Linux 4.4)' : ''}`
  }
  ml.after = readProcessMemory()
  ml.ok = ml.error === null
  return { ok: ml.ok && (io.ok || !io.required), mlockall: ml, ioFlusher: io }
}

/** How the start reports a swap-safety report: the log level, and whether the daemon may go on. */
export interface SwapSafetyVerdict {
  level: 'info' | 'warn' | 'error'
  /** false: the start fails (exit 1) unless run with --no-mlock */
  start: boolean
  message: string
}

/**
 * Error, and no start, when mlockall failed or IO_FLUSHER could be had and was not: a swap device
 * whose daemon can be reclaimed hangs the machine under pressure. Only a warning when the memory is
 * locked and IO_FLUSHER cannot be had on this machine at all (CAP_SYS_RESOURCE outside the bounding
 * set: a default container): nothing the admin of the daemon can fix, and the start succeeded.
 */
export function swapSafetyVerdict(report: SwapSafetyReport): SwapSafetyVerdict {
  if (!report.ok) {
    const why = [report.mlockall.error, report.ioFlusher.error].filter((e) => e !== null).join('; ')
    return { level: 'error', start: false, message: why }
  }
  if (!report.ioFlusher.ok) {
    return { level: 'warn', start: true,
      message: `memory locked; IO_FLUSHER not set: ${report.ioFlusher.error ?? ''}: under memory pressure the daemon's allocations may wait on swap-out` }
  }
  return { level: 'info', start: true, message: 'memory locked, IO_FLUSHER set' }
}

/** Set in the environment of the re-executed daemon; removed again once it runs. */
const REEXEC_MARK = 'ZRAMFUSE_MADVISE_SHIM'
const PRELOAD_BEFORE = 'ZRAMFUSE_LD_PRELOAD_BEFORE'

/** Is the shared object `path` mapped into this process (i.e. preloaded)? */
export function isMapped(path: string, maps = readFileSync('/proc/self/maps', 'utf8')): boolean {
  return maps.split('\n').some((l) => l.endsWith(` ${path}`))
}

/**
 * Make sure the madvise shim is loaded before memory is locked. When it is, restore LD_PRELOAD so
 * that children (fusermount, losetup) do not inherit it, and return null. When it is not,
 * re-execute this process with it preloaded (never returns on success); returns why it cannot.
 */
export function ensureMadviseShim(addon: MemlockAddon, shim: string): string | null {
  if (isMapped(shim)) {
    if (process.env[REEXEC_MARK] !== undefined) {
      const before = process.env[PRELOAD_BEFORE]
      if (before) process.env.LD_PRELOAD = before
      else delete process.env.LD_PRELOAD
      delete process.env[REEXEC_MARK]
      delete process.env[PRELOAD_BEFORE]
    }
    return null
  }
  if (process.env[REEXEC_MARK] !== undefined) return `re-executed with LD_PRELOAD=${shim}, but it is not loaded (secure-execution mode?)`
  const probe = addon.probeDontneedLocked()
  if (probe !== 0) {
    return `this kernel cannot drop locked pages (madvise MADV_DONTNEED_LOCKED, Linux 5.18): ${errnoName(probe)}; ` +
      'V8 would abort at its first page release under mlockall'
  }
  const before = process.env.LD_PRELOAD ?? ''
  const env: Record<string, string> = {}
  for (const [k, v] of Object.entries(process.env)) if (v !== undefined) env[k] = v
  env.LD_PRELOAD = before === '' ? shim : `${shim}:${before}`
  env[REEXEC_MARK] = '1'
  env[PRELOAD_BEFORE] = before
  // A `start --background` parent waits on the readiness pipe it names: the new image keeps it.
  const readyFd = Number(process.env[READY_FD_ENV])
  const keepFds = Number.isInteger(readyFd) && readyFd > 2 ? [readyFd] : []
  const err = addon.execve(process.execPath, [process.execPath, ...process.execArgv, ...process.argv.slice(1)],
    Object.entries(env).map(([k, v]) => `${k}=${v}`), keepFds)
  return `execve(${process.execPath}) with the madvise shim: ${errnoName(err)}`
}
