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
import { mkdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { defaultWorkers } from '../src/kcompressd/kcompressd'
import { summarize } from './stats'
import { BENCH_TMP, Cleanup, type DaemonProc, attachLoop, cleanStale, clkTck, cpuTicks, detachLoop, must, startDaemon, stopDaemon } from './sys'

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

const err = (m: string): void => void process.stderr.write(m + '\n')

interface Daemon {
  proc: DaemonProc
  loop: string
}

let started = 0

/** A fresh daemon (mount and log of its own: startDaemon waits for a ready line in the log) on a loop device. */
async function startArm(cleanup: Cleanup, work: string, algorithm: string, workers: string[]): Promise<Daemon> {
  const name = `${++started}-${algorithm}-w${workers[workers.length - 1] ?? ''}`
  const mount = join(work, `mnt-${name}`)
  mkdirSync(mount, { recursive: true })
  const proc = await startDaemon(cleanup, 'zramfuse', CLI, ['start', '--mount', mount, '--disksize', '1G', '--algorithm', algorithm, ...workers],
    mount, join(work, `${name}.log`), join(work, 'pids'))
  const { dev } = await attachLoop(cleanup, join(mount, 'dev', 'zram0'))
  return { proc, loop: dev }
}

interface Job { name: string; args: string[] }
const JOBS: Job[] = [
  { name: '4k randwrite QD1', args: ['--rw=randwrite', '--bs=4k', '--iodepth=1'] },
  { name: '128k seq write', args: ['--rw=write', '--bs=128k', '--iodepth=1'] },
]

interface RunResult { mibps: number; mainUsPerPage: number; procUsPerPage: number; kcNsPerPage: number }

function kc(d: Daemon, name: string): number {
  return Number(readFileSync(join(d.proc.mount, 'sys', 'block', 'zram0', 'zramfuse', name), 'utf8'))
}

async function runJob(cleanup: Cleanup, d: Daemon, job: Job, i: number): Promise<RunResult> {
  const pid = d.proc.pid
  const kcNs0 = kc(d, 'main_ns')
  const kcQ0 = kc(d, 'queued')
  // the main thread alone (its tid is the pid), then the whole process (workers, FUSE threads)
  const m0 = cpuTicks(pid, pid) ?? NaN
  const p0 = cpuTicks(pid) ?? NaN
  const r = await must(cleanup, 'fio', ['--output-format=json', `--filename=${d.loop}`, '--direct=1', '--ioengine=psync',
    '--name=w', '--size=512M', `--runtime=${SECONDS}`, '--time_based', `--randseed=${1000 + i}`,
    '--buffer_compress_percentage=50', '--refill_buffers', ...job.args])
  const m1 = cpuTicks(pid, pid) ?? NaN
  const p1 = cpuTicks(pid) ?? NaN
  const j = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { jobs: { write: { io_bytes: number; runtime: number } }[] }
  const w = j.jobs[0].write
  const pages = w.io_bytes / PAGE
  const q = kc(d, 'queued') - kcQ0
  return {
    mibps: w.io_bytes / 1048576 / (w.runtime / 1000),
    mainUsPerPage: ((m1 - m0) / clkTck()) * 1e6 / pages,
    procUsPerPage: ((p1 - p0) / clkTck()) * 1e6 / pages,
    kcNsPerPage: q > 0 ? (kc(d, 'main_ns') - kcNs0) / q : 0,
  }
}

const median = (xs: number[]): number => summarize(xs)?.median ?? NaN

async function main(): Promise<void> {
  const work = join(BENCH_TMP, String(process.pid))
  mkdirSync(work, { recursive: true })
  const cleanup = new Cleanup(err, work)
  cleanup.removeDirAtEnd(work)
  for (const n of cleanStale(err)) err(n)
  const bail = (): void => {
    cleanup.runSync()
    process.exit(130)
  }
  process.on('SIGINT', bail)
  process.on('SIGTERM', bail)
  process.on('exit', () => cleanup.runSync())
  const rows: string[] = []
  rows.push('| algorithm | job | workers | MiB/s (median of ' + RUNS + ') | runs | main-thread CPU us/page | daemon CPU us/page | kcompressd main ns/staged page | inline_fallbacks |')
  rows.push('|---|---|---|---|---|---|---|---|---|')
  const ratios: string[] = []
  try {
    for (const algorithm of ['lz4', 'zstd']) {
      for (const job of JOBS) {
        const med: Record<string, number> = {}
        const arm = asyncArm(algorithm)
        for (const [label, args] of [['0', ['--workers', '0']], ['async', ['--workers', String(arm.workers)]]] as const) {
          const d = await startArm(cleanup, work, algorithm, [...args])
          try {
            const results: RunResult[] = []
            for (let i = 0; i < RUNS; i++) {
              results.push(await runJob(cleanup, d, job, i))
              err(`${algorithm} ${job.name} workers=${label} run ${i + 1}: ${results[i].mibps.toFixed(1)} MiB/s`)
            }
            med[label] = median(results.map((r) => r.mibps))
            rows.push(`| ${algorithm} | ${job.name} | ${label === '0' ? '0' : arm.label} | ${med[label].toFixed(1)} | ` +
              `${results.map((r) => r.mibps.toFixed(1)).join(', ')} | ${median(results.map((r) => r.mainUsPerPage)).toFixed(2)} | ` +
              `${median(results.map((r) => r.procUsPerPage)).toFixed(2)} | ${median(results.map((r) => r.kcNsPerPage)).toFixed(0)} | ${kc(d, 'inline_fallbacks')} |`)
          } finally {
            detachLoop(cleanup, d.loop, err)
            await stopDaemon(cleanup, d.proc, err)
          }
        }
        ratios.push(`${algorithm} ${job.name}: async/inline = ${(med.async / med['0']).toFixed(2)}x`)
      }
    }
  } finally {
    cleanup.runSync()
  }
  process.stdout.write(rows.join('\n') + '\n\n' + ratios.join('\n') + '\n')
}

main().catch((e: unknown) => {
  err(String((e as Error)?.stack ?? e))
  process.exit(1)
})
