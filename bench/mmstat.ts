/** mm_stat: the kernel zram's memory statistics line, parsed by name and compared column by column. */

export const MM_STAT_FIELDS = [
  'orig_data_size',
  'compr_data_size',
  'mem_used_total',
  'mem_limit',
  'mem_used_max',
  'same_pages',
  'pages_compacted',
  'huge_pages',
  'huge_pages_since',
] as const

export type MmStatField = (typeof MM_STAT_FIELDS)[number]
export type MmStat = Record<MmStatField, number>

/** Fields counted in pages; the others are bytes. */
export const MM_STAT_PAGE_FIELDS: ReadonlySet<MmStatField> = new Set<MmStatField>([
  'same_pages', 'pages_compacted', 'huge_pages', 'huge_pages_since',
])

/**
 * Parse one mm_stat line. Older kernels print 8 columns (no huge_pages_since) and very old ones 7:
 * missing trailing columns read as 0. Anything that is not a number is an error.
 */
export function parseMmStat(line: string): MmStat {
  const cols = line.trim().split(/\s+/)
  if (cols.length < 7 || cols.length > MM_STAT_FIELDS.length) {
    throw new Error(`mm_stat: expected 7..9 columns, got ${cols.length}: ${JSON.stringify(line)}`)
  }
  const out = {} as MmStat
  MM_STAT_FIELDS.forEach((f, i) => {
    const c = cols[i]
    if (c === undefined) {
      out[f] = 0
      return
    }
    if (!/^-?\d+$/.test(c)) throw new Error(`mm_stat: column ${i + 1} (${f}) is not a number: ${c}`)
    out[f] = Number(c)
  })
  return out
}

/** The line the kernel would print: `%8llu` per column, space separated. */
export function formatMmStat(s: MmStat): string {
  return MM_STAT_FIELDS.map((f) => String(s[f]).padStart(8)).join(' ')
}

export interface MmStatDiff {
  field: MmStatField
  a: number
  b: number
  /** b - a */
  diff: number
  /** (b - a) / a, null when a is 0 */
  rel: number | null
}

/** Column by column b - a (a is the reference, e.g. the kernel). */
export function diffMmStat(a: MmStat, b: MmStat): MmStatDiff[] {
  return MM_STAT_FIELDS.map((field) => {
    const diff = b[field] - a[field]
    return { field, a: a[field], b: b[field], diff, rel: a[field] === 0 ? null : diff / a[field] }
  })
}

/** compressed bytes per original byte, the figure zram users quote (orig / compr). */
export function compressionRatio(s: MmStat): number | null {
  return s.compr_data_size === 0 ? null : s.orig_data_size / s.compr_data_size
}

/** mem_used_total / compr_data_size: the pool's overhead (fragmentation) over the compressed data. */
export function poolOverhead(s: MmStat): number | null {
  return s.compr_data_size === 0 ? null : s.mem_used_total / s.compr_data_size
}
