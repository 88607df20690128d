#!/usr/bin/env node
/**
 * The writeback tier (issue 9), measured in-process on the device layer (no FUSE: these figures
 * are about the lower tier, not the FUSE round trip), with the lower file on the machine's disk:
 *
 *  1. formats: the real-data image (an ext4 image of /usr/share/doc, as the fidelity bench makes it)
 *     and the generated mix are written to a device, `idle all` + `writeback idle`; per format
 *     (page = the kernel's, compressed = writeback_compressed, packed = ours): bytes written to the
 *     lower file per page written back, lower-file bytes in use against compr_data_size before the
 *     writeback, and writeback throughput (MB/s of pages written back);
 *  2. seed 000's scenario: a foreground writer writes the data past a pool limit of a quarter of
 *     its pool size with the shrinker on, while a foreground reader reads random pages already
 *     written (4 KiB, like swap-ins); each 128 KiB write's and 4 KiB read's latency and the elapsed
 *     time, with the shrinker's pause at 500 ms (the proposal) and at 0 (never pause). Medians of RUNS.
 *
 *   node dist/bench/writeback.js [--runs 3] [--dir /var/tmp] [--real-dir /usr/share/doc] [--out FILE]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { ZramDevice } from '../src/device/zram-device'
import { generateMix } from './mix'
import { readRealImage } from './real-image'
import { WB_IDLE } from '../src/shrinker/writeback-request'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    dir: { type: 'string', default: '/var/tmp' },
    'real-dir': { type: 'string', default: '/usr/share/doc' },
    out: { type: 'string' },
  },
})
const RUNS = Number(values.runs)
const MiB = 1 << 20
const REQUEST = 128 * 1024

interface Dataset { name: string; data: Buffer }

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2
}

function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]
}


async function fill(dev: ZramDevice, data: Buffer, latencies?: number[]): Promise<number> {
  const t0 = performance.now()
  for (let pos = 0; pos < data.length; pos += REQUEST) {
    const s = performance.now()
    await dev.write(data.subarray(pos, Math.min(data.length, pos + REQUEST)), pos)
    latencies?.push(performance.now() - s)
  }
  await dev.drain()
  return performance.now() - t0
}

function device(work: string, format: 'page' | 'compressed' | 'packed', bytes: number): ZramDevice {
  const dev = new ZramDevice(0, { workers: 0 })
  dev.lower.compressed = format !== 'page'
  dev.lower.packed = format === 'packed'
  dev.lower.setBackingDev(join(work, `lower-${format}`))
  dev.initialise(bytes)
  return dev
}

interface FormatRow { dataset: string; format: string; pages: number; comprBefore: number; lowerWritten: number; lowerLive: number; allocated: number; mbps: number }

async function formats(work: string, ds: Dataset): Promise<FormatRow[]> {
  const rows: FormatRow[] = []
  for (const format of ['page', 'compressed', 'packed'] as const) {
    const runs: FormatRow[] = []
    for (let r = 0; r < RUNS; r++) {
      const dev = device(work, format, ds.data.length)
      await fill(dev, ds.data)
      const before = dev.stats()
      dev.markIdle('all')
      const t0 = performance.now()
      const pages = await dev.lower.writeback({ scans: [{ mode: WB_IDLE, lo: 0, hi: ds.data.length / 4096 }] })
      const ms = performance.now() - t0
      const s = dev.lower.stats()
      runs.push({
        dataset: ds.name, format, pages, comprBefore: before.comprDataSize, lowerWritten: s.bdWrites * 4096,
        lowerLive: s.bdCount * 4096, allocated: dev.lower.allocatedBytes(), mbps: (pages * 4096) / MiB / (ms / 1000),
      })
      await dev.close()
      rmSync(join(work, `lower-${format}`), { force: true })
    }
    const m = runs[0]
    rows.push({ ...m, mbps: median(runs.map((x) => x.mbps)) })
  }
  return rows
}

interface PauseRow {
  dataset: string; pauseMs: number; p50: number; p99: number; max: number; elapsedMs: number
  readP50: number; readP99: number; reads: number; hits: number; written: number; paused: number
}

async function seed000(work: string, ds: Dataset): Promise<PauseRow[]> {
  // The pool limit: a quarter of what the data takes in the pool without one.
  const probe = device(work, 'packed', ds.data.length)
  await fill(probe, ds.data)
  const limit = Math.ceil(probe.stats().memUsedTotal / 4 / 4096) * 4096
  await probe.close()
  rmSync(join(work, 'lower-packed'), { force: true })
  const rows: PauseRow[] = []
  for (const pauseMs of [500, 0]) {
    const runs: PauseRow[] = []
    for (let r = 0; r < RUNS; r++) {
      const dev = device(work, 'packed', ds.data.length)
      dev.setPoolLimit(limit)
      dev.shrinker.enabled = true
      dev.shrinker.pauseMs = pauseMs
      const lat: number[] = []
      // A foreground reader alongside: random 4 KiB reads of what is already written (much of it
      // on the lower file), as swap-ins are; seed 000's pause exists for these.
      const readLat: number[] = []
      let writing = true
      let written = 0
      const reader = (async (): Promise<void> => {
        const page = Buffer.alloc(4096)
        let x = 12345
        while (writing) {
          x = (Math.imul(x, 1103515245) + 12345) >>> 0
          const pages = Math.floor(written / 4096)
          if (pages > 0) {
            const s = performance.now()
            await dev.read(page, (x % pages) * 4096)
            readLat.push(performance.now() - s)
          }
          await new Promise((resolve) => setImmediate(resolve))
        }
      })()
      const t0 = performance.now()
      for (let pos = 0; pos < ds.data.length; pos += REQUEST) {
        const s = performance.now()
        await dev.write(ds.data.subarray(pos, Math.min(ds.data.length, pos + REQUEST)), pos)
        lat.push(performance.now() - s)
        written = pos + REQUEST
      }
      const elapsedMs = performance.now() - t0
      writing = false
      await reader
      await dev.shrinker.idle()
      const st = dev.shrinker.stats()
      runs.push({ dataset: ds.name, pauseMs, p50: percentile(lat, 50), p99: percentile(lat, 99), max: Math.max(...lat), elapsedMs,
        readP50: percentile(readLat, 50), readP99: percentile(readLat, 99), reads: readLat.length,
        hits: st.poolLimitHit, written: dev.lower.stats().writtenBackPages, paused: st.paused })
      await dev.close()
      rmSync(join(work, 'lower-packed'), { force: true })
    }
    rows.push({
      ...runs[0], p50: median(runs.map((x) => x.p50)), p99: median(runs.map((x) => x.p99)), max: median(runs.map((x) => x.max)),
      elapsedMs: median(runs.map((x) => x.elapsedMs)), readP50: median(runs.map((x) => x.readP50)),
      readP99: median(runs.map((x) => x.readP99)), reads: median(runs.map((x) => x.reads)),
    })
  }
  return rows
}

async function main(): Promise<void> {
  const work = mkdtempSync(join(values.dir as string, 'zramfuse-wb-bench-'))
  try {
    const datasets: Dataset[] = []
    const real = readRealImage(values['real-dir'] as string)
    if (real) datasets.push(real)
    const mix = generateMix((128 * MiB) / 4096, 20261201)
    datasets.push({ name: 'generated mix (128 MiB)', data: mix.data })
    const lines: string[] = []
    const out = (l = ''): void => {
      lines.push(l)
      process.stdout.write(l + '\n')
    }
    out(`# Writeback bench (${new Date().toISOString()}), lower file in ${values.dir}, ${RUNS} runs, lz4, device layer in-process`)
    out()
    out('## Lower-file formats: `idle all` + `writeback idle`')
    out()
    out('| data | format | pages written back | compr_data_size before | lower bytes written | per page | in use / compr | writeback MB/s (median) |')
    out('|---|---|---:|---:|---:|---:|---:|---:|')
    for (const ds of datasets) {
      for (const r of await formats(work, ds)) {
        out(`| ${r.dataset} | ${r.format} | ${r.pages} | ${r.comprBefore} | ${r.lowerWritten} | ${(r.lowerWritten / r.pages).toFixed(0)} | ${(r.lowerLive / r.comprBefore).toFixed(3)}x | ${r.mbps.toFixed(0)} |`)
      }
    }
    out()
    out('## Seed 000: a foreground writer past a pool limit of 1/4 of its data, shrinker on, packed')
    out()
    out('| data | pause | 128k write p50 ms | p99 ms | max ms | elapsed s | 4k read p50 ms | read p99 ms | reads | pool_limit_hit | written back | shrinker_paused |')
    out('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
    for (const ds of datasets) {
      for (const r of await seed000(work, ds)) {
        out(`| ${r.dataset} | ${r.pauseMs} ms | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.max.toFixed(1)} | ${(r.elapsedMs / 1000).toFixed(2)} | ${r.readP50.toFixed(3)} | ${r.readP99.toFixed(3)} | ${r.reads} | ${r.hits} | ${r.written} | ${r.paused} |`)
      }
    }
    if (values.out) writeFileSync(values.out, lines.join('\n') + '\n')
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`${String((err as Error)?.stack ?? err)}\n`)
  process.exit(1)
})
