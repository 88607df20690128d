import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { compressionRatio, diffMmStat, formatMmStat, parseMmStat, poolOverhead } from '../../bench/mmstat'

const fixture = (name: string): string => readFileSync(join(__dirname, 'fixtures', name), 'utf8')

t.test('parse the kernel line and ours (recorded on this machine)', async (t) => {
  const k = parseMmStat(fixture('mm_stat-kernel.txt'))
  t.equal(k.orig_data_size, 33554432)
  t.equal(k.compr_data_size, 22627203)
  t.equal(k.mem_used_total, 24195072)
  t.equal(k.same_pages, 9)
  t.equal(k.huge_pages_since, 164)
  t.equal(formatMmStat(k) + '\n', fixture('mm_stat-kernel.txt'), 'formats back byte for byte')
  const z = parseMmStat(fixture('mm_stat-zramfuse.txt'))
  t.equal(z.orig_data_size, 67108864)
  t.equal(formatMmStat(z) + '\n', fixture('mm_stat-zramfuse.txt'))
})

t.test('older kernels: 8 columns; garbage refused', async (t) => {
  t.equal(parseMmStat('4096 100 4096 0 4096 0 0 0').huge_pages_since, 0)
  t.throws(() => parseMmStat('1 2 3'), /7\.\.9 columns/)
  t.throws(() => parseMmStat('1 2 3 4 5 6 7 8 9 10'), /7\.\.9 columns/)
  t.throws(() => parseMmStat('1 2 x 4 5 6 7 8 9'), /column 3 \(mem_used_total\)/)
})

t.test('per-column differences and ratios', async (t) => {
  const a = parseMmStat('33554432 18783500 19197952 0 19197952 1611 0 1577 1577')
  const b = parseMmStat('33554432 18783414 19128320 0 19128320 1611 0 1577 1577')
  const d = diffMmStat(a, b)
  t.equal(d.length, 9)
  t.same(d[0], { field: 'orig_data_size', a: 33554432, b: 33554432, diff: 0, rel: 0 })
  t.equal(d[1]!.diff, -86)
  t.equal(d[2]!.diff, -69632)
  t.equal(d[3]!.rel, null, 'mem_limit 0: no relative difference')
  t.equal(compressionRatio(a), 33554432 / 18783500)
  t.equal(poolOverhead(a), 19197952 / 18783500)
  t.equal(compressionRatio(parseMmStat('0 0 0 0 0 0 0 0 0')), null)
})
