/**
 * The perf phase: every target x mode x fio job, N timed runs each, in interleaved rounds (fresh
 * daemons per run unless --keep-daemons), plus the real-data dd and reads.
 */
import { mkdirSync } from 'node:fs'
import { join } from 'node:path'
import { parseFioOutput, runFigures } from './fio-parse'
import { type JobSpec, REAL_READ_JOBS, REAL_WRITE_JOB, fioArgs, jobDirection, jobUnit, jobValue, prefillArgs } from './jobs'
import { kcompressdArgs, loadCommand, orderFor } from './placement'
import { type PerfCell, type PerfRun } from './results'
import { formatBytes } from './size'
import { backgroundBetween, cpuSnapshot, type DaemonProc, attachLoop, clkTck, cpuTicks, detachLoop, kernelZramInit, kernelZramReset, must, readText, run, startDaemon, startProgram, stopDaemon } from './sys'
import { type Mode, type TargetSpec, ZRAMFUSE_LZ4, ZRAMFUSE_ZSTD, ceilingCArgs, daemonArgs, resolveVariant } from './targets'
import { CLI, CEILING, CEILING_C, type Ctx, note } from './context'
import { targetInfo } from './outputs'

export function stepsFor(ctx: Ctx, targets: readonly TargetSpec[]): number {
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

export function daemonCpu(d: DaemonProc | null, t0: number | null, wallS: number): number | null {
  if (!d || t0 === null) return null
  const t1 = cpuTicks(d.pid)
  return t1 === null ? null : ((t1 - t0) / clkTck() / wallS) * 100
}

export function fmtRun(job: JobSpec, r: PerfRun): string {
  const v = jobValue(job, r.iops, r.bwBytes)
  const cpu = r.daemonCpuPct === null ? '' : `, daemon CPU ${r.daemonCpuPct.toFixed(0)}%`
  return `${v.toFixed(job.metric === 'iops' ? 1 : 0)} ${jobUnit(job)}${cpu}`
}

/** One timed fio run of a cell's job, appended to the cell (or recorded as its error). */
export async function fioRun(ctx: Ctx, cell: PerfCell, job: JobSpec, rep: number, path: string, sizeBytes: number, d: DaemonProc | null): Promise<void> {
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
export async function ddRun(ctx: Ctx, cell: PerfCell, rep: number, path: string, d: DaemonProc | null): Promise<void> {
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
export interface Member {
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
export function rounds(ctx: Ctx): number[][] {
  const all = Array.from({ length: ctx.opts.reps }, (_, i) => i + 1)
  return ctx.opts.keepDaemons ? [all] : all.map((r) => [r])
}

/** Progress steps of one target and mode in a round of `reps` repetitions: the prefill, then the runs. */
export function stepsPerRound(ctx: Ctx, reps: number): number {
  return 1 + ctx.jobs.length * reps + (ctx.real ? (1 + REAL_READ_JOBS.length) * reps : 0)
}

export function stepsPerMode(ctx: Ctx): number {
  return rounds(ctx).reduce((n, r) => n + stepsPerRound(ctx, r.length), 0)
}

export function skipSteps(ctx: Ctx, t: TargetSpec, modes: readonly Mode[], why: string, reps: number): void {
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
export async function perfPhase(ctx: Ctx, members: Member[], reps: readonly number[]): Promise<void> {
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

export interface Up {
  t: TargetSpec
  daemon: DaemonProc | null
  base: string
}

/** Start a target; `round` names its log (startDaemon waits for a ready line in it: one log per daemon). */
export async function startTarget(ctx: Ctx, t: TargetSpec, round: number): Promise<Up> {
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
export async function perfAll(ctx: Ctx, planned: readonly TargetSpec[]): Promise<void> {
  const all = rounds(ctx)
  for (const [i, reps] of all.entries()) await perfRound(ctx, planned, reps, i === 0, all.length > 1 ? ` (run ${reps.join(', ')})` : '')
}

/** Every target up at once (the FUSE daemons idle while another is measured), then the two phases. */
export async function perfRound(ctx: Ctx, planned: readonly TargetSpec[], reps: readonly number[], first: boolean, label: string): Promise<void> {
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
export function noteSwapSafety(ctx: Ctx, log: readonly string[]): void {
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
export function recordBackground(ctx: Ctx, phase: string, snap0: ReturnType<typeof cpuSnapshot>, daemons: readonly DaemonProc[]): void {
  const pids = daemons.map((d) => d.pid)
  const b = backgroundBetween(snap0, cpuSnapshot(pids), new Set(pids))
  ctx.results.background.push({ phase, ...b })
  if (b.othersPct >= 20) {
    note(ctx, `${phase}: other processes used ${b.othersPct.toFixed(0)}% of a CPU meanwhile (top: ${b.top.join('; ') || 'short-lived'})`)
  }
}
