import t from 'tap'
import { readFileSync, readdirSync } from 'node:fs'
import { join } from 'node:path'
import { publishReport } from '../../bench/publish'

t.test('the published directory holds exactly the run\'s files, older reports gone', async (t) => {
  const root = t.testdir({
    out: { 'new.md': 'new report', 'new.json': '{}', 'new-file-iops.svg': '<svg/>' },
    results: { 'old.md': 'old report', 'old.json': '{}', 'old-file-iops.svg': '<svg/>', 'new.md': 'stale copy' },
  })
  const out = join(root, 'out')
  const results = join(root, 'results')
  const now = publishReport([join(out, 'new.md'), join(out, 'new.json'), join(out, 'new-file-iops.svg')], results)
  t.same(now, ['new-file-iops.svg', 'new.json', 'new.md'])
  t.same(readdirSync(results).sort(), now)
  t.equal(readFileSync(join(results, 'new.md'), 'utf8'), 'new report', 'a file of the same name is replaced')
  t.same(readdirSync(out).sort(), ['new-file-iops.svg', 'new.json', 'new.md'], 'the run\'s own copies stay')
})

t.test('a missing results directory is made; subdirectories are left alone', async (t) => {
  const root = t.testdir({ out: { 'r.md': 'r' }, results: { keep: { 'x.txt': 'x' } } })
  t.same(publishReport([join(root, 'out', 'r.md')], join(root, 'fresh')), ['r.md'])
  t.same(publishReport([join(root, 'out', 'r.md')], join(root, 'results')), ['keep', 'r.md'])
})

t.test('refuses nothing to publish and clashing names, changing nothing', async (t) => {
  const root = t.testdir({ a: { 'r.md': '1' }, b: { 'r.md': '2' }, results: { 'old.md': 'old' } })
  const results = join(root, 'results')
  t.throws(() => publishReport([], results), /no report files/)
  t.throws(() => publishReport([join(root, 'a', 'r.md'), join(root, 'b', 'r.md')], results), /share a name/)
  t.same(readdirSync(results), ['old.md'])
})
