import t from 'tap'
import { codecs, findCodec, codecNames } from '../../src/codec/registry'
import { CodecParamsError } from '../../src/codec/codec'
import { type NativeContext, zcodec } from '../../src/codec/native'
import { bufferSameFilled, pageSameFilled, fillPattern } from '../../src/codec/same-filled'
import { makePage, PAGE_KINDS, prng, seedFromEnv } from '../helpers/pages'

const DEFAULT_SEED = 20261122
const seed = seedFromEnv(DEFAULT_SEED)
t.comment(`seed ${seed} (replay with ZRAMFUSE_SEED=${seed})`)

const PAGE = 4096
const none = { level: null, dict: null }

t.test('registry lists lz4 then zstd', async (t) => {
  t.same(codecNames(), ['lz4', 'zstd'])
  t.equal(findCodec('lzo'), undefined)
  t.comment(`libraries: ${JSON.stringify(zcodec.versions())}`)
})

for (const codec of codecs) {
  t.test(`${codec.name} round trips every page kind, at any byte offset, in shared memory too`, async (t) => {
    const ctx = codec.createContext(none)
    const rand = prng(seed)
    // src and dst as views at odd offsets of larger buffers, one of them a SharedArrayBuffer.
    const srcArea = Buffer.alloc(PAGE + 7)
    const dstArea = new Uint8Array(new SharedArrayBuffer(2 * PAGE + 13))
    const outArea = Buffer.alloc(PAGE + 3, 0xaa)
    for (const kind of PAGE_KINDS) {
      for (let i = 0; i < 20; i++) {
        const page = makePage(kind, rand)
        const src = srcArea.subarray(7)
        page.copy(src)
        const dst = dstArea.subarray(13)
        const n = ctx.compress(src, dst)
        t.ok(n > 0, 'two pages always hold the result')
        const out = outArea.subarray(3)
        ctx.decompress(dst.subarray(0, n), out)
        if (!out.equals(page)) {
          t.fail(`${kind} page ${i} did not round trip`)
          return
        }
        if (kind === 'zero' || kind === 'pattern' || kind === 'text') t.ok(n < 3000, `${kind} compresses (${n} bytes)`)
        if (kind === 'random') t.ok(n >= 3625, `random does not (${n} bytes)`)
      }
    }
    t.equal(srcArea.subarray(0, 7).compare(Buffer.alloc(7)), 0, 'nothing written before src')
    t.equal(outArea.subarray(0, 3).compare(Buffer.alloc(3, 0xaa)), 0, 'nothing written before dst')
  })

  t.test(`${codec.name}: 0 when the result does not fit, and dst past the result is left alone`, async (t) => {
    const ctx = codec.createContext(none)
    const rand = prng(seed + 1)
    const random = makePage('random', rand)
    t.equal(ctx.compress(random, Buffer.alloc(64)), 0, 'a random page does not fit in 64 bytes')
    const text = makePage('text', rand)
    const full = Buffer.alloc(2 * PAGE)
    const n = ctx.compress(text, full)
    t.equal(ctx.compress(text, Buffer.alloc(n - 1)), 0, 'one byte short')
    // lz4 fits a result in exactly its length; zstd needs a little room while it works (0 then).
    const room = codec.name === 'lz4' ? n : n + 64
    const tight = Buffer.alloc(room + 16, 0x5a)
    t.equal(ctx.compress(text, tight.subarray(0, room)), n, `${room - n} bytes of room are enough`)
    t.same(tight.subarray(0, n), full.subarray(0, n), 'the same bytes into a tight dst')
    t.same(tight.subarray(room), Buffer.alloc(16, 0x5a), 'bytes past dst untouched')
  })

  t.test(`${codec.name} throws on corrupt input and on a length that is not the page's`, async (t) => {
    const ctx = codec.createContext(none)
    const out = Buffer.alloc(PAGE)
    t.throws(() => ctx.decompress(Buffer.from([0xff, 0xff, 0xff, 0xff, 0x01, 0x02, 0x03]), out), 'junk')
    t.throws(() => ctx.decompress(Buffer.alloc(0), out), 'empty input')
    const page = makePage('text', prng(seed + 2))
    const c = Buffer.alloc(2 * PAGE)
    const n = ctx.compress(page, c)
    t.throws(() => ctx.decompress(c.subarray(0, n), Buffer.alloc(PAGE - 1)), 'dst one byte short')
    t.throws(() => ctx.decompress(c.subarray(0, n), Buffer.alloc(PAGE + 1)), 'dst one byte long')
    t.throws(() => ctx.decompress(c.subarray(0, n - 1), out), 'truncated input')
    // Corrupted input: every third byte flipped, then 100 inputs with one byte changed each. The
    // decoder may not notice (neither format checksums the page here), but whatever it makes of
    // the input is either refused with EIO or exactly one page, written inside dst and nowhere else.
    const flipped = Buffer.from(c.subarray(0, n))
    for (let i = 8; i < flipped.length; i += 3) flipped[i] ^= 0x5a
    const corrupted = [flipped]
    const rand = prng(seed + 4)
    for (let k = 0; k < 100; k++) {
      const one = Buffer.from(c.subarray(0, n))
      one[Math.floor(rand() * n)] ^= 1 + Math.floor(rand() * 255)
      corrupted.push(one)
    }
    const area = Buffer.alloc(PAGE + 64)
    const dst = area.subarray(32, 32 + PAGE)
    const wrong: string[] = []
    let refused = 0
    let decoded = 0
    for (const [k, input] of corrupted.entries()) {
      area.fill(0xa5)
      let err: unknown = null
      try {
        ctx.decompress(input, dst)
      } catch (e) {
        err = e
      }
      if (err !== null) {
        refused++
        if (!(err instanceof Error) || (err as NodeJS.ErrnoException).code !== 'EIO') wrong.push(`input ${k}: refused with ${String(err)}, not EIO`)
      } else {
        decoded++
        // It decoded to exactly dst.length bytes: the same input into one byte less or more is refused.
        for (const len of [PAGE - 1, PAGE + 1]) {
          try {
            ctx.decompress(input, Buffer.alloc(len))
            wrong.push(`input ${k}: decodes into ${PAGE} bytes and into ${len} too`)
          } catch {
            // refused, as it must be
          }
        }
      }
      if (!area.subarray(0, 32).every((b) => b === 0xa5) || !area.subarray(32 + PAGE).every((b) => b === 0xa5)) {
        wrong.push(`input ${k}: bytes written outside dst`)
      }
    }
    t.same(wrong, [], `${corrupted.length} corrupted inputs: each refused with EIO or decoded to exactly one page inside dst`)
    t.comment(`${refused} refused, ${decoded} decoded to a page`)
    // The default seed's inputs reach both outcomes; a replayed seed may not.
    if (seed === DEFAULT_SEED) {
      t.ok(refused > 0, 'some corrupted inputs are refused')
      t.ok(decoded > 0, 'some decode to a page without the decoder noticing')
    }
    ctx.decompress(c.subarray(0, n), out)
    t.same(out, page, 'the context still works after failures')
  })

  t.test(`${codec.name} decompressAt: one piece or two, from and into any offset, dictionary or not`, async (t) => {
    const rand = prng(seed + 3)
    const dict = Buffer.from(Array.from({ length: 40 }, () => makePage('text', rand).toString('latin1')).join('').slice(0, 32768), 'latin1')
    for (const params of [none, { level: null, dict }]) {
      const ctx = codec.createContext(params)
      const chunkA = new Uint8Array(new SharedArrayBuffer(3 * PAGE))
      const chunkB = Buffer.alloc(2 * PAGE)
      const out = Buffer.alloc(3 * PAGE, 0xaa)
      const bad: string[] = []
      for (const kind of PAGE_KINDS) {
        const page = makePage(kind, rand)
        const c = Buffer.alloc(2 * PAGE)
        const n = ctx.compress(page, c)
        if (n === 0 || n > PAGE) continue // stored raw: never decompressed
        // One piece at an odd offset of a shared chunk, into the middle page of out.
        chunkA.set(c.subarray(0, n), 101)
        out.fill(0xaa)
        ctx.decompressAt(chunkA, 101, n, null, 0, 0, out, PAGE, PAGE)
        t.same(out.subarray(PAGE, 2 * PAGE), page, `${kind}: one piece`)
        t.ok(out.subarray(0, PAGE).every((b) => b === 0xaa) && out.subarray(2 * PAGE).every((b) => b === 0xaa), `${kind}: nothing written outside dst`)
        // Split at the first byte, the middle and the last byte: the tail in another buffer.
        for (const cut of [1, n >> 1, n - 1]) {
          if (cut <= 0 || cut >= n) continue
          chunkA.set(c.subarray(0, cut), 3 * PAGE - cut)
          chunkB.set(c.subarray(cut, n), 7)
          const dst = Buffer.alloc(PAGE)
          ctx.decompressAt(chunkA, 3 * PAGE - cut, cut, chunkB, 7, n - cut, dst, 0, PAGE)
          if (!dst.equals(page)) bad.push(`${kind}: split at ${cut} of ${n}`)
        }
      }
      t.same(bad, [], `dict ${params.dict ? 'on' : 'off'}: every split decoded`)
    }
  })

  t.test(`${codec.name} compressBatch: the same bytes as compress() page by page, on two threads, dictionary or not`, async (t) => {
    const rand = prng(seed + 5)
    const dict = Buffer.concat(Array.from({ length: 4 }, () => makePage('text', rand)))
    for (const params of [none, { level: null, dict }]) {
      const ctx = codec.createContext(params)
      for (const pages of [1, 3, 4, 5, 33, 256]) {
        // src at an odd offset of a shared buffer (the FUSE request buffer is one), every page kind.
        const src = new Uint8Array(new SharedArrayBuffer(pages * PAGE + 11))
        for (let i = 0; i < pages; i++) src.set(makePage(PAGE_KINDS[i % PAGE_KINDS.length]!, rand), 11 + i * PAGE)
        const stride = 2 * PAGE
        const dst = Buffer.alloc(pages * stride + 5, 0xaa)
        const sizes = new Int32Array(pages + 1).fill(-7)
        t.equal(ctx.compressBatch(src, 11, pages, dst, stride, sizes), -1, `${pages} pages: no failure`)
        const one = Buffer.alloc(stride)
        const bad: number[] = []
        for (let i = 0; i < pages; i++) {
          const n = ctx.compress(src.subarray(11 + i * PAGE, 11 + (i + 1) * PAGE), one)
          if (sizes[i] !== n || !dst.subarray(i * stride, i * stride + n).equals(one.subarray(0, n))) bad.push(i)
        }
        t.same(bad, [], `dict ${params.dict ? 'on' : 'off'}, ${pages} pages: every page as compress() makes it`)
        t.equal(sizes[pages], -7, 'nothing written past the pages asked for')
        t.ok(dst.subarray(pages * stride).every((b) => b === 0xaa), 'nothing written past dst')
      }
      // A stride too small for every result: 0 for the pages that do not fit, as compress() says.
      const noisy = Buffer.concat(Array.from({ length: 8 }, () => makePage('random', rand)))
      const sizes = new Int32Array(8)
      t.equal(ctx.compressBatch(noisy, 0, 8, Buffer.alloc(8 * 64), 64, sizes), -1)
      t.same([...sizes], new Array(8).fill(0), 'results that do not fit in the stride are 0')
    }
  })

}

for (const codec of codecs) {
  t.test(`${codec.name} decompressBatch: every page as decompressAt() makes it, one piece or two, dictionary or not`, async (t) => {
    const rand = prng(seed + 7)
    const dict = Buffer.concat(Array.from({ length: 4 }, () => makePage('text', rand)))
    for (const params of [none, { level: null, dict }]) {
      const ctx = codec.createContext(params)
      for (const pages of [1, 5, 64, 256]) {
        // Objects packed into shared chunks as the pool packs them; every third one split over two chunks.
        const chunks = [new Uint8Array(new SharedArrayBuffer(pages * PAGE)), Buffer.alloc(pages * PAGE)]
        const desc = new Int32Array(pages * 7)
        const want: Buffer[] = []
        const at = [0, 0]
        const c = Buffer.alloc(2 * PAGE)
        for (let k = 0; k < pages; k++) {
          let page: Buffer
          let n: number
          let kind = k
          do {
            page = makePage(PAGE_KINDS[kind++ % PAGE_KINDS.length]!, rand)
            n = ctx.compress(page, c)
          } while (n === 0 || n > PAGE) // a page stored raw is never decompressed
          want.push(page)
          const cut = k % 3 === 2 ? n >> 1 : n
          desc.set([0, at[0]!, cut, cut < n ? 1 : -1, at[1]!, n - cut, (pages - 1 - k) * PAGE], k * 7)
          chunks[0]!.set(c.subarray(0, cut), at[0])
          chunks[1]!.set(c.subarray(cut, n), at[1])
          at[0]! += cut
          at[1]! += n - cut
        }
        const dst = Buffer.alloc(pages * PAGE + 1, 0xaa)
        t.equal(ctx.decompressBatch(chunks, desc, pages, dst), -1, `${pages} pages: no failure`)
        const bad = want.map((p, k) => (dst.subarray((pages - 1 - k) * PAGE, (pages - k) * PAGE).equals(p) ? -1 : k)).filter((k) => k >= 0)
        t.same(bad, [], `dict ${params.dict ? 'on' : 'off'}, ${pages} pages: every page decoded where desc put it`)
        t.equal(dst[pages * PAGE], 0xaa, 'nothing written past the pages')
        if (pages < 5) continue
        // Cut pages 2 and 4 to one byte (the helper may take either): the first, 2, is reported.
        for (const k of [2, 4]) desc.set([1, -1], k * 7 + 2)
        t.equal(ctx.decompressBatch(chunks, desc, pages, dst), 2, 'the first page that does not decode is the answer')
      }
    }
  })
}

t.test('compressBatch from a worker thread and the main thread at once: both right (one of them works alone)', async (t) => {
  const { Worker } = await import('node:worker_threads')
  const rand = prng(seed + 6)
  const pages = 64
  const src = new Uint8Array(new SharedArrayBuffer(pages * PAGE))
  for (let i = 0; i < pages; i++) src.set(makePage(i % 2 ? 'text' : 'binary', rand), i * PAGE)
  const expected = new Int32Array(pages)
  const ctx = findCodec('zstd')!.createContext(none)
  for (let i = 0; i < pages; i++) expected[i] = ctx.compress(src.subarray(i * PAGE, (i + 1) * PAGE), Buffer.alloc(2 * PAGE))
  const addon = require.resolve('../../native/build/Release/zcodec.node')
  const worker = new Worker(`
    const { parentPort, workerData } = require('node:worker_threads')
    const z = require(workerData.addon)
    const ctx = z.zstdCreate(3, null)
    const src = new Uint8Array(workerData.src), dst = Buffer.alloc(64 * 8192), sizes = new Int32Array(64)
    let wrong = 0
    for (let k = 0; k < 300; k++) {
      if (z.compressBatch(ctx, src, 0, 64, dst, 8192, sizes) !== -1) wrong++
      for (let i = 0; i < 64; i++) if (sizes[i] !== workerData.expected[i]) wrong++
    }
    parentPort.postMessage(wrong)
  `, { eval: true, workerData: { addon, src: src.buffer, expected } })
  const done = new Promise<number>((resolve, reject) => {
    worker.once('message', resolve)
    worker.once('error', reject)
  })
  const dst = Buffer.alloc(pages * 2 * PAGE)
  const sizes = new Int32Array(pages)
  let wrong = 0
  for (let k = 0; k < 300; k++) {
    if (ctx.compressBatch(src, 0, pages, dst, 2 * PAGE, sizes) !== -1) wrong++
    for (let i = 0; i < pages; i++) if (sizes[i] !== expected[i]) wrong++
  }
  t.equal(wrong, 0, 'main thread: every batch right')
  t.equal(await done, 0, 'worker thread: every batch right')
  await worker.terminate()
})

t.test('the addon checks every argument', async (t) => {
  const ctx = zcodec.lz4Create(1, null)
  const page = Buffer.alloc(PAGE, 1)
  const dst = Buffer.alloc(2 * PAGE)
  const fake = {} as NativeContext
  t.throws(() => zcodec.compress(fake, page, dst), TypeError, 'not a context')
  t.throws(() => zcodec.compress(ctx, new Uint16Array(8) as unknown as Uint8Array, dst), TypeError, 'not a Uint8Array')
  t.throws(() => zcodec.compress(ctx, page, 'x' as unknown as Uint8Array), TypeError, 'not bytes')
  t.throws(() => (zcodec.compress as (...a: unknown[]) => number)(ctx, page), TypeError, 'too few arguments')
  const area = Buffer.alloc(3 * PAGE)
  t.throws(() => zcodec.compress(ctx, area.subarray(0, PAGE), area.subarray(PAGE - 1)), RangeError, 'overlapping buffers')
  t.throws(() => zcodec.lz4Create(1.5, null), TypeError, 'a fractional acceleration')
  t.throws(() => zcodec.lz4Create(1, 7 as unknown as Uint8Array), TypeError, 'a dict that is not bytes')
  t.throws(() => zcodec.zstdCreate(Number.NaN, null), TypeError, 'NaN level')
  t.equal(zcodec.compress(ctx, page, dst) > 0, true, 'a good call still works')

  const n = zcodec.compress(ctx, page, dst)
  const out = Buffer.alloc(PAGE)
  const at = (...args: unknown[]): void => (zcodec.decompressAt as (...a: unknown[]) => void)(...args)
  at(ctx, dst, 0, n, null, 0, 0, out, 0, PAGE)
  t.same(out, page, 'decompressAt: a good call')
  t.throws(() => at(ctx, dst, 0, n, null, 0, 0, out, 0), TypeError, 'decompressAt: too few arguments')
  t.throws(() => at(fake, dst, 0, n, null, 0, 0, out, 0, PAGE), TypeError, 'decompressAt: not a context')
  t.throws(() => at(ctx, dst, 0.5, n, null, 0, 0, out, 0, PAGE), TypeError, 'decompressAt: a fractional offset')
  t.throws(() => at(ctx, dst, '0', n, null, 0, 0, out, 0, PAGE), TypeError, 'decompressAt: an offset that is not a number')
  t.throws(() => at(ctx, dst, 0, n, 'x', 0, 1, out, 0, PAGE), TypeError, 'decompressAt: a tail that is not bytes')
  t.throws(() => at(ctx, dst, -1, n, null, 0, 0, out, 0, PAGE), RangeError, 'decompressAt: a negative offset')
  t.throws(() => at(ctx, dst, dst.length - 1, 2, null, 0, 0, out, 0, PAGE), RangeError, 'decompressAt: src past its buffer')
  t.throws(() => at(ctx, dst, 0, n, null, 0, 0, out, 1, PAGE), RangeError, 'decompressAt: dst past its buffer')
  t.throws(() => at(ctx, dst, 0, n, dst, 0, dst.length, out, 0, PAGE), RangeError, 'decompressAt: pieces longer than a page')
  t.throws(() => at(ctx, area, 0, n, null, 0, 0, area, n - 1, PAGE), RangeError, 'decompressAt: src and dst overlap')
  t.throws(() => at(ctx, dst, 0, 0, null, 0, 0, out, 0, PAGE), /empty/, 'decompressAt: empty input')
  t.throws(() => at(ctx, dst, 0, n - 1, null, 0, 0, out, 0, PAGE), 'decompressAt: truncated input')
  at(ctx, dst, 0, n - 3, dst, n - 3, 3, out, 0, PAGE)
  t.same(out, page, 'decompressAt: still works after failures')

  const batch = (...args: unknown[]): number => (zcodec.compressBatch as (...a: unknown[]) => number)(...args)
  const src = Buffer.alloc(4 * PAGE, 3)
  const out4 = Buffer.alloc(4 * 2 * PAGE)
  const sizes = new Int32Array(4)
  t.equal(batch(ctx, src, 0, 4, out4, 2 * PAGE, sizes), -1, 'compressBatch: a good call')
  t.throws(() => batch(ctx, src, 0, 4, out4, 2 * PAGE), TypeError, 'compressBatch: too few arguments')
  t.throws(() => batch(fake, src, 0, 4, out4, 2 * PAGE, sizes), TypeError, 'compressBatch: not a context')
  t.throws(() => batch(ctx, src, 0, 4, out4, 2 * PAGE, new Uint32Array(4)), TypeError, 'compressBatch: sizes not an Int32Array')
  t.throws(() => batch(ctx, src, 0, 4.5, out4, 2 * PAGE, sizes), TypeError, 'compressBatch: a fractional count')
  t.throws(() => batch(ctx, src, 1, 4, out4, 2 * PAGE, sizes), RangeError, 'compressBatch: pages past src')
  t.throws(() => batch(ctx, src, -1, 1, out4, 2 * PAGE, sizes), RangeError, 'compressBatch: a negative offset')
  t.throws(() => batch(ctx, src, 0, 4, out4, 3 * PAGE, sizes), RangeError, 'compressBatch: pages past dst')
  t.throws(() => batch(ctx, src, 0, 4, out4, 0, sizes), RangeError, 'compressBatch: a zero stride')
  t.throws(() => batch(ctx, src, 0, 4, out4, 2 * PAGE, new Int32Array(3)), RangeError, 'compressBatch: sizes too short')
  const big = Buffer.alloc(16 * PAGE)
  t.throws(() => batch(ctx, big, 0, 4, big.subarray(2 * PAGE), PAGE, sizes), RangeError, 'compressBatch: src and dst overlap')
  const word = new Int32Array(big.buffer, big.byteOffset, 1024)
  t.throws(() => batch(ctx, big, 0, 1, out4, PAGE, word), RangeError, 'compressBatch: sizes inside src')
  t.equal(batch(ctx, src, 0, 0, out4, 2 * PAGE, sizes), -1, 'compressBatch: no pages is a no-op')

  const dbatch = (...args: unknown[]): number => (zcodec.decompressBatch as (...a: unknown[]) => number)(...args)
  const desc = Int32Array.from([0, 0, sizes[0]!, -1, 0, 0, PAGE])
  const into = Buffer.alloc(2 * PAGE)
  t.equal(dbatch(ctx, [out4], desc, 1, into), -1, 'decompressBatch: a good call')
  t.same(into.subarray(PAGE), src.subarray(0, PAGE), 'decompressBatch: the page where desc puts it')
  t.throws(() => dbatch(ctx, [out4], desc, 1), TypeError, 'decompressBatch: too few arguments')
  t.throws(() => dbatch(fake, [out4], desc, 1, into), TypeError, 'decompressBatch: not a context')
  t.throws(() => dbatch(ctx, out4, desc, 1, into), TypeError, 'decompressBatch: chunks not an Array')
  t.throws(() => dbatch(ctx, [out4], Array.from(desc), 1, into), TypeError, 'decompressBatch: desc not an Int32Array')
  t.throws(() => dbatch(ctx, [out4], desc, 2, into), RangeError, 'decompressBatch: desc shorter than the pages')
  t.throws(() => dbatch(ctx, [out4], desc, 257, into), RangeError, 'decompressBatch: more than 256 pages')
  const bad = (i: number, v: number): Int32Array => Int32Array.from(desc, (x, j) => (j === i ? v : x))
  t.throws(() => dbatch(ctx, [out4], bad(0, 1), 1, into), RangeError, 'decompressBatch: a chunk index past chunks')
  t.throws(() => dbatch(ctx, ['x'], desc, 1, into), RangeError, 'decompressBatch: a chunk that is not bytes')
  t.throws(() => dbatch(ctx, [out4], bad(1, out4.length), 1, into), RangeError, 'decompressBatch: a piece past its chunk')
  t.throws(() => dbatch(ctx, [out4], bad(2, -1), 1, into), RangeError, 'decompressBatch: a negative length')
  t.throws(() => dbatch(ctx, [out4, out4], Int32Array.from([0, 0, PAGE, 1, 0, 8, 0]), 1, into), RangeError, 'decompressBatch: an object over a page')
  t.throws(() => dbatch(ctx, [out4], bad(6, PAGE + 1), 1, into), RangeError, 'decompressBatch: a page past dst')
  t.throws(() => dbatch(ctx, [into], Int32Array.from([0, 0, 16, -1, 0, 0, 8]), 1, into), RangeError, 'decompressBatch: src and dst overlap')
  t.equal(dbatch(ctx, [out4], bad(2, 3), 1, into), 0, 'decompressBatch: a truncated object is page 0 failing')
  t.equal(dbatch(ctx, [], desc, 0, into), -1, 'decompressBatch: no pages is a no-op')
})

t.test('levels: zstd 19 beats zstd 1; lz4 acceleration 8 is larger than 1; out of range is refused', async (t) => {
  const zstd = findCodec('zstd')!
  const lz4 = findCodec('lz4')!
  const rand = prng(seed + 3)
  const pages = Array.from({ length: 16 }, (_, i) => makePage(i % 2 ? 'text' : 'binary', rand))
  const total = (level: number, codec = zstd): number => {
    const ctx = codec.createContext({ level, dict: null })
    const dst = Buffer.alloc(2 * PAGE)
    return pages.reduce((s, p) => s + ctx.compress(p, dst), 0)
  }
  t.ok(total(19) < total(1), `zstd level 19 (${total(19)} bytes) beats level 1 (${total(1)} bytes)`)
  t.ok(total(8, lz4) > total(1, lz4), `lz4 acceleration 8 (${total(8, lz4)}) > 1 (${total(1, lz4)})`)
  t.equal(zstd.defaultLevel, 3)
  t.equal(total(3), pages.reduce((s, p) => s + zstd.createContext(none).compress(p, Buffer.alloc(2 * PAGE)), 0), 'null is level 3')
  t.throws(() => zstd.createContext({ level: 23, dict: null }), CodecParamsError)
  t.throws(() => lz4.createContext({ level: 0, dict: null }), CodecParamsError, 'lz4 acceleration < 1: EINVAL, as backend_lz4')
})

t.test('one context is reused for many pages without growing memory', async (t) => {
  const ctx = findCodec('zstd')!.createContext(none)
  const page = makePage('text', prng(seed + 4))
  const dst = Buffer.alloc(2 * PAGE)
  const out = Buffer.alloc(PAGE)
  for (let i = 0; i < 2000; i++) ctx.compress(page, dst)
  const before = process.memoryUsage().rss
  for (let i = 0; i < 50000; i++) {
    const n = ctx.compress(page, dst)
    ctx.decompress(dst.subarray(0, n), out)
  }
  const grewMiB = (process.memoryUsage().rss - before) / 1048576
  t.ok(grewMiB < 16, `RSS grew ${grewMiB.toFixed(1)} MiB over 50000 round trips`)
  t.same(out, page)
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

t.test('bufferSameFilled agrees with pageSameFilled at every alignment, one byte changed anywhere', async (t) => {
  const seed = 0x5a3e
  t.comment(`seed ${seed}`)
  let x = seed
  const rand = (n: number): number => {
    x = (Math.imul(x, 1103515245) + 12345) >>> 0
    return x % n
  }
  const words = new Uint32Array(1024)
  const aligned = Buffer.from(words.buffer)
  const want = new Uint32Array(2)
  const got = new Uint32Array(2)
  const backing = Buffer.alloc(4096 + 16)
  let same = 0
  for (let round = 0; round < 400; round++) {
    fillPattern(words, rand(3) === 0 ? 0 : rand(0x100000000), rand(2) === 0 ? 0 : rand(0x100000000))
    // A page that is same-filled, or one byte off anywhere (the first, the last and the middle included).
    if (round % 2 === 1) aligned[[0, 4095, 4088, 7, rand(4096)][round % 5]] ^= 1 + rand(255)
    const at = rand(16)
    aligned.copy(backing, at)
    const page = backing.subarray(at, at + 4096)
    const expected = pageSameFilled(words, want)
    t.equal(bufferSameFilled(page, got), expected, `round ${round} at offset ${at}`)
    if (expected) {
      same++
      t.same([...got], [...want], 'the same pattern halves')
    }
  }
  t.ok(same >= 150 && same <= 250, `both kinds were checked (${same} same-filled of 400)`)
})
