import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { findAttachments } from './attachments'

/** The mm_stat and io_stat fields, in the kernel's order, named as zram.rst names them. */
export const MM_STAT_FIELDS = ['orig_data_size', 'compr_data_size', 'mem_used_total', 'mem_limit',
  'mem_used_max', 'same_pages', 'pages_compacted', 'huge_pages', 'huge_pages_since'] as const
export const IO_STAT_FIELDS = ['failed_reads', 'failed_writes', 'invalid_io', 'notify_free'] as const
/** bd_stat, in 4 KiB units. */
export const BD_STAT_FIELDS = ['bd_count', 'bd_reads', 'bd_writes'] as const

export interface DeviceStatus {
  name: string
  blockFile: string
  disksize: number
  algorithm: string
  /** max_comp_streams, which kernels since 2025 (and we) no longer have: null, an empty column as in zramctl */
  streams: number | null
  mountpoint: string
  mm_stat: Record<(typeof MM_STAT_FIELDS)[number], number>
  io_stat: Record<(typeof IO_STAT_FIELDS)[number], number>
  /** "none" without a lower file, as backing_dev prints it. */
  backing_dev: string
  bd_stat: Record<(typeof BD_STAT_FIELDS)[number], number>
  written_back_pages: number
}

function fields<K extends string>(names: readonly K[], line: string): Record<K, number> {
  const values = line.trim().split(/\s+/).map(Number)
  const out = {} as Record<K, number>
  names.forEach((n, i) => { out[n] = values[i] ?? 0 })
  return out
}

/** Read a device's status through the mount, the way zramctl reads /sys/block/zramN. */
export function readStatus(mountArg: string): DeviceStatus[] {
  const mount = resolve(mountArg)
  const names = readdirSync(join(mount, 'sys/block')).filter((n) => /^zram\d+$/.test(n))
    .sort((a, b) => Number(a.slice(4)) - Number(b.slice(4)))
  return names.map((name) => {
    const sys = (attr: string): string => readFileSync(join(mount, 'sys/block', name, attr), 'utf8')
    const blockFile = join(mount, 'dev', name)
    const att = findAttachments(blockFile)
    const algo = /\[([^\]]+)\]/.exec(sys('comp_algorithm'))?.[1] ?? ''
    return {
      name,
      blockFile,
      disksize: Number(sys('disksize')),
      algorithm: algo,
      streams: existsSync(join(mount, 'sys/block', name, 'max_comp_streams')) ? Number(sys('max_comp_streams')) : null,
      mountpoint: att.swaps.length ? '[SWAP]' : (att.mounts[0] ?? ''),
      mm_stat: fields(MM_STAT_FIELDS, sys('mm_stat')),
      io_stat: fields(IO_STAT_FIELDS, sys('io_stat')),
      backing_dev: sys('backing_dev').trimEnd(),
      bd_stat: fields(BD_STAT_FIELDS, sys('bd_stat')),
      written_back_pages: Number(sys('zramfuse/written_back_pages')),
    }
  })
}

/** util-linux size_to_human_string with one-letter suffixes: 0B, 4K, 1.5G. */
export function humanSize(bytes: number): string {
  const suffixes = ['B', 'K', 'M', 'G', 'T', 'P', 'E']
  let exp = 0
  while (exp < suffixes.length - 1 && bytes >= 1024 ** (exp + 1)) exp++
  if (exp === 0) return `${bytes}B`
  const v = Math.round((bytes / 1024 ** exp) * 10) / 10
  return `${Number.isInteger(v) ? v.toFixed(0) : v.toFixed(1)}${suffixes[exp]}`
}

/** zramctl's default columns, for initialised devices (zramctl lists used devices only). */
export function formatTable(devs: DeviceStatus[], bytes: boolean): string {
  const size = (n: number): string => (bytes ? String(n) : humanSize(n))
  const shown = devs.filter((d) => d.disksize > 0)
  // The lower tier's columns appear when a device has a backing file: bytes of the lower file in
  // use (bd_count x 4 KiB) and pages written back.
  const lower = shown.some((d) => d.backing_dev !== 'none')
  const header = ['NAME', 'ALGORITHM', 'DISKSIZE', 'DATA', 'COMPR', 'TOTAL', 'STREAMS',
    ...(lower ? ['LOWER', 'WB-PAGES'] : []), 'MOUNTPOINT']
  const rows = shown.map((d) => [
    d.blockFile, d.algorithm, size(d.disksize), size(d.mm_stat.orig_data_size),
    size(d.mm_stat.compr_data_size), size(d.mm_stat.mem_used_total), d.streams === null ? '' : String(d.streams),
    ...(lower ? [size(d.bd_stat.bd_count * 4096), String(d.written_back_pages)] : []), d.mountpoint,
  ])
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const leftAligned = new Set([0, 1, header.length - 1])
  const line = (cells: string[]): string => cells.map((c, i) =>
    (leftAligned.has(i) ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join(' ').trimEnd()
  return [line(header), ...rows.map(line)].join('\n') + '\n'
}
