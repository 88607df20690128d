// Small helpers shared by the end-to-end tests: running commands, reading kernel tables.
import { execFile } from 'node:child_process'
import { accessSync, constants, existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { DeviceStats } from '../../src/device/zram-device'

export const REPO = join(__dirname, '..', '..')

export interface RunResult {
  code: number | null
  signal: NodeJS.Signals | null
  stdout: string
  stderr: string
}

/** Run a program, never throw; output is collected (up to 64 MiB each). */
export function run(file: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv; input?: string; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = execFile(
      file,
      args,
      { timeout: opts.timeoutMs ?? 300_000, maxBuffer: 64 << 20, env: opts.env ?? process.env, killSignal: 'SIGKILL', cwd: opts.cwd },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: NodeJS.Signals | null }) | null
        let code: number | null = 0
        if (e !== null) code = typeof e.code === 'number' ? e.code : null
        if (e !== null && code === null && e.signal == null) {
          // spawn failure (ENOENT etc.): report it as stderr
          resolve({ code: 127, signal: null, stdout: String(stdout), stderr: `${String(stderr)}${e.message}` })
          return
        }
        resolve({ code, signal: e?.signal ?? null, stdout: String(stdout), stderr: String(stderr) })
      },
    )
    if (opts.input !== undefined) child.stdin?.end(opts.input)
    else child.stdin?.end()
  })
}

/** Run a program and throw (with its stderr) unless it exits 0; returns stdout. */
export async function must(file: string, args: string[], opts: { timeoutMs?: number; env?: NodeJS.ProcessEnv } = {}): Promise<string> {
  const r = await run(file, args, opts)
  if (r.code !== 0) {
    throw new Error(`${file} ${args.join(' ')} failed (code ${String(r.code)}, signal ${String(r.signal)}): ${r.stderr.trim() || r.stdout.trim()}`)
  }
  return r.stdout
}

/**
 * Run fio in a fresh temporary directory, removed afterwards: fio writes verify state files
 * (`<job>-<n>-verify.state`) into its working directory, which must never be the repository.
 */
export async function runFio(args: string[], opts: { timeoutMs?: number } = {}): Promise<RunResult> {
  const cwd = mkdtempSync(join(tmpdir(), 'zramfuse-fio-'))
  try {
    return await run('fio', args, { ...opts, cwd })
  } finally {
    rmSync(cwd, { recursive: true, force: true })
  }
}

/** Where a program is, looking in PATH and the sbin directories; null if absent. */
export function which(tool: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin']
  for (const d of dirs) {
    if (d === '') continue
    const p = join(d, tool)
    try {
      accessSync(p, constants.X_OK)
      return p
    } catch {
      // keep looking
    }
  }
  return null
}

export function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return null
  }
}

/** mm_stat, by name: the device's own field names (see the kernel's zram documentation). */
export type MmStat = Pick<DeviceStats, 'origDataSize' | 'comprDataSize' | 'memUsedTotal' | 'memLimit' |
  'memUsedMax' | 'samePages' | 'pagesCompacted' | 'hugePages' | 'hugePagesSince'>

export function parseMmStat(text: string): MmStat {
  const f = text.trim().split(/\s+/).map(Number)
  if (f.length < 9 || f.some((n) => !Number.isFinite(n))) throw new Error(`unexpected mm_stat: ${JSON.stringify(text)}`)
  const at = (i: number): number => f[i] ?? NaN
  return {
    origDataSize: at(0),
    comprDataSize: at(1),
    memUsedTotal: at(2),
    memLimit: at(3),
    memUsedMax: at(4),
    samePages: at(5),
    pagesCompacted: at(6),
    hugePages: at(7),
    hugePagesSince: at(8),
  }
}

/** Used KiB of one swap area in /proc/swaps, or null when it is not active. */
export function swapUsedKiB(dev: string): number | null {
  const text = readText('/proc/swaps') ?? ''
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f[0] === dev) return Number(f[3])
  }
  return null
}

/** True when something is mounted exactly at `dir` (per /proc/self/mountinfo). */
export function isMountPoint(dir: string): boolean {
  const text = readText('/proc/self/mountinfo') ?? ''
  return text.split('\n').some((l) => l.split(' ')[4]?.replace(/\\040/g, ' ') === dir)
}

/** Mount points at or below `dir`. */
export function mountsUnder(dir: string): string[] {
  const text = readText('/proc/self/mountinfo') ?? ''
  const out: string[] = []
  for (const l of text.split('\n')) {
    const mp = l.split(' ')[4]?.replace(/\\040/g, ' ')
    if (mp !== undefined && (mp === dir || mp.startsWith(`${dir}/`))) out.push(mp)
  }
  return out
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

/** Which cgroup layout the machine has, for tests that make memory cgroups. */
export type CgroupLayout = { kind: 'v2'; root: string } | { kind: 'v1'; memoryRoot: string } | { kind: 'none' }

export function cgroupLayout(): CgroupLayout {
  if (existsSync('/sys/fs/cgroup/cgroup.controllers')) return { kind: 'v2', root: '/sys/fs/cgroup' }
  if (existsSync('/sys/fs/cgroup/memory/cgroup.procs')) return { kind: 'v1', memoryRoot: '/sys/fs/cgroup/memory' }
  return { kind: 'none' }
}

/** The memory cgroup directory of a process (v1: the memory hierarchy; v2: the unified one). */
export function memoryCgroupDirOf(pid: number | 'self'): string | null {
  const layout = cgroupLayout()
  const text = readText(`/proc/${pid}/cgroup`)
  if (text === null) return null
  for (const line of text.split('\n')) {
    const [id, controllers, ...rest] = line.split(':')
    const path = rest.join(':')
    if (layout.kind === 'v2' && id === '0') return join(layout.root, path)
    if (layout.kind === 'v1' && (controllers ?? '').split(',').includes('memory')) return join(layout.memoryRoot, path)
  }
  return null
}
