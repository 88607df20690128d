// The A/A significance logic (bench/noise.ts) and its place in the report, on recorded numbers.
import t from 'tap'
import { aaBand, classify, factor, fmtBand } from '../../bench/noise'
import { orderFor, loadCommand, kcompressdArgs, planPlacement } from '../../bench/placement'
import { aaBandFor, asyncInlinePairs, fmtAa, fmtRatioVsNoise, perfTable, renderReport, workersTable } from '../../bench/report'
import { findJob } from '../../bench/jobs'
import type { BenchResults, PerfRun } from '../../bench/results'
import { sampleResults } from './report.test'

// bench/results/2026-11-28-211326.json (in git history), block file: the lz4 daemons with --workers 0 and 1. Reads never
// touch the workers, so for the read jobs the two are an A/A pair in all but name: MB/s per run.
const READ_128K_W0 = [289, 296, 276]
const READ_128K_W1 = [328, 319, 326]
const READ_1M_W0 = [303, 279, 293]
const READ_1M_W1 = [373, 320, 396]
// the issue's example: lz4 128k reads, one run of the full bench on 2026-12-01
const ISSUE_W0 = [477]
const ISSUE_W1 = [696]

t.test('factor: distance from 1 either way', async (t) => {
  t.equal(factor(1.25), 1.25)
  t.equal(factor(0.8), 1.25)
  t.equal(factor(1), 1)
})

t.test('aaBand on recorded runs: the median ratio, the per-run ratios, the widest of them', async (t) => {
  const b = aaBand(READ_128K_W0, READ_128K_W1)!
  t.ok(Math.abs(b.ratio - 326 / 289) < 1e-12, 'median over median: 326 / 289')
  t.same(b.pairRatios.map((r) => r.toFixed(3)), ['1.135', '1.078', '1.181'])
  t.ok(Math.abs(b.limit - 326 / 276) < 1e-12, 'the widest is run 3: 326 / 276 = 1.181')
  t.equal(fmtBand(b), '±18%')
  const m = aaBand(READ_1M_W0, READ_1M_W1)!
  t.ok(Math.abs(m.limit - 396 / 293) < 1e-12, '1M reads: 1.35')
  const issue = aaBand(ISSUE_W0, ISSUE_W1)!
  t.ok(Math.abs(issue.ratio - 1.459) < 0.001, 'the issue\'s 1.46x')
  t.same(aaBand([100, 100], [95, 105])?.limit, 100 / 95, 'a twin below its base counts as much as one above')
  t.equal(fmtBand(aaBand([100], [104])), '±4.0%', 'one decimal under 10%')
})

t.test('aaBand: nothing to compare', async (t) => {
  t.equal(aaBand([], [1]), null)
  t.equal(aaBand([1], []), null)
  t.equal(aaBand([1, Number.NaN], [1, 1]), null, 'a failed run spoils the pairing')
  t.equal(aaBand([0], [1]), null)
  t.same(aaBand([100, 110, 90], [100])?.pairRatios, [1], 'pairs only where both ran')
})

t.test('classify: an A/B ratio inside the A/A band is noise', async (t) => {
  const b = aaBand(READ_128K_W0, READ_128K_W1)!
  t.equal(classify(1.15, b), 'noise', '1.15x inside ±18%')
  t.equal(classify(0.9, b), 'noise')
  t.equal(classify(1.25, b), 'significant')
  t.equal(classify(0.8, b), 'significant', '0.8x is 1.25x the other way')
  t.equal(classify(b.limit, b), 'noise', 'the edge belongs to the noise')
  t.equal(classify(1.39, aaBand(ISSUE_W0, ISSUE_W1)), 'noise', 'a 1.39x A/B ratio sits inside the issue\'s 1.46x A/A gap')
  t.equal(classify(null, b), 'unknown')
  t.equal(classify(1.5, null), 'unknown')
  t.equal(classify(Number.NaN, b), 'unknown')
  t.equal(fmtRatioVsNoise(1.15, b), '1.15× n.s.')
  t.equal(fmtRatioVsNoise(1.25, b), '1.25×')
  t.equal(fmtRatioVsNoise(1.25, null), '1.25×', 'no band: no mark')
  t.equal(fmtAa(b), '1.13× (±18%)')
  t.equal(fmtAa(null), 'n/a')
})

/** sampleResults() plus an A/A twin of zramfuse-lz4 whose runs differ from it by `scales`. */
function withTwin(scales: number[]): BenchResults {
  const r = sampleResults()
  r.targets.splice(2, 0, { id: 'zramfuse-lz4-aa', title: 'zramfuse lz4 A/A twin', kind: 'zramfuse', modes: ['file', 'loop'], algorithm: 'lz4', workers: 0, variant: true, twinOf: 'zramfuse-lz4' })
  for (const c of r.perf.filter((x) => x.target === 'zramfuse-lz4')) {
    const runs: PerfRun[] = c.runs.map((run, i) => ({ ...run, iops: run.iops * (scales[i] ?? 1), bwBytes: run.bwBytes * (scales[i] ?? 1) }))
    r.perf.push({ ...c, target: 'zramfuse-lz4-aa', runs })
  }
  return r
}

t.test('report: the A/A column next to the A/B ratios, n.s. marks', async (t) => {
  const job = findJob('randwrite-4k-qd1')!
  const narrow = withTwin([1.02, 0.99, 1.01])
  const band = aaBandFor(narrow, 'file', job)!
  t.ok(band.limit < 1.03, `a narrow band: ${fmtBand(band)}`)
  const lines = perfTable(narrow, 'file').split('\n')
  t.match(lines[0], /\| zramfuse lz4 \| kernel zram lz4 \| A\/A: zramfuse lz4 A\/A twin \/ zramfuse lz4 \| zramfuse lz4 \/ ceiling \|/, 'the twin only as the A/A column')
  const row = lines.find((l) => l.startsWith('| 4k randwrite QD1 '))!
  t.match(row, /\| (0\.99|1\.0\d)× \(±\d\.\d%\) \| 0\.50× \| 0\.10× \| 1\.25× \|$/, 'real differences stay unmarked')
  // a twin as far from its base as zramfuse is from the ceiling: that ratio says nothing
  const wide = withTwin([2.2, 1.9, 2.1])
  const wideRow = perfTable(wide, 'file').split('\n').find((l) => l.startsWith('| 4k randwrite QD1 '))!
  t.match(wideRow, /\| 0\.50× n\.s\. \| 0\.10× \| 1\.25× n\.s\. \|$/, '0.50x and 1.25x inside a ±120% band; 0.10x outside')
  t.same(asyncInlinePairs(wide).map((p) => [p.inline.id, p.async.id]), [['zramfuse-lz4', 'zramfuse-lz4-w1']], 'the twin is never an arm of the A/B')
  t.match(workersTable(wide), /\| A\/A \| lz4 async \/ inline \|/)
  t.match(workersTable(wide), /1\.25× n\.s\. \|/)
  t.match(perfTable(wide, 'loop'), /A\/A: zramfuse lz4 A\/A twin \/ zramfuse lz4/, 'loop mode has its own A/A')
  const md = renderReport(wide, [])
  t.match(md, /An A\/B ratio inside it is marked n\.s\./, 'the report explains the mark')
  t.notMatch(perfTable(sampleResults(), 'file'), /A\/A/, 'no twin: no A/A column')
})

t.test('placement: split pins daemons to CPU 0 and the load to the rest', async (t) => {
  const two = planPlacement('split', 2)
  t.same(two, { mode: 'split', daemonCpus: '0', loadCpus: '1', note: null })
  t.equal(planPlacement('split', 8).loadCpus, '1-7')
  t.same(loadCommand(two, 'fio', ['--name=x']), ['taskset', ['-c', '1', 'fio', '--name=x']])
  t.same(kcompressdArgs(two), ['--kcompressd-cpus', '1'], 'split: kcompressd workers on the load CPUs')
  t.same(kcompressdArgs(planPlacement('split', 8)), ['--kcompressd-cpus', '1-7'])
  t.same(kcompressdArgs(planPlacement('same', 2)), [], 'same: the workers stay with the daemon')
  const one = planPlacement('split', 1)
  t.equal(one.mode, 'none')
  t.match(one.note, /needs 2 CPUs/)
  t.same(planPlacement('same', 2), { mode: 'same', daemonCpus: '1', loadCpus: '1', note: null }, 'same: one CPU for all')
  t.same(planPlacement('same', 1).daemonCpus, '0')
  const none = planPlacement('none', 2)
  t.same(loadCommand(none, 'dd', ['if=a']), ['dd', ['if=a']])
  t.same(kcompressdArgs(none), [])
})

t.test('orderFor: reversed on even repetitions', async (t) => {
  t.same(orderFor(['a', 'b', 'c'], 1), ['a', 'b', 'c'])
  t.same(orderFor(['a', 'b', 'c'], 2), ['c', 'b', 'a'])
  t.same(orderFor(['a', 'b'], 3), ['a', 'b'])
  const src = ['a', 'b']
  orderFor(src, 2)
  t.same(src, ['a', 'b'], 'the input is not reordered in place')
})
