/**
 * What a recompression run costs the requests around it, through the mount, as users see it: the
 * data written with lz4, `idle all`, then a 4 KiB random-read fio job at QD1 runs while
 * `recompress type=idle` moves every page to zstd (level 9 by default), single pages (the
 * kernel's) or 16-page units. The baseline is the same fio job on the same daemon just before,
 * with no recompression: the ratio of the two p99s is the figure (issue 26: <= 1.5x). fio's
 * per-request completion log (epoch timestamps) is cut to the recompression's own window.
 */
import { spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs'
import { join } from 'node:path'
import { type Cleanup, run, sleep, startDaemon, stopDaemon } from './sys'

export interface RecompressLatencyOptions {
  cleanup: Cleanup
  /** scratch directory (mounts, logs) */
  work: string
  /** the daemon's CLI (dist/daemon/cli.js) */
  cli: string
  data: Buffer
  dataName: string
  /** recompress_unit_pages: 1 (the kernel's page by page) or 2..16 */
  unitPages: number
  zstdLevel: number
  /** seconds of the baseline fio run */
  baselineS: number
  seed: number
  log: (m: string) => void
}

export interface RecompressLatencyRow {
  dataset: string
  unitPages: number
  zstdLevel: number
  /** how long the `recompress` write took */
  recompressS: number
  memBefore: number
  memAfter: number
  recompressedPages: number
  /** 4 KiB read latency percentiles, microseconds: without and during recompression */
  baseP50Us: number
  baseP99Us: number
  duringP50Us: number
  duringP99Us: number
  duringReads: number
  /** the same reads after the run: what the new objects (zstd, units) cost a read, with nothing else going on */
  afterP50Us: number
  afterP99Us: number
  /** the daemon's recompress_max_slice_ns, in ms, and its mean slice (recompress_main_ns / recompress_slices), in us */
  maxSliceMs: number
  meanSliceUs: number
  /** main-thread time of the run per page recompressed, us */
  mainUsPerPage: number
}

/** Percentile p (0..1) of a sorted array. */
function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))] as number
}

/** Completion latencies (ns) of fio's clat log lines ("epoch_ms, ns, dir, bs, offset") in [fromMs, toMs]. */
export function clatWindow(text: string, fromMs: number, toMs: number): number[] {
  const out: number[] = []
  for (const line of text.split('\n')) {
    const comma = line.indexOf(',')
    if (comma < 0) continue
    const t = Number(line.slice(0, comma))
    if (t < fromMs || t > toMs) continue
    const ns = Number(line.slice(comma + 1, line.indexOf(',', comma + 1)))
    if (Number.isFinite(ns)) out.push(ns)
  }
  return out.sort((a, b) => a - b)
}

function mmStat(sys: string): number[] {
  return readFileSync(join(sys, 'mm_stat'), 'utf8').trim().split(/\s+/).map(Number)
}

/** fio 4k randread QD1 on the block file until stopped (SIGINT); its clat log with epoch times. */
function startReader(o: RecompressLatencyOptions, file: string, size: number, logPrefix: string): { stop: () => Promise<string> } {
  const child = spawn('fio', ['--name=randread', `--filename=${file}`, '--direct=1', '--ioengine=psync', '--rw=randread', '--bs=4k',
    `--size=${size}`, '--time_based', '--runtime=600', `--randseed=${o.seed}`, `--write_lat_log=${logPrefix}`, '--log_unix_epoch=1',
    '--output-format=json'], { stdio: 'ignore', cwd: o.work })
  o.cleanup.children.add(child)
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()))
  return {
    stop: async () => {
      child.kill('SIGINT')
      await exited
      o.cleanup.children.delete(child)
      const path = `${logPrefix}_clat.1.log`
      const text = readFileSync(path, 'utf8')
      for (const kind of ['clat', 'lat', 'slat']) rmSync(`${logPrefix}_${kind}.1.log`, { force: true })
      return text
    },
  }
}

export async function recompressLatency(o: RecompressLatencyOptions): Promise<RecompressLatencyRow> {
  const mount = join(o.work, `recomp-mnt-${o.unitPages}`)
  mkdirSync(mount, { recursive: true })
  const d = await startDaemon(o.cleanup, 'zramfuse', o.cli, ['start', '--mount', mount, '--workers', '0'], mount,
    join(o.work, `recomp-daemon-${o.unitPages}-${Date.now()}.log`), join(o.work, 'pids'))
  try {
    const sys = join(mount, 'sys', 'block', 'zram0')
    const block = join(mount, 'dev', 'zram0')
    const set = (name: string, value: string): void => writeFileSync(join(sys, name), value)
    set('recomp_algorithm', 'algo=zstd')
    set('algorithm_params', `priority=1 level=${o.zstdLevel}`)
    set('disksize', String(o.data.length))
    const fd = openSync(block, 'r+')
    try {
      for (let pos = 0; pos < o.data.length; pos += 1 << 20) writeSync(fd, o.data, pos, Math.min(1 << 20, o.data.length - pos), pos)
    } finally {
      closeSync(fd)
    }
    set('zramfuse/recompress_unit_pages', String(o.unitPages))
    const memBefore = mmStat(sys)[2] as number

    const t0 = Date.now()
    const base = startReader(o, block, o.data.length, join(o.work, 'base'))
    await sleep(o.baselineS * 1000)
    const baseLog = await base.stop()
    const baseLat = clatWindow(baseLog, t0 + 500, Date.now())

    const during = startReader(o, block, o.data.length, join(o.work, 'during'))
    await sleep(1000)
    // Marked now: every page the reader touched meanwhile loses IDLE; the reader goes on, and the
    // pages it reads during the run are skipped by it (they lose SLOT_PP), as on the kernel.
    set('idle', 'all')
    const from = Date.now()
    const r = await run(o.cleanup, 'sh', ['-c', 'echo type=idle > "$0"', join(sys, 'recompress')], 600_000)
    const to = Date.now()
    if (r.code !== 0) throw new Error(`recompress: ${r.stderr.trim()}`)
    await sleep(300)
    const duringLog = await during.stop()
    const lat = clatWindow(duringLog, from, to)
    const t1 = Date.now()
    const after = startReader(o, block, o.data.length, join(o.work, 'after'))
    await sleep(o.baselineS * 1000)
    const afterLat = clatWindow(await after.stop(), t1 + 500, Date.now())
    const read = (name: string): number => Number(readFileSync(join(sys, 'zramfuse', name), 'utf8'))
    const row: RecompressLatencyRow = {
      dataset: o.dataName, unitPages: o.unitPages, zstdLevel: o.zstdLevel, recompressS: (to - from) / 1000,
      memBefore, memAfter: mmStat(sys)[2] as number, recompressedPages: read('recompressed_pages'),
      baseP50Us: percentile(baseLat, 0.5) / 1000, baseP99Us: percentile(baseLat, 0.99) / 1000,
      duringP50Us: percentile(lat, 0.5) / 1000, duringP99Us: percentile(lat, 0.99) / 1000, duringReads: lat.length,
      afterP50Us: percentile(afterLat, 0.5) / 1000, afterP99Us: percentile(afterLat, 0.99) / 1000,
      maxSliceMs: read('recompress_max_slice_ns') / 1e6,
      meanSliceUs: read('recompress_main_ns') / Math.max(1, read('recompress_slices')) / 1000,
      mainUsPerPage: read('recompress_main_ns') / Math.max(1, read('recompressed_pages')) / 1000,
    }
    return row
  } finally {
    await stopDaemon(o.cleanup, d, o.log)
  }
}

/** The rows as a markdown table, with the issue's target. */
export function latencyTable(rows: readonly RecompressLatencyRow[]): string[] {
  const out = [
    '| data | mode | zstd level | recompress s | pages | mem_used_total before -> after | 4k read p50 / p99 without (us) | during (us) | p99 ratio | reads during | after (us) | max / mean slice | main thread per page |',
    '|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
  ]
  for (const r of rows) {
    out.push(`| ${r.dataset} | ${r.unitPages === 1 ? 'single pages' : `units of ${r.unitPages}`} | ${r.zstdLevel} | ${r.recompressS.toFixed(2)} | ` +
      `${r.recompressedPages} | ${r.memBefore} -> ${r.memAfter} | ${r.baseP50Us.toFixed(0)} / ${r.baseP99Us.toFixed(0)} | ` +
      `${r.duringP50Us.toFixed(0)} / ${r.duringP99Us.toFixed(0)} | ${(r.duringP99Us / r.baseP99Us).toFixed(2)}x | ${r.duringReads} | ` +
      `${r.afterP50Us.toFixed(0)} / ${r.afterP99Us.toFixed(0)} | ${r.maxSliceMs.toFixed(2)} ms / ${r.meanSliceUs.toFixed(0)} us | ${r.mainUsPerPage.toFixed(1)} us |`)
  }
  return out
}
