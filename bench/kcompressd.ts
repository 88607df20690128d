#!/usr/bin/env node
/**
 * kcompressd A/B (issue 4): --workers 0 (inline) versus the default workers (1 where the default
 * is 0, lz4 on 2 cores or fewer, so the A/B never compares inline with itself), through a loop device
 * with --direct-io=on, one writer: fio 4k randwrite QD1 and 128k sequential write, O_DIRECT, for lz4
 * and zstd. Median of RUNS short runs. Also the daemon's main-thread CPU per page written
 * (/proc/<pid>/task/<pid>/stat deltas: the main thread only, not workers or FUSE threads) and
 * kcompressd's own main_ns_per_page.
 *
 *   node dist/bench/kcompressd.js [--runs 3] [--seconds 4]   (root; fio and losetup)
 *
 * Data: fio buffers made 50% compressible (buffer_compress_percentage), refilled every I/O.
 * Everything it sets up is undone on exit (losetup -d, SIGTERM, rmdir).
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process'
import { closeSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, rmdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { defaultWorkers } from '../src/kcompressd/kcompressd'

const REPO = resolve(__dirname, '..', '..')
const CLI = join(REPO, 'dist', 'daemon', 'cli.js')
const PAGE = 4096

const { values } = parseArgs({ options: { runs: { type: 'string', default: '3' }, seconds: { type: 'string', default: '4' } } })
const RUNS = Number(values.runs)
const SECONDS = Number(values.seconds)

/** The async arm: the daemon's default for the algorithm, or one worker where that is inline. */
function asyncArm(algorithm: string): { workers: number, label: string } {
  const dflt = defaultWorkers(algorithm)
  return dflt > 0 ? { workers: dflt, label: `${dflt} (default)` } : { workers: 1, label: '1 (default is 0 here)' }
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const err = (m: string): void => void process.stderr.write(m + '\n')

function mainThreadTicks(pid: number): number {
  const s = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8')
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
  return Number(f[11]) + Number(f[12]) // utime + stime (fields 14, 15)
}

function processTicks(pid: number): number {
  const s = readFileSync(`/proc/${pid}/stat`, 'utf8')
  const f = s.slice(s.lastIndexOf(')') + 2).split(' ')
  return Number(f[11]) + Number(f[12])
}

const CLK_TCK = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim())

interface Daemon {
  child: ChildProcess
  mount: string
  base: string
  loop: string | null
}

async function startDaemon(algorithm: string, workers: string[]): Promise<Daemon> {
  const base = mkdtempSync('/tmp/zramfuse-kcbench-')
  const mount = join(base, 'mnt')
  mkdirSync(mount)
  const logFile = join(base, 'daemon.log')
  const fd = openSync(logFile, 'a')
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  const child = spawn(process.execPath, [CLI, 'start', '--mount', mount, '--disksize', '1G', '--algorithm', algorithm,
    '--log-level', 'warn', ...workers], { stdio: ['ignore', fd, fd], env })
  closeSync(fd)
  const d: Daemon = { child, mount, base, loop: null }
  const deadline = Date.now() + 30_000
  while (Date.now() < deadline) {
    try {
      readFileSync(join(mount, 'sys', 'block', 'zram0', 'disksize'))
      break
    } catch {
      await sleep(50)
    }
  }
  await sleep(300) // workers up (start.ts waits for them before mounting)
  d.loop = execFileSync('losetup', ['--direct-io=on', '-f', '--show', join(mount, 'dev', 'zram0')], { encoding: 'utf8' }).trim()
  return d
}

async function stopDaemon(d: Daemon): Promise<void> {
  if (d.loop !== null) {
    try {
      execFileSync('losetup', ['-d', d.loop])
    } catch (e) {
      err(`losetup -d ${d.loop}: ${String(e)}`)
    }
    d.loop = null
  }
  if (d.child.exitCode === null) {
    d.child.kill('SIGTERM')
    const deadline = Date.now() + 15_000
    while (d.child.exitCode === null && d.child.signalCode === null && Date.now() < deadline) await sleep(50)
  }
  try {
    rmdirSync(d.mount)
    rmSync(join(d.base, 'daemon.log'), { force: true })
    rmdirSync(d.base)
  } catch (e) {
    err(`cleanup ${d.base}: ${String(e)}`)
  }
}

interface Job { name: string; args: string[] }
const JOBS: Job[] = [
  { name: '4k randwrite QD1', args: ['--rw=randwrite', '--bs=4k', '--iodepth=1'] },
  { name: '128k seq write', args: ['--rw=write', '--bs=128k', '--iodepth=1'] },
]

interface RunResult { mibps: number; mainUsPerPage: number; procUsPerPage: number; kcNsPerPage: number }

function kc(d: Daemon, name: string): number {
  return Number(readFileSync(join(d.mount, 'sys', 'block', 'zram0', 'zramfuse', name), 'utf8'))
}

async function runJob(d: Daemon, job: Job, i: number): Promise<RunResult> {
  const pid = d.child.pid as number
  const kcNs0 = kc(d, 'main_ns')
  const kcQ0 = kc(d, 'queued')
  const m0 = mainThreadTicks(pid)
  const p0 = processTicks(pid)
  const out = execFileSync('fio', ['--output-format=json', `--filename=${d.loop}`, '--direct=1', '--ioengine=psync',
    '--name=w', '--size=512M', `--runtime=${SECONDS}`, '--time_based', `--randseed=${1000 + i}`,
    '--buffer_compress_percentage=50', '--refill_buffers', ...job.args], { encoding: 'utf8', maxBuffer: 64 << 20 })
  const m1 = mainThreadTicks(pid)
  const p1 = processTicks(pid)
  const j = JSON.parse(out.slice(out.indexOf('{'))) as { jobs: { write: { io_bytes: number; runtime: number } }[] }
  const w = j.jobs[0].write
  const pages = w.io_bytes / PAGE
  const q = kc(d, 'queued') - kcQ0
  return {
    mibps: w.io_bytes / 1048576 / (w.runtime / 1000),
    mainUsPerPage: ((m1 - m0) / CLK_TCK) * 1e6 / pages,
    procUsPerPage: ((p1 - p0) / CLK_TCK) * 1e6 / pages,
    kcNsPerPage: q > 0 ? (kc(d, 'main_ns') - kcNs0) / q : 0,
  }
}

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]

async function main(): Promise<void> {
  const rows: string[] = []
  const live = new Set<Daemon>()
  const bail = (): void => {
    for (const d of live) {
      if (d.loop) try { execFileSync('losetup', ['-d', d.loop]) } catch { /* best effort */ }
      d.child.kill('SIGTERM')
    }
    process.exit(1)
  }
  process.on('SIGINT', bail)
  process.on('SIGTERM', bail)
  rows.push('| algorithm | job | workers | MiB/s (median of ' + RUNS + ') | runs | main-thread CPU us/page | daemon CPU us/page | kcompressd main ns/staged page | inline_fallbacks |')
  rows.push('|---|---|---|---|---|---|---|---|---|')
  const ratios: string[] = []
  for (const algorithm of ['lz4', 'zstd']) {
    for (const job of JOBS) {
      const med: Record<string, number> = {}
      const arm = asyncArm(algorithm)
      for (const [label, args] of [['0', ['--workers', '0']], ['async', ['--workers', String(arm.workers)]]] as const) {
        const d = await startDaemon(algorithm, [...args])
        live.add(d)
        try {
          const results: RunResult[] = []
          for (let i = 0; i < RUNS; i++) {
            results.push(await runJob(d, job, i))
            err(`${algorithm} ${job.name} workers=${label} run ${i + 1}: ${results[i].mibps.toFixed(1)} MiB/s`)
          }
          med[label] = median(results.map((r) => r.mibps))
          rows.push(`| ${algorithm} | ${job.name} | ${label === '0' ? '0' : arm.label} | ${med[label].toFixed(1)} | ` +
            `${results.map((r) => r.mibps.toFixed(1)).join(', ')} | ${median(results.map((r) => r.mainUsPerPage)).toFixed(2)} | ` +
            `${median(results.map((r) => r.procUsPerPage)).toFixed(2)} | ${median(results.map((r) => r.kcNsPerPage)).toFixed(0)} | ${kc(d, 'inline_fallbacks')} |`)
        } finally {
          await stopDaemon(d)
          live.delete(d)
        }
      }
      ratios.push(`${algorithm} ${job.name}: async/inline = ${(med.async / med['0']).toFixed(2)}x`)
    }
  }
  process.stdout.write(rows.join('\n') + '\n\n' + ratios.join('\n') + '\n')
}

main().catch((e: unknown) => {
  err(String((e as Error)?.stack ?? e))
  process.exit(1)
})
