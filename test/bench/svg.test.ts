import t from 'tap'
import { escapeXml, fmtNum, niceStep, renderBarChart, wrapLabel } from '../../bench/svg'
import { wellFormed } from '../helpers/xml'

t.test('helpers', async (t) => {
  t.equal(escapeXml('a<b & "c" \'d\'>'), 'a&lt;b &amp; &quot;c&quot; &apos;d&apos;&gt;')
  t.equal(niceStep(100), 20)
  t.equal(niceStep(1300), 500)
  t.equal(niceStep(9), 2)
  t.equal(niceStep(0), 1)
  t.equal(niceStep(12), 2.5)
  t.same(wrapLabel('4k randwrite libaio QD32', 12), ['4k randwrite', 'libaio QD32'])
  t.same(wrapLabel('averyveryverylongword', 5), ['averyveryverylongword'])
  t.equal(fmtNum(1234.5), '1235')
  t.equal(fmtNum(12.34), '12.3')
  t.equal(fmtNum(0.0123), '0.012')
})

t.test('a grouped bar chart with whiskers and a missing bar', async (t) => {
  const svg = renderBarChart({
    title: 'IOPS <4k> & more',
    unit: 'k IOPS',
    series: [{ id: 'a', label: 'ceiling' }, { id: 'b', label: 'zramfuse "lz4"' }],
    groups: [
      { label: '4k randwrite QD1', bars: [{ series: 'a', value: 24, min: 22, max: 25 }, { series: 'b', value: 15, min: 15, max: 15 }] },
      { label: '4k randread QD1', bars: [{ series: 'a', value: 25 }, { series: 'b', value: null }] },
    ],
  })
  t.ok(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"'))
  t.ok(wellFormed(svg), 'well-formed XML')
  t.match(svg, /IOPS &lt;4k&gt; &amp; more/)
  t.match(svg, /zramfuse &quot;lz4&quot;/)
  t.equal((svg.match(/<rect [^>]*><title>/g) ?? []).length, 3, 'three bars drawn')
  t.equal((svg.match(/<path /g) ?? []).length, 1, 'one whisker: only where min < max')
  t.match(svg, />n\/a</)
  t.notMatch(svg, /NaN|undefined|Infinity/)
})

t.test('all zero or empty data still draws', async (t) => {
  const svg = renderBarChart({ title: 't', unit: 'u', series: [{ id: 'a', label: 'a' }], groups: [{ label: 'g', bars: [{ series: 'a', value: 0 }] }] })
  t.ok(wellFormed(svg))
  t.notMatch(svg, /NaN|Infinity/)
  t.ok(wellFormed(renderBarChart({ title: 't', unit: 'u', series: [], groups: [] })))
})
