import t from 'tap'
import { readdirSync, readFileSync } from 'node:fs'
import { join, relative } from 'node:path'

// The page table has one writer, src/device/slot-store.ts: every other module reads it through
// PageTableView, whose typed arrays have readonly index signatures. These checks keep it so: a module
// that imported the PageTable class, or wrote into a table's arrays, could bypass the slot store.
const ROOT = join(__dirname, '..', '..')
const OWNERS = new Set(['src/device/page-table.ts', 'src/device/slot-store.ts'])

function sources(dir: string): string[] {
  const out: string[] = []
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const p = join(dir, e.name)
    if (e.isDirectory()) out.push(...sources(p))
    else if (e.name.endsWith('.ts')) out.push(p)
  }
  return out
}

const files = ['src', 'daemon', 'bench'].flatMap((d) => sources(join(ROOT, d))).map((p) => relative(ROOT, p))

t.test('the sources are there to check', async (t) => {
  t.ok(files.includes('src/device/zram-device.ts') && files.includes('src/device/slot-store.ts'))
  t.ok(files.length > 50, `${files.length} files`)
})

t.test('only the slot store and the table itself name the PageTable class', async (t) => {
  const offenders = files.filter((f) => !OWNERS.has(f) && /\bPageTable\b(?!View)/.test(readFileSync(join(ROOT, f), 'utf8')))
  t.same(offenders, [])
})

t.test('no module writes into a page table\'s arrays', async (t) => {
  const write = /\.(meta|value|atime)\[[^\]]*\]\s*(=(?!=)|\|=|&=|\^=|\+=|-=)/
  const offenders = files.filter((f) => !OWNERS.has(f) && readFileSync(join(ROOT, f), 'utf8').split('\n').some((line) => {
    // kcompressd's staging ring and worker words are typed arrays named meta too, not a page table.
    return write.test(line) && !/ring\.meta|\bmeta\[base/.test(line)
  }))
  t.same(offenders, [])
})

t.test('the checks see what they look for', async (t) => {
  t.match(readFileSync(join(ROOT, 'src/device/slot-store.ts'), 'utf8'), /\bPageTable\b(?!View)/, 'the owner imports the class')
  t.ok(/\.(meta|value|atime)\[[^\]]*\]\s*(=(?!=)|\|=|&=)/.test('table.value[index * 2 + 1] = ticket'), 'a write is recognised')
  t.notOk(/\.(meta|value|atime)\[[^\]]*\]\s*(=(?!=)|\|=|&=)/.test('if (table.meta[i] === x)'), 'a comparison is not')
})
