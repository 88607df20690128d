/** Sizes as people type them (4k, 256M, 1G, 1.5G): binary multiples, like the kernel's memparse. */

const UNITS: Record<string, number> = { '': 1, k: 1024, m: 1024 ** 2, g: 1024 ** 3, t: 1024 ** 4 }

export function parseSize(text: string): number {
  const m = /^\s*(\d+(?:\.\d+)?)\s*([kmgt]?)(?:i?b)?\s*$/i.exec(text)
  if (!m) throw new Error(`not a size: ${JSON.stringify(text)}`)
  const unit = UNITS[(m[2] ?? '').toLowerCase()]
  if (unit === undefined) throw new Error(`not a size: ${JSON.stringify(text)}`)
  const n = Math.round(Number(m[1]) * unit)
  if (!Number.isSafeInteger(n)) throw new Error(`size too large: ${text}`)
  return n
}

/** 1536 -> "1.5 KiB"; exact powers print without decimals. */
export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let v = Math.abs(n)
  let i = 0
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024
    i++
  }
  const s = i === 0 ? String(v) : v >= 100 || Number.isInteger(v) ? v.toFixed(0) : v.toFixed(v >= 10 ? 1 : 2)
  return `${n < 0 ? '-' : ''}${s} ${units[i] ?? 'B'}`
}
