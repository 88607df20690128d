import t from 'tap'
import { codecs, findCodec, codecNames } from '../../src/codec/registry'
import { isPromise } from '../../src/codec/codec'
import { pageSameFilled, fillPattern } from '../../src/codec/same-filled'
import { makePage, PAGE_KINDS, prng, seedFromEnv } from '../helpers/pages'

const seed = seedFromEnv(20261122)
t.comment(`seed ${seed} (replay with ZRAMFUSE_SEED=${seed})`)

t.test('registry lists lz4 then zstd', async (t) => {
  t.same(codecNames(), ['lz4', 'zstd'])
  t.equal(findCodec('lzo'), undefined)
})

for (const codec of codecs) {
  t.test(`${codec.name} round trips every page kind`, async (t) => {
    const rand = prng(seed)
    for (const kind of PAGE_KINDS) {
      for (let i = 0; i < 20; i++) {
        const page = makePage(kind, rand)
        const r = codec.compress(page, codec.defaultLevel)
        t.equal(isPromise(r), !codec.sync, 'sync flag matches the shape of the result')
        const compressed = await r
        const out = Buffer.alloc(4096, 0xaa)
        await codec.decompress(Buffer.from(compressed), out)
        if (!out.equals(page)) {
          t.fail(`${kind} page ${i} did not round trip`)
          return
        }
        if (kind === 'zero' || kind === 'pattern' || kind === 'text') {
          t.ok(compressed.length < 3000, `${kind} compresses (${compressed.length} bytes)`)
        }
        if (kind === 'random') t.ok(compressed.length >= 3625, `random does not (${compressed.length} bytes)`)
      }
    }
  })

  t.test(`${codec.name} rejects corrupt input`, async (t) => {
    const out = Buffer.alloc(4096)
    const junk = Buffer.from([0xff, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03])
    await t.rejects(async () => { await codec.decompress(junk, out) })
  })
}

t.test('zstd honours the level', async (t) => {
  const zstd = findCodec('zstd')!
  const rand = prng(seed)
  const pages = Array.from({ length: 8 }, () => makePage('text', rand))
  let low = 0
  let high = 0
  for (const p of pages) {
    low += (await zstd.compress(p, 1)).length
    high += (await zstd.compress(p, 19)).length
  }
  t.ok(high < low, `level 19 (${high} bytes) beats level 1 (${low} bytes)`)
})

t.test('same-filled detection works on 8-byte words', async (t) => {
  const buf = new ArrayBuffer(4096)
  const words = new Uint32Array(buf)
  const pattern = new Uint32Array(2)
  t.ok(pageSameFilled(words, pattern), 'zero page')
  t.same([...pattern], [0, 0])
  fillPattern(words, 0xdeadbeef, 0x01020304)
  t.ok(pageSameFilled(words, pattern), 'two-word pattern')
  t.same([...pattern], [0xdeadbeef, 0x01020304])
  words[1023] = 7
  t.notOk(pageSameFilled(words, pattern), 'last word differs')
  words[1023] = 0x01020304
  words[500] = 1
  t.notOk(pageSameFilled(words, pattern), 'a middle word differs')
  fillPattern(words, 5, 5)
  new Uint8Array(buf)[4095] = 6
  t.notOk(pageSameFilled(words, pattern), 'a single byte differs')
})
