/** What a run records about itself and writes: target and source descriptions, the report files. */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildCharts, renderReport } from './report'
import { type TargetInfo } from './results'
import { readText } from './sys'
import { type TargetSpec } from './targets'
import { REPO, CLI, CEILING_C, BUILD_CEILING_C, Ctx } from './context'

export function targetInfo(t: TargetSpec): TargetInfo {
  return {
    id: t.id, title: t.title, kind: t.kind, modes: [...t.modes], algorithm: t.algorithm,
    workers: typeof t.workers === 'number' ? t.workers : null, variant: t.variant, ...(t.twinOf ? { twinOf: t.twinOf } : {}),
    ...(t.transport ? { transport: t.transport } : {}), ...(t.threads ? { threads: t.threads } : {}),
  }
}

/**
 * Build the C ceiling if it is missing or older than its source (scripts/build-ceiling.sh is
 * idempotent and takes a fraction of a second). Never throws: a failed build leaves the two C
 * targets out, with the script's error as the reason.
 */
export function buildCeilingC(): { ok: boolean; reason: string } {
  try {
    execFileSync('bash', [BUILD_CEILING_C], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 120_000 })
  } catch (e) {
    const stderr = (e as { stderr?: unknown }).stderr
    const text = typeof stderr === 'string' ? stderr : String(e)
    const why = text.split('\n').filter((l) => /ERROR/.test(l)).map((l) => l.replace(/^build-ceiling\.sh: ERROR: /, '')).join('; ')
    return { ok: false, reason: `bash scripts/build-ceiling.sh failed: ${why || text.trim().slice(-300)}` }
  }
  return existsSync(CEILING_C) ? { ok: true, reason: '' } : { ok: false, reason: `${CEILING_C} is missing after scripts/build-ceiling.sh` }
}

/** The measured source: the commit .git/HEAD names (read, git is not run) and when dist/ was built. */
export function sourceInfo(): string {
  const parts: string[] = []
  const head = (readText(join(REPO, '.git', 'HEAD')) ?? '').trim()
  let commit: string | null = null
  const ref = /^ref: (.+)$/.exec(head)?.[1]
  if (ref) {
    commit = (readText(join(REPO, '.git', ref)) ?? '').trim() || null
    if (!commit) {
      const packed = (readText(join(REPO, '.git', 'packed-refs')) ?? '').split('\n').find((l) => l.endsWith(` ${ref}`))
      commit = packed?.split(' ')[0] ?? null
    }
  } else if (/^[0-9a-f]{40}$/.test(head)) commit = head
  parts.push(commit ? `commit ${commit.slice(0, 12)}${ref ? ` (${ref.replace('refs/heads/', '')})` : ''} plus any uncommitted changes` : 'commit unknown')
  try {
    parts.push(`dist built ${statSync(CLI).mtime.toISOString()}`)
  } catch {
    // no build
  }
  return parts.join('; ')
}

export function stamp(d: Date): string {
  const p = (n: number): string => String(n).padStart(2, '0')
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())}-${p(d.getHours())}${p(d.getMinutes())}${p(d.getSeconds())}`
}

export function writeOutputs(ctx: Ctx, startedAt: Date): { md: string, files: string[] } {
  const r = ctx.results
  const finished = new Date()
  r.finishedAt = finished.toISOString()
  r.durationS = (finished.getTime() - startedAt.getTime()) / 1000
  mkdirSync(ctx.opts.outDir, { recursive: true })
  const stem = stamp(startedAt) + (ctx.opts.quick ? '-quick' : '')
  const charts = buildCharts(r)
  const chartFiles = charts.map((c) => {
    const file = `${stem}-${c.name}.svg`
    writeFileSync(join(ctx.opts.outDir, file), c.svg)
    return { file, title: c.title }
  })
  writeFileSync(join(ctx.opts.outDir, `${stem}.json`), JSON.stringify(r, null, 1) + '\n')
  const md = join(ctx.opts.outDir, `${stem}.md`)
  writeFileSync(md, renderReport(r, chartFiles))
  return { md, files: [md, join(ctx.opts.outDir, `${stem}.json`), ...chartFiles.map((c) => join(ctx.opts.outDir, c.file))] }
}
