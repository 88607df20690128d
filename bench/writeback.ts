#!/usr/bin/env node
/**
 * The writeback tier (issue 9), measured in-process on the device layer (no FUSE: these figures
 * are about the lower tier, not the FUSE round trip), with the lower file on the machine's disk:
 *
 *  1. formats: the real-data image (an ext4 image of /usr/share/doc, as the fidelity bench makes it)
 *     and the generated mix are written to a device, `idle all` + `writeback idle`; per format
 *     (page = the kernel's, compressed = compressed_writeback, packed = ours): bytes written to the
 *     lower file per page written back, lower-file bytes in use against compr_data_size before the
 *     writeback, and writeback throughput (MB/s of pages written back);
 *  2. seed 000's scenario: a foreground writer writes the data past a pool limit of a quarter of
 *     its pool size with the shrinker on, while a foreground reader reads random pages already
 *     written (4 KiB, like swap-ins); each 128 KiB write's and 4 KiB read's latency and the elapsed
 *     time, with the shrinker's pause at 500 ms (the proposal) and at 0 (never pause). Medians of RUNS.
 *  3. segment cleaning, on the packed layout itself (src/backing, no device): the data's pages,
 *     lz4-compressed, are packed into 1 MiB segments on the lower file, a seeded three quarters of
 *     them freed (as overwrites free them), then one clean() copies the live records out of every
 *     sparse segment and each emptied segment is punched out of the file; a foreground reader reads
 *     random live records meanwhile (4 KiB-page swap-ins). Per run: time to clean and until the last
 *     punch is done, segments and punches per second, the JavaScript thread's time inside each
 *     punchHole() call (spawning fallocate(1) costs it a fork; the addon only queues work), each
 *     punch's latency, the event loop's delay and the reader's latency while cleaning. Punches are
 *     observed by wrapping the file's punchHole, so the same bench measures any implementation.
 *
 *   node dist/bench/writeback.js [--runs 3] [--dir /var/tmp] [--real-dir /usr/share/doc] [--out FILE]
 *     [--sections formats,seed000,cleaning]
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { monitorEventLoopDelay } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { LowerFile } from '../src/backing/lower-file'
import { PackedLayout, type RecordOwner } from '../src/backing/packed-layout'
import { lz4 } from '../src/codec/lz4'
import { ZramDevice } from '../src/device/zram-device'
import { generateMix, prng } from './mix'
import { readRealImage } from './real-image'
import { WB_IDLE } from '../src/writeback/writeback-request'

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    dir: { type: 'string', default: '/var/tmp' },
    'real-dir': { type: 'string', default: '/usr/share/doc' },
    out: { type: 'string' },
    sections: { type: 'string', default: 'formats,seed000,cleaning' },
  },
})
const RUNS = Number(values.runs)
const SECTIONS = new Set((values.sections as string).split(','))
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

/** A dataset's pages lz4-compressed, back to back (same-filled pages have no record, as in zram). */
interface Compressed { payload: Buffer; offset: Float64Array; length: Uint16Array; pages: number }

function compressPages(ds: Dataset): Compressed {
  const pages = Math.floor(ds.data.length / 4096)
  const ctx = lz4.createContext({ level: null, dict: null })
  const payload = Buffer.alloc(pages * 4096)
  const offset = new Float64Array(pages)
  const length = new Uint16Array(pages)
  const dst = Buffer.alloc(8192)
  let at = 0
  for (let i = 0; i < pages; i++) {
    const page = ds.data.subarray(i * 4096, (i + 1) * 4096)
    const words = new Uint32Array(page.buffer, page.byteOffset, 1024)
    let same = true
    for (let w = 1; w < 1024 && same; w++) same = words[w] === words[0]
    if (same) continue
    let n = ctx.compress(page, dst)
    // Incompressible: stored whole (a huge page's record).
    if (n === 0 || n >= 4096) {
      page.copy(payload, at)
      n = 4096
    } else {
      dst.copy(payload, at, 0, n)
    }
    offset[i] = at
    length[i] = n
    at += n
  }
  return { payload, offset, length, pages }
}

/** The page table's part, for the cleaner: where each page's record is (-1: none). */
class TableOwner implements RecordOwner {
  readonly at: Float64Array
  constructor(private readonly layout: PackedLayout, private readonly length: Uint16Array, pages: number) {
    this.at = new Float64Array(pages).fill(-1)
  }

  isAt(index: number, location: number): boolean {
    return this.at[index] === location
  }

  relocate(index: number, from: number, to: number): boolean {
    if (this.at[index] !== from) return false
    this.at[index] = to
    this.layout.free(from, this.length[index])
    return true
  }
}

interface CleanRow {
  dataset: string; cleaned: number; copiedBytes: number; cleanMs: number; punchedMs: number; punches: number; punchFailures: number
  callUsP50: number; callUsMax: number; punchP50: number; punchMax: number; loopP99: number; loopMax: number
  readP50: number; readP99: number; readMax: number; reads: number; allocBefore: number; allocAfter: number
  /** The process's resident size as cleaning starts: what a fork has to copy the page tables of. */
  rssBytes: number
}

async function cleaning(work: string, ds: Dataset, c: Compressed): Promise<CleanRow> {
  const runs: CleanRow[] = []
  for (let r = 0; r < RUNS; r++) {
    const path = join(work, 'lower-clean')
    const file = LowerFile.open(path)
    const layout = new PackedLayout({ file, devicePages: c.pages })
    const owner = new TableOwner(layout, c.length, c.pages)
    // Every punch, whatever implements it: the JavaScript thread's time in the call, and when it settles.
    const callMs: number[] = []
    const latencyMs: number[] = []
    const pending = new Set<Promise<void>>()
    let failures = 0
    const punchHole = file.punchHole.bind(file)
    file.punchHole = (pos: number, len: number): Promise<void> => {
      const t0 = performance.now()
      const p = punchHole(pos, len)
      callMs.push(performance.now() - t0)
      const done = p.then(() => undefined, () => { failures++ }).finally(() => {
        latencyMs.push(performance.now() - t0)
        pending.delete(done)
      })
      pending.add(done)
      return p
    }
    const settle = async (): Promise<void> => {
      while (pending.size > 0) await Promise.allSettled([...pending])
    }
    const writes: Array<Promise<void>> = []
    for (let i = 0; i < c.pages; i++) {
      if (c.length[i] === 0) continue
      const wait = layout.backpressure(32)
      if (wait !== null) await wait
      const payload = c.payload.subarray(c.offset[i], c.offset[i] + c.length[i])
      writes.push(layout.append(i, payload, 0, c.length[i] === 4096).then((loc) => { owner.at[i] = loc }))
    }
    await layout.flush()
    await Promise.all(writes)
    // Three quarters of the pages overwritten: their records are dead.
    const rand = prng(20261207 + r)
    for (let i = 0; i < c.pages; i++) {
      if (owner.at[i] < 0 || rand() >= 0.75) continue
      layout.free(owner.at[i], c.length[i])
      owner.at[i] = -1
    }
    await settle()
    callMs.length = latencyMs.length = 0
    failures = 0
    const live: number[] = []
    for (let i = 0; i < c.pages; i++) if (owner.at[i] >= 0) live.push(i)
    const allocBefore = file.allocatedBytes()
    const rssBytes = process.memoryUsage().rss
    const writesBefore = layout.bdWrites
    const loop = monitorEventLoopDelay({ resolution: 1 })
    const readLat: number[] = []
    let cleaningNow = true
    const reader = (async (): Promise<void> => {
      let x = 777
      while (cleaningNow) {
        x = (Math.imul(x, 1103515245) + 12345) >>> 0
        const i = live[x % live.length]
        const s = performance.now()
        await layout.read(owner.at[i], i, c.length[i])
        readLat.push(performance.now() - s)
        await new Promise((resolve) => setImmediate(resolve))
      }
    })()
    loop.enable()
    const t0 = performance.now()
    const cleaned = await layout.clean(owner)
    const cleanMs = performance.now() - t0
    // A punch waits for the reads that started before its segment was freed: stop the reader first.
    cleaningNow = false
    await reader
    await settle()
    const punchedMs = performance.now() - t0
    loop.disable()
    runs.push({
      dataset: ds.name, cleaned, copiedBytes: (layout.bdWrites - writesBefore) * 4096, cleanMs, punchedMs, punches: latencyMs.length,
      punchFailures: failures, callUsP50: (percentile(callMs, 50) ?? 0) * 1000,
      callUsMax: Math.max(0, ...callMs) * 1000, punchP50: percentile(latencyMs, 50) ?? 0, punchMax: Math.max(0, ...latencyMs),
      loopP99: loop.percentile(99) / 1e6, loopMax: loop.max / 1e6,
      readP50: percentile(readLat, 50) ?? 0, readP99: percentile(readLat, 99) ?? 0, readMax: Math.max(0, ...readLat), reads: readLat.length,
      allocBefore, allocAfter: file.allocatedBytes(), rssBytes,
    })
    file.close()
    rmSync(path, { force: true })
  }
  const m = (f: (x: CleanRow) => number): number => median(runs.map(f))
  return {
    ...runs[0], cleanMs: m((x) => x.cleanMs), punchedMs: m((x) => x.punchedMs), callUsP50: m((x) => x.callUsP50), callUsMax: m((x) => x.callUsMax),
    punchP50: m((x) => x.punchP50), punchMax: m((x) => x.punchMax), loopP99: m((x) => x.loopP99), loopMax: m((x) => x.loopMax),
    readP50: m((x) => x.readP50), readP99: m((x) => x.readP99), readMax: m((x) => x.readMax), reads: m((x) => x.reads),
  }
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
    if (SECTIONS.has('formats')) {
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
    }
    if (SECTIONS.has('seed000')) {
      out('## Seed 000: a foreground writer past a pool limit of 1/4 of its data, shrinker on, packed')
      out()
      out('| data | pause | 128k write p50 ms | p99 ms | max ms | elapsed s | 4k read p50 ms | read p99 ms | reads | pool_limit_hit | written back | shrinker_paused |')
      out('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
      for (const ds of datasets) {
        for (const r of await seed000(work, ds)) {
          out(`| ${r.dataset} | ${r.pauseMs} ms | ${r.p50.toFixed(3)} | ${r.p99.toFixed(3)} | ${r.max.toFixed(1)} | ${(r.elapsedMs / 1000).toFixed(2)} | ${r.readP50.toFixed(3)} | ${r.readP99.toFixed(3)} | ${r.reads} | ${r.hits} | ${r.written} | ${r.paused} |`)
        }
      }
      out()
    }
    if (SECTIONS.has('cleaning')) {
      out('## Segment cleaning: 3/4 of the records freed, one clean() of every sparse 1 MiB segment, a reader alongside')
      out()
      out('| data | segments cleaned | MB copied | clean ms | until punched ms | segments/s | punches/s | failed | JS thread per punch call µs (p50 / max) | punch ms (p50 / max) | loop delay ms (p99 / max) | 4k read ms (p50 / p99 / max) | reads | allocated MB before / after | RSS MB |')
      out('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|')
      for (const ds of datasets) {
        const r = await cleaning(work, ds, compressPages(ds))
        out(`| ${r.dataset} | ${r.cleaned} | ${(r.copiedBytes / MiB).toFixed(1)} | ${r.cleanMs.toFixed(0)} | ${r.punchedMs.toFixed(0)} | ${(r.cleaned / (r.punchedMs / 1000)).toFixed(0)} | ${(r.punches / (r.punchedMs / 1000)).toFixed(0)} | ${r.punchFailures} | ${r.callUsP50.toFixed(0)} / ${r.callUsMax.toFixed(0)} | ${r.punchP50.toFixed(2)} / ${r.punchMax.toFixed(1)} | ${r.loopP99.toFixed(1)} / ${r.loopMax.toFixed(1)} | ${r.readP50.toFixed(3)} / ${r.readP99.toFixed(2)} / ${r.readMax.toFixed(1)} | ${r.reads} | ${(r.allocBefore / MiB).toFixed(0)} / ${(r.allocAfter / MiB).toFixed(0)} | ${(r.rssBytes / MiB).toFixed(0)} |`)
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
