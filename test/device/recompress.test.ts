// Recompression (issue 11) on the device layer: recomp_algorithm, algorithm_params priority=N,
// recompress with every option and errno, the size-class rule, ZRAM_INCOMPRESSIBLE, the priority in
// the page table, accounting as the kernel's; multi-page units; writes, discards and resets racing
// a run (seeded interleavings against a model).
import t, { type Test } from 'tap'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ZramDevice } from '../../src/device/zram-device'
import {
  BYTES_PER_PAGE_METADATA, type PageTable, SLOT_ALLOCATED, SLOT_HUGE, SLOT_IDLE, SLOT_INCOMPRESSIBLE, SLOT_PP, SLOT_SAME,
  SLOT_STAGED, SLOT_UNIT, SLOT_WB,
} from '../../src/device/page-table'
import { lookupClassIndex } from '../../src/device/recompressor'
import { Errno } from '../../src/errno'
import { makePage, PAGE_KINDS, prng, seedFromEnv } from '../helpers/pages'
import { attr, mm, show, store } from '../helpers/device-attrs'

const seed = seedFromEnv(1111)
t.comment(`seed ${seed} (replay with ZRAMFUSE_SEED=${seed})`)

const num = (dev: ZramDevice, name: string): number => Number(show(dev, name).trim())



/** A page lz4 cannot compress below huge_class_size and zstd can: 4 bits of entropy per byte, no repeats. */
function nibblePage(rand: () => number): Buffer {
  const p = Buffer.alloc(4096)
  for (let i = 0; i < 4096; i++) p[i] = 0x41 + Math.floor(rand() * 16)
  return p
}

/**
 * Pages whose neighbours share most of their bytes (a file's consecutive blocks): the text of a
 * page repeats, with small changes, across the next ones.
 */
function similarPages(n: number, rand: () => number): Buffer[] {
  const base = makePage('text', rand)
  const out: Buffer[] = []
  for (let i = 0; i < n; i++) {
    const p = Buffer.from(base)
    for (let k = 0; k < 64; k++) p[Math.floor(rand() * 4096)] = 0x30 + Math.floor(rand() * 10)
    out.push(p)
  }
  return out
}

interface Fixture { dev: ZramDevice; pages: Buffer[]; clock: { ms: number } }

/** lz4 primary, zstd at priority 1 (unless told otherwise), `pages` written. */
async function fixture(t: Test, pages: Buffer[], opts: { recomp?: string[]; workers?: number; unit?: number; backing?: boolean } = {}): Promise<Fixture> {
  const clock = { ms: 1_000_000_000 }
  const dev = new ZramDevice(0, { clockMs: () => clock.ms, workers: opts.workers ?? 0 })
  t.teardown(() => dev.close())
  for (const line of opts.recomp ?? ['algo=zstd']) t.equal(await store(dev, 'recomp_algorithm', line), 0, `recomp_algorithm ${line}`)
  if (opts.backing) {
    const dir = mkdtempSync(join(tmpdir(), 'zf-recomp-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    t.equal(await store(dev, 'backing_dev', join(dir, 'lower')), 0)
    t.equal(await store(dev, 'compressed_writeback', '1'), 0)
  }
  t.equal(await store(dev, 'disksize', `${Math.max(pages.length, 16) * 4096}`), 0)
  if (opts.unit !== undefined) t.equal(await store(dev, 'recompress_unit_pages', `${opts.unit}`), 0)
  for (let i = 0; i < pages.length; i++) await dev.write(pages[i], i * 4096)
  await dev.drain()
  return { dev, pages, clock }
}

async function readPage(dev: ZramDevice, index: number): Promise<Buffer> {
  const out = Buffer.alloc(4096)
  await dev.read(out, index * 4096)
  return out
}

async function readsBack(t: Test, dev: ZramDevice, pages: (Buffer | null)[], what: string): Promise<void> {
  let bad = -1
  for (let i = 0; i < pages.length && bad < 0; i++) {
    const want = pages[i] ?? Buffer.alloc(4096)
    if (!(await readPage(dev, i)).equals(want)) bad = i
  }
  t.equal(bad, -1, `${what}: every page reads back as written${bad >= 0 ? ` (page ${bad} differs)` : ''}`)
}

/**
 * The kernel's bookkeeping, recomputed from the page table: pages stored, compressed bytes, same
 * and huge pages; and the pool's own invariants.
 */
function checkAccounting(t: Test, dev: ZramDevice, what: string): void {
  const table = dev.pageTable as PageTable
  let stored = 0
  let compr = 0
  let same = 0
  let huge = 0
  let unitPages = 0
  for (let i = 0; i < table.pages; i++) {
    const meta = table.meta[i]
    if ((meta & SLOT_ALLOCATED) === 0) continue
    stored++
    if (meta & SLOT_SAME) same++
    else if (meta & (SLOT_WB | SLOT_STAGED)) continue
    else {
      compr += table.size(i)
      if (meta & SLOT_HUGE) huge++
      if (meta & SLOT_UNIT) unitPages++
    }
  }
  const s = dev.stats()
  t.same({ origDataSize: s.origDataSize, comprDataSize: s.comprDataSize, samePages: s.samePages, hugePages: s.hugePages },
    { origDataSize: stored * 4096, comprDataSize: compr, samePages: same, hugePages: huge }, `${what}: mm_stat agrees with the page table`)
  t.equal(dev.units.stats().unitPages, unitPages, `${what}: unit_pages counts the live members`)
  dev.verifyPool()
}

// ---- recomp_algorithm and algorithm_params priority=N ----

t.test('recomp_algorithm: the kernel\'s grammar, format and errno', async (t) => {
  const dev = new ZramDevice(0)
  t.equal(show(dev, 'recomp_algorithm'), '', 'nothing configured: empty')
  t.equal(await store(dev, 'recomp_algorithm', 'algo=zstd\n'), 0)
  t.equal(show(dev, 'recomp_algorithm'), '#1: lz4 [zstd] \n', 'priority 1 by default')
  t.equal(await store(dev, 'recomp_algorithm', 'algo=lz4 priority=3'), 0)
  t.equal(show(dev, 'recomp_algorithm'), '#1: lz4 [zstd] \n#3: [lz4] zstd \n', 'one line per configured priority')
  const cases: Array<[string, number, string]> = [
    ['priority=2\n', Errno.EINVAL, 'no algo='],
    ['algo=zstd priority=0', Errno.EINVAL, 'priority 0 is the primary'],
    ['algo=zstd priority=4', Errno.EINVAL, 'ZRAM_MAX_COMPS is 4'],
    ['algo=zstd priority=-1', Errno.EINVAL, 'negative priority'],
    ['algo=zstd priority=x', Errno.EINVAL, 'kstrtoint'],
    ['algo=zstd priority=2147483648', Errno.ERANGE, 'kstrtoint overflow'],
    ['algo=nope', Errno.EINVAL, 'unknown algorithm'],
    [`algo=${'x'.repeat(128)}`, Errno.E2BIG, 'name too long'],
    ['algo', Errno.EINVAL, 'key without value'],
    ['algo= priority=1', Errno.EINVAL, 'empty value'],
  ]
  for (const [input, errno, why] of cases) t.equal(await store(dev, 'recomp_algorithm', input), errno, `${JSON.stringify(input)}: ${why}`)
  t.equal(await store(dev, 'recomp_algorithm', 'algo=zstd priority=2 foo=bar'), 0, 'unknown keys are ignored')
  t.equal(await store(dev, 'disksize', '1M'), 0)
  t.equal(show(dev, 'recomp_algorithm').trim().split('\n').length, 3, 'three recompression algorithms configured')
  t.equal(await store(dev, 'recomp_algorithm', 'algo=nope'), Errno.EINVAL, 'after init: parse errors first')
  t.equal(await store(dev, 'recomp_algorithm', 'algo=zstd'), Errno.EBUSY, 'then EBUSY')
  t.equal(await store(dev, 'reset', '1'), 0)
  t.equal(show(dev, 'recomp_algorithm'), '', 'reset drops the recompression algorithms')
})

t.test('algorithm_params priority=N: kept for its slot, checked at disksize, EBUSY after', async (t) => {
  const dev = new ZramDevice(0)
  t.equal(await store(dev, 'algorithm_params', 'priority=2 level=99'), 0, 'a slot with no algorithm yet takes any level')
  t.equal(await store(dev, 'algorithm_params', 'priority=4 level=1'), Errno.EINVAL, 'priority out of range')
  t.equal(await store(dev, 'algorithm_params', 'algo=zstd level=5'), Errno.EINVAL, 'algo= names no configured slot')
  t.equal(await store(dev, 'recomp_algorithm', 'algo=zstd priority=2'), 0)
  t.equal(await store(dev, 'algorithm_params', 'algo=zstd level=99'), Errno.EINVAL, 'algo=zstd finds priority 2: level out of zstd\'s range')
  t.equal(await store(dev, 'disksize', '1M'), Errno.EINVAL, 'priority 2 still has level 99: the backend refuses it at disksize')
  t.notOk(dev.initialised, 'the device stays uninitialised')
  t.equal(await store(dev, 'algorithm_params', 'algo=zstd level=19'), 0, 'algo= resolves to priority 2')
  // 7.1 "unify and harden algo/priority params handling": priority= and algo= must agree.
  t.equal(await store(dev, 'algorithm_params', 'algo=zstd priority=1 level=3'), Errno.EINVAL, 'priority 1 holds no zstd: EINVAL, neither overrides')
  t.equal(await store(dev, 'algorithm_params', 'algo=zstd priority=3 level=3'), Errno.EINVAL, 'no algorithm at priority 3')
  t.equal(await store(dev, 'algorithm_params', 'algo=zstd priority=2 level=19'), 0, 'they agree')
  t.equal(await store(dev, 'algorithm_params', 'algo=lz4 level=1'), 0, 'algo= alone is looked up from priority 0: the primary')
  t.equal(await store(dev, 'algorithm_params', 'priority=-1 level=1'), Errno.EINVAL, 'priority below 0')
  t.equal(dev.recomp.nameOf(2), 'zstd')
  t.equal(await store(dev, 'disksize', '1M'), 0)
  t.equal(await store(dev, 'algorithm_params', 'priority=2 level=3'), Errno.EBUSY, 'after init: EBUSY (as for the primary)')

  // The level reaches the recompression context: level 19 compresses text smaller than level 1.
  const sizes: number[] = []
  for (const level of [1, 19]) {
    const d = new ZramDevice(1)
    t.equal(await store(d, 'recomp_algorithm', 'algo=zstd'), 0)
    t.equal(await store(d, 'algorithm_params', `priority=1 level=${level}`), 0)
    t.equal(await store(d, 'disksize', '64K'), 0)
    const page = makePage('text', prng(seed))
    await d.write(page, 0)
    t.equal(await store(d, 'recompress', 'type=huge_idle threshold=0'), 0)
    t.equal(await store(d, 'recompress', ''), 0)
    sizes.push(d.pageTable!.size(0))
    t.same(await readPage(d, 0), page)
  }
  t.ok(sizes[1] < sizes[0], `level 19 (${sizes[1]} bytes) beats level 1 (${sizes[0]}) on the recompression slot`)
})

// ---- recompress: grammar and errno ----

t.test('recompress: every option\'s parse errors and the device checks, in the kernel\'s order', async (t) => {
  const dev = new ZramDevice(0)
  t.equal(await store(dev, 'recompress', 'type=idle'), Errno.EINVAL, 'uninitialised')
  t.equal(await store(dev, 'recompress', 'threshold=3625'), Errno.EINVAL, 'threshold >= huge_class_size, before the init check')
  t.equal(await store(dev, 'recompress', 'max_pages=x'), Errno.EINVAL, 'parse errors come first too')
  t.equal(await store(dev, 'recomp_algorithm', 'algo=zstd'), 0)
  t.equal(await store(dev, 'disksize', '1M'), 0)
  const cases: Array<[string, number, string]> = [
    ['type', Errno.EINVAL, 'key without value'],
    ['type=', Errno.EINVAL, 'empty value'],
    ['max_pages=x', Errno.EINVAL, 'kstrtoull'],
    ['max_pages=-1', Errno.EINVAL, 'kstrtoull takes no sign'],
    ['max_pages=18446744073709551616', Errno.ERANGE, 'kstrtoull overflow'],
    ['threshold=x', Errno.EINVAL, 'kstrtouint'],
    ['threshold=4294967296', Errno.ERANGE, 'kstrtouint overflow'],
    ['threshold=3625', Errno.EINVAL, 'threshold >= huge_class_size'],
    ['priority=x', Errno.EINVAL, 'kstrtoint'],
    ['priority=2147483648', Errno.ERANGE, 'kstrtoint overflow'],
    ['priority=-1', Errno.EINVAL, 'below 1 (kstrtoint takes the sign; the range check refuses it)'],
    // 7.1 "do not autocorrect bad recompression parameters": 0 was taken for 1.
    ['priority=0', Errno.EINVAL, 'priority 0 is the primary: refused, not corrected to 1'],
    ['priority=4', Errno.EINVAL, 'ZRAM_MAX_COMPS is 4'],
    ['priority=2', Errno.EINVAL, 'no algorithm at priority 2'],
    // 7.1 "unify and harden algo/priority params handling".
    ['priority=3 algo=zstd', Errno.EINVAL, 'priority 3 holds no zstd'],
    ['priority=1 algo=lz4', Errno.EINVAL, 'priority= and algo= disagree: neither overrides the other'],
    ['algo=lz4', Errno.EINVAL, 'the primary is not a recompression algorithm'],
    ['algo=nope', Errno.EINVAL, 'algo= names no slot'],
  ]
  for (const [input, errno, why] of cases) t.equal(await store(dev, 'recompress', input), errno, `${JSON.stringify(input)}: ${why}`)
  for (const input of ['', 'type=idle', 'type=huge', 'type=huge_idle', 'type=foo', 'threshold=3624', 'max_pages=0',
    'max_pages=18446744073709551615', 'priority=1', 'algo=zstd', 'algo=zstd priority=1', 'priority=1 algo=zstd', 'foo=bar', '"type=idle"\n']) {
    t.equal(await store(dev, 'recompress', input), 0, `${JSON.stringify(input)} is accepted`)
  }
  const only1 = new ZramDevice(1)
  t.equal(await store(only1, 'disksize', '1M'), 0)
  t.equal(await store(only1, 'recompress', 'type=idle'), Errno.EINVAL, 'no recompression algorithm at all')
})

t.test('only priority 2 configured: recompress names it, the default (priority 1) is EINVAL', async (t) => {
  // Mainline 7.1 dropped num_active_comps: comps[prio] must exist for the priority the run uses.
  const rand = prng(seed)
  const pages = [makePage('text', rand), makePage('binary', rand)]
  const { dev } = await fixture(t, pages, { recomp: ['algo=zstd priority=2'] })
  const table = dev.pageTable!
  t.equal(await store(dev, 'recompress', ''), Errno.EINVAL, 'no algorithm at priority 1, the default')
  t.notOk(table.meta[0] & SLOT_INCOMPRESSIBLE, 'and nothing was flagged')
  t.equal(await store(dev, 'recompress', 'priority=2'), 0, 'priority=2 runs')
  t.equal(table.priority(0), 2, 'the text page is held by priority 2')
  t.equal(await store(dev, 'recompress', 'algo=zstd'), 0, 'algo=zstd finds priority 2 too')
  await readsBack(t, dev, pages, 'after the runs')
})

// ---- the size-class rule, INCOMPRESSIBLE, accounting ----

t.test('recompress_slot: kept only in a strictly smaller size class; huge pages leave huge; the rest is flagged incompressible', async (t) => {
  const rand = prng(seed)
  const pages = [makePage('text', rand), makePage('random', rand), nibblePage(rand), makePage('binary', rand), makePage('zero', rand)]
  const { dev, clock } = await fixture(t, pages)
  const table = dev.pageTable!
  const before = pages.map((_, i) => ({ size: table.size(i), handle: table.handle(i), meta: table.meta[i] }))
  t.ok(before[1].meta & SLOT_HUGE, 'the random page is huge with lz4')
  t.ok(before[2].meta & SLOT_HUGE, 'the 4-bit page is huge with lz4 (no entropy coding)')
  const [, , , , , , , hugeBefore, hugeSinceBefore] = mm(dev)
  t.equal(hugeBefore, 2)
  clock.ms += 10_000
  t.equal(await store(dev, 'recompress', ''), 0)
  // Text: zstd lands in a smaller class, the object is replaced, the priority recorded.
  t.equal(table.priority(0), 1, 'the text page is held by priority 1 (zstd)')
  t.ok(lookupClassIndex(table.size(0)) < lookupClassIndex(before[0].size), `smaller class: ${before[0].size} -> ${table.size(0)} bytes`)
  t.equal(table.atime[0], 0, 'slot_free cleared the access time, as the kernel does')
  // Random: no algorithm helps; kept as it was, flagged.
  t.same({ size: table.size(1), handle: table.handle(1) }, { size: before[1].size, handle: before[1].handle }, 'the random page is kept as it was')
  t.ok(table.meta[1] & SLOT_INCOMPRESSIBLE, '...and flagged ZRAM_INCOMPRESSIBLE')
  t.ok(table.meta[1] & SLOT_HUGE, '...still huge')
  t.equal(table.priority(1), 0)
  // The 4-bit page: zstd's entropy coding takes it out of the huge class.
  t.equal(table.priority(2), 1)
  t.notOk(table.meta[2] & SLOT_HUGE, 'the 4-bit page is not huge any more')
  t.ok(table.size(2) < 3625)
  const [orig, compr, , , , same, , huge, hugeSince] = mm(dev)
  t.equal(orig, 4 * 4096 + 4096, 'orig_data_size unchanged (same-filled included)')
  t.equal(same, 1)
  t.equal(huge, 1, 'huge_pages: only the random page')
  t.equal(hugeSince, hugeSinceBefore, 'huge_pages_since does not move')
  t.equal(compr, [0, 1, 2, 3].reduce((n, i) => n + table.size(i), 0))
  checkAccounting(t, dev, 'after recompress')
  t.equal(num(dev, 'recompressed_pages'), 2 + (table.priority(3) === 1 ? 1 : 0))
  // A second run finds nothing to do: recompressed pages are at the highest priority, the random one incompressible.
  const handles = [0, 1, 2, 3].map((i) => table.handle(i))
  t.equal(await store(dev, 'recompress', ''), 0)
  t.same([0, 1, 2, 3].map((i) => table.handle(i)), handles, 'nothing moves the second time')
  await readsBack(t, dev, pages, 'reads pick each page\'s algorithm')
  // Reading and writing: the flag and the priority go with new contents.
  await dev.write(pages[0], 0)
  await dev.write(pages[1], 4096)
  t.equal(table.priority(0), 0, 'rewritten: the primary holds it again')
  t.notOk(table.meta[1] & SLOT_INCOMPRESSIBLE, 'rewritten: no longer flagged')
  await readsBack(t, dev, pages, 'after rewriting')
  checkAccounting(t, dev, 'after rewriting')
})

t.test('type=, threshold= and max_pages= select as the kernel\'s scan and buckets do', async (t) => {
  const rand = prng(seed + 1)
  const kinds = ['text', 'random', 'binary', 'text', 'random', 'binary', 'text', 'text'] as const
  const pages = kinds.map((k) => makePage(k, rand))
  pages.push(nibblePage(rand))
  {
    const { dev } = await fixture(t, pages)
    const table = dev.pageTable!
    t.equal(await store(dev, 'idle', 'all'), 0)
    await readPage(dev, 8) // accessed: no longer idle
    t.equal(await store(dev, 'recompress', 'type=huge_idle'), 0)
    t.equal(table.priority(8), 0, 'huge_idle: the 4-bit page was read since idle, not taken')
    t.ok(table.meta[1] & SLOT_INCOMPRESSIBLE, 'huge_idle: the random pages were tried')
    t.equal(table.priority(0), 0, 'huge_idle: the text pages were not')
    t.notOk(table.meta[1] & SLOT_IDLE, 'a page tried is no longer idle')
    t.ok(table.meta[0] & SLOT_IDLE, 'a page not tried stays idle')
    t.equal(await store(dev, 'recompress', 'type=huge'), 0)
    t.equal(table.priority(8), 1, 'huge: the 4-bit page now')
    t.equal(table.priority(0), 0)
    t.equal(await store(dev, 'recompress', 'type=idle'), 0)
    t.equal(table.priority(0), 1, 'idle: the text pages')
    await readsBack(t, dev, pages, 'after type= runs')
  }
  {
    const { dev } = await fixture(t, pages)
    const table = dev.pageTable!
    const sizes = pages.map((_, i) => table.size(i))
    const threshold = 1500
    t.equal(await store(dev, 'recompress', `threshold=${threshold}`), 0)
    for (let i = 0; i < pages.length; i++) {
      if (sizes[i] < threshold) t.equal(table.priority(i), 0, `page ${i} (${sizes[i]} bytes) is under the threshold: untouched`)
      if (table.priority(i) === 1) t.ok(table.size(i) < threshold, `page ${i} was kept only because its new size is under the threshold`)
    }
  }
  {
    const { dev } = await fixture(t, pages)
    const table = dev.pageTable!
    // The kernel takes the largest objects first (64-byte buckets), and in a bucket the last placed.
    const order = pages.map((_, i) => i).sort((a, b) => Math.floor(table.size(b) / 64) - Math.floor(table.size(a) / 64) || b - a)
    t.equal(await store(dev, 'recompress', 'max_pages=3'), 0)
    const tried = pages.map((_, i) => i).filter((i) => table.priority(i) === 1 || (table.meta[i] & SLOT_INCOMPRESSIBLE) !== 0)
    t.same(tried.sort((a, b) => a - b), order.slice(0, 3).sort((a, b) => a - b), 'max_pages=3: the three largest objects')
    t.equal(await store(dev, 'recompress', 'max_pages=0'), 0)
    t.same(pages.map((_, i) => i).filter((i) => table.priority(i) === 1 || (table.meta[i] & SLOT_INCOMPRESSIBLE) !== 0).length, 3,
      'max_pages=0: nothing')
    for (let i = 0; i < pages.length; i++) t.notOk(table.meta[i] & SLOT_PP, `page ${i}: no selection mark left behind`)
    await readsBack(t, dev, pages, 'after max_pages runs')
  }
})

t.test('no chained recompression: a run uses one priority; only the highest one flags pages incompressible', async (t) => {
  const rand = prng(seed + 2)
  const pages = [makePage('text', rand), makePage('binary', rand), nibblePage(rand), makePage('text', rand)]
  // Priority 1 is lz4 at acceleration 1 (the same as the primary: never a smaller class), 2 is zstd.
  const { dev } = await fixture(t, pages, { recomp: ['algo=lz4 priority=1', 'algo=zstd priority=2'] })
  const table = dev.pageTable!
  // 7.1 "zram: remove chained recompression": without priority=, priority 1 only (it was 1, then 2).
  t.equal(await store(dev, 'recompress', ''), 0)
  t.same(pages.map((_, i) => table.priority(i)), [0, 0, 0, 0], 'the default run uses priority 1 (lz4 again) and improves nothing: zstd was not tried')
  t.same(pages.map((_, i) => (table.meta[i] & SLOT_INCOMPRESSIBLE) !== 0), [false, false, false, false],
    '...and flags nothing: priority 1 is not the highest configured')
  t.equal(await store(dev, 'recompress', 'priority=1'), 0)
  t.same(pages.map((_, i) => table.priority(i)), [0, 0, 0, 0], 'priority=1 alone: the same')
  t.equal(await store(dev, 'recompress', 'algo=zstd'), 0)
  t.same(pages.map((_, i) => table.priority(i)), [2, 2, 2, 2], 'algo=zstd: every page is held by priority 2')
  await readsBack(t, dev, pages, 'three priorities')
  checkAccounting(t, dev, 'three priorities')
})

t.test('writeback after recompression: incompressible pages found, recompressed pages read back from the lower file', async (t) => {
  const rand = prng(seed + 3)
  const pages = [makePage('text', rand), makePage('random', rand), nibblePage(rand), makePage('binary', rand)]
  const { dev } = await fixture(t, pages, { backing: true })
  const table = dev.pageTable!
  t.equal(await store(dev, 'recompress', ''), 0)
  t.ok(table.meta[1] & SLOT_INCOMPRESSIBLE)
  t.equal(await store(dev, 'writeback', 'incompressible'), 0)
  t.ok(table.meta[1] & SLOT_WB, 'writeback incompressible takes the flagged page')
  t.notOk(table.meta[0] & SLOT_WB, '...and only it')
  t.equal(table.priority(2), 1)
  t.equal(await store(dev, 'writeback', 'page_index=2'), 0)
  t.ok(table.meta[2] & SLOT_WB)
  t.equal(table.priority(2), 1, 'a compressed record keeps its priority (the kernel keeps it for compressed_writeback)')
  await readsBack(t, dev, pages, 'from the lower file, decompressed with zstd')
  checkAccounting(t, dev, 'after writeback')
})

// ---- multi-page units ----

t.test('units: neighbouring idle pages compressed together; reads, sequential cache, accounting', async (t) => {
  const rand = prng(seed + 4)
  const pages: (Buffer | null)[] = [...similarPages(10, rand), null, ...similarPages(6, rand), makePage('pattern', rand), makePage('random', rand)]
  const data = pages.map((p) => p ?? Buffer.alloc(4096))
  const single = await fixture(t, data)
  t.equal(await store(single.dev, 'recompress', ''), 0)
  single.dev.compact()
  const { dev } = await fixture(t, data, { unit: 4 })
  const table = dev.pageTable!
  const [, comprBefore] = mm(dev)
  t.equal(await store(dev, 'idle', 'all'), 0)
  t.equal(await store(dev, 'recompress', 'type=idle'), 0)
  // Runs break at the zero page (10) and at the pattern page (17): 0..3 4..7 8..9 | 11..14 15..16 | 18 alone.
  const members = pages.map((_, i) => (table.meta[i] & SLOT_UNIT) !== 0)
  t.same(members, [...Array(10).fill(true), false, ...Array(6).fill(true), false, false], 'members: the runs of selected pages')
  t.same([0, 3, 4, 9, 11, 16].map((i) => table.unitPosition(i)), [0, 3, 0, 1, 0, 1], 'positions inside their units')
  t.same([0, 4, 8, 11, 15].map((i) => table.unitPages(i)), [4, 4, 2, 4, 2], 'units of at most recompress_unit_pages pages')
  t.equal(num(dev, 'units'), 5)
  t.equal(num(dev, 'unit_pages'), 16)
  t.ok(table.meta[18] & SLOT_INCOMPRESSIBLE, 'a lone random page went the kernel\'s way')
  const [orig, compr, , , , same, , huge] = mm(dev)
  t.equal(orig, pages.filter((p) => p !== null).length * 4096 + 4096, 'orig_data_size unchanged')
  t.equal(same, 2)
  t.equal(huge, 1)
  t.ok(compr < comprBefore / 2, `similar pages shrink a lot together: compr_data_size ${comprBefore} -> ${compr}`)
  t.ok(compr < single.dev.stats().comprDataSize, `and below single-page zstd (${single.dev.stats().comprDataSize})`)
  t.equal(compr, num(dev, 'unit_bytes') + table.size(18), 'compr_data_size: the units\' bytes, shared out among the members, and the rest')
  checkAccounting(t, dev, 'after recompress')
  // A sequential read decodes each unit once.
  const misses = num(dev, 'unit_cache_misses')
  const out = Buffer.alloc(pages.length * 4096)
  await dev.read(out, 0)
  t.same(out, Buffer.concat(data), 'one read of the whole device')
  t.equal(num(dev, 'unit_cache_misses') - misses, 5, 'five units, five decodes')
  await readsBack(t, dev, pages, 'page by page')
  t.ok(num(dev, 'unit_cache_hits') > 0)
})

t.test('units: a write or discard takes one member out; the last one frees the unit; sparse units are split or regrouped', async (t) => {
  const rand = prng(seed + 5)
  const pages: (Buffer | null)[] = similarPages(16, rand)
  const { dev } = await fixture(t, pages as Buffer[], { unit: 8 })
  const table = dev.pageTable!
  t.equal(await store(dev, 'recompress', ''), 0)
  t.equal(num(dev, 'units'), 2)
  const unitBytes = num(dev, 'unit_bytes')
  const [, comprBefore] = mm(dev)
  // Overwrite one member, discard another, partial write to a third.
  const fresh = makePage('binary', rand)
  const shares = [1, 2, 3].map((i) => table.size(i))
  await dev.write(fresh, 1 * 4096)
  pages[1] = fresh
  dev.discard(2 * 4096, 4096)
  pages[2] = null
  const patch = Buffer.from('patched!')
  await dev.write(patch, 3 * 4096 + 100)
  pages[3] = Buffer.from(pages[3]!)
  patch.copy(pages[3]!, 100)
  t.equal(num(dev, 'units'), 2, 'the unit stays')
  t.equal(num(dev, 'unit_bytes'), unitBytes, 'with all its bytes')
  t.equal(num(dev, 'unit_pages'), 13, 'three members fewer')
  t.notOk(table.meta[1] & SLOT_UNIT)
  t.equal(table.priority(1), 0, 'the new contents are the primary\'s')
  const [, comprAfter] = mm(dev)
  t.equal(comprAfter, comprBefore - shares[0] - shares[1] - shares[2] + table.size(1) + table.size(3), 'each member took its share out')
  await readsBack(t, dev, pages, 'the other members still read from the unit')
  checkAccounting(t, dev, 'members out')
  // Down to 3 live members of 8: compact splits the unit into pages of their own.
  for (const i of [0, 4]) {
    dev.discard(i * 4096, 4096)
    pages[i] = null
  }
  t.equal(num(dev, 'unit_pages'), 11)
  t.equal(await store(dev, 'compact', '1'), 0)
  t.equal(num(dev, 'units'), 1, 'compact: the sparse unit (3 of 8) is gone')
  t.equal(num(dev, 'unit_members_split'), 3)
  for (const i of [5, 6, 7]) {
    t.notOk(table.meta[i] & SLOT_UNIT, `page ${i} is a page of its own`)
    t.equal(table.priority(i), 1, `page ${i} keeps the unit's algorithm`)
  }
  await readsBack(t, dev, pages, 'after the split')
  checkAccounting(t, dev, 'after the split')
  // The other unit: discard 5 of 8, then recompress regroups the 3 left (and they are neighbours).
  for (const i of [8, 9, 10, 11, 15]) {
    dev.discard(i * 4096, 4096)
    pages[i] = null
  }
  const oldHead = table.handle(12)
  t.equal(await store(dev, 'recompress', ''), 0)
  t.ok(table.meta[12] & SLOT_UNIT)
  t.not(table.handle(12), oldHead, 'recompress regrouped the sparse unit\'s members')
  t.same([12, 13, 14].map((i) => table.unitPosition(i)), [0, 1, 2])
  t.equal(num(dev, 'unit_pages'), 3)
  await readsBack(t, dev, pages, 'after regrouping')
  checkAccounting(t, dev, 'after regrouping')
  // Discard everything: no unit, no unit bytes, an empty pool.
  dev.discard(0, 16 * 4096)
  t.equal(num(dev, 'units'), 0)
  t.equal(num(dev, 'unit_bytes'), 0)
  t.equal(dev.stats().memUsedTotal, 0, 'every piece went back to the pool')
})

t.test('units and writeback: unit members are never written back; the shrinker\'s clock passes them by', async (t) => {
  const rand = prng(seed + 6)
  const pages = [...similarPages(8, rand), makePage('text', rand)]
  const { dev } = await fixture(t, pages, { unit: 8, backing: true })
  const table = dev.pageTable!
  t.equal(await store(dev, 'recompress', 'max_pages=8'), 0)
  t.equal(num(dev, 'unit_pages'), 8)
  t.equal(await store(dev, 'idle', 'all'), 0)
  t.equal(await store(dev, 'writeback', 'idle'), 0)
  for (let i = 0; i < 8; i++) t.notOk(table.meta[i] & SLOT_WB, `member ${i} stays in memory`)
  t.ok(table.meta[8] & SLOT_WB, 'the page of its own is written back')
  t.same(dev.coldPages(100), [], 'no victim among unit members (the other page is on the lower file)')
  await readsBack(t, dev, pages, 'units and the lower file')
})

// ---- races and reset ----

/** Replay a recompression run with writes, discards and reads landing between its pages. */
for (const cfg of [{ unit: 1, workers: 0 }, { unit: 4, workers: 0 }, { unit: 16, workers: 0 }, { unit: 1, workers: 1 }, { unit: 16, workers: 1 }]) {
  t.test(`writes, discards and reads racing a recompression (unit ${cfg.unit}, workers ${cfg.workers}, seed ${seed}) match a model`, async (t) => {
    const rand = prng(seed + 100 + cfg.unit * 7 + cfg.workers)
    const n = 256
    const model: (Buffer | null)[] = []
    for (let i = 0; i < n; i += 8) {
      const kind = PAGE_KINDS[Math.floor(rand() * PAGE_KINDS.length)]
      for (const p of kind === 'text' ? similarPages(8, rand) : Array.from({ length: 8 }, () => makePage(kind, rand))) model.push(p)
    }
    const { dev } = await fixture(t, model as Buffer[], { unit: cfg.unit, workers: cfg.workers })
    let totalOps = 0
    const fresh = (): Buffer => (rand() < 0.5 ? makePage(PAGE_KINDS[Math.floor(rand() * PAGE_KINDS.length)], rand) : similarPages(1, rand)[0])
    for (let round = 0; round < 4; round++) {
      if (round > 0) {
        // New work for the next run: a third of the pages rewritten, a tenth discarded (sparse units).
        for (let i = 0; i < n; i++) {
          const r = rand()
          if (r < 0.33) {
            model[i] = fresh()
            await dev.write(model[i]!, i * 4096)
          } else if (r < 0.43) {
            dev.discard(i * 4096, 4096)
            model[i] = null
          }
        }
      }
      t.equal(await store(dev, 'idle', 'all'), 0)
      let done = false
      let failure: unknown = null
      const run = (attr('recompress').store!(dev, '') as Promise<void>).then(() => {
        done = true
      }, (err: unknown) => {
        failure = err
        done = true
      })
      let ops = 0
      while (!done) {
        const i = Math.floor(rand() * n)
        const r = rand()
        if (r < 0.35) {
          const p = fresh()
          await dev.write(p, i * 4096)
          model[i] = p
        } else if (r < 0.55) {
          dev.discard(i * 4096, 4096)
          model[i] = null
        } else if (r < 0.7) {
          // A partial write: read-modify-write of a page that may be in a unit.
          const off = Math.floor(rand() * 4000)
          const bytes = Buffer.from(`round ${round} op ${ops}`)
          await dev.write(bytes, i * 4096 + off)
          const page = Buffer.from(model[i] ?? Buffer.alloc(4096))
          bytes.copy(page, off)
          model[i] = page
        } else {
          const got = await readPage(dev, i)
          if (!got.equals(model[i] ?? Buffer.alloc(4096))) t.fail(`page ${i} read wrong in the middle of the run (round ${round}, op ${ops})`)
        }
        ops++
        // Usually one operation per turn of the run; now and then let it take a few turns.
        if (rand() < 0.2) for (let k = Math.floor(rand() * 3); k > 0; k--) await new Promise((resolve) => setImmediate(resolve))
      }
      totalOps += ops
      await run
      t.equal(failure, null, `round ${round}: the run ended without an error after ${ops} interleaved operations`)
      await dev.drain()
      await readsBack(t, dev, model, `round ${round}`)
      checkAccounting(t, dev, `round ${round}`)
      t.equal(Array.from({ length: dev.pageTable!.pages }, (_, i) => dev.pageTable!.meta[i]).filter((m) => (m & SLOT_PP) !== 0).length, 0,
        'no selection mark left')
      t.equal(await store(dev, 'compact', '1'), 0)
      checkAccounting(t, dev, `round ${round}, compacted`)
    }
    t.ok(totalOps >= 100, `${totalOps} operations landed inside the runs`)
    t.comment(`recompressed_pages ${num(dev, 'recompressed_pages')} units ${num(dev, 'units')} units_written ${num(dev, 'units_written')} ` +
      `split ${num(dev, 'unit_members_split')} max slice ${(num(dev, 'recompress_max_slice_ns') / 1e6).toFixed(2)} ms`)
  })
}

t.test('reset in the middle of a recompression: the run stops, the device is fresh, nothing leaks', async (t) => {
  for (const unit of [1, 8]) {
    const rand = prng(seed + 7)
    const pages = Array.from({ length: 64 }, (_, i) => (i % 2 ? makePage('text', rand) : similarPages(1, rand)[0]))
    const { dev } = await fixture(t, pages, { unit })
    const run = dev.recompress({ mode: 0, threshold: 0, maxPages: Infinity, prio: 1 })
    // The run commits a few pages per turn once its worker answers: wait for the first commits.
    const deadline = Date.now() + 30_000
    while (num(dev, 'recompressed_pages') === 0 && Date.now() < deadline) await new Promise((resolve) => setImmediate(resolve))
    t.ok(num(dev, 'recompressed_pages') > 0 && num(dev, 'recompressed_pages') < 64, `unit ${unit}: the run is under way (${num(dev, 'recompressed_pages')} pages)`)
    t.equal(await store(dev, 'reset', '1'), 0)
    const got = await run
    t.ok(got >= 0, `the run ended (${got} pages)`)
    t.notOk(dev.initialised)
    t.equal(show(dev, 'recomp_algorithm'), '')
    t.equal(num(dev, 'recompress_unit_pages'), 1, 'reset: unit pages back to 1')
    t.same(mm(dev), [0, 0, 0, 0, 0, 0, 0, 0, 0])
    t.equal(num(dev, 'units'), 0)
    t.equal(await store(dev, 'recomp_algorithm', 'algo=zstd'), 0)
    t.equal(await store(dev, 'disksize', '1M'), 0)
    await dev.write(pages[0], 0)
    t.equal(await store(dev, 'recompress', ''), 0)
    t.same(await readPage(dev, 0), pages[0], 'the device works again')
  }
})

t.test('recompress runs one at a time; the page table stays 16 bytes per page', async (t) => {
  const rand = prng(seed + 8)
  const pages = Array.from({ length: 32 }, () => makePage('text', rand))
  const { dev } = await fixture(t, pages, { recomp: ['algo=zstd', 'algo=zstd priority=2'] })
  const first = attr('recompress').store!(dev, 'priority=1') as Promise<void>
  const second = attr('recompress').store!(dev, 'priority=2') as Promise<void>
  await Promise.all([first, second])
  const table = dev.pageTable!
  // The second run started after the first: every page was at priority 1, so priority 2 (the same
  // zstd) found no smaller class and flagged them.
  t.same(pages.map((_, i) => table.priority(i)), Array(32).fill(1), 'the first run moved every page to priority 1')
  t.ok(pages.every((_, i) => (table.meta[i] & SLOT_INCOMPRESSIBLE) !== 0), 'the second ran after it')
  t.equal(dev.metadataBytes / table.pages, BYTES_PER_PAGE_METADATA)
  t.equal(BYTES_PER_PAGE_METADATA, 16)
  t.ok(num(dev, 'recompress_main_ns') > 0)
  t.ok(num(dev, 'recompress_max_slice_ns') > 0)
  t.equal(await store(dev, 'recompress_unit_pages', '0'), Errno.EINVAL)
  t.equal(await store(dev, 'recompress_unit_pages', '17'), Errno.EINVAL)
  t.equal(await store(dev, 'recompress_unit_pages', 'x'), Errno.EINVAL)
  t.equal(await store(dev, 'recompress_unit_pages', '16'), 0)
  t.equal(show(dev, 'recompress_unit_pages'), '16\n')
})
