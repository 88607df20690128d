import t, { type Test } from 'tap'
import { mkdtempSync, openSync, readSync, rmSync, writeSync, closeSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ZramDevice } from '../../src/device/zram-device'
import { Errno } from '../../src/errno'
import { errnoOf, makePage, PAGE_KINDS, prng, seedFromEnv } from '../helpers/pages'
import { mm, show, store } from '../helpers/device-attrs'

const seed = seedFromEnv(7331)
t.comment(`seed ${seed} (replay with ZRAMFUSE_SEED=${seed})`)

const PAGES = 256



function bd(dev: ZramDevice): number[] {
  return show(dev, 'bd_stat').trim().split(/\s+/).map(Number)
}

function tmpPath(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'zf-wb-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, 'lower')
}

interface Fixture { dev: ZramDevice; pages: Buffer[]; path: string; clock: { ms: number } }

/** A device with a lower file, filled with a seeded mix of page kinds (every 5th page kind). */
async function fixture(t: Test, opts: { compressed?: boolean; packed?: boolean; algorithm?: string } = {}): Promise<Fixture> {
  const clock = { ms: 1_000_000_000 }
  const dev = new ZramDevice(0, { clockMs: () => clock.ms })
  t.teardown(() => dev.close())
  const path = tmpPath(t)
  if (opts.algorithm) t.equal(await store(dev, 'comp_algorithm', opts.algorithm), 0)
  t.equal(await store(dev, 'backing_dev', `${path}\n`), 0)
  if (opts.compressed) t.equal(await store(dev, 'compressed_writeback', '1'), 0)
  if (opts.packed === false) t.equal(await store(dev, 'writeback_packed', '0'), 0)
  t.equal(await store(dev, 'disksize', `${PAGES * 4096}`), 0)
  const rand = prng(seed)
  const pages: Buffer[] = []
  for (let i = 0; i < PAGES; i++) {
    const p = makePage(PAGE_KINDS[i % PAGE_KINDS.length], rand)
    pages.push(p)
    await dev.write(p, i * 4096)
  }
  await dev.drain()
  return { dev, pages, path, clock }
}

async function readAll(dev: ZramDevice): Promise<Buffer> {
  const out = Buffer.alloc(PAGES * 4096)
  // 64 KiB requests, like a loop device's.
  for (let pos = 0; pos < out.length; pos += 65536) await dev.read(out.subarray(pos, pos + 65536), pos)
  return out
}

for (const format of ['page', 'compressed', 'packed'] as const) {
  t.test(`${format} format: idle writeback, read back identical, accounting as the kernel's`, async (t) => {
    const { dev, pages } = await fixture(t, { compressed: format !== 'page', packed: format === 'packed' })
    t.equal(show(dev, 'zramfuse/writeback_format'.split('/')[1]), `${format}\n`)
    const before = mm(dev)
    t.equal(await store(dev, 'idle', 'all'), 0)
    t.equal(await store(dev, 'writeback', 'idle'), 0)
    const after = mm(dev)
    const same = before[5]
    const written = PAGES - same
    t.equal(after[0], before[0], 'orig_data_size keeps written-back pages')
    t.equal(after[1], 0, 'compr_data_size: nothing left in memory')
    t.equal(after[7], 0, 'huge_pages: written-back huge pages leave the count')
    t.equal(after[5], same, 'same-filled pages are never written back')
    const [count, reads, writes] = bd(dev)
    t.equal(Number(show(dev, 'written_back_pages')), written)
    if (format === 'packed') {
      t.ok(count > 0 && count < written, `packed: ${count} blocks for ${written} pages`)
      t.ok(count * 4096 <= before[1] * 1.1 + 4096, `packed bd_count ${count * 4096} B <= 1.1x compr_data_size ${before[1]}`)
    } else {
      t.equal(count, written, 'one block per page')
      t.equal(writes, written, 'bd_writes: one per page')
    }
    t.equal(reads, 0)
    t.ok((await readAll(dev)).equals(Buffer.concat(pages)), 'every page reads back identical')
    t.ok(bd(dev)[1] > 0, 'bd_reads counted')
    t.equal(dev.stats().failedReads, 0)
    // Overwrite and discard release their places on the lower file.
    const countBefore = bd(dev)[0]
    const rand = prng(seed + 1)
    for (let i = 2; i < PAGES; i += 5) await dev.write(makePage('text', rand), i * 4096)
    await dev.discard(0, 32 * 4096)
    await dev.drain()
    if (format === 'packed') t.equal(bd(dev)[0], countBefore, 'packed: dead records stay until their segment is cleaned')
    else t.ok(bd(dev)[0] < countBefore, `bd_count ${countBefore} -> ${bd(dev)[0]} after overwrite + discard`)
    await dev.discard(0, PAGES * 4096)
    t.equal(bd(dev)[0], 0, 'nothing live: no block or segment in use')
    t.equal(await store(dev, 'reset', '1'), 0)
    t.equal(show(dev, 'backing_dev'), 'none\n', 'reset drops the backing device')
    t.same(bd(dev), [0, 0, 0])
  })
}

t.test('partial writes and reads of written-back pages', async (t) => {
  const { dev, pages } = await fixture(t, { compressed: true })
  await store(dev, 'idle', 'all')
  await store(dev, 'writeback', 'idle')
  const model = Buffer.concat(pages)
  const rand = prng(seed + 2)
  for (let n = 0; n < 200; n++) {
    const pos = Math.floor(rand() * (model.length - 9000))
    const len = 1 + Math.floor(rand() * 9000)
    if (rand() < 0.5) {
      const data = Buffer.alloc(len)
      for (let i = 0; i < len; i++) data[i] = Math.floor(rand() * 256)
      await dev.write(data, pos)
      data.copy(model, pos)
    } else {
      const out = Buffer.alloc(len)
      await dev.read(out, pos)
      if (!out.equals(model.subarray(pos, pos + len))) t.fail(`read ${len} at ${pos} differs`)
    }
    if (n % 50 === 0) {
      await store(dev, 'idle', 'all')
      await store(dev, 'writeback', 'idle')
    }
  }
  t.ok((await readAll(dev)).equals(model), 'device equals the model')
})

t.test('writeback errno and modes', async (t) => {
  const dev = new ZramDevice(0)
  t.teardown(() => dev.close())
  t.equal(await store(dev, 'writeback', 'idle'), Errno.EINVAL, 'uninitialised: EINVAL')
  await store(dev, 'disksize', '1M')
  t.equal(await store(dev, 'writeback', 'idle'), Errno.ENODEV, 'no backing device: ENODEV')
  t.equal(await store(dev, 'backing_dev', '/tmp/x'), Errno.EBUSY, 'backing_dev after init: EBUSY')
  t.equal(await store(dev, 'compressed_writeback', '1'), Errno.EBUSY)
  t.equal(await store(dev, 'compressed_writeback', 'maybe'), Errno.EINVAL, 'parse before EBUSY')
  const { dev: d2 } = await fixture(t)
  t.equal(await store(d2, 'writeback', 'warm'), Errno.EINVAL)
  t.equal(await store(d2, 'writeback', `page_index=${PAGES}`), Errno.ERANGE)
  t.equal(await store(d2, 'writeback', 'page_indexes=9-3'), Errno.ERANGE)
  // huge: only huge pages go.
  const huge = mm(d2)[7]
  t.ok(huge > 0, `${huge} huge pages`)
  t.equal(await store(d2, 'writeback', 'huge'), 0)
  t.equal(Number(show(d2, 'written_back_pages')), huge)
  t.equal(mm(d2)[7], 0)
  // page_index and page_indexes: exactly those pages with data in memory.
  t.equal(await store(d2, 'writeback', 'page_index=2 page_indexes=10-12'), 0)
  const wb = Number(show(d2, 'written_back_pages')) - huge
  t.ok(wb >= 1 && wb <= 4, `${wb} of pages 2, 10..12 written back (same-filled and huge ones excluded)`)
  // idle mode without idle marking: nothing.
  const n0 = Number(show(d2, 'written_back_pages'))
  t.equal(await store(d2, 'writeback', 'huge_idle'), 0)
  t.equal(Number(show(d2, 'written_back_pages')), n0)
})

t.test('compressed_writeback (mainline\'s name): kstrtobool\'s words; it and the other writeback settings outlive reset, as in zram_reset_device', async (t) => {
  const dev = new ZramDevice(0)
  t.teardown(() => dev.close())
  for (const [word, want] of [['yes', '1'], ['no', '0'], ['on\n', '1'], ['off', '0'], ['Y', '1'], ['0', '0'], ['1', '1']] as const) {
    t.equal(await store(dev, 'compressed_writeback', word), 0, JSON.stringify(word))
    t.equal(show(dev, 'compressed_writeback'), `${want}\n`)
  }
  t.equal(await store(dev, 'compressed_writeback', 'x'), Errno.EINVAL)
  t.equal(await store(dev, 'writeback_batch_size', '64'), 0)
  t.equal(await store(dev, 'writeback_limit', '1000'), 0)
  t.equal(await store(dev, 'writeback_limit_enable', '1'), 0)
  t.equal(await store(dev, 'backing_dev', tmpPath(t)), 0)
  t.equal(await store(dev, 'disksize', '1M'), 0)
  t.equal(await store(dev, 'writeback_batch_size', '16'), 0, 'writeback_batch_size may change after init')
  t.equal(await store(dev, 'writeback_batch_size', '0'), Errno.EINVAL)
  t.equal(await store(dev, 'reset', '1'), 0)
  t.equal(show(dev, 'backing_dev'), 'none\n', 'reset_bdev drops the backing device...')
  t.same(['compressed_writeback', 'writeback_batch_size', 'writeback_limit', 'writeback_limit_enable'].map((a) => show(dev, a)),
    ['1\n', '16\n', '1000\n', '1\n'], '...and keeps the rest: struct zram fields, not stats')
})

t.test('writeback_limit: consumed in 4 KiB units, EIO at 0, only while enabled', async (t) => {
  const { dev } = await fixture(t)
  t.equal(show(dev, 'writeback_limit'), '0\n')
  t.equal(show(dev, 'writeback_limit_enable'), '0\n')
  t.equal(show(dev, 'writeback_batch_size'), '32\n')
  t.equal(await store(dev, 'writeback_batch_size', '0'), Errno.EINVAL)
  t.equal(await store(dev, 'writeback_limit', '-1'), Errno.EINVAL)
  t.equal(await store(dev, 'writeback_limit', '10'), 0)
  t.equal(await store(dev, 'writeback_limit_enable', '1'), 0)
  await store(dev, 'idle', 'all')
  t.equal(await store(dev, 'writeback', 'idle'), Errno.EIO, 'budget of 10 runs out')
  t.equal(Number(show(dev, 'written_back_pages')), 10)
  t.equal(show(dev, 'writeback_limit'), '0\n')
  t.equal(await store(dev, 'writeback', 'idle'), Errno.EIO, 'still exhausted')
  t.equal(await store(dev, 'writeback_limit_enable', '0'), 0)
  t.equal(await store(dev, 'writeback', 'idle'), 0, 'disabled: no budget applies')
  t.ok(Number(show(dev, 'written_back_pages')) > 10)
})

t.test('idle by age, with a controllable clock', async (t) => {
  const { dev, clock } = await fixture(t)
  clock.ms += 100_000
  // Touch the first 16 pages now; the rest were last accessed 100 s ago.
  await dev.read(Buffer.alloc(16 * 4096), 0)
  t.equal(await store(dev, 'idle', '50'), 0)
  t.equal(await store(dev, 'idle', 'soon'), Errno.EINVAL)
  t.equal(await store(dev, 'writeback', 'idle'), 0)
  const wb = Number(show(dev, 'written_back_pages'))
  const same = mm(dev)[5]
  // Pages 0..15 are recent; of the rest, every page with data in memory (not same-filled) went.
  let expected = 0
  const { pages } = { pages: PAGES }
  for (let i = 16; i < pages; i++) expected++
  t.ok(wb > 0 && wb <= expected - 0, `${wb} idle pages written back`)
  t.ok(wb <= PAGES - 16 - 0 && wb >= PAGES - 16 - same, 'only pages older than 50 s')
  // idle 200: nothing is that old -> IDLE cleared everywhere.
  await store(dev, 'idle', '200')
  const n0 = Number(show(dev, 'written_back_pages'))
  await store(dev, 'writeback', 'idle')
  t.equal(Number(show(dev, 'written_back_pages')), n0, 'no page is 200 s old')
})

t.test('packed: a flipped byte on the lower file fails that page only (EIO, checksum_errors)', async (t) => {
  const { dev, pages, path } = await fixture(t, { compressed: true })
  await store(dev, 'idle', 'all')
  await store(dev, 'writeback', 'idle')
  // Find page 7's record (text pages compress; kind order from PAGE_KINDS) by scanning the file.
  const victim = pages.findIndex((_, i) => i > 4 && !isSame(pages[i]))
  const fd = openSync(path, 'r+')
  const file = Buffer.alloc(1 << 20)
  const n = readSync(fd, file, 0, file.length, 0)
  let at = -1
  for (let off = 0; off + 16 <= n;) {
    if (file.readUInt16LE(off) !== 0x5a52) break
    const index = file.readUInt32LE(off + 4)
    const len = file.readUInt16LE(off + 8)
    if (index === victim) at = off + 16 + Math.floor(len / 2)
    off += 16 + len
  }
  t.ok(at > 0, `record of page ${victim} found`)
  file[at] ^= 0x01
  writeSync(fd, file, at, 1, at)
  closeSync(fd)
  const out = Buffer.alloc(4096)
  t.equal(await errnoOf(() => dev.read(out, victim * 4096)), Errno.EIO)
  t.equal(show(dev, 'checksum_errors'), '1\n')
  t.equal(dev.stats().failedReads, 1)
  await dev.read(out, (victim - 1) * 4096)
  t.ok(out.equals(pages[victim - 1]), 'neighbour before reads fine')
  await dev.read(out, (victim + 1) * 4096)
  t.ok(out.equals(pages[victim + 1]), 'neighbour after reads fine')
})

t.test('zstd pages written back compressed read back through the right codec', async (t) => {
  const { dev, pages } = await fixture(t, { compressed: true, algorithm: 'zstd' })
  await store(dev, 'idle', 'all')
  await store(dev, 'writeback', 'idle')
  t.ok((await readAll(dev)).equals(Buffer.concat(pages)))
})

function isSame(p: Buffer): boolean {
  for (let i = 8; i < p.length; i++) if (p[i] !== p[i % 8]) return false
  return true
}

t.test('shrinker: a pool limit far below the data; every write succeeds and reads back', async (t) => {
  for (const format of ['packed', 'page'] as const) {
    const dev = new ZramDevice(0)
    t.teardown(() => dev.close())
    const path = tmpPath(t)
    await store(dev, 'backing_dev', path)
    if (format === 'packed') await store(dev, 'compressed_writeback', '1')
    const pages = 4096
    t.equal(await store(dev, 'disksize', `${pages * 4096}`), 0)
    t.equal(await store(dev, 'pool_limit', '2M'), 0)
    t.equal(await store(dev, 'shrinker_enabled', '1'), 0)
    const rand = prng(seed + 5)
    const model = Buffer.alloc(pages * 4096)
    let maxPool = 0
    for (let i = 0; i < pages; i += 16) {
      const chunk = Buffer.concat(Array.from({ length: 16 }, (_, k) => makePage(PAGE_KINDS[(i + k) % PAGE_KINDS.length], rand)))
      await dev.write(chunk, i * 4096)
      chunk.copy(model, i * 4096)
      maxPool = Math.max(maxPool, dev.stats().memUsedTotal)
    }
    await dev.shrinker.idle()
    const limit = 2 * 1024 * 1024
    t.comment(`${format}: pool peak ${maxPool} bytes against a limit of ${limit}; pool_limit_hit ${show(dev, 'pool_limit_hit').trim()}, runs ${show(dev, 'shrinker_runs').trim()}, written back ${show(dev, 'written_back_pages').trim()}`)
    t.ok(maxPool <= limit + 16 * 4096 * 2, `${format}: pool stays near its limit`)
    t.ok(Number(show(dev, 'written_back_pages')) > 0)
    t.equal(dev.stats().failedWrites, 0)
    const out = Buffer.alloc(pages * 4096)
    for (let pos = 0; pos < out.length; pos += 131072) await dev.read(out.subarray(pos, pos + 131072), pos)
    t.ok(out.equals(model), `${format}: every page reads back`)
  }
})

t.test('packed: 10x rewrite of the device keeps the lower file under 2x the live compressed bytes', async (t) => {
  const dev = new ZramDevice(0)
  t.teardown(() => dev.close())
  await store(dev, 'backing_dev', tmpPath(t))
  await store(dev, 'compressed_writeback', '1')
  const pages = 2048
  await store(dev, 'disksize', `${pages * 4096}`)
  const rand = prng(seed + 9)
  let peak = 0
  let live = 0
  for (let round = 0; round < 10; round++) {
    for (let i = 0; i < pages; i += 8) {
      // Rewrite a random three quarters of the device each round, in 32 KiB requests.
      if (rand() < 0.25) continue
      const chunk = Buffer.concat(Array.from({ length: 8 }, () => makePage('text', rand)))
      await dev.write(chunk, i * 4096)
    }
    await store(dev, 'idle', 'all')
    t.equal(await store(dev, 'writeback', 'idle'), 0)
    await dev.lower.punchesSettled() // cleaned segments are punched on the thread pool after the writeback returns
    peak = Math.max(peak, dev.lower.allocatedBytes())
    live = Number(show(dev, 'lower_live_bytes'))
  }
  const cleaned = Number(show(dev, 'segments_cleaned'))
  t.comment(`lower file: peak ${peak} bytes allocated, ${live} bytes of live records at the end, ${cleaned} segments cleaned`)
  t.ok(cleaned > 0, 'segments were cleaned')
  t.ok(peak < 2 * live, `peak allocated ${peak} < 2x live ${live}`)
})

t.test('writes, discards and reads racing a writeback keep the newest contents (seeded)', async (t) => {
  for (const format of ['page', 'packed'] as const) {
    const { dev, pages } = await fixture(t, { compressed: format === 'packed' })
    const model = Buffer.concat(pages)
    const rand = prng(seed + 11)
    await store(dev, 'idle', 'all')
    await store(dev, 'writeback_batch_size', '4')
    const wb = store(dev, 'writeback', 'idle')
    let settled = false
    void wb.then(() => { settled = true })
    let ops = 0
    while (!settled || ops < 50) {
      const index = Math.floor(rand() * PAGES)
      const r = rand()
      if (r < 0.4) {
        const page = makePage(PAGE_KINDS[Math.floor(rand() * PAGE_KINDS.length)], rand)
        await dev.write(page, index * 4096)
        page.copy(model, index * 4096)
      } else if (r < 0.55) {
        await dev.discard(index * 4096, 4096)
        model.fill(0, index * 4096, (index + 1) * 4096)
      } else {
        const out = Buffer.alloc(4096)
        await dev.read(out, index * 4096)
        if (!out.equals(model.subarray(index * 4096, (index + 1) * 4096))) t.fail(`${format}: page ${index} differs mid-writeback`)
      }
      ops++
      // Let the lower file's writes complete in between.
      if (ops % 8 === 0) await new Promise((resolve) => setImmediate(resolve))
    }
    t.equal(await wb, 0, `${format}: writeback completed (${ops} racing operations)`)
    t.ok((await readAll(dev)).equals(model), `${format}: the device equals the model`)
    const s = dev.stats()
    t.equal(s.failedReads + s.failedWrites, 0)
  }
})

t.test('reset in the middle of a writeback', async (t) => {
  const { dev } = await fixture(t, { compressed: true })
  await store(dev, 'idle', 'all')
  const wb = store(dev, 'writeback', 'idle')
  t.equal(await store(dev, 'reset', '1'), 0, 'reset while the writeback runs')
  await wb
  t.equal(show(dev, 'backing_dev'), 'none\n')
  t.same(bd(dev), [0, 0, 0])
  // The device works again from scratch.
  t.equal(await store(dev, 'disksize', '1M'), 0)
  const page = makePage('text', prng(seed + 12))
  await dev.write(page, 0)
  const out = Buffer.alloc(4096)
  await dev.read(out, 0)
  t.ok(out.equals(page))
})
