#!/usr/bin/env node
/**
 * kcompressd A/B: inline (--workers 0) against kcompressd workers, through a loop device with
 * --direct-io=on and one writer (fio, O_DIRECT), for lz4 and zstd. Arms:
 *   inline        --workers 0
 *   w1            --workers 1 (the writer compresses a request itself when every worker sleeps
 *                 and waking one costs more: zramfuse/inline_when_cheaper, the default)
 *   w1-nopoll     --workers 1, poll_us 0: an idle worker sleeps at once (every idle-to-busy turn
 *                 costs the writer an Atomics.notify; the design before poll_us)
 *   w1-always     --workers 1, inline_when_cheaper 0: every page staged
 *   w1-trials     --workers 1, outcome_trials 1: single pages also decided by outcome trials
 *   w2            --workers 2
 *   wN-pollUS     --workers N, poll_us US (e.g. w1-poll200)
 * Placement (--pin): split (default): each daemon started on CPU 0 (every thread inherits it) with
 * --kcompressd-cpus 1, fio on CPU 1; none: the scheduler decides.
 * --awake: hold a PM QoS request for 0 us wake-up latency (/dev/cpu_dma_latency) for the whole run,
 * so that no CPU halts when idle (cpuidle polls instead). On this VM a halted vCPU is slow to wake,
 * and a polling kcompressd worker keeps fio's CPU awake by itself, which the inline arm alone paid
 * for (lz4 4k libaio QD32 inline 24 -> 75 MiB/s, staged 69 -> 64; 2026-12-02). Run both ways to
 * tell the workers' gain from the VM's. (A SCHED_IDLE busy loop on the load CPU, tried first, took
 * CPU from the worker beside it: FIFO full on 42% of lz4 1M pages against 8%.)
 * Every arm's daemon runs for the whole algorithm and the arms take turns job by job, run by run
 * (the order rotating each run), so a change of load on this shared machine hits all of them.
 * Figures per arm: MiB/s (median of --runs, min-max), the daemon's main-thread CPU per page written
 * (/proc/PID/task/PID/stat: the JavaScript thread alone), the whole daemon's CPU per page, and
 * kcompressd's own counters (main_ns_per_page over the run, share of pages staged, compressed
 * inline because cheaper, or because the FIFO was full). The CPU used by everything else on the
 * machine during each job is printed too: ratios are only comparable within one run.
 *
 *   node dist/bench/kcompressd.js [--runs 3] [--seconds 4] [--algorithms lz4,zstd] [--arms inline,w1,w1-nopoll,w1-always,w2]
 *                                 [--jobs 4k,4k-qd32,128k,1m] [--pin split|none] [--awake]   (root; fio, losetup, taskset)
 *
 * Data: fio buffers 50% compressible (buffer_compress_percentage), refilled every I/O. fio runs in
 * the work directory; everything set up is undone on exit and on signals (bench/sys.ts Cleanup).
 */
import { closeSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join, resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { type FioOutput, parseFioOutput } from './fio-parse'
import { kcompressdArgs, loadCommand, type Placement, planPlacement } from './placement'
import { summarize, type Summary } from './stats'
import {
  attachLoop, backgroundBetween, Cleanup, clkTck, cpuSnapshot, cpuTicks, type DaemonProc, detachLoop, holdNoHalt, must, readText,
  startDaemon, stopDaemon,
} from './sys'
import { PAGE_SIZE } from '../src/page'

const REPO = resolve(__dirname, '..', '..')
const CLI = join(REPO, 'dist', 'daemon', 'cli.js')
const PAGE = PAGE_SIZE
/** Not bench/run's BENCH_TMP: its stale-run cleanup must never take our live directory for its own. */
const WORK_ROOT = '/tmp/zramfuse-kcbench'

interface Job { id: string; name: string; args: string[] }
const JOBS: Job[] = [
  { id: '4k', name: '4k randwrite QD1', args: ['--rw=randwrite', '--bs=4k', '--ioengine=psync'] },
  { id: '4k-qd32', name: '4k randwrite libaio QD32', args: ['--rw=randwrite', '--bs=4k', '--ioengine=libaio', '--iodepth=32'] },
  { id: '128k', name: '128k seq write', args: ['--rw=write', '--bs=128k', '--ioengine=psync'] },
  { id: '1m', name: '1M seq write', args: ['--rw=write', '--bs=1M', '--ioengine=psync'] },
]

/** pollUs null: the daemon's default (zramfuse/poll_us). */
interface Arm { id: string; workers: number; inlineWhenCheaper: boolean; pollUs: number | null; outcomeTrials?: boolean }
const ARMS: Arm[] = [
  { id: 'inline', workers: 0, inlineWhenCheaper: true, pollUs: null },
  { id: 'w1', workers: 1, inlineWhenCheaper: true, pollUs: null },
  { id: 'w1-nopoll', workers: 1, inlineWhenCheaper: true, pollUs: 0 },
  { id: 'w1-always', workers: 1, inlineWhenCheaper: false, pollUs: null },
  { id: 'w1-trials', workers: 1, inlineWhenCheaper: true, pollUs: null, outcomeTrials: true },
  { id: 'w2', workers: 2, inlineWhenCheaper: true, pollUs: null },
]

/** Arms named wN-pollUS (N workers, poll_us US) in --arms, e.g. w1-poll200. */
function pollArms(text: string | undefined): Arm[] {
  const out: Arm[] = []
  for (const id of (text ?? '').split(',')) {
    const m = /^w(\d+)-poll(\d+)$/.exec(id)
    if (m !== null) out.push({ id, workers: Number(m[1]), inlineWhenCheaper: true, pollUs: Number(m[2]) })
  }
  return out
}

/** The kcompressd counters a run reads before and after. */
const COUNTERS = ['queued', 'main_ns', 'inline_cheaper', 'inline_measured', 'inline_fallbacks', 'worker_wakeups', 'main_wakeups'] as const
type Counters = Record<(typeof COUNTERS)[number], number>

interface RunResult {
  mibps: number
  mainUsPerPage: number
  procUsPerPage: number
  /** kcompressd main_ns over the run / pages staged in it (null: nothing staged) */
  kcNsPerStaged: number | null
  stagedPct: number
  cheaperPct: number
  measuredPct: number
  fallbackPct: number
  wakeupsPerKPage: number
  othersPct: number
}

interface Live { arm: Arm; daemon: DaemonProc; loop: string }

const err = (m: string): void => void process.stderr.write(m + '\n')

function list<T extends { id: string }>(text: string | undefined, all: T[], what: string): T[] {
  if (text === undefined) return all
  return text.split(',').map((id) => {
    const x = all.find((a) => a.id === id)
    if (!x) throw new Error(`unknown ${what} ${id}: one of ${all.map((a) => a.id).join(', ')}`)
    return x
  })
}

/** utime + stime of the daemon's JavaScript thread (its tid is its pid), in clock ticks. */
function mainThreadTicks(pid: number): number {
  const stat = readText(`/proc/${pid}/task/${pid}/stat`) ?? ''
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ')
  return Number(f[11]) + Number(f[12])
}

function counters(l: Live): Counters {
  const out = {} as Counters
  for (const c of COUNTERS) out[c] = Number(readFileSync(join(l.daemon.mount, 'sys', 'block', 'zram0', 'zramfuse', c), 'utf8'))
  return out
}

async function runJob(cleanup: Cleanup, l: Live, job: Job, seconds: number, seed: number, placement: Placement): Promise<RunResult> {
  const pid = l.daemon.pid
  const k0 = counters(l)
  const m0 = mainThreadTicks(pid)
  const p0 = cpuTicks(pid) ?? 0
  const s0 = cpuSnapshot([pid])
  const r = await must(cleanup, ...loadCommand(placement, 'fio', ['--output-format=json', `--filename=${l.loop}`, '--direct=1', '--name=w', '--size=512M',
    `--runtime=${seconds}`, '--time_based', `--randseed=${seed}`, '--buffer_compress_percentage=50', '--refill_buffers', ...job.args]))
  const s1 = cpuSnapshot([pid])
  const m1 = mainThreadTicks(pid)
  const p1 = cpuTicks(pid) ?? 0
  const k1 = counters(l)
  const out: FioOutput = parseFioOutput(r.stdout)
  const w = out.jobs[0]!.write
  const pages = w.bytes / PAGE
  const tick = 1e6 / clkTck()
  const staged = k1.queued - k0.queued
  return {
    mibps: w.bwBytes / 1048576,
    mainUsPerPage: ((m1 - m0) * tick) / pages,
    procUsPerPage: ((p1 - p0) * tick) / pages,
    kcNsPerStaged: staged > 0 ? (k1.main_ns - k0.main_ns) / staged : null,
    stagedPct: (100 * staged) / pages,
    cheaperPct: (100 * (k1.inline_cheaper - k0.inline_cheaper)) / pages,
    measuredPct: (100 * (k1.inline_measured - k0.inline_measured)) / pages,
    fallbackPct: (100 * (k1.inline_fallbacks - k0.inline_fallbacks)) / pages,
    wakeupsPerKPage: (1000 * (k1.worker_wakeups - k0.worker_wakeups)) / pages,
    othersPct: backgroundBetween(s0, s1, new Set([pid])).othersPct,
  }
}

const fmt = (x: number, d = 1): string => x.toFixed(d)
const med = (xs: (number | null)[]): number | null => summarize(xs.filter((x): x is number => x !== null))?.median ?? null
const range = (s: Summary): string => `${fmt(s.median)} (${fmt(s.min)}–${fmt(s.max)})`

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' }, seconds: { type: 'string', default: '4' },
      algorithms: { type: 'string', default: 'lz4,zstd' }, arms: { type: 'string' }, jobs: { type: 'string' },
      pin: { type: 'string', default: 'split' }, awake: { type: 'boolean', default: false },
    },
  })
  if (values.pin !== 'split' && values.pin !== 'none') throw new Error('--pin must be split or none')
  const placement = planPlacement(values.pin, cpus().length)
  const runs = Number(values.runs)
  const seconds = Number(values.seconds)
  const algorithms = (values.algorithms ?? '').split(',')
  const arms = list(values.arms, [...ARMS, ...pollArms(values.arms)], 'arm')
  const jobs = list(values.jobs, JOBS, 'job')
  if (!arms.some((a) => a.id === 'inline')) throw new Error('--arms must include inline: every ratio is against it')

  // Before anything is set up (refused where idle CPUs halt regardless); closed at the end.
  const awake = values.awake ? holdNoHalt() : null
  const work = join(WORK_ROOT, String(process.pid))
  mkdirSync(work, { recursive: true })
  const cleanup = new Cleanup((m) => err(`bench: ${m}`), work)
  cleanup.removeDirAtEnd(work)
  // fio writes nothing here without verify, but whatever it writes stays out of the repository.
  process.chdir(work)
  const onSignal = (sig: string): void => {
    err(`bench: ${sig}: cleaning up`)
    cleanup.runSync()
    process.exit(1)
  }
  process.on('SIGINT', () => onSignal('SIGINT'))
  process.on('SIGTERM', () => onSignal('SIGTERM'))

  const load0 = (readText('/proc/loadavg') ?? '').trim()
  const rows: string[] = [
    `| algorithm | job | arm | MiB/s median (min–max) | / inline | main thread us/page | daemon CPU us/page | kcompressd main ns/staged page | staged | inline (cheaper) | inline (measured) | inline (FIFO full) | worker wake-ups /1000 pages | other CPU % |`,
    '|---|---|---|---|---|---|---|---|---|---|---|---|---|---|',
  ]
  try {
    for (const algorithm of algorithms) {
      const live: Live[] = []
      for (const arm of arms) {
        const mount = join(work, `${algorithm}-${arm.id}`)
        mkdirSync(mount, { recursive: true })
        const daemon = await startDaemon(cleanup, 'zramfuse', CLI, ['start', '--mount', mount, '--disksize', '1G', '--algorithm', algorithm,
          '--workers', String(arm.workers), '--log-level', 'info', ...kcompressdArgs(placement)], mount, join(work, `${algorithm}-${arm.id}.log`), join(work, 'pids'),
        placement.daemonCpus)
        const ext = join(mount, 'sys', 'block', 'zram0', 'zramfuse')
        if (!arm.inlineWhenCheaper) writeFileSync(join(ext, 'inline_when_cheaper'), '0')
        if (arm.outcomeTrials === true) writeFileSync(join(ext, 'outcome_trials'), '1')
        if (arm.pollUs !== null) writeFileSync(join(ext, 'poll_us'), String(arm.pollUs))
        const { dev, dio } = await attachLoop(cleanup, join(mount, 'dev', 'zram0'))
        if (!dio) err(`bench: ${dev}: direct I/O did not turn on`)
        live.push({ arm, daemon, loop: dev })
      }
      const results = new Map<string, RunResult[]>()
      for (const job of jobs) {
        for (let i = 0; i < runs; i++) {
          for (let a = 0; a < live.length; a++) {
            const l = live[(a + i) % live.length]!
            const r = await runJob(cleanup, l, job, seconds, 1000 + i, placement)
            const key = `${job.id}/${l.arm.id}`
            results.set(key, [...(results.get(key) ?? []), r])
            err(`${algorithm} ${job.name} ${l.arm.id} run ${i + 1}: ${fmt(r.mibps)} MiB/s, main ${fmt(r.mainUsPerPage, 2)} us/page, others ${fmt(r.othersPct, 0)}% CPU`)
          }
        }
        const inline = summarize((results.get(`${job.id}/inline`) ?? []).map((r) => r.mibps))
        for (const arm of arms) {
          const rs = results.get(`${job.id}/${arm.id}`) ?? []
          const bw = summarize(rs.map((r) => r.mibps))
          if (bw === null || inline === null) continue
          const kc = med(rs.map((r) => r.kcNsPerStaged))
          rows.push(`| ${algorithm} | ${job.name} | ${arm.id} | ${range(bw)} | ${fmt(bw.median / inline.median, 2)}x | ` +
            `${fmt(med(rs.map((r) => r.mainUsPerPage)) ?? 0, 2)} | ${fmt(med(rs.map((r) => r.procUsPerPage)) ?? 0, 2)} | ` +
            `${kc === null ? '-' : fmt(kc, 0)} | ${fmt(med(rs.map((r) => r.stagedPct)) ?? 0, 0)}% | ${fmt(med(rs.map((r) => r.cheaperPct)) ?? 0, 0)}% | ` +
            `${fmt(med(rs.map((r) => r.measuredPct)) ?? 0, 0)}% | ` +
            `${fmt(med(rs.map((r) => r.fallbackPct)) ?? 0, 0)}% | ${fmt(med(rs.map((r) => r.wakeupsPerKPage)) ?? 0, 1)} | ` +
            `${fmt(med(rs.map((r) => r.othersPct)) ?? 0, 0)} |`)
        }
      }
      for (const l of live) {
        detachLoop(cleanup, l.loop, (m) => err(`bench: ${m}`))
        await stopDaemon(cleanup, l.daemon, (m) => err(`bench: ${m}`))
      }
    }
  } finally {
    cleanup.runSync()
    if (awake !== null) closeSync(awake) // the kernel drops the request (so it does if we die)
  }
  process.stdout.write(`load average before: ${load0}; after: ${(readText('/proc/loadavg') ?? '').trim()}\n` +
    `${runs} runs of ${seconds} s per arm and job, arms interleaved; fio 50% compressible, O_DIRECT, through losetup --direct-io=on\n` +
    `placement: ${placement.mode === 'split' ? `daemons on CPU ${placement.daemonCpus ?? ''}, kcompressd workers and fio on CPU ${placement.loadCpus ?? ''}` : 'unpinned'}` +
    `${values.awake ? '; no CPU halted when idle (--awake: cpu_dma_latency 0)' : ''}\n\n` +
    rows.join('\n') + '\n')
}

main().catch((e: unknown) => {
  err(String((e as Error)?.stack ?? e))
  process.exit(1)
})
