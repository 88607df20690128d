#!/usr/bin/env node
/**
 * npm run bench: zramfuse against the raw FUSE ceiling and the kernel's zram, in one session.
 *
 *   1. perf: every target x mode x fio job, N timed runs each (median, min, max), on fio's
 *      generated data mix, then a real-data pass (an ext4 image of a real directory tree);
 *   2. fidelity: the same data into the kernel's zram and into zramfuse, mm_stat compared;
 *   3. memory: metadata per page, daemon RSS beyond the pool, pool overhead around compaction.
 *
 * Writes bench/out/<date>.{md,json} and <date>-*.svg (--publish: also bench/results/, replacing the
 * report committed there). Progress goes to stderr; the summary
 * table to stdout. Everything it mounts or attaches is undone on exit, failure and signals.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs'
import { cpus, release, totalmem } from 'node:os'
import { join, relative, resolve } from 'node:path'
import { runCodecBench } from './codecs'
import { recompressLatency, type RecompressLatencyRow } from './recompress-latency'
import { dirBytes, mkfsImage } from './real-image'
import { parseFioOutput, runFigures } from './fio-parse'
import { type DataMix, DEFAULT_MIX, JOBS, type JobSpec, REAL_READ_JOBS, REAL_WRITE_JOB, churnArgs, describeMix, fioArgs, jobDirection, jobUnit, jobValue, prefillArgs } from './jobs'
import { DEFAULT_WEIGHTS, PAGE_SIZE, describeWeights, generateMix } from './mix'
import { type MmStat, formatMmStat, parseMmStat } from './mmstat'
import { type BenchOptions, USAGE, parseBenchArgs, realDirCandidates } from './options'
import { type Placement, kcompressdArgs, loadCommand, orderFor, planPlacement } from './placement'
import { buildCharts, mmStatDiffLines, renderReport, summarySection } from './report'
import { publishReport } from './publish'
import { type BenchResults, type DatasetInfo, type FidelityEntry, type MemoryEntry, type PerfCell, type PerfRun, RESULTS_VERSION, type TargetInfo } from './results'
import { cpuidleDriver } from './cpuidle'
import { formatBytes } from './size'
import {
  BENCH_TMP, Cleanup, backgroundBetween, cpuSnapshot, type DaemonProc, KERNEL_ZRAM, SHM_PREFIX, attachLoop, busyProcesses, checkKernelZram, cleanStale,
  clkTck, cpuTicks, detachLoop, holdNoHalt, kernelZramInit, kernelZramReset, must, readText, run, startDaemon, startProgram, stopDaemon, vmRssBytes,
} from './sys'
import {
  CEILING_C_MULTI, CEILING_C_SINGLE, type Mode, type TargetSpec, ZRAMFUSE_LZ4, ZRAMFUSE_ZSTD, ceilingCArgs, daemonArgs, planTargets, resolveVariant,
} from './targets'

const REPO = resolve(__dirname, '..', '..')
const CLI = join(REPO, 'dist', 'daemon', 'cli.js')
const CEILING = join(REPO, 'dist', 'bench', 'ceiling.js')
/** The C ceiling (bench/ceiling-c/ramfile.c), built by scripts/build-ceiling.sh */
const CEILING_C = join(REPO, 'bench', 'ceiling-c', 'build', 'ramfile')
const BUILD_CEILING_C = join(REPO, 'scripts', 'build-ceiling.sh')

function err(msg: string): void {
  process.stderr.write(msg + '\n')
}

class Progress {
  private k = 0
  private readonly t0 = Date.now()
  constructor(public total: number) {}
  step(label: string): void {
    this.k++
    this.line(label)
  }
  line(label: string): void {
    const s = Math.round((Date.now() - this.t0) / 1000)
    const el = `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
    err(`[bench ${String(this.k).padStart(String(this.total).length)}/${this.total} ${el}] ${label}`)
  }
}

interface Dataset extends DatasetInfo {
  path: string
}

interface Ctx {
  opts: BenchOptions
  /** the fio jobs of the matrix this run does */
  jobs: readonly JobSpec[]
  cleanup: Cleanup
  progress: Progress
  results: BenchResults
  work: string
  shm: string
  pidsFile: string
  placement: Placement
  mix: DataMix
  real: Dataset | null
  kernelOk: boolean
}

function note(ctx: Ctx, msg: string): void {
  ctx.results.notes.push(msg)
  err(`bench: note: ${msg}`)
}

function stepsFor(ctx: Ctx, targets: readonly TargetSpec[]): number {
  let n = 0
  if (ctx.opts.perf) {
    for (const t of targets) n += t.modes.length * stepsPerMode(ctx)
  }
  if (ctx.opts.fidelity) {
    const fuse = targets.filter((t) => t.id === ZRAMFUSE_LZ4.id || t.id === ZRAMFUSE_ZSTD.id).length
    n += (1 + (ctx.real ? 1 : 0)) * (fuse + (ctx.kernelOk ? 1 : 0))
  }
  return n
}

// --- datasets ------------------------------------------------------------------------------------

function makeMixDataset(ctx: Ctx): Dataset {
  const pages = ctx.opts.fidelityBytes / PAGE_SIZE
  const { data, counts } = generateMix(pages, ctx.opts.seed)
  const path = join(ctx.shm, 'mix.img')
  writeFileSync(path, data)
  return {
    id: 'mix', title: 'Generated page mix', bytes: data.length, counts, path,
    source: `mulberry32 seed ${ctx.opts.seed}, page kinds drawn with weights ${describeWeights(DEFAULT_WEIGHTS)}`,
  }
}

/** An ext4 image of a real directory tree (mke2fs -d), deterministic: fixed UUIDs and time. */
function makeRealDataset(ctx: Ctx): Dataset | null {
  const dir = realDirCandidates(ctx.opts, REPO).find((d) => existsSync(d))
  if (!dir) {
    note(ctx, 'no directory for the real-data image found: real-data pass skipped')
    return null
  }
  let used = 0
  try {
    used = dirBytes(dir)
  } catch (e) {
    note(ctx, `du ${dir} failed (${String(e)}): real-data pass skipped`)
    return null
  }
  const path = join(ctx.shm, 'real.img')
  let mib = Math.ceil((used * 1.1) / 2 ** 20) + 16
  for (let attempt = 0; attempt < 4; attempt++) {
    if (mib * 2 ** 20 > ctx.opts.disksize) {
      note(ctx, `${dir} needs an image of ${mib} MiB, more than the device (${formatBytes(ctx.opts.disksize)}): real-data pass skipped; pick a smaller --real-dir`)
      return null
    }
    try {
      mkfsImage(dir, path, mib)
      return {
        id: 'real', title: `ext4 image of ${dir}`, bytes: mib * 2 ** 20, counts: null, path,
        source: `mke2fs -t ext4 -d ${dir} (${formatBytes(used)} of files in a ${mib} MiB image; fixed UUID, hash seed and time)`,
      }
    } catch {
      mib = Math.ceil(mib * 1.4)
    }
  }
  note(ctx, `mke2fs -d ${dir} failed repeatedly: real-data pass skipped`)
  return null
}

// --- perf ----------------------------------------------------------------------------------------

function daemonCpu(d: DaemonProc | null, t0: number | null, wallS: number): number | null {
  if (!d || t0 === null) return null
  const t1 = cpuTicks(d.pid)
  return t1 === null ? null : ((t1 - t0) / clkTck() / wallS) * 100
}

function fmtRun(job: JobSpec, r: PerfRun): string {
  const v = jobValue(job, r.iops, r.bwBytes)
  const cpu = r.daemonCpuPct === null ? '' : `, daemon CPU ${r.daemonCpuPct.toFixed(0)}%`
  return `${v.toFixed(job.metric === 'iops' ? 1 : 0)} ${jobUnit(job)}${cpu}`
}

/** One timed fio run of a cell's job, appended to the cell (or recorded as its error). */
async function fioRun(ctx: Ctx, cell: PerfCell, job: JobSpec, rep: number, path: string, sizeBytes: number, d: DaemonProc | null): Promise<void> {
  const label = `${cell.target} ${cell.mode} ${job.title} run ${rep}/${ctx.opts.reps}`
  if (cell.error) {
    ctx.progress.step(`${label}: skipped after an error`)
    return
  }
  const mix = cell.data === 'mix' ? ctx.mix : null
  const args = fioArgs(job, { filename: path, sizeBytes, runtimeS: ctx.opts.runtimeS, seed: ctx.opts.seed + rep - 1, mix })
  const t0 = d ? cpuTicks(d.pid) : null
  const [cmd, cmdArgs] = loadCommand(ctx.placement, 'fio', args)
  const r = await run(ctx.cleanup, cmd, cmdArgs, (ctx.opts.runtimeS + 120) * 1000)
  try {
    if (r.code !== 0) throw new Error(`fio exit ${String(r.code)}${r.signal ? ` ${r.signal}` : ''}: ${(r.stderr || r.stdout).trim().slice(0, 400)}`)
    const fig = runFigures(parseFioOutput(r.stdout), jobDirection(job))
    if (fig.error !== 0) throw new Error(`fio job error ${fig.error}: ${r.stderr.trim().slice(0, 400)}`)
    if (fig.ios === 0) throw new Error('fio completed no I/O')
    const pr: PerfRun = {
      iops: fig.iops, bwBytes: fig.bwBytes, latMeanNs: fig.latMeanNs, clatP99Ns: fig.clatP99Ns,
      fioCpuPct: fig.fioCpuPct, daemonCpuPct: daemonCpu(d, t0, r.wallS), wallS: r.wallS,
    }
    cell.runs.push(pr)
    ctx.progress.step(`${label}: ${fmtRun(job, pr)}`)
  } catch (e) {
    cell.error = (e as Error).message
    ctx.progress.step(`${label}: FAILED`)
    note(ctx, `${cell.target} ${cell.mode} ${job.id}: ${cell.error}`)
  }
}

/** One timed write of the real image with dd; a failure becomes the cell's error. */
async function ddRun(ctx: Ctx, cell: PerfCell, rep: number, path: string, d: DaemonProc | null): Promise<void> {
  const real = ctx.real
  const job = REAL_WRITE_JOB
  const label = `${cell.target} ${cell.mode} ${job.title} run ${rep}/${ctx.opts.reps}`
  if (!real || cell.error) {
    ctx.progress.step(`${label}: skipped after an error`)
    return
  }
  const t0 = d ? cpuTicks(d.pid) : null
  const [cmd, cmdArgs] = loadCommand(ctx.placement, 'dd', [`if=${real.path}`, `of=${path}`, 'bs=1M', 'oflag=direct', 'conv=notrunc,fsync', 'status=none'])
  const r = await run(ctx.cleanup, cmd, cmdArgs, 600_000)
  if (r.code !== 0) {
    cell.error = `dd exit ${String(r.code)}: ${r.stderr.trim().slice(0, 400)}`
    ctx.progress.step(`${label}: FAILED`)
    note(ctx, `${cell.target} ${cell.mode} ${job.id}: ${cell.error}`)
    return
  }
  const ios = real.bytes / job.bs
  const pr: PerfRun = {
    iops: ios / r.wallS, bwBytes: real.bytes / r.wallS, latMeanNs: (r.wallS / ios) * 1e9, clatP99Ns: null,
    fioCpuPct: null, daemonCpuPct: daemonCpu(d, t0, r.wallS), wallS: r.wallS,
  }
  cell.runs.push(pr)
  ctx.progress.step(`${label}: ${fmtRun(job, pr)}`)
}

/** A target that is up, reached one way, with its cells. */
interface Member {
  t: TargetSpec
  mode: Mode
  path: string
  daemon: DaemonProc | null
  loop: string | null
}

/**
 * The repetitions each set of daemons serves: by default one each (a fresh daemon for every run, so
 * a lucky or unlucky daemon instance is one run of the median, not all of them); with
 * --keep-daemons all of them.
 */
function rounds(ctx: Ctx): number[][] {
  const all = Array.from({ length: ctx.opts.reps }, (_, i) => i + 1)
  return ctx.opts.keepDaemons ? [all] : all.map((r) => [r])
}

/** Progress steps of one target and mode in a round of `reps` repetitions: the prefill, then the runs. */
function stepsPerRound(ctx: Ctx, reps: number): number {
  return 1 + ctx.jobs.length * reps + (ctx.real ? (1 + REAL_READ_JOBS.length) * reps : 0)
}

function stepsPerMode(ctx: Ctx): number {
  return rounds(ctx).reduce((n, r) => n + stepsPerRound(ctx, r.length), 0)
}

function skipSteps(ctx: Ctx, t: TargetSpec, modes: readonly Mode[], why: string, reps: number): void {
  for (const m of modes) {
    for (let i = 0; i < stepsPerRound(ctx, reps); i++) ctx.progress.step(`${t.id} ${m}: skipped (${why})`)
  }
}

/**
 * One phase of the matrix (the file and block-device phase, or the loop phase) over every member
 * at once. The order is rep, job, target: run 1 of a job on every target back to back, then the
 * next job, ..., then run 2. Ratios thus compare measurements taken moments apart, and a burst of
 * background load lands on one run of several figures, which the median discards. The targets run
 * in reverse order on even repetitions, so no target always follows the same one. Each round of
 * the real-data pass rewrites the image with dd on every member before reading it.
 */
async function perfPhase(ctx: Ctx, members: Member[], reps: readonly number[]): Promise<void> {
  // one cell per target, mode and job across all rounds
  const cell = (m: Member, job: JobSpec, data: 'mix' | 'real'): PerfCell => {
    let c = ctx.results.perf.find((x) => x.target === m.t.id && x.mode === m.mode && x.job === job.id && x.data === data)
    if (!c) {
      c = { target: m.t.id, mode: m.mode, data, job: job.id, runs: [] }
      ctx.results.perf.push(c)
    }
    return c
  }
  for (const rep of reps) {
    for (const job of ctx.jobs) {
      for (const m of orderFor(members, rep)) await fioRun(ctx, cell(m, job, 'mix'), job, rep, m.path, ctx.opts.regionBytes, m.daemon)
    }
  }
  const real = ctx.real
  if (!real) return
  for (const rep of reps) {
    for (const m of orderFor(members, rep)) await ddRun(ctx, cell(m, REAL_WRITE_JOB, 'real'), rep, m.path, m.daemon)
    for (const job of REAL_READ_JOBS) {
      for (const m of orderFor(members, rep)) {
        if (cell(m, REAL_WRITE_JOB, 'real').error) {
          ctx.progress.step(`${m.t.id} ${m.mode} ${job.title} run ${rep}/${ctx.opts.reps}: skipped (the image was not written)`)
          continue
        }
        await fioRun(ctx, cell(m, job, 'real'), job, rep, m.path, real.bytes, m.daemon)
      }
    }
  }
}

interface Up {
  t: TargetSpec
  daemon: DaemonProc | null
  base: string
}

/** Start a target; `round` names its log (startDaemon waits for a ready line in it: one log per daemon). */
async function startTarget(ctx: Ctx, t: TargetSpec, round: number): Promise<Up> {
  const { opts, cleanup } = ctx
  if (t.kind === 'kernel') {
    kernelZramInit(cleanup, 'lz4', opts.disksize)
    return { t, daemon: null, base: '/dev/zram0' }
  }
  const mount = join(ctx.work, `mnt-${t.id}`)
  mkdirSync(mount, { recursive: true })
  if (t.kind === 'ceiling-c') {
    const daemon = await startProgram(cleanup, t.kind, CEILING_C, ceilingCArgs(t, mount, opts.disksize), mount, join(ctx.work, `${t.id}-${round}.log`), ctx.pidsFile,
      ctx.placement.daemonCpus)
    return { t, daemon, base: join(mount, 'dev', 'zram0') }
  }
  const args = t.kind === 'ceiling'
    ? ['--mount', mount, '--size', String(opts.disksize)]
    : ['start', '--mount', mount, '--disksize', String(opts.disksize), ...daemonArgs(t), ...kcompressdArgs(ctx.placement)]
  const daemon = await startDaemon(cleanup, t.kind, t.kind === 'ceiling' ? CEILING : CLI, args, mount, join(ctx.work, `${t.id}-${round}.log`), ctx.pidsFile,
    ctx.placement.daemonCpus)
  const w = daemon.ready['workers']
  const info = ctx.results.targets.find((x) => x.id === t.id)
  if (info && typeof w === 'number') info.workers = w
  return { t, daemon, base: join(mount, 'dev', 'zram0') }
}

/** The rounds of the matrix, each on daemons of its own (see rounds()). */
async function perfAll(ctx: Ctx, planned: readonly TargetSpec[]): Promise<void> {
  const all = rounds(ctx)
  for (const [i, reps] of all.entries()) await perfRound(ctx, planned, reps, i === 0, all.length > 1 ? ` (run ${reps.join(', ')})` : '')
}

/** Every target up at once (the FUSE daemons idle while another is measured), then the two phases. */
async function perfRound(ctx: Ctx, planned: readonly TargetSpec[], reps: readonly number[], first: boolean, label: string): Promise<void> {
  const { opts, cleanup, results } = ctx
  const ups: Up[] = []
  try {
    for (const p of planned) {
      // A workers=0 variant is only worth running when the default is not already inline.
      const base = results.targets.find((x) => x.kind === p.kind && x.algorithm === p.algorithm && !x.variant && x.transport === undefined)
      const t = resolveVariant(p, base?.workers ?? null)
      if (t !== p && first) {
        note(ctx, `${base?.title ?? 'the default'} already runs inline (kcompressd default: 0 workers on ${results.machine.cpus} CPUs): measuring ${t.title} instead of ${p.title} for the async / inline ratio`)
        const info = results.targets.find((x) => x.id === p.id)
        if (info) Object.assign(info, targetInfo(t))
      }
      try {
        const up = await startTarget(ctx, t, reps[0] ?? 1)
        ups.push(up)
        ctx.progress.line(`${t.title}: ready${up.daemon ? ` (pid ${up.daemon.pid})` : ''}`)
      } catch (e) {
        note(ctx, `${t.id} did not start${label}: ${(e as Error).message}`)
        skipSteps(ctx, t, t.modes, 'did not start', reps.length)
      }
    }
    const daemons = ups.flatMap((u) => (u.daemon ? [u.daemon] : []))
    const phases: { name: string; modes: readonly Mode[] }[] = [
      { name: 'file and block device', modes: ['file', 'dev'] },
      { name: 'loop devices', modes: ['loop'] },
    ]
    for (const phase of phases) {
      const members: Member[] = []
      try {
        for (const u of ups) {
          const mode = u.t.modes.find((m) => phase.modes.includes(m))
          if (!mode) continue
          let loop: string | null = null
          let counted = 0
          try {
            let path = u.base
            if (mode === 'loop') {
              const a = await attachLoop(cleanup, u.base)
              loop = a.dev
              path = a.dev
              if (!a.dio) note(ctx, `${u.t.id}: direct I/O is not active on ${a.dev} (loop/dio = 0): loop figures include the page cache`)
            }
            ctx.progress.step(`${u.t.id} ${mode}: prefill ${formatBytes(opts.regionBytes)} with the mix`)
            counted = 1
            await must(cleanup, ...loadCommand(ctx.placement, 'fio', prefillArgs({ filename: path, sizeBytes: opts.regionBytes, seed: opts.seed, mix: ctx.mix })), 600_000)
            members.push({ t: u.t, mode, path, daemon: u.daemon, loop })
          } catch (e) {
            note(ctx, `${u.t.id} ${mode}: ${(e as Error).message}`)
            if (loop) detachLoop(cleanup, loop, (m) => note(ctx, m))
            for (let i = counted; i < stepsPerRound(ctx, reps.length); i++) ctx.progress.step(`${u.t.id} ${mode}: skipped (setup failed)`)
          }
        }
        ctx.progress.line(`${phase.name}: ${members.map((m) => `${m.t.id} ${m.mode}`).join(', ')}; load ${(readText('/proc/loadavg') ?? '').trim()}`)
        const snap0 = cpuSnapshot(daemons.map((d) => d.pid))
        await perfPhase(ctx, members, reps)
        recordBackground(ctx, phase.name + label, snap0, daemons)
      } finally {
        for (const m of members) if (m.loop) detachLoop(cleanup, m.loop, (msg) => note(ctx, msg))
      }
    }
  } finally {
    for (const u of ups) {
      if (u.daemon) {
        await stopDaemon(cleanup, u.daemon, (m) => note(ctx, m))
        const log = (readText(u.daemon.logPath) ?? '').split('\n')
        if (first && u === ups.find((x) => x.t.kind === 'zramfuse')) noteSwapSafety(ctx, log)
        // swap_safety is said once above: a machine without IO_FLUSHER logs it at error level on every start
        const warnings = log.filter((l) => /"level":(40|50|60)/.test(l) && !l.includes('"event":"swap_safety"'))
        if (warnings.length > 0) note(ctx, `${u.t.id}${label}: the daemon logged ${warnings.length} warning/error line(s), first: ${warnings[0]?.slice(0, 300) ?? ''}`)
      }
      if (u.t.kind === 'kernel') {
        try {
          kernelZramReset(cleanup)
        } catch (e) {
          note(ctx, (e as Error).message)
        }
      }
    }
  }
}

/** What the daemons applied against swap-out (mlockall, IO_FLUSHER), from one daemon's log. */
function noteSwapSafety(ctx: Ctx, log: readonly string[]): void {
  const line = log.find((l) => l.includes('"event":"swap_safety"'))
  if (!line) return
  try {
    const j = JSON.parse(line) as { applied?: boolean; reason?: string; mlockall?: { ok?: boolean }; ioFlusher?: { ok?: boolean; error?: string | null } }
    note(ctx, j.applied
      ? `zramfuse daemons ran with their memory locked (mlockall) and IO_FLUSHER ${j.ioFlusher?.ok ? 'set' : `not set (${j.ioFlusher?.error ?? '?'})`}`
      : `zramfuse daemons ran without swap safety (${j.reason ?? '?'})`)
  } catch {
    // not JSON: nothing to say
  }
}

/** Note what else used the CPU during a phase; a busy machine makes the figures low and noisy. */
function recordBackground(ctx: Ctx, phase: string, snap0: ReturnType<typeof cpuSnapshot>, daemons: readonly DaemonProc[]): void {
  const pids = daemons.map((d) => d.pid)
  const b = backgroundBetween(snap0, cpuSnapshot(pids), new Set(pids))
  ctx.results.background.push({ phase, ...b })
  if (b.othersPct >= 20) {
    note(ctx, `${phase}: other processes used ${b.othersPct.toFixed(0)}% of a CPU meanwhile (top: ${b.top.join('; ') || 'short-lived'})`)
  }
}

// --- fidelity and memory -------------------------------------------------------------------------

interface Stored {
  written: MmStat
  churned: MmStat
  compacted: MmStat
}

/** Write the dataset, read mm_stat; zero-fill every third page, read; compact, read. */
async function storeAndCompact(ctx: Ctx, ds: Dataset, dev: string, sysDir: string, afterWrite: () => void): Promise<Stored> {
  const mm = (): MmStat => parseMmStat(readFileSync(join(sysDir, 'mm_stat'), 'utf8'))
  await must(ctx.cleanup, 'dd', [`if=${ds.path}`, `of=${dev}`, 'bs=1M', 'oflag=direct', 'conv=notrunc,fsync', 'status=none'], 600_000)
  const written = mm()
  afterWrite()
  await must(ctx.cleanup, 'fio', churnArgs({ filename: dev, sizeBytes: ds.bytes, seed: ctx.opts.seed }), 600_000)
  const churned = mm()
  writeFileSync(join(sysDir, 'compact'), '1\n')
  const compacted = mm()
  return { written, churned, compacted }
}

async function fidelity(ctx: Ctx, datasets: Dataset[], targets: readonly TargetSpec[]): Promise<void> {
  const { opts, cleanup } = ctx
  const fuseTargets = targets.filter((t) => t.id === ZRAMFUSE_LZ4.id || t.id === ZRAMFUSE_ZSTD.id)
  for (const ds of datasets) {
    const entry: FidelityEntry = { dataset: ds.id, kernel: null, zramfuse: {} }
    ctx.results.fidelity.push(entry)
    if (ctx.kernelOk) {
      ctx.progress.step(`fidelity ${ds.id}: kernel zram lz4, ${formatBytes(ds.bytes)}`)
      try {
        kernelZramInit(cleanup, 'lz4', opts.disksize)
        const s = await storeAndCompact(ctx, ds, '/dev/zram0', KERNEL_ZRAM, () => undefined)
        entry.kernel = s.written
        ctx.results.memory.push({ target: 'kernel-lz4', dataset: ds.id, disksize: opts.disksize, pageTableBytes: null, rssIdleBytes: null, rssAfterBytes: null, ...s })
      } catch (e) {
        note(ctx, `fidelity ${ds.id} on the kernel zram: ${(e as Error).message}`)
      } finally {
        try {
          kernelZramReset(cleanup)
        } catch (e) {
          note(ctx, (e as Error).message)
        }
      }
    }
    for (const t of fuseTargets) {
      ctx.progress.step(`fidelity ${ds.id}: ${t.title}, ${formatBytes(ds.bytes)}`)
      const mount = join(ctx.work, `fid-${t.id}-${ds.id}`)
      mkdirSync(mount, { recursive: true })
      let d: DaemonProc | null = null
      try {
        d = await startDaemon(cleanup, 'zramfuse', CLI, ['start', '--mount', mount, '--disksize', String(opts.disksize), ...daemonArgs(t)], mount, join(ctx.work, `fid-${t.id}-${ds.id}.log`), ctx.pidsFile)
        const daemon = d
        const sysDir = join(mount, 'sys', 'block', 'zram0')
        const rssIdle = vmRssBytes(daemon.pid)
        let rssAfter: number | null = null
        const s = await storeAndCompact(ctx, ds, join(mount, 'dev', 'zram0'), sysDir, () => {
          rssAfter = vmRssBytes(daemon.pid)
        })
        const ptb = Number((readText(join(sysDir, 'zramfuse', 'page_table_bytes')) ?? 'NaN').trim())
        entry.zramfuse[t.id] = s.written
        const m: MemoryEntry = {
          target: t.id, dataset: ds.id, disksize: opts.disksize, pageTableBytes: Number.isFinite(ptb) ? ptb : null,
          rssIdleBytes: rssIdle, rssAfterBytes: rssAfter, ...s,
        }
        ctx.results.memory.push(m)
      } catch (e) {
        note(ctx, `fidelity ${ds.id} on ${t.id}: ${(e as Error).message}`)
      } finally {
        if (d) await stopDaemon(cleanup, d, (msg) => note(ctx, msg))
      }
    }
    if (entry.kernel) {
      const lz4 = entry.zramfuse[ZRAMFUSE_LZ4.id]
      err(`bench: fidelity ${ds.id}:\n  kernel   ${formatMmStat(entry.kernel)}${lz4 ? `\n  zramfuse ${formatMmStat(lz4)}\n${mmStatDiffLines(entry.kernel, lz4).join('\n')}` : ''}`)
    }
  }
}

// --- main ----------------------------------------------------------------------------------------

function targetInfo(t: TargetSpec): TargetInfo {
  return {
    id: t.id, title: t.title, kind: t.kind, modes: [...t.modes], algorithm: t.algorithm,
    workers: typeof t.workers === 'number' ? t.workers : null, variant: t.variant, ...(t.twinOf ? { twinOf: t.twinOf } : {}),
    ...(t.transport ? { transport: t.transport } : {}), ...(t.threads ? { threads: t.threads } : {}),
  }
}

/**
 * Build the C ceiling if it is missing or older than its source (scripts/build-ceiling.sh is
 * idempotent and takes a fraction of a second). Never throws: a failed build leaves the two C
 * targets out, with the script's error as the reason.
 */
function buildCeilingC(): { ok: boolean; reason: string } {
  try {
    execFileSync('bash', [BUILD_CEILING_C], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 })
  } catch (e) {
    const stderr = (e as { stderr?: unknown }).stderr
    const text = typeof stderr === 'string' ? stderr : String(e)
    const why = text.split('\n').filter((l) => /ERROR/.test(l)).map((l) => l.replace(/^build-ceiling\.sh: ERROR: /, '')).join('; ')
    return { ok: false, reason: `bash scripts/build-ceiling.sh failed: ${why || text.trim().slice(-300)}` }
  }
  return existsSync(CEILING_C) ? { ok: true, reason: '' } : { ok: false, reason: `${CEILING_C} is missing after scripts/build-ceiling.sh` }
}

/** The measured source: the commit .git/HEAD names (read, git is not run) and when dist/ was built. */
function sourceInfo(): string {
  const parts: string[] = []
  const head = (readText(join(REPO, '.git', 'HEAD')) ?? '').trim()
  let commit: string | null = null
  const ref = /^ref: (.+)$/.exec(head)?.[1]
  if (ref) {
    commit = (readText(join(REPO, '.git', ref)) ?? '').trim() || null
    if (!commit) {
      const packed = (readText(join(REPO, '.git', 'packed-refs')) ?? '').split('\n').find((l) => l.endsWith(` ${ref}`))
      commit = packed?.split(' ')[0] ?? null
    }
  } else if (/^[0-9a-f]{40}$/.test(head)) commit = head
  parts.push(commit ? `commit ${commit.slice(0, 12)}${ref ? ` (${ref.replace('refs/heads/', '')})` : ''} plus any uncommitted changes` : 'commit unknown')
  try {
    parts.push(`dist built ${statSync(CLI).mtime.toISOString()}`)
  } catch {
    // no build
  }
  return parts.join('; ')
}

function stamp(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`
}

function writeOutputs(ctx: Ctx, startedAt: Date): { md: string, files: string[] } {
  const r = ctx.results
  const finished = new Date()
  r.finishedAt = finished.toISOString()
  r.durationS = (finished.getTime() - startedAt.getTime()) / 1000
  mkdirSync(ctx.opts.outDir, { recursive: true })
  const stem = stamp(startedAt) + (ctx.opts.quick ? '-quick' : '')
  const charts = buildCharts(r)
  const chartFiles = charts.map((c) => {
    const file = `${stem}-${c.name}.svg`
    writeFileSync(join(ctx.opts.outDir, file), c.svg)
    return { file, title: c.title }
  })
  writeFileSync(join(ctx.opts.outDir, `${stem}.json`), JSON.stringify(r, null, 1) + '\n')
  const md = join(ctx.opts.outDir, `${stem}.md`)
  writeFileSync(md, renderReport(r, chartFiles))
  return { md, files: [md, join(ctx.opts.outDir, `${stem}.json`), ...chartFiles.map((c) => join(ctx.opts.outDir, c.file))] }
}

/**
 * Recompression (lz4 to zstd level 9) of the dataset through the mount, single pages and units of
 * 16, with 4 KiB reads at QD1 going on: its time, memory before and after, and the read p99
 * against the same reads just before (bench/recompress-latency.ts).
 */
async function recompression(ctx: Ctx, ds: Dataset): Promise<void> {
  const rows: RecompressLatencyRow[] = []
  ctx.results.recompression = rows
  const data = readFileSync(ds.path)
  for (const unitPages of [1, 16]) {
    err(`bench: recompression, ${unitPages === 1 ? 'single pages' : `units of ${unitPages}`}, of ${ds.title}`)
    rows.push(await recompressLatency({
      cleanup: ctx.cleanup, work: ctx.work, cli: CLI, data, dataName: ds.title, unitPages, zstdLevel: 9,
      baselineS: ctx.opts.quick ? 2 : 4, seed: ctx.opts.seed, log: (m) => err(`bench: ${m}`),
    }))
  }
}

async function main(): Promise<number> {
  let opts: BenchOptions
  try {
    opts = parseBenchArgs(process.argv.slice(2), join(REPO, 'bench', 'out'))
  } catch (e) {
    err(`bench: ${(e as Error).message}\n${USAGE}`)
    return 2
  }
  if (opts.help) {
    process.stdout.write(USAGE)
    return 0
  }
  if (opts.codecs) {
    // The codec microbenchmark alone: no root, no mounts.
    process.stdout.write(runCodecBench({ corpusBytes: opts.codecCorpusBytes, seconds: opts.codecSeconds }, err))
    return 0
  }
  if (process.getuid?.() !== 0) {
    err('bench: must run as root (losetup, the kernel zram, dropping into FUSE mounts)')
    return 2
  }
  for (const tool of ['fio', 'losetup', 'dd', 'mke2fs', 'fusermount', ...(opts.pin === 'none' ? [] : ['taskset'])]) {
    try {
      execFileSync('sh', ['-c', `command -v ${tool}`], { stdio: 'ignore' })
    } catch {
      err(`bench: ${tool} is not installed (scripts/setup.sh installs the tools)`)
      return 2
    }
  }
  for (const f of [CLI, CEILING]) {
    if (!existsSync(f)) {
      err(`bench: ${f} missing: run npm run build first`)
      return 2
    }
  }
  if (opts.awake) {
    // Before anything is set up: the request is held until the process exits.
    try {
      holdNoHalt()
    } catch (e) {
      err(`bench: ${e instanceof Error ? e.message : String(e)}`)
      return 2
    }
  }
  const startedAt = new Date()
  const work = join(BENCH_TMP, String(process.pid))
  const shm = SHM_PREFIX + String(process.pid)
  mkdirSync(work, { recursive: true })
  const cleanup = new Cleanup((m) => err(`bench: ${m}`), work)
  mkdirSync(shm, { recursive: true })
  cleanup.removeDirAtEnd(work)
  cleanup.removeDirAtEnd(shm)

  const results: BenchResults = {
    version: RESULTS_VERSION,
    startedAt: startedAt.toISOString(),
    finishedAt: '',
    durationS: 0,
    machine: {
      kernel: release(), cpus: cpus().length, memTotalBytes: totalmem(),
      fioVersion: execFileSync('fio', ['--version'], { encoding: 'utf8' }).trim(), nodeVersion: process.version, cpuidleDriver: cpuidleDriver(readText),
      loadAvgStart: (readText('/proc/loadavg') ?? '').trim(), loadAvgEnd: '', busyStart: [], busyEnd: [],
    },
    config: {
      quick: opts.quick, reps: opts.reps, runtimeS: opts.runtimeS, regionBytes: opts.regionBytes, disksize: opts.disksize,
      seed: opts.seed, mix: describeMix(DEFAULT_MIX), fidelityMix: '', realSource: 'none',
      command: `npm run bench${process.argv.length > 2 ? ' -- ' + process.argv.slice(2).join(' ') : ''}`,
      source: sourceInfo(),
    },
    targets: [], datasets: [], notes: [], perf: [], fidelity: [], memory: [], background: [],
  }
  const placement = planPlacement(opts.pin, cpus().length)
  results.config.placement = placement.mode === 'none' ? 'none: the scheduler places daemons and fio'
    : `${placement.mode}: daemons on CPU ${placement.daemonCpus ?? ''}, fio and dd on CPU ${placement.loadCpus ?? ''} (taskset)` +
      (kcompressdArgs(placement).length > 0 ? `; kcompressd workers on CPU ${placement.loadCpus ?? ''} (--kcompressd-cpus)` : '')
  const ctx: Ctx = {
    opts, jobs: opts.jobs === null ? JOBS : JOBS.filter((j) => opts.jobs?.includes(j.id)), cleanup, progress: new Progress(0), results, work, shm, pidsFile: join(work, 'pids'),
    placement, mix: DEFAULT_MIX, real: null, kernelOk: false,
  }
  if (placement.note) note(ctx, placement.note)
  if (opts.awake) {
    results.config.placement += '; no CPU halts when idle (--awake: cpu_dma_latency 0)'
  }
  results.config.daemons = opts.keepDaemons ? 'one set for all runs (--keep-daemons), each target prefilled once per mode'
    : 'fresh for every run: started, prefilled per mode, measured, stopped'

  let interrupted = false
  const onSignal = (sig: NodeJS.Signals): void => {
    if (interrupted) return
    interrupted = true
    err(`bench: ${sig}: cleaning up (losetup -d, stopping daemons, resetting zram0)`)
    cleanup.runSync()
    try {
      results.notes.push(`interrupted by ${sig}: partial results`)
      err(`bench: partial report: ${writeOutputs(ctx, startedAt).md}`)
    } catch {
      // nothing more
    }
    process.exit(130)
  }
  process.on('SIGINT', onSignal)
  process.on('SIGTERM', onSignal)
  process.on('SIGHUP', onSignal)
  process.on('exit', () => cleanup.runSync())

  try {
    for (const n of cleanStale((m) => err(`bench: ${m}`))) note(ctx, n)
    err('bench: sampling background CPU use for 2 s')
    results.machine.busyStart = await busyProcesses(2000, 5, new Set([process.pid]))
    if (results.machine.busyStart.length > 0) {
      note(ctx, `other processes were using CPU when the run started (figures may be low and noisy): ${results.machine.busyStart.join('; ')}`)
    }
    const usage = (() => {
      try {
        return execFileSync(process.execPath, [CLI, '--help'], { encoding: 'utf8', timeout: 30_000 })
      } catch {
        return ''
      }
    })()
    // Only look at (and possibly reset) the kernel's zram when it is one of the targets.
    const wantKernel = opts.only === null || opts.only.includes('kernel-lz4')
    const kz = wantKernel ? checkKernelZram() : { ok: false, reason: 'not selected', resetNote: null }
    if (kz.resetNote) note(ctx, kz.resetNote)
    // Only build the C ceiling when it is one of the targets.
    const wantC = opts.only === null || opts.only.includes(CEILING_C_SINGLE.id) || opts.only.includes(CEILING_C_MULTI.id)
    const cc = wantC ? buildCeilingC() : { ok: false, reason: 'not selected' }
    const plan = planTargets({
      workers: /--workers\b/.test(usage), kernelZram: kz.ok, kernelZramReason: kz.reason,
      ceilingC: cc.ok, ceilingCReason: cc.reason, transports: /--transport\b/.test(usage),
    }, opts.only)
    for (const s of plan.skipped) note(ctx, `skipped ${s.target.title}: ${s.reason}`)
    ctx.kernelOk = plan.targets.some((t) => t.kind === 'kernel')
    results.targets = plan.targets.map(targetInfo)
    note(ctx, 'no discard/trim jobs in the matrix (test/e2e/discard.test.ts covers discard); fio runs with fallocate=none')

    err('bench: generating the datasets')
    const mixDs = makeMixDataset(ctx)
    ctx.real = opts.real ? makeRealDataset(ctx) : null
    if (!opts.real) note(ctx, 'real-data pass skipped (--no-real)')
    results.config.fidelityMix = `${formatBytes(mixDs.bytes)}: ${mixDs.source}`
    results.config.realSource = ctx.real ? ctx.real.source : 'none (skipped)'
    results.datasets = [mixDs, ...(ctx.real ? [ctx.real] : [])].map(({ path: _p, ...info }) => info)
    ctx.progress.total = stepsFor(ctx, plan.targets)

    if (opts.perf) await perfAll(ctx, plan.targets)
    if (opts.fidelity) {
      const snap0 = cpuSnapshot([])
      await fidelity(ctx, [mixDs, ...(ctx.real ? [ctx.real] : [])], plan.targets)
      recordBackground(ctx, 'fidelity and memory', snap0, [])
      await recompression(ctx, ctx.real ?? mixDs)
    }
  } catch (e) {
    note(ctx, `aborted: ${(e as Error).stack ?? String(e)}`)
  } finally {
    cleanup.runSync()
  }
  results.machine.loadAvgEnd = (readText('/proc/loadavg') ?? '').trim()
  results.machine.busyEnd = await busyProcesses(1000, 5, new Set([process.pid]))
  const { md, files } = writeOutputs(ctx, startedAt)
  process.stdout.write(`\n${summarySection(results)}\n\nReport: ${relative(process.cwd(), md) || md}\n`)
  const aborted = results.notes.some((n) => n.startsWith('aborted'))
  if (opts.publish && !aborted) {
    const dir = join(REPO, 'bench', 'results')
    publishReport(files, dir)
    process.stdout.write(`Published: ${relative(process.cwd(), dir) || dir} now holds this report only (commit it with the README's table)\n`)
  }
  return aborted ? 1 : 0
}

if (require.main === module) {
  main().then((code) => process.exit(code), (e: unknown) => {
    err(`bench: ${e instanceof Error ? e.stack ?? e.message : String(e)}`)
    process.exit(1)
  })
}
