import t from 'tap'
import { GEOMETRY, classIndexOf } from '../../src/pool/size-class'
import { ZsPool } from '../../src/pool/zs-pool'

/** Deterministic content for object number id (first word = id, so objects differ). */
function fill(buf: Uint8Array, id: number, len: number): void {
  let x = (id * 2654435761 + 1) >>> 0
  for (let i = 0; i < len; i++) {
    x ^= x << 13
    x ^= x >>> 17
    x ^= x << 5
    buf[i] = x & 0xff
  }
  if (len >= 4) new DataView(buf.buffer, buf.byteOffset).setUint32(0, id)
}

t.test('malloc / write / read / free round trip', async (t) => {
  const pool = new ZsPool()
  const src = new Uint8Array(4096)
  const dst = new Uint8Array(4096)
  for (const len of [1, 24, 25, 100, 1500, 3624, 3625, 4000, 4096]) {
    const h = pool.malloc(len)
    t.ok(h > 0 && h === h >>> 0, `handle ${h}`)
    fill(src, len, len)
    pool.write(h, src, 0, len)
    dst.fill(0)
    pool.read(h, dst, 0, len)
    t.same(dst.subarray(0, len), src.subarray(0, len), `len ${len}`)
    pool.free(h)
  }
  t.equal(pool.totalPages, 0)
  t.equal(pool.objectCount, 0)
  t.equal(pool.chunkCount, 0, 'empty pool holds no chunk')
  // offsets on both sides
  const h = pool.malloc(100)
  fill(src, 7, 200)
  pool.write(h, src, 50, 100)
  pool.read(h, dst, 10, 100)
  t.same(dst.subarray(10, 110), src.subarray(50, 150))
})

t.test('accounting follows zspage geometry', async (t) => {
  const pool = new ZsPool()
  // class 112 (len 100 + 8 -> 112 after rounding): 7 pages, 256 objects
  t.equal(pool.classSizeOf(100), 112)
  const hs: number[] = []
  hs.push(pool.malloc(100))
  t.equal(pool.totalPages, 7, 'first object allocates a whole 7-page zspage')
  for (let i = 1; i < 256; i++) hs.push(pool.malloc(100))
  t.equal(pool.totalPages, 7, '256 objects fit in it')
  hs.push(pool.malloc(100))
  t.equal(pool.totalPages, 14, 'the 257th needs a second zspage')
  // huge objects: one page each
  const huge = [pool.malloc(4096), pool.malloc(3625), pool.malloc(3700)]
  t.equal(pool.totalPages, 17)
  for (const h of huge) pool.free(h)
  t.equal(pool.totalPages, 14)
  // the emptied zspage is freed at once
  pool.free(hs.pop() as number)
  t.equal(pool.totalPages, 7)
  t.equal(pool.objectCount, 256)
  pool.verify()
})

t.test('allocation takes the fullest non-full zspage', async (t) => {
  const pool = new ZsPool()
  const a: number[] = []
  const b: number[] = []
  for (let i = 0; i < 256; i++) a.push(pool.malloc(100))
  for (let i = 0; i < 256; i++) b.push(pool.malloc(100))
  t.equal(pool.totalPages, 14)
  // A: 246/256 in use (group 90-99%), B: 156/256 (group 60-69%)
  for (let i = 0; i < 10; i++) pool.free(a.pop() as number)
  for (let i = 0; i < 100; i++) pool.free(b.pop() as number)
  // 10 new objects must go to A; then emptying B frees it
  for (let i = 0; i < 10; i++) a.push(pool.malloc(100))
  for (const h of b) pool.free(h)
  t.equal(pool.totalPages, 7, 'B emptied: the new objects went into A')
  pool.verify()
})

t.test('compaction of a fragmented pool; handles stay valid', async (t) => {
  const pool = new ZsPool({ chunkPages: 64 })
  const len = 100 // class 112: 7 pages, 256 objects per zspage
  const zspages = 300
  const n = 256 * zspages
  const handles: number[] = []
  const src = new Uint8Array(4096)
  for (let i = 0; i < n; i++) {
    const h = pool.malloc(len)
    fill(src, i, len)
    pool.write(h, src, 0, len)
    handles.push(h)
  }
  t.equal(pool.totalPages, 7 * zspages)
  // free 2 of every 3: every zspage keeps about a third of its objects, none empties
  const live: number[] = []
  for (let i = 0; i < n; i++) {
    if (i % 3 === 0) live.push(i)
    else pool.free(handles[i])
  }
  const before = pool.totalPages
  t.equal(before, 7 * zspages, 'freeing alone returns no page')
  const expectedAfter = 7 * Math.ceil(live.length / 256)
  const compactedBefore = pool.pagesCompacted
  const freed = pool.compact()
  t.equal(freed, before - expectedAfter, `compaction frees ${before - expectedAfter} pages`)
  t.equal(pool.totalPages, expectedAfter, 'pool is as dense as the class allows')
  t.equal(pool.pagesCompacted, compactedBefore + freed)
  t.ok(pool.chunkCount <= Math.ceil(before / 64), 'no chunk was added')
  pool.verify()
  const dst = new Uint8Array(4096)
  for (const i of live) {
    fill(src, i, len)
    pool.read(handles[i], dst, 0, len)
    if (Buffer.compare(src.subarray(0, len), dst.subarray(0, len)) !== 0) {
      t.fail(`object ${i} changed by compaction`)
      break
    }
  }
  t.equal(pool.compact(), 0, 'a second compaction finds nothing')
  for (const i of live) pool.free(handles[i])
  t.equal(pool.totalPages, 0)
  t.equal(pool.chunkCount, 0)
})

t.test('objects straddling frames survive compaction in every class', async (t) => {
  const pool = new ZsPool({ chunkPages: 8 })
  const src = new Uint8Array(4096)
  const dst = new Uint8Array(4096)
  const all: { h: number; id: number; len: number }[] = []
  let id = 0
  for (let c = 0; c < 255; c++) {
    if (GEOMETRY.merged[c] !== c) continue
    const len = GEOMETRY.huge[c] === 1 ? 4096 : GEOMETRY.size[c] - 8 // largest payload
    t.equal(classIndexOf(len), c)
    for (let k = 0; k < 3 * GEOMETRY.objsPerZspage[c]; k++) {
      const h = pool.malloc(len)
      fill(src, id, len)
      pool.write(h, src, 0, len)
      all.push({ h, id: id++, len })
    }
  }
  const keep = all.filter((o, i) => {
    if (i % 2 === 1) return true
    pool.free(o.h)
    return false
  })
  const before = pool.totalPages
  const freed = pool.compact()
  t.equal(pool.totalPages, before - freed)
  t.ok(freed > 0)
  pool.verify()
  let bad = 0
  for (const o of keep) {
    fill(src, o.id, o.len)
    pool.read(o.h, dst, 0, o.len)
    if (Buffer.compare(src.subarray(0, o.len), dst.subarray(0, o.len)) !== 0) bad++
  }
  t.equal(bad, 0, 'every object reads back')
})

t.test('bad lengths, bad handles, double free', async (t) => {
  const pool = new ZsPool()
  for (const len of [0, -1, 4097, 1.5, Number.NaN, Infinity]) {
    t.throws(() => pool.malloc(len), RangeError, `malloc(${len})`)
  }
  t.equal(pool.totalPages, 0)
  const h = pool.malloc(50)
  const buf = new Uint8Array(4096)
  t.throws(() => pool.write(h, buf, 0, 51 + 16), RangeError, 'write past the object')
  t.throws(() => pool.write(h, buf, 4090, 10), RangeError, 'write past the source')
  t.throws(() => pool.read(h, buf, 4095, 2), RangeError, 'read past the destination')
  pool.free(h)
  t.throws(() => pool.free(h), /not allocated/, 'double free')
  t.throws(() => pool.read(h, buf, 0, 1), /not allocated/, 'read after free')
  t.throws(() => pool.write(h, buf, 0, 1), /not allocated/, 'write after free')
  t.throws(() => pool.free(0), /not allocated/)
  t.throws(() => pool.free(123456), /not allocated/)
  t.throws(() => pool.free(-1), /not allocated/)
  t.equal(pool.objectCount, 0)
  pool.verify()
})

t.test('reset drops everything', async (t) => {
  const pool = new ZsPool({ chunkPages: 16 })
  for (let i = 0; i < 5000; i++) pool.malloc(1 + (i % 4096))
  t.ok(pool.chunkCount > 1)
  pool.reset()
  t.equal(pool.totalPages, 0)
  t.equal(pool.objectCount, 0)
  t.equal(pool.chunkCount, 0)
  const h = pool.malloc(10)
  t.equal(h, 1, 'handles restart')
  t.equal(pool.totalPages, 1)
  pool.verify()
})

t.test('out of memory for a chunk leaves the pool consistent', async (t) => {
  const pool = new ZsPool({ chunkPages: 4 })
  const hs: number[] = []
  for (let i = 0; i < 4; i++) hs.push(pool.malloc(4096)) // fills the first chunk
  const orig = Buffer.allocUnsafeSlow
  Buffer.allocUnsafeSlow = () => {
    throw new RangeError('Array buffer allocation failed')
  }
  t.teardown(() => {
    Buffer.allocUnsafeSlow = orig
  })
  t.throws(() => pool.malloc(4096), RangeError)
  t.throws(() => pool.malloc(1500), RangeError) // 3-page zspage: fails on its first frame
  Buffer.allocUnsafeSlow = orig
  t.equal(pool.totalPages, 4)
  t.equal(pool.objectCount, 4)
  t.equal(pool.chunkCount, 1)
  pool.verify()
  const h = pool.malloc(1500)
  t.equal(pool.totalPages, 7)
  pool.free(h)
  for (const x of hs) pool.free(x)
  t.equal(pool.totalPages, 0)
  t.equal(pool.chunkCount, 0)
  pool.verify()
})

t.test('payloadPieces: a thread writing an object in place through its pieces, every class', async (t) => {
  const pool = new ZsPool({ chunkPages: 8 })
  pool.shared = true
  const src = new Uint8Array(4096)
  const dst = new Uint8Array(4096)
  const out = new Int32Array(5)
  let split = 0
  let id = 0
  for (let c = 0; c < GEOMETRY.size.length; c++) {
    if (GEOMETRY.merged[c] !== c) continue
    const len = GEOMETRY.huge[c] === 1 ? 4096 : GEOMETRY.size[c] - 8
    if (classIndexOf(len) !== c) t.fail(`length ${len} is not served by class ${c}`)
    // enough objects that some cross into the zspage's next frame
    for (let k = 0; k < 12; k++) {
      const h = pool.malloc(len)
      const pieces = pool.payloadPieces(h, out)
      if (pieces !== 1 && pieces !== 2) {
        t.fail(`class ${c}: ${pieces} pieces`)
        continue
      }
      fill(src, ++id, len)
      const first = Math.min(len, out[2])
      new Uint8Array(pool.chunkBufferOf(h, 0)).set(src.subarray(0, first), out[1])
      if (pieces === 2) {
        split++
        if (first >= len) t.fail('two pieces for an object that fits the first')
        new Uint8Array(pool.chunkBufferOf(h, 1)).set(src.subarray(first, len), out[4])
      } else if (first !== len) t.fail(`class ${c}: one piece of ${first} for ${len} bytes`)
      dst.fill(0)
      pool.read(h, dst, 0, len)
      if (Buffer.compare(dst.subarray(0, len), src.subarray(0, len)) !== 0) t.fail(`class ${c} object ${k} reads back wrong`)
      if (out[0] <= 0 || (pieces === 2 && out[3] <= 0)) t.fail('a shared piece without a serial')
    }
  }
  t.ok(split > 0, `${split} objects written in two pieces`)
  pool.verify()
  const unshared = new ZsPool()
  t.equal(unshared.payloadPieces(unshared.malloc(100), out), 0, 'no pieces in unshared memory')
})

t.test('pinned objects stay where they are through compaction; the rest is compacted', async (t) => {
  const pool = new ZsPool({ chunkPages: 64 })
  const len = 100 // class 112: 7 pages, 256 objects per zspage
  const src = new Uint8Array(4096)
  const dst = new Uint8Array(4096)
  const handles: number[] = []
  for (let i = 0; i < 256 * 10; i++) {
    const h = pool.malloc(len)
    fill(src, i, len)
    pool.write(h, src, 0, len)
    handles.push(h)
  }
  const out = new Int32Array(5)
  pool.shared = true // only to read where objects are: pieces of unshared memory report offsets too
  const live: number[] = []
  const pinned = new Map<number, number>()
  for (let i = 0; i < handles.length; i++) {
    if (i % 8 !== 0) {
      pool.free(handles[i])
      continue
    }
    live.push(i)
    if (i % 64 === 0 && i < 2 * 256) { // in two of the ten zspages
      pool.pin(handles[i])
      pool.payloadPieces(handles[i], out)
      pinned.set(i, out[1])
    }
  }
  const before = pool.totalPages
  const freed = pool.compact()
  t.ok(freed > 0, `compaction still frees ${freed} pages`)
  t.ok(pool.totalPages > 7 * Math.ceil(live.length / 256), `but not as much as with nothing pinned (${pool.totalPages} pages)`)
  t.equal(pool.totalPages, before - freed)
  pool.verify()
  for (const [i, off] of pinned) {
    pool.payloadPieces(handles[i], out)
    if (out[1] !== off) t.fail(`pinned object ${i} moved`)
  }
  for (const i of live) {
    fill(src, i, len)
    pool.read(handles[i], dst, 0, len)
    if (Buffer.compare(src.subarray(0, len), dst.subarray(0, len)) !== 0) t.fail(`object ${i} changed`)
  }
  for (const i of pinned.keys()) pool.unpin(handles[i])
  t.ok(pool.compact() > 0, 'once unpinned they move too')
  t.equal(pool.totalPages, 7 * Math.ceil(live.length / 256), 'and the pool is as dense as the class allows')
  pool.verify()
  t.throws(() => pool.pin(handles[1]), /not allocated/, 'a freed handle cannot be pinned')
})

t.test('locate: where an object lies, in one frame or two, agrees with read()', async (t) => {
  for (const shared of [false, true]) {
    const pool = new ZsPool({ chunkPages: 8 })
    pool.shared = shared
    const src = new Uint8Array(4096)
    const dst = new Uint8Array(4096)
    const loc = new Int32Array(5)
    const seen = [0, 0, 0]
    for (const len of [1, 100, 1500, 2080, 3000, 3624, 4096]) {
      for (let k = 0; k < 10; k++) {
        const h = pool.malloc(len)
        fill(src, len * 16 + k, len)
        pool.write(h, src, 0, len)
        const pieces = pool.locate(h, len, loc)
        seen[pieces]++
        const first = pool.chunkBytes(loc[0]).subarray(loc[1], loc[1] + loc[2])
        const joined = pieces === 1 ? Buffer.from(first) : Buffer.concat([first, pool.chunkBytes(loc[3]).subarray(loc[4], loc[4] + len - loc[2])])
        pool.read(h, dst, 0, len)
        if (pieces === 1 && loc[2] !== len) t.fail(`len ${len}: one piece of ${loc[2]} bytes`)
        if (pieces === 2 && !(loc[2] > 0 && loc[2] < len && (loc[1] + loc[2]) % 4096 === 0)) t.fail(`len ${len}: a first piece that does not end its frame`)
        if (joined.length !== len || Buffer.compare(joined, dst.subarray(0, len)) !== 0) t.fail(`len ${len}: the located bytes differ from read()`)
      }
    }
    t.ok(seen[1] > 0 && seen[2] > 0, `${shared ? 'shared' : 'plain'} memory: ${seen[1]} objects in one frame, ${seen[2]} crossing frames`)
    t.throws(() => pool.locate(pool.malloc(100), 200, loc), RangeError, 'longer than the object: refused')
  }
})
