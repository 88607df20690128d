import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseFioOutput, runFigures } from '../../bench/fio-parse'
import { findJob } from '../../bench/jobs'
import { parseMmStat } from '../../bench/mmstat'
import {
  asyncInlinePairs, buildCharts, cellSummary, detailTable, fidelitySection, findCell, fmtRatio, fmtSummary, memoryTable, perfTable, renderReport, workersTable,
} from '../../bench/report'
import type { BenchResults, PerfCell, PerfRun } from '../../bench/results'
import type { Mode } from '../../bench/targets'
import { wellFormed } from '../helpers/xml'

const fixture = (name: string): string => readFileSync(join(__dirname, 'fixtures', name), 'utf8')

/** A run from a recorded fio output, scaled so that targets differ by known factors. */
function runFrom(file: string, dir: 'read' | 'write', scale: number): PerfRun {
  const f = runFigures(parseFioOutput(fixture(file)), dir)
  return { iops: f.iops * scale, bwBytes: f.bwBytes * scale, latMeanNs: f.latMeanNs / scale, clatP99Ns: f.clatP99Ns, fioCpuPct: f.fioCpuPct, daemonCpuPct: 80, wallS: 1.3 }
}

function cell(target: string, mode: Mode, job: string, file: string, dir: 'read' | 'write', scales: number[]): PerfCell {
  return { target, mode, data: job.startsWith('real-') ? 'real' : 'mix', job, runs: scales.map((s) => runFrom(file, dir, s)) }
}

export function sampleResults(): BenchResults {
  const perf: PerfCell[] = []
  const add = (target: string, mode: Mode, factor: number): void => {
    perf.push(cell(target, mode, 'randwrite-4k-qd1', 'randwrite-4k-qd1.json', 'write', [factor * 0.9, factor, factor * 1.1]))
    perf.push(cell(target, mode, 'read-1m', 'read-1m.json', 'read', [factor, factor, factor]))
  }
  add('ceiling', 'file', 2)
  add('ceiling', 'loop', 1.6)
  add('zramfuse-lz4', 'file', 1)
  add('zramfuse-lz4', 'loop', 0.8)
  add('kernel-lz4', 'dev', 10)
  perf.push(cell('zramfuse-lz4-w1', 'file', 'randwrite-4k-qd1', 'randwrite-4k-qd1.json', 'write', [1.2, 1.25, 1.3]))
  const kernel = parseMmStat('33554432 18783500 19197952 0 19197952 1611 0 1577 1577')
  const ours = parseMmStat('33554432 18783414 19128320 0 19128320 1611 0 1577 1577')
  return {
    version: 1, startedAt: '2026-01-01T00:00:00.000Z', finishedAt: '2026-01-01T00:10:00.000Z', durationS: 600,
    machine: { kernel: '6.1.0', cpus: 2, memTotalBytes: 24 * 2 ** 30, fioVersion: 'fio-3.33', nodeVersion: 'v20', loadAvgStart: '0.1', loadAvgEnd: '0.2', busyStart: [], busyEnd: ['123 tap 40%'] },
    config: { quick: false, reps: 3, runtimeS: 2, regionBytes: 256 << 20, disksize: 1 << 30, seed: 1, mix: 'fio 50%', fidelityMix: 'mix', realSource: 'doc', command: 'npm run bench', source: 'commit 0123456789ab (main)' },
    targets: [
      { id: 'ceiling', title: 'ceiling (RAM file)', kind: 'ceiling', modes: ['file', 'loop'], algorithm: null, workers: null, variant: false },
      { id: 'zramfuse-lz4', title: 'zramfuse lz4', kind: 'zramfuse', modes: ['file', 'loop'], algorithm: 'lz4', workers: 0, variant: false },
      { id: 'zramfuse-lz4-w1', title: 'zramfuse lz4 workers=1', kind: 'zramfuse', modes: ['file'], algorithm: 'lz4', workers: 1, variant: true },
      { id: 'kernel-lz4', title: 'kernel zram lz4', kind: 'kernel', modes: ['dev'], algorithm: 'lz4', workers: null, variant: false },
    ],
    datasets: [{ id: 'mix', title: 'Generated page mix', bytes: 32 << 20, counts: { zero: 1, pattern: 2, text: 3, binary: 4, random: 5 }, source: 'seed 1' }],
    notes: ['skipped zramfuse lz4 workers=0: kcompressd does not exist yet'],
    perf,
    fidelity: [{ dataset: 'mix', kernel, zramfuse: { 'zramfuse-lz4': ours } }],
    background: [{ phase: 'zramfuse-lz4 file', wallS: 60, othersPct: 35, top: ['4242 node tap 30%'] }],
    memory: [{
      target: 'zramfuse-lz4', dataset: 'mix', disksize: 1 << 30, pageTableBytes: 16 * 262144, rssIdleBytes: 50 << 20, rssAfterBytes: (50 << 20) + 19128320,
      written: ours, churned: { ...ours, mem_used_total: ours.compr_data_size * 1.3 }, compacted: { ...ours, pages_compacted: 983 },
    }],
  }
}

t.test('formatting', async (t) => {
  t.equal(fmtSummary({ n: 3, median: 15.234, min: 14.9, max: 15.61 }), '15.2 (14.9–15.6)')
  t.equal(fmtSummary({ n: 1, median: 1375.4, min: 1375.4, max: 1375.4 }), '1375')
  t.equal(fmtSummary({ n: 3, median: 2.5, min: 2.5, max: 2.5 }), '2.50')
  t.equal(fmtSummary(null), 'n/a')
  t.equal(fmtRatio(0.3851), '0.39×')
  t.equal(fmtRatio(null), 'n/a')
})

t.test('summary table: absolute figures and ratios of medians', async (t) => {
  const r = sampleResults()
  const job = findJob('randwrite-4k-qd1')!
  const z = cellSummary(findCell(r, 'zramfuse-lz4', 'file', job), job)!
  const c = cellSummary(findCell(r, 'ceiling', 'file', job), job)!
  t.ok(Math.abs(c.median / z.median - 2) < 1e-9)
  const table = perfTable(r, 'file')
  const lines = table.split('\n')
  t.match(lines[0], /^\| job \| unit \| ceiling \(RAM file\) \| zramfuse lz4 \| kernel zram lz4 \| zramfuse lz4 \/ ceiling \| zramfuse lz4 \/ kernel \| lz4 async \(workers=1\) \/ inline \|$/, 'variants only as a ratio')
  t.match(lines[1], /^\| --- \| --- \| ---: /)
  const row = lines.find((l) => l.startsWith('| 4k randwrite QD1 '))!
  t.match(row, /\| k IOPS \|/)
  t.match(row, /\| 0\.50× \| 0\.10× \| 1\.25× \|$/, 'zramfuse = half the ceiling, a tenth of the kernel; async 1.25x inline')
  t.match(lines.find((l) => l.startsWith('| 1M seq read '))!, /\| n\/a \|$/, 'no variant run: n/a')
  t.match(row, /\(\d+(\.\d+)?–\d+(\.\d+)?\)/, 'min–max shown')
  const r1m = lines.find((l) => l.startsWith('| 1M seq read '))!
  t.match(r1m, /\| MB\/s \|/)
  t.notMatch(table, /randread-4k-qd1|4k randread QD1/, 'jobs without data are left out')
  const loop = perfTable(r, 'loop')
  t.match(loop, /kernel zram lz4 \(block dev\)/)
  t.match(loop.split('\n').find((l) => l.startsWith('| 4k randwrite QD1 '))!, /\| 0\.50× \| 0\.08× \|$/, 'variants run on the file only: no ratio in loop mode')
  const wt = workersTable(r)!
  t.match(wt.split('\n')[0], /^\| job \| unit \| zramfuse lz4 \(workers=0\) \| zramfuse lz4 workers=1 \| lz4 async \/ inline \|$/)
  t.match(wt, /\| 4k randwrite QD1 \| k IOPS \| [^|]+ \| [^|]+ \| 1\.25× \|/)
  t.same(asyncInlinePairs(r).map((p) => [p.algorithm, p.inline.id, p.async.id]), [['lz4', 'zramfuse-lz4', 'zramfuse-lz4-w1']])
})

t.test('fidelity, memory, details', async (t) => {
  const r = sampleResults()
  const f = fidelitySection(r)
  t.match(f, /kernel zram lz4   33554432 18783500 19197952        0 19197952     1611        0     1577     1577/)
  t.match(f, /zramfuse lz4      33554432 18783414 19128320/)
  t.match(f, /\| compr_data_size \| 18783500 \(17\.9 MiB\) \| 18783414 \(17\.9 MiB\) \| -86 \| -0\.00046% \|/)
  t.match(f, /\| same_pages \| 1611 \| 1611 \| 0 \| 0% \|/)
  t.match(f, /\| mem_used_total \| 19197952 \(18\.3 MiB\) \| 19128320 \(18\.2 MiB\) \| -69632 \| -0\.36% \|/)
  t.match(f, /\| mem_limit \| 0 \(0 B\) \| 0 \(0 B\) \| 0 \| 0 \|/)
  const m = memoryTable(r)
  t.match(m, /\| zramfuse lz4 \| mix \| 16\.00 \| 50 MiB \|/)
  t.match(m, /\| 50 MiB \| 18\.2 MiB \| 1\.02× \| 1\.30× \| 1\.02× \| 983 \|/, 'RSS beyond pool = RSS - mem_used_total')
  const d = detailTable(r)
  t.match(d, /\| zramfuse lz4 \| loop \| 4k randwrite QD1 \|/)
  t.match(d, /\| kernel zram lz4 \| dev \| 1M seq read \|/)
})

t.test('charts and the whole report', async (t) => {
  const r = sampleResults()
  const charts = buildCharts(r)
  t.same(charts.map((c) => c.name), ['file-iops', 'file-iops-kernel', 'file-bw', 'loop-iops', 'loop-bw', 'workers-iops'], 'no real-data charts without real data')
  for (const c of charts) t.ok(wellFormed(c.svg), `${c.name} is well-formed`)
  const md = renderReport(r, charts.map((c) => ({ file: `x-${c.name}.svg`, title: c.title })))
  t.match(md, /^# zramfuse benchmark, 2026-01-01T00:00:00\.000Z\n/)
  t.match(md, /## Summary: on the block file/)
  t.match(md, /## Through a loop device/)
  t.match(md, /!\[4k jobs, FUSE targets on the block file[^\]]*\]\(x-file-iops\.svg\)/)
  t.match(md, /- skipped zramfuse lz4 workers=0: kcompressd does not exist yet/)
  t.match(md, /other processes using CPU at end: 123 tap 40%/)
  t.match(md, /- mix: Generated page mix, 32 MiB, seed 1 \(1 zero, 2 pattern, 3 text, 4 binary, 5 random pages\)/)
  t.match(md, /\| zramfuse-lz4 file \| 60 \| 35 \| 4242 node tap 30% \|/)
  t.notMatch(md, /undefined|NaN/)
  t.match(md, /## kcompressd: inline \(workers=0\) and async/)
  t.match(md, /- source: commit 0123456789ab \(main\)/)
  t.match(md, /zramfuse lz4 \(workers=0\) \[file, loop\]; zramfuse lz4 workers=1 \[file\]/)
  t.notMatch(charts.find((c) => c.name === 'file-iops')!.svg, /workers=1/, 'variants only in the kcompressd charts')
  const loopChart = charts.find((c) => c.name === 'loop-iops')!.svg
  t.notMatch(loopChart, /kernel zram/, 'the kernel is not behind a loop device')
  t.match(charts.find((c) => c.name === 'file-iops-kernel')!.svg, /kernel zram lz4/)
})

t.test('the machine section names the cpuidle driver when the run recorded it', async (t) => {
  const line = (driver: string | null | undefined): string | undefined => {
    const r = sampleResults()
    if (driver !== undefined) r.machine.cpuidleDriver = driver
    return renderReport(r, []).split('\n').find((l) => l.startsWith('- cpuidle driver'))
  }
  t.equal(line(undefined), undefined, 'results written before the field: no line')
  t.equal(line('haltpoll'), '- cpuidle driver: haltpoll')
  t.equal(line('none'), '- cpuidle driver: none (idle CPUs always halt; --awake is refused)')
  t.equal(line(null), '- cpuidle driver: no cpuidle (idle CPUs always halt; --awake is refused)')
})
