/**
 * `zramfuse status --watch [SECONDS]`: a table refreshed every interval, like `watch zramctl` but
 * with the figures people compute by hand from two samples: reads/s and writes/s (from `stat`),
 * read and write MB/s, the compression ratio (orig_data_size / compr_data_size, and DATA/TOTAL as
 * zramctl's COMP-RATIO), and pool use against mem_limit. Reads the mount's files only.
 */
import { readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { humanSize, readStatus, type DeviceStatus } from './status'

export interface WatchSample {
  /** monotonic seconds */
  at: number
  devices: Map<string, { status: DeviceStatus; stat: number[] }>
}

export interface WatchRow {
  name: string
  algorithm: string
  disksize: number
  data: number
  compr: number
  total: number
  memLimit: number
  readsPerSecond: number | null
  writesPerSecond: number | null
  readMBps: number | null
  writeMBps: number | null
  /** orig_data_size / compr_data_size; null while nothing compressed is stored */
  ratio: number | null
  /** orig_data_size / mem_used_total (zramctl's COMP-RATIO) */
  ratioTotal: number | null
  /** mem_used_total / mem_limit; null without a limit */
  poolUse: number | null
  wbPages: number
}

export function takeSample(mountArg: string, now = performance.now() / 1000): WatchSample {
  const mount = resolve(mountArg)
  const devices = new Map<string, { status: DeviceStatus; stat: number[] }>()
  for (const status of readStatus(mount)) {
    const stat = readFileSync(join(mount, 'sys/block', status.name, 'stat'), 'utf8').trim().split(/\s+/).map(Number)
    devices.set(status.name, { status, stat })
  }
  return { at: now, devices }
}

const READ_IOS = 0
const READ_SECTORS = 2
const WRITE_IOS = 4
const WRITE_SECTORS = 6
const MB = 1e6

/** Rows for the devices in `cur`; rates need `prev` (null on the first sample, or for a new device). */
export function computeRows(prev: WatchSample | null, cur: WatchSample): WatchRow[] {
  const rows: WatchRow[] = []
  for (const [name, { status: s, stat }] of cur.devices) {
    if (s.disksize === 0) continue // zramctl lists initialised devices only
    const before = prev?.devices.get(name)
    const dt = prev === null ? 0 : cur.at - prev.at
    const rate = (i: number, scale = 1): number | null => {
      if (before === undefined || dt <= 0) return null
      const d = (stat[i] ?? 0) - (before.stat[i] ?? 0)
      return d < 0 ? null : (d * scale) / dt // a reset in between: no rate
    }
    const mm = s.mm_stat
    rows.push({
      name, algorithm: s.algorithm, disksize: s.disksize, data: mm.orig_data_size, compr: mm.compr_data_size,
      total: mm.mem_used_total, memLimit: mm.mem_limit,
      readsPerSecond: rate(READ_IOS), writesPerSecond: rate(WRITE_IOS),
      readMBps: rate(READ_SECTORS, 512 / MB), writeMBps: rate(WRITE_SECTORS, 512 / MB),
      ratio: mm.compr_data_size > 0 ? mm.orig_data_size / mm.compr_data_size : null,
      ratioTotal: mm.mem_used_total > 0 ? mm.orig_data_size / mm.mem_used_total : null,
      poolUse: mm.mem_limit > 0 ? mm.mem_used_total / mm.mem_limit : null,
      wbPages: s.written_back_pages,
    })
  }
  return rows
}

function fixed(v: number | null, digits: number): string {
  return v === null ? '-' : v.toFixed(digits)
}

export function formatWatch(rows: WatchRow[], intervalSeconds: number, when: Date): string {
  const header = ['NAME', 'ALGO', 'DISKSIZE', 'DATA', 'COMPR', 'TOTAL', 'RATIO', 'R/TOTAL', 'POOL/LIMIT', 'READS/s', 'WRITES/s', 'READ MB/s', 'WRITE MB/s', 'WB-PAGES']
  const cells = rows.map((r) => [
    r.name, r.algorithm, humanSize(r.disksize), humanSize(r.data), humanSize(r.compr), humanSize(r.total),
    fixed(r.ratio, 2), fixed(r.ratioTotal, 2),
    r.poolUse === null ? `${humanSize(r.total)}/-` : `${(r.poolUse * 100).toFixed(1)}% of ${humanSize(r.memLimit)}`,
    fixed(r.readsPerSecond, 0), fixed(r.writesPerSecond, 0), fixed(r.readMBps, 1), fixed(r.writeMBps, 1), String(r.wbPages),
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => (c[i] as string).length)))
  const line = (c: string[]): string => c.map((x, i) => (i < 2 ? x.padEnd(widths[i] as number) : x.padStart(widths[i] as number))).join(' ').trimEnd()
  return `every ${intervalSeconds}s  ${when.toISOString()}\n${[line(header), ...cells.map(line)].join('\n')}\n`
}

export interface WatchOptions {
  mount: string
  intervalSeconds: number
  /** stop after this many tables (default: until interrupted) */
  count?: number
  write?: (text: string) => void
  /** clear the screen between tables (default: when stdout is a terminal) */
  clear?: boolean
}

/** Print a table every interval; the first one has no rates yet ("-"). */
export async function watch(opts: WatchOptions): Promise<number> {
  const write = opts.write ?? ((t: string) => process.stdout.write(t))
  const clear = opts.clear ?? process.stdout.isTTY === true
  let prev: WatchSample | null = null
  for (let n = 0; opts.count === undefined || n < opts.count; n++) {
    if (n > 0) await new Promise((r) => setTimeout(r, opts.intervalSeconds * 1000))
    const cur = takeSample(opts.mount)
    const text = formatWatch(computeRows(prev, cur), opts.intervalSeconds, new Date())
    write(clear ? `\x1b[H\x1b[2J${text}` : `${n > 0 ? '\n' : ''}${text}`)
    prev = cur
  }
  return 0
}
