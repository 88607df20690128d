import t from 'tap'
import { ratio, spread, summarize } from '../../bench/stats'
import { formatBytes, parseSize } from '../../bench/size'

t.test('summarize: median, min, max', async (t) => {
  t.same(summarize([3, 1, 2]), { n: 3, median: 2, min: 1, max: 3 })
  t.same(summarize([4, 1, 3, 2]), { n: 4, median: 2.5, min: 1, max: 4 }, 'even count: mean of the middle two')
  t.same(summarize([7]), { n: 1, median: 7, min: 7, max: 7 })
  t.equal(summarize([]), null)
  t.same(summarize([1, Number.NaN, 3]), { n: 2, median: 2, min: 1, max: 3 }, 'non-finite values are dropped')
  const xs = [5, 1, 4]
  summarize(xs)
  t.same(xs, [5, 1, 4], 'input not reordered')
})

t.test('ratio of medians, spread', async (t) => {
  const a = summarize([10, 12, 11])
  const b = summarize([20, 22, 21])
  t.equal(ratio(a, b), 11 / 21)
  t.equal(ratio(a, null), null)
  t.equal(ratio(null, b), null)
  t.equal(ratio(a, summarize([0])), null, 'no division by zero')
  t.equal(spread(summarize([9, 10, 12])!), 0.3)
  t.equal(spread(summarize([0])!), 0)
})

t.test('sizes', async (t) => {
  t.equal(parseSize('4096'), 4096)
  t.equal(parseSize('4k'), 4096)
  t.equal(parseSize('256M'), 256 * 2 ** 20)
  t.equal(parseSize('1G'), 2 ** 30)
  t.equal(parseSize('1.5G'), 1.5 * 2 ** 30)
  t.equal(parseSize('2GiB'), 2 * 2 ** 30)
  t.throws(() => parseSize('lots'))
  t.throws(() => parseSize('-1M'))
  t.equal(formatBytes(512), '512 B')
  t.equal(formatBytes(1536), '1.50 KiB')
  t.equal(formatBytes(2 ** 30), '1 GiB')
  t.equal(formatBytes(58.1 * 2 ** 20), '58.1 MiB')
})
