/** Median, min and max of repeated measurements; ratios of medians. */

export interface Summary {
  n: number
  median: number
  min: number
  max: number
}

/** Median (mean of the middle two for an even count), min and max; null for no values. */
export function summarize(values: readonly number[]): Summary | null {
  const xs = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b)
  const n = xs.length
  if (n === 0) return null
  const mid = n >> 1
  const median = n % 2 === 1 ? xs[mid]! : (xs[mid - 1]! + xs[mid]!) / 2
  return { n, median, min: xs[0]!, max: xs[n - 1]! }
}

/** a / b on medians; null when either is missing or b is zero. */
export function ratio(a: Summary | null | undefined, b: Summary | null | undefined): number | null {
  if (!a || !b || b.median === 0) return null
  return a.median / b.median
}

/** Spread of a summary relative to its median: (max - min) / median, 0 for one run. */
export function spread(s: Summary): number {
  return s.median === 0 ? 0 : (s.max - s.min) / s.median
}
