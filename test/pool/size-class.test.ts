import t from 'tap'
import {
  GEOMETRY,
  ZS_SIZE_CLASSES,
  calculateZspageChainSize,
  classIndexOf,
} from '../../src/pool/size-class'
import { ZsPool } from '../../src/pool/zs-pool'

t.test('class table constants', async (t) => {
  t.equal(ZS_SIZE_CLASSES, 255)
  t.equal(GEOMETRY.size[0], 32)
  t.equal(GEOMETRY.size[254], 4096)
})

t.test('huge_class_size comes out of the code as 3625', async (t) => {
  t.equal(ZsPool.hugeClassSize, 3625)
  t.equal(GEOMETRY.hugeClassSize, 3625)
})

t.test('calculate_zspage_chain_size against hand-computed values', async (t) => {
  // [class size, pages_per_zspage, objs_per_zspage], each worked out from min (i*4096) % size
  const cases: [number, number, number][] = [
    [32, 1, 128], // power of two
    [48, 3, 256], // 4096%48=16, 8192%48=32, 12288%48=0
    [64, 1, 64],
    [112, 7, 256], // 28672 = 256*112
    [208, 3, 59], // wastes 144, 80, 16, 160, 96, 32, 176, 112 -> i=3
    [1520, 3, 8], // wastes 1056, 592, 128, 1184, 720, 256, 1312, 848 -> i=3
    [3632, 8, 9], // 32768 - 9*3632 = 80 is the least waste
    [3648, 1, 1], // 448*i grows with i: one page, one object
    [4096, 1, 1],
  ]
  for (const [size, pages, objs] of cases) {
    t.equal(calculateZspageChainSize(size), pages, `pages_per_zspage(${size})`)
    const i = (size - 32) / 16
    t.equal(GEOMETRY.pagesPerZspage[i], pages, `table pages(${size})`)
    t.equal(GEOMETRY.objsPerZspage[i], objs, `table objs(${size})`)
  }
})

t.test('class merging', async (t) => {
  // every class from 3648 up is 1 page / 1 object and shares the 4096 class
  for (let s = 3648; s <= 4096; s += 16) {
    const i = Math.min(254, (s - 32) / 16)
    t.equal(GEOMETRY.size[i], 4096, `class ${s} merged into 4096`)
    t.equal(GEOMETRY.huge[i], 1)
  }
  t.equal(GEOMETRY.size[(3632 - 32) / 16], 3632, '3632 is a class of its own')
  t.equal(GEOMETRY.huge[(3632 - 32) / 16], 0)
  // a merged index always points up to a class with the same geometry
  let distinct = 0
  for (let i = 0; i < ZS_SIZE_CLASSES; i++) {
    const m = GEOMETRY.merged[i]
    if (m === i) distinct++
    else {
      t.ok(m > i && GEOMETRY.merged[m] === m, `merge target of ${i} is a real larger class`)
      t.equal(GEOMETRY.pagesPerZspage[m], GEOMETRY.pagesPerZspage[i])
      t.equal(GEOMETRY.objsPerZspage[m], GEOMETRY.objsPerZspage[i])
    }
  }
  t.comment(`${distinct} distinct classes after merging`)
  t.ok(distinct < ZS_SIZE_CLASSES)
})

t.test('class lookup adds ZS_HANDLE_SIZE first', async (t) => {
  const pool = new ZsPool()
  const cases: [number, number][] = [
    [0, 32],
    [1, 32],
    [24, 32], // 24 + 8 = 32
    [25, 48], // 33 -> next class
    [40, 48],
    [41, 64],
    [1500, 1536], // 1508 -> raw class 1520 (3 pages, 8 objs), merged into 1536 (also 3/8)
    [1504, 1536],
    [1505, 1536], // 1513 -> raw 1520 again
    [3624, 3632], // 3632 exactly
    [3625, 4096], // 3633 -> class 3648, merged into the huge 4096 class
    [4000, 4096],
    [4096, 4096], // a raw page: the clamp to the last class, one object per page
  ]
  for (const [len, size] of cases) t.equal(pool.classSizeOf(len), size, `len ${len}`)
  // ZsPool.hugeClassSize is exactly the first length that lands in the huge class
  t.equal(pool.classSizeOf(ZsPool.hugeClassSize - 1) < 4096, true)
  t.equal(pool.classSizeOf(ZsPool.hugeClassSize), 4096)
  // every length: the raw class is the smallest 32+16i that holds len + 8 (clamped to 4096),
  // the served class is its merge target, and the object fits (with its handle, unless huge)
  let bad = 0
  for (let len = 1; len <= 4096; len++) {
    const need = len + 8
    const raw = Math.min(4096, Math.max(32, 32 + 16 * Math.ceil((need - 32) / 16)))
    if (!(raw === 4096 || (raw >= need && (raw === 32 || raw - 16 < need)))) bad++
    const c = classIndexOf(len)
    if (GEOMETRY.merged[(raw - 32) / 16] !== c) bad++
    if (GEOMETRY.size[c] < (GEOMETRY.huge[c] === 1 ? len : need)) bad++
    if (pool.classSizeOf(len) !== GEOMETRY.size[c]) bad++
  }
  t.equal(bad, 0, 'lookup of every length 1..4096')
  t.throws(() => pool.classSizeOf(4097), RangeError)
  t.throws(() => pool.classSizeOf(-1), RangeError)
})
