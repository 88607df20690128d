#!/usr/bin/env node
/**
 * Cold data (issue 11): lz4 as the primary algorithm, zstd as the recompression algorithm, measured
 * in-process on the device layer (no FUSE: the figures are the device's own cost; through the
 * mount every request adds the FUSE round trip, about 40 us here, which narrows every ratio).
 *
 * For the real-data image (an ext4 image of /usr/share/doc, as the fidelity bench makes it) and the
 * generated mix, and for single-page recompression (the kernel's) and units of 4 and 16 pages:
 * write the data, `idle all`, `recompress type=idle`, `compact`; mem_used_total before and after,
 * recompress throughput (MB/s of the pages it went over), the longest main-thread stretch between
 * two yields, 4 KiB random read IOPS of the recompressed data (QD1, seeded) and 128 KiB sequential
 * read MB/s. The kernel's zram is compared where the running kernel has recompression
 * (CONFIG_ZRAM_MULTI_COMP: /sys/block/zram0/recomp_algorithm exists); otherwise the section says so.
 *
 * With --mount (root, fio): the same data through the daemon's mount, as users see it: the
 * attributes written as files, then fio 4 KiB random reads at QD1 (psync, direct) on the block file.
 *
 * With --latency (root, fio), only this: the real-data image through the mount, fio 4 KiB random
 * reads at QD1 while `recompress type=idle` runs (zstd --level, single pages and units of 16),
 * against the same reads just before (bench/recompress-latency.ts).
 *
 *   node dist/bench/recompress.js [--runs 3] [--real-dir /usr/share/doc] [--mix-mib 128] [--reads 20000]
 *                                 [--mount] [--fio-seconds 4] [--latency [--level 9]] [--out FILE]
 */
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { ZramDevice } from '../src/device/zram-device'
import { RECOMPRESS_IDLE } from '../src/device/recompressor'
import { generateMix, prng } from './mix'
import { readRealImage } from './real-image'
import { parseFioOutput, runFigures } from './fio-parse'
import { BENCH_TMP, Cleanup, run, startDaemon, stopDaemon } from './sys'
import { latencyTable, recompressLatency, type RecompressLatencyRow } from './recompress-latency'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    'real-dir': { type: 'string', default: '/usr/share/doc' },
    'mix-mib': { type: 'string', default: '128' },
    reads: { type: 'string', default: '20000' },
    mount: { type: 'boolean', default: false },
    'fio-seconds': { type: 'string', default: '4' },
    latency: { type: 'boolean', default: false },
    // another build of the daemon for --latency (e.g. an older commit's dist/daemon/cli.js), for A/B runs
    cli: { type: 'string' },
    level: { type: 'string', default: '9' },
    out: { type: 'string' },
  },
})
const RUNS = Number(values.runs)
const READS = Number(values.reads)
const MiB = 1 << 20
const REQUEST = 128 * 1024
const SEED = 20261201

interface Dataset { name: string; data: Buffer }

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}


export interface ColdRow {
  dataset: string
  /** 'lz4 only' (no recompression), 'single' (the kernel's), 'unit N'. */
  config: string
  memBefore: number
  memAfter: number
  comprAfter: number
  recompressedPages: number
  units: number
  recompressMBps: number
  maxSliceMs: number
  randReadKiops: number
  seqReadMBps: number
}

async function fill(dev: ZramDevice, data: Buffer): Promise<void> {
  for (let pos = 0; pos < data.length; pos += REQUEST) await dev.write(data.subarray(pos, Math.min(data.length, pos + REQUEST)), pos)
  await dev.drain()
}

/** QD1 random 4 KiB reads over the whole device, seeded; thousands of reads per second. */
async function randomReads(dev: ZramDevice, pages: number, n: number): Promise<number> {
  const rand = prng(SEED)
  const buf = Buffer.alloc(4096)
  const t0 = performance.now()
  for (let i = 0; i < n; i++) await dev.read(buf, Math.floor(rand() * pages) * 4096)
  return n / ((performance.now() - t0) / 1000) / 1000
}

async function seqRead(dev: ZramDevice, bytes: number): Promise<number> {
  const buf = Buffer.alloc(REQUEST)
  const t0 = performance.now()
  for (let pos = 0; pos < bytes; pos += REQUEST) await dev.read(buf, pos)
  return bytes / MiB / ((performance.now() - t0) / 1000)
}

async function coldRun(ds: Dataset, unit: number | null): Promise<ColdRow> {
  const dev = new ZramDevice(0, { workers: 0 })
  if (unit !== null) dev.setRecompAlgorithm(1, 'zstd')
  dev.initialise(ds.data.length)
  await fill(dev, ds.data)
  const memBefore = dev.stats().memUsedTotal
  let recompressMBps = 0
  if (unit !== null) {
    dev.recompressor.unitPages = unit
    dev.markIdle('all')
    // Bytes the run goes over: every page idle marks (in the pool, not same-filled).
    const table = dev.pageTable
    let idle = 0
    for (let i = 0; table && i < table.pages; i++) if (table.meta[i] & (1 << 18)) idle++
    const t0 = performance.now()
    await dev.recompress({ mode: RECOMPRESS_IDLE, threshold: 0, maxPages: Infinity, prio: 1 })
    recompressMBps = (idle * 4096) / MiB / ((performance.now() - t0) / 1000)
  }
  dev.compact()
  const s = dev.stats()
  const r = dev.recompressor.stats()
  const pages = ds.data.length / 4096
  const row: ColdRow = {
    dataset: ds.name, config: unit === null ? 'lz4 only' : unit === 1 ? 'single (kernel)' : `unit ${unit}`,
    memBefore, memAfter: s.memUsedTotal, comprAfter: s.comprDataSize, recompressedPages: r.recompressedPages,
    units: dev.units.stats().units, recompressMBps, maxSliceMs: r.maxSliceNs / 1e6,
    randReadKiops: await randomReads(dev, pages, READS), seqReadMBps: await seqRead(dev, ds.data.length),
  }
  // The data must read back as written.
  const back = Buffer.alloc(REQUEST)
  for (let pos = 0; pos < ds.data.length; pos += REQUEST) {
    await dev.read(back, pos)
    if (!back.equals(ds.data.subarray(pos, pos + REQUEST))) throw new Error(`${ds.name} ${row.config}: data differs at ${pos}`)
  }
  await dev.close()
  return row
}

let mountRuns = 0

/** One dataset, one configuration, through the mount: fio 4 KiB random read IOPS after the run. */
async function mountRun(cleanup: Cleanup, work: string, ds: Dataset, unit: number | null): Promise<{ kiops: number; memAfter: number }> {
  const mount = join(work, `mnt-${unit ?? 0}`)
  mkdirSync(mount, { recursive: true })
  const cli = join(__dirname, '..', 'daemon', 'cli.js')
  const d = await startDaemon(cleanup, 'zramfuse', cli, ['start', '--mount', mount, '--workers', '0'], mount, join(work, `daemon-${mountRuns++}.log`), join(work, 'pids'))
  try {
    const sys = join(mount, 'sys', 'block', 'zram0')
    const set = (name: string, value: string): void => writeFileSync(join(sys, name), value)
    if (unit !== null) set('recomp_algorithm', 'algo=zstd')
    set('disksize', String(ds.data.length))
    const fd = openSync(join(mount, 'dev', 'zram0'), 'r+')
    try {
      for (let pos = 0; pos < ds.data.length; pos += MiB) writeSync(fd, ds.data, pos, Math.min(MiB, ds.data.length - pos), pos)
    } finally {
      closeSync(fd)
    }
    if (unit !== null) {
      set('zramfuse/recompress_unit_pages', String(unit))
      set('idle', 'all')
      set('recompress', 'type=idle')
    }
    set('compact', '1')
    const memAfter = Number(readFileSync(join(sys, 'mm_stat'), 'utf8').trim().split(/\s+/)[2])
    const r = await run(cleanup, 'fio', ['--name=randread', `--filename=${join(mount, 'dev', 'zram0')}`, '--direct=1', '--ioengine=psync',
      '--rw=randread', '--bs=4k', `--size=${ds.data.length}`, '--time_based', `--runtime=${values['fio-seconds']}`,
      `--randseed=${SEED}`, '--output-format=json'])
    if (r.code !== 0) throw new Error(`fio: ${r.stderr.slice(-500)}`)
    return { kiops: runFigures(parseFioOutput(r.stdout), 'read').iops / 1000, memAfter }
  } finally {
    await stopDaemon(cleanup, d, (m) => process.stderr.write(`${m}\n`))
  }
}

function kernelNote(): string {
  if (!existsSync('/sys/block/zram0')) return 'no kernel zram here (/sys/block/zram0 is absent): kernel comparison skipped'
  if (!existsSync('/sys/block/zram0/recomp_algorithm')) {
    return "the running kernel's zram has no recompression (CONFIG_ZRAM_MULTI_COMP is off: no recomp_algorithm): kernel comparison skipped"
  }
  return 'the running kernel has CONFIG_ZRAM_MULTI_COMP, but this bench does not drive it yet: kernel comparison skipped'
}

/** --latency: the recompression's cost to requests around it, through the mount. */
async function latencyMain(): Promise<void> {
  const real = readRealImage(values['real-dir'] as string)
  const ds: Dataset = real ?? { name: `generated mix (${values['mix-mib']} MiB)`, data: generateMix((Number(values['mix-mib']) * MiB) / 4096, SEED).data }
  mkdirSync(BENCH_TMP, { recursive: true })
  const work = mkdtempSync(join(BENCH_TMP, 'recompress-latency-'))
  const log = (m: string): void => void process.stderr.write(`${m}\n`)
  const cleanup = new Cleanup(log, work)
  cleanup.removeDirAtEnd(work)
  const rows: RecompressLatencyRow[] = []
  try {
    for (let r = 0; r < RUNS; r++) {
      for (const unitPages of [1, 16]) {
        rows.push(await recompressLatency({
          cleanup, work, cli: values.cli ?? join(__dirname, '..', 'daemon', 'cli.js'), data: ds.data, dataName: ds.name, unitPages,
          zstdLevel: Number(values.level), baselineS: Number(values['fio-seconds']), seed: SEED, log,
        }))
        log(latencyTable(rows).at(-1) as string)
      }
    }
  } finally {
    cleanup.runSync()
  }
  const lines = [`# Recompression and the requests around it (${new Date().toISOString()}), ${RUNS} run(s)`, '', ...latencyTable(rows)]
  process.stdout.write(lines.join('\n') + '\n')
  if (values.out) writeFileSync(values.out, lines.join('\n') + '\n')
}

async function main(): Promise<void> {
  if (values.latency) return latencyMain()
  const datasets: Dataset[] = []
  const real = readRealImage(values['real-dir'] as string)
  if (real) datasets.push(real)
  const mixMib = Number(values['mix-mib'])
  datasets.push({ name: `generated mix (${mixMib} MiB)`, data: generateMix((mixMib * MiB) / 4096, SEED).data })
  const lines: string[] = []
  const out = (l = ''): void => {
    lines.push(l)
    process.stdout.write(l + '\n')
  }
  out(`# Cold data bench (${new Date().toISOString()}): lz4 primary, zstd (level 3) recompression, device layer in-process, ` +
    `median of ${RUNS} runs for speeds (memory figures are deterministic)`)
  out()
  out('`idle all` + `recompress type=idle` + `compact`. mem ratio: mem_used_total after, against single-page recompression; ' +
    'read ratio: random 4 KiB read IOPS, against single-page recompression. Max slice: the longest main-thread stretch ' +
    'between two yields of the recompression loop (what a request for another page waits at most).')
  out()
  out('| data | config | mem_used_total before | after | compr_data_size after | pages recompressed | units | mem vs single | recompress MB/s | max slice ms | 4k randread k IOPS | read vs single | 128k seq read MB/s |')
  out('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
  const verdicts: string[] = []
  for (const ds of datasets) {
    const rows: ColdRow[] = []
    for (const unit of [null, 1, 4, 16]) {
      const runs: ColdRow[] = []
      for (let r = 0; r < RUNS; r++) runs.push(await coldRun(ds, unit))
      rows.push({
        ...runs[0], recompressMBps: median(runs.map((x) => x.recompressMBps)), maxSliceMs: median(runs.map((x) => x.maxSliceMs)),
        randReadKiops: median(runs.map((x) => x.randReadKiops)), seqReadMBps: median(runs.map((x) => x.seqReadMBps)),
      })
    }
    const single = rows[1]
    for (const r of rows) {
      const mem = r.memAfter / single.memAfter
      const read = r.randReadKiops / single.randReadKiops
      out(`| ${r.dataset} | ${r.config} | ${r.memBefore} | ${r.memAfter} | ${r.comprAfter} | ${r.recompressedPages} | ${r.units} | ` +
        `${mem.toFixed(3)}x | ${r.config === 'lz4 only' ? '-' : r.recompressMBps.toFixed(1)} | ${r.config === 'lz4 only' ? '-' : r.maxSliceMs.toFixed(2)} | ` +
        `${r.randReadKiops.toFixed(1)} | ${read.toFixed(2)}x | ${r.seqReadMBps.toFixed(0)} |`)
    }
    const u16 = rows[3]
    const memRatio = u16.memAfter / single.memAfter
    const readRatio = u16.randReadKiops / single.randReadKiops
    verdicts.push(`- ${ds.name}: unit 16 mem_used_total ${memRatio.toFixed(3)}x of single-page zstd (target <= 0.87x: ` +
      `${memRatio <= 0.87 ? 'met' : 'NOT met'}); random 4k reads ${readRatio.toFixed(2)}x (target >= 0.5x: ${readRatio >= 0.5 ? 'met' : 'NOT met'})`)
  }
  out()
  out('Targets (issue 11):')
  for (const v of verdicts) out(v)
  if (values.mount) {
    mkdirSync(BENCH_TMP, { recursive: true })
    const work = mkdtempSync(join(BENCH_TMP, 'recompress-'))
    const cleanup = new Cleanup((m) => process.stderr.write(`${m}\n`), work)
    const onSignal = (): void => {
      cleanup.runSync()
      process.exit(130)
    }
    process.once('SIGINT', onSignal)
    process.once('SIGTERM', onSignal)
    cleanup.removeDirAtEnd(work)
    try {
      out()
      out(`Through the mount: the daemon (--workers 0), fio 4k randread QD1 (psync, direct=1) for ${values['fio-seconds']} s on the ` +
        `block file after the run, median of ${RUNS}.`)
      out()
      out('| data | config | mem_used_total after | 4k randread k IOPS | read vs single |')
      out('|---|---|---:|---:|---:|')
      for (const ds of datasets) {
        const rows: Array<{ config: string; mem: number; kiops: number }> = []
        for (const unit of [null, 1, 4, 16]) {
          const runs: Array<{ kiops: number; memAfter: number }> = []
          for (let r = 0; r < RUNS; r++) runs.push(await mountRun(cleanup, work, ds, unit))
          rows.push({ config: unit === null ? 'lz4 only' : unit === 1 ? 'single (kernel)' : `unit ${unit}`, mem: runs[0].memAfter,
            kiops: median(runs.map((x) => x.kiops)) })
        }
        for (const r of rows) out(`| ${ds.name} | ${r.config} | ${r.mem} | ${r.kiops.toFixed(1)} | ${(r.kiops / rows[1].kiops).toFixed(2)}x |`)
        verdicts.push(`- ${ds.name}, through the mount: unit 16 random 4k reads ${(rows[3].kiops / rows[1].kiops).toFixed(2)}x of single-page ` +
          `(target >= 0.5x: ${rows[3].kiops / rows[1].kiops >= 0.5 ? 'met' : 'NOT met'})`)
        out(verdicts[verdicts.length - 1])
      }
    } finally {
      cleanup.runSync()
      process.removeListener('SIGINT', onSignal)
      process.removeListener('SIGTERM', onSignal)
    }
  }
  out()
  out(`Kernel: ${kernelNote()}.`)
  if (values.out) writeFileSync(values.out, lines.join('\n') + '\n')
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error)?.stack ?? err)}\n`)
  process.exit(1)
})
