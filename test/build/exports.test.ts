/**
 * Every compiled module of src/ keeps its exports object in V8's fast mode. The hot paths read
 * constants and call functions through those objects (CommonJS output: `size_class_1.classIndexOf`);
 * an exports object in dictionary mode turns each such read into a generic LoadIC call that the
 * optimizing compiler cannot inline. A re-export (`export { PAGE_SIZE } from '../page'`) is what
 * did it: tsc emits it as an accessor, which normalizes the object. perf on the w1 daemon (lz4,
 * 128k writes) found ~8% of the main thread in such calls (bench/results/2026-12-02-kcompressd-night.md, in git history).
 * Reads dist/ (scripts/test.sh builds it first), not the test loader's own transpilation.
 */
import t from 'tap'
import { existsSync, readdirSync, statSync } from 'node:fs'
import { join, relative, resolve } from 'node:path'
import { setFlagsFromString } from 'node:v8'

const DIST = resolve(__dirname, '..', '..', 'dist', 'src')

function modules(dir: string): string[] {
  const out: string[] = []
  for (const name of readdirSync(dir)) {
    const p = join(dir, name)
    if (statSync(p).isDirectory()) out.push(...modules(p))
    // Workers (kcompressd's worker.js, recompress-worker.js) run their loop when loaded: thread entry points, not modules of the hot path.
    else if (name.endsWith('.js') && !name.endsWith('worker.js')) out.push(p)
  }
  return out
}

t.test('compiled modules keep their exports in fast mode', (t) => {
  if (!existsSync(DIST)) {
    t.fail(`no build at ${DIST}: run npm run build (scripts/test.sh does)`)
    t.end()
    return
  }
  setFlagsFromString('--allow-natives-syntax')
  const hasFastProperties = new Function('o', 'return %HasFastProperties(o)') as (o: object) => boolean
  const files = modules(DIST)
  t.ok(files.length > 20, `found the compiled modules (${files.length})`)
  // A control, so the probe itself is known to tell the two apart.
  const slow: Record<string, number> = { a: 1 }
  Object.defineProperty(slow, 'a', { get: () => 1, enumerable: true })
  const control = { a: 1 }
  t.ok(hasFastProperties(control) && !hasFastProperties(slow), 'the probe tells fast from dictionary mode')
  for (const f of files) {
    const exports = require(f) as object
    t.ok(hasFastProperties(exports), `${relative(DIST, f)}: exports in fast mode (no re-exported bindings)`)
  }
  t.end()
})
