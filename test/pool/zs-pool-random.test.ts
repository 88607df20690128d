import t, { type Test } from 'tap'
import { GEOMETRY, ZS_SIZE_CLASSES, classIndexOf } from '../../src/pool/size-class'
import { ZsPool } from '../../src/pool/zs-pool'
import { prng as rng, seedFromEnv } from '../helpers/pages'

/*
 * A long seeded random sequence of malloc / write / free / read / compact, checked against a
 * model. Replay a failure with ZRAMFUSE_SEED=<seed printed below> npx tap test/pool.
 */

const SEED = seedFromEnv(0x5eed2024) >>> 0
const OPS = 250_000

/** Unique content of object id: a word stream seeded by id (the first word is id itself). */
function fill(words: Uint32Array, id: number, len: number): void {
  let x = (id * 2654435761 + 0x9e3779b9) >>> 0 || 1
  words[0] = id
  const n = (len + 3) >>> 2
  for (let i = 1; i < n; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    words[i] = x
  }
}

/** Lengths shaped like compressed 4 KiB pages: mostly lz4-ish 1..3 KiB, some tiny, some huge. */
function pickLen(r: () => number): number {
  const u = r()
  if (u < 0.55) return 900 + Math.floor(r() * 2200)
  if (u < 0.7) return 1 + Math.floor(r() * 400)
  if (u < 0.8) return 3400 + Math.floor(r() * 697) // around huge_class_size, up to 4096
  if (u < 0.85) return 4096 // stored raw
  return 1 + Math.floor(r() * 4096)
}

t.comment(`seed ${SEED} (set ZRAMFUSE_SEED to replay)`)

function run(t: Test, chunkPages: number, ops: number, seed: number): void {
  const r = rng(seed)
  const pool = new ZsPool({ chunkPages })
  const PAGES = GEOMETRY.pagesPerZspage
  const OBJS = GEOMETRY.objsPerZspage

  // model: handle -> object id, and per-object length
  const model = new Map<number, number>()
  const lenOf: number[] = []
  const live: number[] = [] // handles, for picking a random victim
  const slot = new Map<number, number>() // handle -> index in live
  const perClass = new Int32Array(ZS_SIZE_CLASSES)
  // lower bound on pages: every class needs ceil(n / objs) zspages
  let minPages = 0
  const classPages = (c: number): number => Math.ceil(perClass[c] / OBJS[c]) * PAGES[c]

  const wbuf = new Uint32Array(1024 + 4)
  const wbytes = new Uint8Array(wbuf.buffer)
  const ebuf = new Uint32Array(1024)
  const ebytes = new Uint8Array(ebuf.buffer)
  const rbytes = new Uint8Array(4096 + 16)

  let nextId = 0
  let failures = 0
  let compactions = 0
  let compactedPages = 0
  let lastCompacted = 0
  let maxPages = 0
  let maxChunks = 0
  const fail = (msg: string): void => {
    if (failures++ < 10) t.fail(`${msg} (seed ${seed})`)
  }

  const checkObject = (h: number): void => {
    const id = model.get(h) as number
    const len = lenOf[id]
    fill(ebuf, id, len)
    rbytes.fill(0xee)
    pool.read(h, rbytes, 16 - (id & 15), len) // vary the destination offset
    const got = rbytes.subarray(16 - (id & 15), 16 - (id & 15) + len)
    if (Buffer.compare(got, ebytes.subarray(0, len)) !== 0) {
      fail(`object ${id} (handle ${h}, ${len} B) differs`)
    }
  }

  const checkAll = (): void => {
    for (const h of live) checkObject(h)
  }

  const account = (c: number, d: number): void => {
    minPages -= classPages(c)
    perClass[c] += d
    minPages += classPages(c)
  }

  let target = 0
  for (let op = 0; op < ops; op++) {
    // the live-set target wanders, now and then down to zero, so chunks fill and drain
    if (op % 20_000 === 0) target = r() < 0.2 ? 0 : Math.floor(r() * 12_000)
    const u = r()
    const pMalloc = live.length < target ? 0.7 : 0.3
    if (u < pMalloc || live.length === 0) {
      const len = pickLen(r)
      const id = nextId++
      const h = pool.malloc(len)
      if (!(h > 0 && h <= 0xffffffff && Number.isInteger(h))) fail(`bad handle ${h}`)
      if (model.has(h)) fail(`handle ${h} handed out twice`)
      fill(wbuf, id, len)
      const srcOff = id & 7
      if (srcOff !== 0) wbytes.copyWithin(srcOff, 0, len)
      pool.write(h, wbytes, srcOff, len)
      lenOf[id] = len
      model.set(h, id)
      slot.set(h, live.length)
      live.push(h)
      account(classIndexOf(len), 1)
    } else {
      const k = Math.floor(r() * live.length)
      const h = live[k]
      if (r() < 0.25) checkObject(h) // read before free
      const last = live.pop() as number
      if (last !== h) {
        live[k] = last
        slot.set(last, k)
      }
      slot.delete(h)
      const id = model.get(h) as number
      model.delete(h)
      pool.free(h)
      account(classIndexOf(lenOf[id]), -1)
    }
    if (op % 13 === 0 && live.length > 0) checkObject(live[Math.floor(r() * live.length)])

    const pages = pool.totalPages
    if (pages < minPages) fail(`op ${op}: totalPages ${pages} < minimum ${minPages}`)
    if (pool.objectCount !== live.length) fail(`op ${op}: objectCount ${pool.objectCount}`)
    if (pool.chunkCount * chunkPages < pages) fail(`op ${op}: chunks cannot hold the pages`)
    if (pool.totalPages > maxPages) maxPages = pool.totalPages
    if (pool.chunkCount > maxChunks) maxChunks = pool.chunkCount

    if (r() < 1 / 4000) {
      const before = pool.totalPages
      const freed = pool.compact()
      compactions++
      compactedPages += freed
      if (freed < 0 || pool.totalPages !== before - freed) {
        fail(`compact returned ${freed}, pages ${before} -> ${pool.totalPages}`)
      }
      if (pool.pagesCompacted < lastCompacted) fail('pagesCompacted went down')
      if (pool.pagesCompacted !== lastCompacted + freed) fail('pagesCompacted does not add up')
      lastCompacted = pool.pagesCompacted
      // after compaction every class is as dense as zs_can_compact() allows: exactly the minimum
      if (pool.totalPages !== minPages) {
        fail(`after compact: totalPages ${pool.totalPages} != ${minPages}`)
      }
      try {
        pool.verify()
      } catch (err) {
        fail(String(err))
      }
      checkAll()
    }
    if (failures > 10) break
  }

  // final: compact, check all, then free everything in random order
  const freed = pool.compact()
  t.ok(freed >= 0)
  t.equal(pool.totalPages, minPages, 'final compaction reaches the minimum')
  pool.verify()
  checkAll()
  while (live.length > 0) {
    const k = Math.floor(r() * live.length)
    const h = live[k]
    live[k] = live[live.length - 1]
    live.pop()
    pool.free(h)
  }
  t.equal(failures, 0, 'no failure during the run')
  t.equal(pool.objectCount, 0)
  t.equal(pool.totalPages, 0, 'all pages returned')
  t.equal(pool.chunkCount, 0, 'all chunks released')
  pool.verify()
  t.comment(
    `chunkPages ${chunkPages}: ${ops} ops, ${nextId} objects, ${compactions} compactions ` +
      `freed ${compactedPages} pages, peak ${maxPages} pages in ${maxChunks} chunks`,
  )
}


t.test('random ops vs model, small chunks', async (t) => {
  run(t, 16, OPS, SEED)
})

t.test('random ops vs model, default chunks', async (t) => {
  run(t, 256, OPS / 2, (SEED ^ 0xa5a5a5a5) >>> 0)
})
