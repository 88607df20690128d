/** Grouped bar charts as plain SVG text: no browser, no dependencies. Pure. */

export interface Series {
  id: string
  label: string
  color?: string
}

export interface Bar {
  series: string
  /** the bar's height (the median); null draws a "n/a" mark */
  value: number | null
  /** whisker from min to max, when several runs were made */
  min?: number
  max?: number
}

export interface Group {
  label: string
  bars: Bar[]
}

export interface BarChart {
  title: string
  /** y axis label, e.g. "k IOPS" */
  unit: string
  series: Series[]
  groups: Group[]
  width?: number
  height?: number
}

/** Colour-blind-safe palette (Okabe-Ito). */
export const PALETTE = ['#0072B2', '#E69F00', '#009E73', '#CC79A7', '#56B4E9', '#D55E00', '#F0E442', '#000000']

export function escapeXml(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;').replace(/'/g, '&apos;')
}

/** 1, 2, 2.5, 5 x 10^k: the smallest such step with at most `count` steps up to `max`. */
export function niceStep(max: number, count = 5): number {
  if (!(max > 0)) return 1
  const raw = max / count
  const pow = 10 ** Math.floor(Math.log10(raw))
  for (const m of [1, 2, 2.5, 5, 10]) {
    if (m * pow >= raw) return m * pow
  }
  return 10 * pow
}

/** Short number for labels: 3 significant digits, no exponent. */
export function fmtNum(v: number): string {
  if (v === 0) return '0'
  const a = Math.abs(v)
  if (a >= 1000) return v.toFixed(0)
  if (a >= 100) return v.toFixed(0)
  if (a >= 10) return v.toFixed(1)
  if (a >= 1) return v.toFixed(2)
  return v.toPrecision(2)
}

/** Split a label into lines of at most `width` characters, at spaces where possible. */
export function wrapLabel(label: string, width: number): string[] {
  const lines: string[] = []
  let cur = ''
  for (const word of label.split(/\s+/).filter((w) => w !== '')) {
    if (cur === '') cur = word
    else if (cur.length + 1 + word.length <= width) cur += ' ' + word
    else {
      lines.push(cur)
      cur = word
    }
  }
  if (cur !== '') lines.push(cur)
  return lines
}

const f = (n: number): string => (Math.round(n * 10) / 10).toString()

export function renderBarChart(chart: BarChart): string {
  const width = chart.width ?? 860
  const height = chart.height ?? 360
  const m = { top: 56, right: 16, bottom: 64, left: 64 }
  const plotW = width - m.left - m.right
  const plotH = height - m.top - m.bottom
  const colors = new Map(chart.series.map((s, i) => [s.id, s.color ?? PALETTE[i % PALETTE.length] ?? '#333']))

  let top = 0
  for (const g of chart.groups) {
    for (const b of g.bars) top = Math.max(top, b.max ?? 0, b.value ?? 0)
  }
  const step = niceStep(top)
  const yMax = top > 0 ? Math.ceil(top / step) * step : 1
  const y = (v: number): number => m.top + plotH - (v / yMax) * plotH

  const out: string[] = []
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif" font-size="11">`)
  out.push(`<rect x="0" y="0" width="${width}" height="${height}" fill="#ffffff"/>`)
  out.push(`<text x="${f(width / 2)}" y="18" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(chart.title)}</text>`)

  // legend
  let lx = m.left
  for (const s of chart.series) {
    out.push(`<rect x="${f(lx)}" y="30" width="10" height="10" fill="${colors.get(s.id) ?? '#333'}"/>`)
    out.push(`<text x="${f(lx + 14)}" y="39">${escapeXml(s.label)}</text>`)
    lx += 24 + s.label.length * 6.2
  }

  // axes and grid
  for (let v = 0; v <= yMax + step / 1e6; v += step) {
    const yy = y(v)
    out.push(`<line x1="${m.left}" y1="${f(yy)}" x2="${width - m.right}" y2="${f(yy)}" stroke="#e5e5e5"/>`)
    out.push(`<text x="${m.left - 6}" y="${f(yy + 4)}" text-anchor="end">${Number.isInteger(step) ? v.toFixed(0) : fmtNum(v)}</text>`)
  }
  out.push(`<line x1="${m.left}" y1="${m.top}" x2="${m.left}" y2="${m.top + plotH}" stroke="#333"/>`)
  out.push(`<line x1="${m.left}" y1="${m.top + plotH}" x2="${width - m.right}" y2="${m.top + plotH}" stroke="#333"/>`)
  out.push(`<text x="14" y="${f(m.top + plotH / 2)}" text-anchor="middle" transform="rotate(-90 14 ${f(m.top + plotH / 2)})">${escapeXml(chart.unit)}</text>`)

  const nGroups = Math.max(1, chart.groups.length)
  const groupW = plotW / nGroups
  const nSeries = Math.max(1, chart.series.length)
  const barW = Math.max(2, (groupW * 0.8) / nSeries)
  chart.groups.forEach((g, gi) => {
    const gx = m.left + gi * groupW + groupW * 0.1
    chart.series.forEach((s, si) => {
      const b = g.bars.find((x) => x.series === s.id)
      const bx = gx + si * barW
      if (!b) return
      if (b.value === null) {
        out.push(`<text x="${f(bx + barW / 2)}" y="${f(m.top + plotH - 4)}" text-anchor="middle" font-size="9" fill="#888">n/a</text>`)
        return
      }
      const by = y(b.value)
      out.push(`<rect x="${f(bx)}" y="${f(by)}" width="${f(barW - 1)}" height="${f(m.top + plotH - by)}" fill="${colors.get(s.id) ?? '#333'}"><title>${escapeXml(`${g.label} / ${s.label}: ${fmtNum(b.value)} ${chart.unit}`)}</title></rect>`)
      if (b.min !== undefined && b.max !== undefined && b.max > b.min) {
        const cx = bx + (barW - 1) / 2
        out.push(`<path d="M${f(cx)} ${f(y(b.min))}V${f(y(b.max))}M${f(cx - 3)} ${f(y(b.min))}h6M${f(cx - 3)} ${f(y(b.max))}h6" stroke="#222" fill="none"/>`)
      }
      out.push(`<text x="${f(bx + barW / 2)}" y="${f(y(b.max ?? b.value) - 3)}" text-anchor="middle" font-size="9">${fmtNum(b.value)}</text>`)
    })
    const cx = m.left + gi * groupW + groupW / 2
    wrapLabel(g.label, Math.max(6, Math.floor(groupW / 6))).slice(0, 3).forEach((line, li) => {
      out.push(`<text x="${f(cx)}" y="${f(m.top + plotH + 16 + li * 13)}" text-anchor="middle">${escapeXml(line)}</text>`)
    })
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}
