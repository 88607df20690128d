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
 * report committed there). Progress goes to stderr; the summary table to stdout. Everything it
 * mounts or attaches is undone on exit, failure and signals.
 *
 * This file is the run itself (options, set-up, the order of phases, clean-up); the phases are
 * perf-phase.ts and fidelity-phase.ts, on datasets.ts; context.ts is what they share; outputs.ts
 * writes the report (report.ts renders it, noise.ts and stats.ts are the analysis).
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync } from 'node:fs'
import { cpus, release, totalmem } from 'node:os'
import { join, relative } from 'node:path'
import { runCodecBench } from './codecs'
import { DEFAULT_MIX, JOBS, describeMix } from './jobs'
import { type BenchOptions, USAGE, parseBenchArgs } from './options'
import { kcompressdArgs, planPlacement } from './placement'
import { summarySection } from './report'
import { publishReport } from './publish'
import { type BenchResults, RESULTS_VERSION } from './results'
import { cpuidleDriver } from './cpuidle'
import { formatBytes } from './size'
import { BENCH_TMP, Cleanup, cpuSnapshot, SHM_PREFIX, busyProcesses, checkKernelZram, cleanStale, holdNoHalt, readText } from './sys'
import { CEILING_C_MULTI, CEILING_C_SINGLE, planTargets } from './targets'
import { REPO, CLI, CEILING, err, Progress, Ctx, note } from './context'
import { makeMixDataset, makeRealDataset } from './datasets'
import { stepsFor, perfAll, recordBackground } from './perf-phase'
import { fidelity, recompression } from './fidelity-phase'
import { targetInfo, buildCeilingC, sourceInfo, writeOutputs } from './outputs'

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
