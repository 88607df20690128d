/** The Markdown report and its charts, made from a run's raw results. Pure: results in, text out. */
import { ALL_JOBS, JOBS, type JobSpec, REAL_READ_JOBS, REAL_WRITE_JOB, jobUnit, jobValue } from './jobs'
import { MM_STAT_FIELDS, MM_STAT_PAGE_FIELDS, type MmStat, compressionRatio, diffMmStat, formatMmStat, poolOverhead } from './mmstat'
import { type AaBand, NOT_SIGNIFICANT, aaBand, classify, fmtBand } from './noise'
import { PAGE_KINDS } from './mix'
import type { BenchResults, MemoryEntry, PerfCell, TargetInfo } from './results'
import { cpuidleHonoursQos } from './cpuidle'
import { latencyTable } from './recompress-latency'
import { formatBytes } from './size'
import { type Summary, ratio, summarize } from './stats'
import { type BarChart, type Group, renderBarChart } from './svg'
import type { Mode } from './targets'

/** The figure of each run of a cell, in its job's unit (k IOPS or MB/s). */
export function cellValues(cell: PerfCell, job: JobSpec): number[] {
  return cell.runs.map((r) => jobValue(job, r.iops, r.bwBytes))
}

export function cellSummary(cell: PerfCell | undefined, job: JobSpec): Summary | null {
  return cell ? summarize(cellValues(cell, job)) : null
}

export function findCell(r: BenchResults, target: string, mode: Mode, job: JobSpec): PerfCell | undefined {
  const data = job.id.startsWith('real-') ? 'real' : 'mix'
  return r.perf.find((c) => c.target === target && c.mode === mode && c.job === job.id && c.data === data)
}

/** How a target is reached in a table for `mode`: the kernel's zram only as its block device. */
function modeFor(t: TargetInfo, mode: Mode): Mode | null {
  if (t.modes.includes(mode)) return mode
  if (t.kind === 'kernel' && t.modes.includes('dev')) return 'dev'
  return null
}

export function fmtFig(v: number): string {
  const a = Math.abs(v)
  if (a >= 100) return v.toFixed(0)
  if (a >= 10) return v.toFixed(1)
  return v.toFixed(2)
}

/** "15.2 (14.8–15.9)"; one run prints just the figure. */
export function fmtSummary(s: Summary | null): string {
  if (!s) return 'n/a'
  if (s.n === 1 || s.min === s.max) return fmtFig(s.median)
  return `${fmtFig(s.median)} (${fmtFig(s.min)}–${fmtFig(s.max)})`
}

export function fmtRatio(x: number | null): string {
  return x === null ? 'n/a' : `${x.toFixed(2)}×`
}

/** A relative difference in percent: two decimals, or two significant digits when smaller than 0.01%. */
export function fmtRel(x: number | null): string {
  if (x === null) return 'n/a'
  if (x === 0) return '0%'
  const p = x * 100
  return Math.abs(p) >= 0.01 ? `${p.toFixed(2)}%` : `${p.toPrecision(2)}%`
}

/** A Markdown table; `left` names the left-aligned columns (text), the others are right-aligned (figures). */
function mdTable(header: string[], rows: string[][], left: readonly number[] = [0]): string {
  const esc = (c: string): string => c.replace(/\|/g, '\\|')
  const lines = [`| ${header.map(esc).join(' | ')} |`, `| ${header.map((_, i) => (left.includes(i) ? '---' : '---:')).join(' | ')} |`]
  for (const r of rows) lines.push(`| ${r.map(esc).join(' | ')} |`)
  return lines.join('\n')
}

function jobsFor(r: BenchResults): JobSpec[] {
  return ALL_JOBS.filter((j) => r.perf.some((c) => c.job === j.id))
}

/** The A/A twin reached as `mode`, and the target it duplicates. */
export function aaPair(r: BenchResults, mode: Mode): { base: TargetInfo; twin: TargetInfo } | null {
  const twin = r.targets.find((t) => t.twinOf !== undefined && t.modes.includes(mode))
  const base = twin ? r.targets.find((t) => t.id === twin.twinOf && t.modes.includes(mode)) : undefined
  return twin && base ? { base, twin } : null
}

/** The A/A band of one job reached as `mode`; null without a twin or its runs. */
export function aaBandFor(r: BenchResults, mode: Mode, job: JobSpec): AaBand | null {
  const p = aaPair(r, mode)
  if (!p) return null
  const base = findCell(r, p.base.id, mode, job)
  const twin = findCell(r, p.twin.id, mode, job)
  return base && twin && !base.error && !twin.error ? aaBand(cellValues(base, job), cellValues(twin, job)) : null
}

/** An A/B ratio, marked when it lies inside the A/A band of its job. */
export function fmtRatioVsNoise(x: number | null, band: AaBand | null): string {
  return classify(x, band) === 'noise' ? `${fmtRatio(x)} ${NOT_SIGNIFICANT}` : fmtRatio(x)
}

/** The A/A column: the twin's median over its base's, and the band the runs span. */
export function fmtAa(band: AaBand | null): string {
  return band === null ? 'n/a' : `${fmtRatio(band.ratio)} (${fmtBand(band)})`
}

/** For each algorithm, the inline (workers=0) and async (workers>0) zramfuse targets, defaults first. */
export function asyncInlinePairs(r: BenchResults): { algorithm: string; inline: TargetInfo; async: TargetInfo }[] {
  const out: { algorithm: string; inline: TargetInfo; async: TargetInfo }[] = []
  // the default transport only: a fuse-native daemon is another arm, not an inline or async one
  const fuse = r.targets.filter((t) => t.kind === 'zramfuse' && t.twinOf === undefined && t.transport === undefined)
  const byDefaultFirst = (a: TargetInfo, b: TargetInfo): number => Number(a.variant) - Number(b.variant)
  for (const algorithm of [...new Set(fuse.map((t) => t.algorithm ?? ''))]) {
    const same = fuse.filter((t) => (t.algorithm ?? '') === algorithm).sort(byDefaultFirst)
    const inline = same.find((t) => t.workers === 0)
    const async = same.find((t) => t.workers !== null && t.workers > 0)
    if (inline && async) out.push({ algorithm, inline, async })
  }
  return out
}

function workersLabel(t: TargetInfo): string {
  return t.workers === null ? t.title : t.variant ? t.title : `${t.title} (workers=${t.workers})`
}

/**
 * The table of absolute figures and ratios for one way of reaching the FUSE targets ('file' or
 * 'loop'); the kernel's zram appears as its block device in both. Ratios are of medians. The
 * --workers variants are left to the kcompressd table; only their async / inline ratio is here.
 */
export function perfTable(r: BenchResults, mode: 'file' | 'loop'): string {
  const targets = r.targets.filter((t) => !t.variant && modeFor(t, mode) !== null)
  const ceiling = targets.find((t) => t.kind === 'ceiling')
  const kernel = targets.find((t) => t.kind === 'kernel')
  const fuse = targets.filter((t) => t.kind === 'zramfuse')
  const header = ['job', 'unit', ...targets.map((t) => (t.kind === 'kernel' && mode === 'loop' ? `${t.title} (block dev)` : t.title))]
  const ratioCols: { title: string; num: TargetInfo; den: TargetInfo }[] = []
  for (const z of fuse) {
    if (ceiling) ratioCols.push({ title: `${z.title} / ceiling`, num: z, den: ceiling })
  }
  for (const z of fuse) {
    if (kernel) ratioCols.push({ title: `${z.title} / kernel`, num: z, den: kernel })
  }
  for (const p of asyncInlinePairs(r)) {
    if (p.async.modes.includes(mode) && p.inline.modes.includes(mode)) {
      ratioCols.push({ title: `${p.algorithm} async (workers=${String(p.async.workers)}) / inline`, num: p.async, den: p.inline })
    }
  }
  const aa = aaPair(r, mode)
  if (aa) header.push(`A/A: ${aa.twin.title} / ${aa.base.title}`)
  header.push(...ratioCols.map((c) => c.title))
  const rows: string[][] = []
  for (const job of jobsFor(r)) {
    const sum = (t: TargetInfo): Summary | null => {
      const m = modeFor(t, mode)
      return m ? cellSummary(findCell(r, t.id, m, job), job) : null
    }
    if (targets.every((t) => sum(t) === null)) continue
    const band = aaBandFor(r, mode, job)
    rows.push([
      job.title,
      jobUnit(job),
      ...targets.map((t) => fmtSummary(sum(t))),
      ...(aa ? [fmtAa(band)] : []),
      ...ratioCols.map((c) => fmtRatioVsNoise(ratio(sum(c.num), sum(c.den)), band)),
    ])
  }
  return mdTable(header, rows, [0, 1])
}

/** The C libfuse3 one-thread ceiling of a run (issue 27), if it ran. */
export function ceilingCBase(r: BenchResults): TargetInfo | undefined {
  return r.targets.find((t) => t.kind === 'ceiling-c' && t.threads === 'single')
}

/**
 * Every job's figure as a ratio to the C libfuse3 one-thread ceiling, for each target shown in
 * perfTable (variants and the A/A twin aside), marked n.s. inside the job's A/A band; null when the
 * C ceiling did not run in this mode.
 */
export function ceilingCRatioTable(r: BenchResults, mode: 'file' | 'loop'): string | null {
  const base = ceilingCBase(r)
  if (!base || !base.modes.includes(mode)) return null
  const targets = r.targets.filter((t) => !t.variant && t.id !== base.id && modeFor(t, mode) !== null)
  const header = ['job', ...targets.map((t) => `${t.kind === 'kernel' && mode === 'loop' ? `${t.title} (block dev)` : t.title} / ${base.title}`)]
  const rows: string[][] = []
  for (const job of jobsFor(r)) {
    const sum = (t: TargetInfo): Summary | null => {
      const m = modeFor(t, mode)
      return m ? cellSummary(findCell(r, t.id, m, job), job) : null
    }
    const den = sum(base)
    if (den === null) continue
    const band = aaBandFor(r, mode, job)
    rows.push([job.title, ...targets.map((t) => fmtRatioVsNoise(ratio(sum(t), den), band))])
  }
  return rows.length === 0 ? null : mdTable(header, rows)
}

/** The ratio table to the C ceiling with the line that says what it is, or nothing. */
function ceilingCSection(r: BenchResults, mode: 'file' | 'loop'): string[] {
  const table = ceilingCRatioTable(r, mode)
  const base = ceilingCBase(r)
  if (table === null || !base) return []
  return ['', `Ratio to ${base.title} (C RAM file over libfuse3's low-level API, fuse_session_loop; median over its median, ` +
    `${NOT_SIGNIFICANT} inside the A/A band):`, '', table]
}

/** kcompressd: every zramfuse target on the block file, by worker count, with async / inline. */
export function workersTable(r: BenchResults): string | null {
  const pairs = asyncInlinePairs(r)
  if (pairs.length === 0) return null
  const cols = pairs.flatMap((p) => [p.inline, p.async])
  const aa = aaPair(r, 'file')
  const header = ['job', 'unit', ...cols.map(workersLabel), ...(aa ? ['A/A'] : []), ...pairs.map((p) => `${p.algorithm} async / inline`)]
  const rows: string[][] = []
  for (const job of jobsFor(r)) {
    const sum = (t: TargetInfo): Summary | null => cellSummary(findCell(r, t.id, 'file', job), job)
    if (cols.every((t) => sum(t) === null)) continue
    const band = aaBandFor(r, 'file', job)
    rows.push([job.title, jobUnit(job), ...cols.map((t) => fmtSummary(sum(t))), ...(aa ? [fmtAa(band)] : []),
      ...pairs.map((p) => fmtRatioVsNoise(ratio(sum(p.async), sum(p.inline)), band))])
  }
  return mdTable(header, rows, [0, 1])
}

/** Per cell: median (min–max), latency, CPU of the daemon and of fio. */
export function detailTable(r: BenchResults): string {
  const rows: string[][] = []
  for (const t of r.targets) {
    for (const mode of t.modes) {
      for (const job of jobsFor(r)) {
        const cell = findCell(r, t.id, mode, job)
        if (!cell) continue
        const s = cellSummary(cell, job)
        const med = (xs: (number | null)[]): number | null => summarize(xs.filter((x): x is number => x !== null))?.median ?? null
        const lat = med(cell.runs.map((x) => x.latMeanNs))
        const p99 = med(cell.runs.map((x) => x.clatP99Ns))
        const dcpu = med(cell.runs.map((x) => x.daemonCpuPct))
        const fcpu = med(cell.runs.map((x) => x.fioCpuPct))
        rows.push([
          t.title, mode, job.title, `${fmtSummary(s)} ${jobUnit(job)}`,
          lat === null ? 'n/a' : (lat / 1000).toFixed(1),
          p99 === null ? 'n/a' : (p99 / 1000).toFixed(1),
          dcpu === null ? 'n/a' : dcpu.toFixed(0),
          fcpu === null ? 'n/a' : fcpu.toFixed(0),
          String(cell.runs.length) + (cell.error ? ` (error: ${cell.error})` : ''),
        ])
      }
    }
  }
  return mdTable(['target', 'mode', 'job', 'median (min–max)', 'mean lat µs', 'p99 clat µs', 'daemon CPU %', 'fio CPU %', 'runs'], rows, [0, 1, 2])
}

function fmtCol(field: (typeof MM_STAT_FIELDS)[number], v: number): string {
  return MM_STAT_PAGE_FIELDS.has(field) ? String(v) : `${v} (${formatBytes(v)})`
}

export function fidelitySection(r: BenchResults): string {
  const out: string[] = []
  for (const f of r.fidelity) {
    const ds = r.datasets.find((d) => d.id === f.dataset)
    out.push(`### ${ds?.title ?? f.dataset}`)
    if (ds) out.push('', `${formatBytes(ds.bytes)} from ${ds.source}.`)
    const lines: string[] = []
    if (f.kernel) lines.push(`kernel zram lz4   ${formatMmStat(f.kernel)}`)
    for (const [id, s] of Object.entries(f.zramfuse)) {
      const title = r.targets.find((t) => t.id === id)?.title ?? id
      lines.push(`${title.padEnd(17)} ${formatMmStat(s)}`)
    }
    out.push('', 'mm_stat:', '', '```', ...lines, '```', '')
    const lz4 = f.zramfuse['zramfuse-lz4']
    if (f.kernel && lz4) {
      const rows = diffMmStat(f.kernel, lz4).map((d) => [
        d.field, fmtCol(d.field, d.a), fmtCol(d.field, d.b), String(d.diff), d.rel === null ? (d.diff === 0 ? '0' : 'n/a') : fmtRel(d.rel),
      ])
      out.push(mdTable(['column', 'kernel zram lz4', 'zramfuse lz4', 'zramfuse − kernel', 'relative'], rows), '')
    } else if (!f.kernel) {
      out.push('Kernel zram not measured (see notes): no per-column differences.', '')
    }
    const ratios: string[] = []
    if (f.kernel) ratios.push(`kernel lz4 ${fmtRatio(compressionRatio(f.kernel))}`)
    for (const [id, s] of Object.entries(f.zramfuse)) ratios.push(`${id} ${fmtRatio(compressionRatio(s))}`)
    out.push(`Compression ratio (orig_data_size / compr_data_size): ${ratios.join(', ')}.`, '')
  }
  return out.join('\n')
}

export function memoryTable(r: BenchResults): string {
  const rows = r.memory.map((m: MemoryEntry) => {
    const t = r.targets.find((x) => x.id === m.target)
    const pages = m.disksize / 4096
    const beyond = m.rssAfterBytes === null ? null : m.rssAfterBytes - m.written.mem_used_total
    return [
      t?.title ?? m.target,
      m.dataset,
      m.pageTableBytes === null ? 'n/a' : (m.pageTableBytes / pages).toFixed(2),
      m.rssIdleBytes === null ? 'n/a' : formatBytes(m.rssIdleBytes),
      m.rssAfterBytes === null ? 'n/a' : formatBytes(m.rssAfterBytes),
      beyond === null ? 'n/a' : formatBytes(beyond),
      formatBytes(m.written.mem_used_total),
      fmtRatio(poolOverhead(m.written)),
      fmtRatio(poolOverhead(m.churned)),
      fmtRatio(poolOverhead(m.compacted)),
      String(m.compacted.pages_compacted - m.churned.pages_compacted),
    ]
  })
  return mdTable([
    'target', 'data', 'metadata B/page', 'RSS idle', 'RSS with data', 'RSS beyond pool', 'mem_used_total',
    'used/compr written', 'used/compr after churn', 'used/compr after compact', 'pages compacted',
  ], rows, [0, 1])
}

export interface Chart {
  /** file name suffix, e.g. "file-iops" */
  name: string
  title: string
  svg: string
}

/** Bar charts of medians with min–max whiskers: IOPS jobs and throughput jobs, per mode. */
export function buildCharts(r: BenchResults): Chart[] {
  const charts: Chart[] = []
  const REAL = [REAL_WRITE_JOB, ...REAL_READ_JOBS]
  // The kernel is an order of magnitude faster on small blocks: the FUSE-only charts keep the
  // ceiling and zramfuse readable; loop charts leave it out (it is not behind a loop device).
  const specs: { mode: 'file' | 'loop'; metric: 'iops' | 'bw'; jobs: readonly JobSpec[]; name: string; title: string; kernel: boolean }[] = [
    { mode: 'file', metric: 'iops', jobs: JOBS, name: 'file-iops', title: '4k jobs, FUSE targets on the block file', kernel: false },
    { mode: 'file', metric: 'iops', jobs: JOBS, name: 'file-iops-kernel', title: '4k jobs, with the kernel zram (/dev/zram0)', kernel: true },
    { mode: 'file', metric: 'bw', jobs: JOBS, name: 'file-bw', title: 'Sequential jobs on the block file, kernel zram on /dev/zram0', kernel: true },
    { mode: 'loop', metric: 'iops', jobs: JOBS, name: 'loop-iops', title: '4k jobs through a loop device (--direct-io=on)', kernel: false },
    { mode: 'loop', metric: 'bw', jobs: JOBS, name: 'loop-bw', title: 'Sequential jobs through a loop device (--direct-io=on)', kernel: false },
    { mode: 'file', metric: 'bw', jobs: REAL, name: 'real-bw', title: 'Real-data pass, kernel zram on /dev/zram0', kernel: true },
    { mode: 'file', metric: 'iops', jobs: REAL, name: 'real-iops', title: 'Real-data pass, FUSE targets', kernel: false },
  ]
  for (const spec of specs) {
    const targets = r.targets.filter((t) => !t.variant && modeFor(t, spec.mode) !== null && (spec.kernel || t.kind !== 'kernel'))
    const groups: Group[] = []
    for (const job of spec.jobs.filter((j) => j.metric === spec.metric)) {
      const bars = targets.map((t) => {
        const m = modeFor(t, spec.mode)
        const s = m ? cellSummary(findCell(r, t.id, m, job), job) : null
        return s ? { series: t.id, value: s.median, min: s.min, max: s.max } : { series: t.id, value: null }
      })
      if (bars.every((b) => b.value === null)) continue
      groups.push({ label: job.title.replace(/^real data: /, ''), bars })
    }
    if (groups.length === 0) continue
    const unit = spec.metric === 'iops' ? 'k IOPS' : 'MB/s'
    const chart: BarChart = {
      title: `${spec.title}, ${unit} (median, min–max)`,
      unit,
      series: targets.map((t) => ({ id: t.id, label: t.kind === 'kernel' && spec.mode === 'loop' ? `${t.title} (block dev)` : t.title })),
      groups,
    }
    charts.push({ name: spec.name, title: chart.title, svg: renderBarChart(chart) })
  }
  const pairs = asyncInlinePairs(r)
  if (pairs.length > 0) {
    const cols = pairs.flatMap((p) => [p.inline, p.async])
    for (const metric of ['iops', 'bw'] as const) {
      const groups: Group[] = JOBS.filter((j) => j.metric === metric).map((job) => ({
        label: job.title,
        bars: cols.map((t) => {
          const s = cellSummary(findCell(r, t.id, 'file', job), job)
          return s ? { series: t.id, value: s.median, min: s.min, max: s.max } : { series: t.id, value: null }
        }),
      })).filter((g) => g.bars.filter((b) => b.value !== null).length >= 2) // something to compare
      if (groups.length === 0) continue
      const unit = metric === 'iops' ? 'k IOPS' : 'MB/s'
      const title = `kcompressd: inline and async on the block file, ${unit} (median, min–max)`
      charts.push({
        name: `workers-${metric}`, title,
        svg: renderBarChart({ title, unit, series: cols.map((t) => ({ id: t.id, label: workersLabel(t) })), groups }),
      })
    }
  }
  return charts
}

export const AA_NOTE = 'A/A: a second daemon with the same settings as zramfuse lz4, run in the same interleaved order. ' +
  'Its column is its median over zramfuse lz4\'s and (±) the widest of that ratio and the per-run ratios: the noise floor of the job. ' +
  `An A/B ratio inside it is marked ${NOT_SIGNIFICANT} (not significant): it says nothing about a difference.`

/** The summary the README quotes: the file-mode table plus a line saying where it comes from. */
export function summarySection(r: BenchResults): string {
  return [
    `Median of ${r.config.reps} run${r.config.reps === 1 ? '' : 's'} (min–max), ${r.config.runtimeS} s each; ` +
      `${formatBytes(r.config.regionBytes)} region of a ${formatBytes(r.config.disksize)} device; ${r.machine.cpus} CPUs, ` +
      `kernel ${r.machine.kernel}, ${r.machine.fioVersion}. Data: ${r.config.mix}. ` +
      'fio on the block file with direct=1; the kernel zram as /dev/zram0.',
    '',
    perfTable(r, 'file'),
    ...ceilingCSection(r, 'file'),
  ].join('\n')
}

export function renderReport(r: BenchResults, chartFiles: { file: string; title: string }[]): string {
  const out: string[] = []
  out.push(`# zramfuse benchmark, ${r.startedAt}${r.config.quick ? ' (quick)' : ''}`, '')
  out.push(`Command: \`${r.config.command}\`. Took ${Math.round(r.durationS)} s.`, '')
  out.push('## Machine', '')
  out.push(`- kernel ${r.machine.kernel}, ${r.machine.cpus} CPUs, ${formatBytes(r.machine.memTotalBytes)} RAM, ${r.machine.fioVersion}, node ${r.machine.nodeVersion}`)
  if (r.machine.cpuidleDriver !== undefined) {
    out.push(`- cpuidle driver: ${r.machine.cpuidleDriver ?? 'no cpuidle'}` +
      (cpuidleHonoursQos(r.machine.cpuidleDriver) ? '' : ' (idle CPUs always halt; --awake is refused)'))
  }
  out.push(`- load average at start: ${r.machine.loadAvgStart}; at end: ${r.machine.loadAvgEnd}`)
  out.push(`- other processes using CPU at start: ${r.machine.busyStart.length ? r.machine.busyStart.join('; ') : 'none'}`)
  out.push(`- other processes using CPU at end: ${r.machine.busyEnd.length ? r.machine.busyEnd.join('; ') : 'none'}`, '')
  out.push('## Setup', '')
  out.push(`- ${r.config.reps} run${r.config.reps === 1 ? '' : 's'} per figure (median, min–max shown), ${r.config.runtimeS} s per run (time_based), fio randseed=${r.config.seed}`)
  out.push(`- device: disksize ${formatBytes(r.config.disksize)}; jobs cover the first ${formatBytes(r.config.regionBytes)}, prefilled with the mix before the first job of each target and mode (on each set of daemons)`)
  out.push(`- data written by fio: ${r.config.mix}`)
  out.push(`- real-data pass: ${r.config.realSource}; written with dd bs=1M oflag=direct, read with fio --readonly`)
  out.push(`- fidelity mix: ${r.config.fidelityMix}`)
  out.push(`- source: ${r.config.source}`)
  if (r.config.placement) out.push(`- CPU placement: ${r.config.placement}; targets in reverse order on even runs`)
  if (r.config.daemons) out.push(`- daemons: ${r.config.daemons}`)
  out.push('- targets: ' + r.targets.map((t) => `${workersLabel(t)} [${t.modes.join(', ')}]`).join('; '))
  if (r.targets.some((t) => t.kind === 'ceiling-c')) {
    out.push('- C libfuse3: bench/ceiling-c/ramfile.c, a RAM file over libfuse3\'s low-level API (no compression), direct_io on open, ' +
      '128 KiB requests (max_write), default_permissions; 1 thread: fuse_session_loop, multi-threaded: fuse_session_loop_mt (up to 10 idle threads), ' +
      'pinned like every FUSE daemon')
  }
  if (r.targets.some((t) => t.transport !== undefined)) {
    out.push('- zramfuse transports: the default (native: our own FUSE session on /dev/fuse, 1 MiB requests) unless the title names another (fuse-native: libfuse 2.9 through fuse-native, `--transport fuse-native`)')
  }
  out.push('- modes: file = fio on DIR/dev/zram0 (direct=1); loop = fio on a loop device attached with `losetup --direct-io=on`; dev = the kernel\'s /dev/zram0', '')
  if (r.notes.length) {
    out.push('## Notes', '')
    for (const n of r.notes) out.push(`- ${n}`)
    out.push('')
  }
  out.push('## Summary: on the block file', '', summarySection(r), '')
  if (aaPair(r, 'file')) out.push(AA_NOTE, '')
  if (r.targets.some((t) => t.modes.includes('loop'))) {
    out.push('## Through a loop device (losetup --direct-io=on)', '', perfTable(r, 'loop'), ...ceilingCSection(r, 'loop'), '')
  }
  const wt = workersTable(r)
  if (wt) {
    out.push('## kcompressd: inline (workers=0) and async', '', 'On the block file. The default targets above use the daemon\'s default worker count.', '', wt, '')
  }
  if (chartFiles.length) {
    out.push('## Charts', '')
    for (const c of chartFiles) out.push(`![${c.title}](${c.file})`, '')
  }
  out.push('## Fidelity: the same data in the kernel\'s zram and in zramfuse', '')
  out.push(r.fidelity.length ? fidelitySection(r) : 'Not measured.', '')
  out.push('## Memory', '')
  if (r.memory.length) {
    out.push(memoryTable(r), '')
    out.push('- metadata B/page: page_table_bytes / (disksize / 4096); the kernel uses 16 (struct zram_table_entry, not exported).')
    out.push('- RSS beyond pool: the daemon\'s VmRSS with the data stored minus mem_used_total (the pool): the page table, the JS heap, code, buffers.')
    out.push('- used/compr: mem_used_total / compr_data_size, after writing, after zero-filling every third page (which frees pool objects and fragments the pool), and after `echo 1 > compact`.', '')
  } else {
    out.push('Not measured.', '')
  }
  out.push('## Recompression with reads going on', '')
  if (r.recompression?.length) {
    out.push('`recompress type=idle` to zstd level 9 after `idle all`, through the mount, while fio reads 4 KiB at random (QD1). ' +
      'p99 ratio: during the run against the same reads just before; "after": the same reads once it is done (what zstd objects and units cost a read). ' +
      'Pages the reads touch lose their selection (the kernel\'s mark_slot_accessed), so fewer pages move than on an idle device.', '')
    out.push(...latencyTable(r.recompression), '')
  } else {
    out.push('Not measured.', '')
  }
  out.push('## Details', '', 'Latency is fio\'s (for dd: wall time per 1 MiB block); CPU is percent of one CPU over the run.', '', detailTable(r), '')
  if (r.background.length) {
    out.push('## Background', '', 'CPU used by anything but the bench, its fio/dd and its daemons while each phase ran (kernel threads included: a loop device\'s workers count here).', '')
    out.push(mdTable(['phase', 'seconds', 'others, % of one CPU', 'top'], r.background.map((b) => [b.phase, b.wallS.toFixed(0), b.othersPct.toFixed(0), b.top.join('; ') || '-']), [0, 3]), '')
  }
  if (r.datasets.some((d) => d.counts)) {
    out.push('## Datasets', '')
    for (const d of r.datasets) {
      const counts = d.counts ? ' (' + PAGE_KINDS.map((k) => `${d.counts?.[k] ?? 0} ${k}`).join(', ') + ' pages)' : ''
      out.push(`- ${d.id}: ${d.title}, ${formatBytes(d.bytes)}, ${d.source}${counts}`)
    }
    out.push('')
  }
  out.push('## Reproduce', '', '```', 'npm run bench            # full run, about 25 minutes on 2 CPUs', 'npm run bench -- --quick # about 3.5 minutes', '```', '')
  return out.join('\n')
}

/** Differences of two mm_stat lines as text lines (the console summary of the fidelity section). */
export function mmStatDiffLines(kernel: MmStat, ours: MmStat): string[] {
  return diffMmStat(kernel, ours).map((d) => `  ${d.field.padEnd(17)} kernel ${String(d.a).padStart(12)}  zramfuse ${String(d.b).padStart(12)}  diff ${String(d.diff).padStart(11)}${d.rel === null ? '' : ` (${fmtRel(d.rel)})`}`)
}
