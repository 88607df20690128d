/**
 * The bench's noise floor: an A/A control (two daemons with identical settings, measured like every
 * other target) says how far apart two measurements of the same code fall in this run, per job.
 * An A/B ratio inside that band is not evidence of a difference. Pure.
 */

export interface AaBand {
  /** median(twin) / median(base): the A/A ratio printed next to the A/B ratios */
  ratio: number
  /** twin / base of the runs of each repetition (run i of both, measured moments apart) */
  pairRatios: number[]
  /**
   * The half-width of the band as a factor >= 1: the largest of the A/A ratios above (or their
   * inverses). An A/B ratio r is inside the noise when 1/limit <= r <= limit.
   */
  limit: number
}

const median = (xs: readonly number[]): number => {
  const s = [...xs].sort((a, b) => a - b)
  const mid = s.length >> 1
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2
}

/** Symmetric distance of a ratio from 1, as a factor: 0.8 and 1.25 are both 1.25. */
export function factor(r: number): number {
  return r >= 1 ? r : 1 / r
}

/**
 * The A/A band of one job from the figures of the base target and its twin, in run order (one per
 * repetition). Null when either has no usable run.
 */
export function aaBand(base: readonly number[], twin: readonly number[]): AaBand | null {
  const b = base.filter((v) => Number.isFinite(v) && v > 0)
  const w = twin.filter((v) => Number.isFinite(v) && v > 0)
  if (b.length === 0 || w.length === 0 || b.length !== base.length || w.length !== twin.length) return null
  const ratio = median(w) / median(b)
  const n = Math.min(base.length, twin.length)
  const pairRatios: number[] = []
  for (let i = 0; i < n; i++) pairRatios.push(twin[i]! / base[i]!)
  const limit = Math.max(factor(ratio), ...pairRatios.map(factor))
  return { ratio, pairRatios, limit }
}

export type Significance = 'significant' | 'noise' | 'unknown'

/** Is an A/B ratio outside the A/A band? 'unknown' without a band or a ratio. */
export function classify(abRatio: number | null, band: AaBand | null): Significance {
  if (abRatio === null || band === null || !Number.isFinite(abRatio) || abRatio <= 0) return 'unknown'
  return factor(abRatio) > band.limit ? 'significant' : 'noise'
}

/** The mark the report puts after an A/B ratio inside the noise. */
export const NOT_SIGNIFICANT = 'n.s.'

/** "±12%": the band as the percentage it spans around 1. */
export function fmtBand(band: AaBand | null): string {
  if (band === null) return 'n/a'
  return `±${((band.limit - 1) * 100).toFixed(band.limit - 1 < 0.1 ? 1 : 0)}%`
}
