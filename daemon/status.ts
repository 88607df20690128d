import { existsSync, readdirSync, readFileSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { findAttachments, readSystemView, type SystemView } from './attachments'
import { daemonAt, listDaemons, type DaemonEntry } from './daemons'
import { describeLeftover, leftoverFields, leftoverKind, leftoversOn, shellWord, undoCommands, type Leftover } from './leftovers'
import { readManagedAttachments } from './setup-devices'

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

/** A daemon of the host with what `status` shows of it. */
export interface DaemonReport extends DaemonEntry {
  /** a live daemon's devices */
  devices: DeviceStatus[]
  /** why the devices of a live daemon could not be read */
  error?: string
  /** loop devices a dead daemon left on its block files (leftovers.ts) */
  leftovers: Leftover[]
}

export function reportOf(d: DaemonEntry, view: SystemView = readSystemView()): DaemonReport {
  if (d.state === 'live') {
    try {
      return { ...d, devices: readStatus(d.mount), leftovers: [] }
    } catch (err) {
      return { ...d, devices: [], error: (err as Error).message, leftovers: [] }
    }
  }
  const leftovers = d.state === 'unmounted' ? [] : leftoversOn(d.mount, view, readManagedAttachments(d.mount))
  return { ...d, devices: [], leftovers }
}

function stateLine(r: DaemonReport): string {
  const daemon = r.pid === null ? 'its daemon' : `daemon ${r.pid}`
  switch (r.state) {
    case 'live': return `${r.mount}: ${r.error === undefined ? 'live' : `cannot read its devices: ${r.error}`}`
    case 'dead': return `${r.mount}: dead (${daemon} is gone; the mount does not answer)`
    case 'unmounted': return `${r.mount}: ${daemon} runs, but ${r.mount} is not mounted`
    case 'gone': return `${r.mount}: ${daemon} is gone, nothing is mounted`
  }
}

/** The lines for a daemon that is not serving: its state, what it left, and how to take that away. */
export function formatNotServing(r: DaemonReport): string {
  const lines = [stateLine(r)]
  for (const l of r.leftovers) {
    lines.push(`  ${describeLeftover(l)}`)
    const kind = leftoverKind(l)
    if (kind === 'attached' && r.state === 'dead') lines.push(`    (zramfuse start --mount ${shellWord(r.mount)} detaches it, or:)`)
    for (const c of undoCommands(l)) lines.push(`    ${c}`)
  }
  if (r.state === 'dead' && r.leftovers.length === 0) lines.push(`  nothing attached: zramfuse start --mount ${shellWord(r.mount)} cleans it, or fusermount -uz ${shellWord(r.mount)}`)
  return `${lines.join('\n')}\n`
}

function reportJson(r: DaemonReport): Record<string, unknown> {
  return { mount: r.mount, pid: r.pid, state: r.state, ...(r.error === undefined ? {} : { error: r.error }),
    devices: r.devices, leftovers: r.leftovers.map(leftoverFields) }
}

export interface StatusOutput {
  stdout: string
  stderr: string
  code: number
}

/**
 * `status` without --mount, as zramctl without a device: every initialised device of every live
 * daemon in one table; then the daemons that are not serving and what they left. Exit 0.
 */
export function statusOfHost(bytes: boolean, json: boolean): StatusOutput {
  const view = readSystemView()
  // A stale pid file with nothing left behind is no news.
  const reports = listDaemons().map((d) => reportOf(d, view)).filter((r) => r.state !== 'gone' || r.leftovers.length > 0)
  if (json) return { stdout: `${JSON.stringify({ daemons: reports.map(reportJson) }, null, 2)}\n`, stderr: '', code: 0 }
  const devs = reports.flatMap((r) => r.devices)
  const table = devs.some((d) => d.disksize > 0) ? formatTable(devs, bytes) : ''
  const others = reports.filter((r) => r.state !== 'live' || r.error !== undefined).map(formatNotServing)
  return { stdout: [table, ...others].filter((s) => s !== '').join('\n'), stderr: '', code: 0 }
}

/** `status --mount DIR`: its devices; for a daemon that is not serving, what it left, and exit 1. */
export function statusOfMount(mountArg: string, bytes: boolean, json: boolean): StatusOutput {
  const mount = resolve(mountArg)
  const entry = daemonAt(mount) ?? { mount, pid: null, state: 'gone' as const }
  const r = reportOf(entry)
  if (r.state === 'live' && r.error === undefined) {
    return { stdout: json ? `${JSON.stringify(r.devices, null, 2)}\n` : formatTable(r.devices, bytes), stderr: '', code: 0 }
  }
  if (r.state === 'gone' && r.leftovers.length === 0) return { stdout: '', stderr: `zramfuse: no daemon is serving ${mount}\n`, code: 1 }
  return { stdout: json ? `${JSON.stringify(reportJson(r), null, 2)}\n` : formatNotServing(r), stderr: '', code: 1 }
}
