/**
 * `npm run bench -- --publish`: the run's report becomes the one committed in bench/results/. Older
 * reports are not kept in the tree (git history has them; the figures that matter are quoted in
 * docs/benchmarks.md), so the directory is emptied first and then gets exactly this run's files.
 */
import { copyFileSync, mkdirSync, readdirSync, rmSync } from 'node:fs'
import { basename, join } from 'node:path'

/** Replace every file in `dir` with copies of `files`; returns the names now there. */
export function publishReport(files: readonly string[], dir: string): string[] {
  if (files.length === 0) throw new Error('publish: no report files')
  mkdirSync(dir, { recursive: true })
  const names = files.map((f) => basename(f))
  if (new Set(names).size !== names.length) throw new Error(`publish: two report files share a name: ${names.join(', ')}`)
  for (const old of readdirSync(dir, { withFileTypes: true })) {
    if (old.isFile()) rmSync(join(dir, old.name))
  }
  for (const f of files) copyFileSync(f, join(dir, basename(f)))
  return readdirSync(dir).sort()
}
