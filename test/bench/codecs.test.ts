import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { buildCorpus, type CodecFigures, formatCodecReport, measureOurs, parseCBenchOutput, usPerPage } from '../../bench/codecs'
import { parseBenchArgs } from '../../bench/options'

const fixture = (name: string): string => readFileSync(join(__dirname, 'fixtures', name), 'utf8')

t.test('parses the last line of lz4 -b and zstd -b (recorded, progress redrawn with \\r)', async (t) => {
  t.same(parseCBenchOutput(fixture('lz4-b1-B4096.txt')), {
    inBytes: 5926232, outBytes: 2935987, ratio: 2.018, compressMBps: 432.3, decompressMBps: 2013.8,
  })
  t.same(parseCBenchOutput(fixture('zstd-b3-B4K.txt')), {
    inBytes: 5926232, outBytes: 2168099, ratio: 2.733, compressMBps: 94.1, decompressMBps: 269.1,
  })
  t.equal(parseCBenchOutput('lz4: unknown option\n'), null, 'no result line')
  t.equal(parseCBenchOutput(' 1#f :  100 ->  50 (2.000), 10.0 MB/s\r'), null, 'a line without the decompression speed')
})

t.test('speeds become microseconds per 4 KiB page', async (t) => {
  t.equal(usPerPage(4096), 1)
  t.equal(usPerPage(409.6), 10)
})

t.test('the report: ours, the C library, ours/C; a missing CLI is said', async (t) => {
  const rows: CodecFigures[] = [
    { codec: 'lz4', level: 1, compressUs: 5.5, decompressUs: 1.32, ratio: 2.116, c: { tool: 'lz4 -b1 -B4096', compressUs: 5, decompressUs: 1.2, ratio: 2.116 } },
    { codec: 'zstd', level: 3, compressUs: 14, decompressUs: 5, ratio: 2.9, c: null },
  ]
  const md = formatCodecReport(rows, 'test corpus')
  t.match(md, /^Per 4 KiB page, test corpus;/)
  t.match(md, /\| lz4 \(level 1\) \| 5\.50 \| 1\.32 \| `lz4 -b1 -B4096` \| 5\.00 \| 1\.20 \| 1\.10x \| 1\.10x \| 2\.116 \/ 2\.116 \|/)
  t.match(md, /\| zstd \(level 3\) \| 14\.00 \| 5\.00 \| not installed \|/)
  t.equal(md.split('\n').filter((l) => l.startsWith('|')).length, 4, 'header, rule and two rows')
})

t.test('options: --codecs with its corpus size and seconds', async (t) => {
  const o = parseBenchArgs(['--codecs', '--codec-corpus', '4M', '--codec-seconds', '0.2'], '/o')
  t.equal(o.codecs, true)
  t.equal(o.codecCorpusBytes, 4 << 20)
  t.equal(o.codecSeconds, 0.2)
  const q = parseBenchArgs(['--quick'], '/o')
  t.equal(q.codecs, false)
  t.equal(q.codecCorpusBytes, 8 << 20)
  t.throws(() => parseBenchArgs(['--codec-corpus', '5000'], '/o'), /--codec-corpus/)
  t.throws(() => parseBenchArgs(['--codec-seconds', '0'], '/o'), /--codec-seconds/)
})

t.test('a small real corpus and our measurement of it', async (t) => {
  const { data, files } = buildCorpus(256 * 1024, [join(__dirname, '..', '..', 'src'), join(__dirname, '..', '..', 'bench')])
  t.equal(data.length, 256 * 1024)
  t.ok(files > 1, `${files} files`)
  const m = measureOurs('lz4', 1, data, 0.05)
  t.ok(m.compressUs > 0 && m.decompressUs > 0, `lz4 ${m.compressUs.toFixed(2)} / ${m.decompressUs.toFixed(2)} us per page`)
  t.ok(m.ratio > 1.5, `source code compresses (${m.ratio.toFixed(2)})`)
  t.throws(() => buildCorpus(4096, ['/nonexistent-zramfuse']), /no files/)
})
