// A pool limit is a limit: when the pool is full (zramfuse/pool_limit, else mem_limit) and a page
// has nowhere else to go (no lower file, the shrinker off, the lower file full or its
// writeback_limit spent), the write fails with EIO, as the kernel's zram does past mem_limit and
// as zswap refuses a store past max_pool_percent. Acknowledged data is never lost, and writes
// succeed again once room returns.
import t, { type Test } from 'tap'
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { ZramDevice } from '../../src/device/zram-device'
import { Errno, ErrnoError } from '../../src/errno'
import type { EventLog } from '../../src/log'
import { PageTable, SLOT_DIRECT } from '../../src/device/page-table'
import { ZS_MAX_PAGES_PER_ZSPAGE } from '../../src/pool/size-class'
import { makePage, PAGE_KINDS, prng, seedFromEnv } from '../helpers/pages'
import { show, store } from '../helpers/device-attrs'

const seed = seedFromEnv(2612)
t.comment(`seed ${seed} (replay with ZRAMFUSE_SEED=${seed})`)

const PAGE = 4096
const MiB = 1024 * 1024
const REQUEST_PAGES = 16

interface Lines { lines: Record<string, unknown>[]; log: EventLog }

function capture(): Lines {
  const lines: Record<string, unknown>[] = []
  const push = (level: string) => (obj: object): void => {
    lines.push({ level, ...obj })
  }
  return { lines, log: { info: push('info'), warn: push('warn'), error: push('error'), debug: push('debug') } }
}

function tmpPath(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'zf-limit-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, 'lower')
}

/** A directory on a tmpfs of `bytes`, unmounted at teardown: a lower file that fills up. */
function smallTmpfs(t: Test, bytes: number): string | null {
  if (process.getuid?.() !== 0) return null
  const dir = mkdtempSync(join(tmpdir(), 'zf-limit-fs-'))
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${bytes}`, 'tmpfs', dir])
  t.teardown(() => {
    execFileSync('umount', [dir])
    rmSync(dir, { recursive: true, force: true })
  })
  return join(dir, 'lower')
}

/**
 * Write `pages` pages in requests of 16, keeping a model of what was acknowledged; returns how
 * many requests were refused (each must be EIO) and the pool's peak.
 */
async function fill(dev: ZramDevice, model: Buffer, first: number, pages: number, rand: () => number): Promise<{ refused: number; peak: number }> {
  let refused = 0
  let peak = 0
  for (let i = first; i < first + pages; i += REQUEST_PAGES) {
    const chunk = Buffer.concat(Array.from({ length: REQUEST_PAGES }, (_, k) => makePage(PAGE_KINDS[(i + k) % PAGE_KINDS.length], rand)))
    try {
      await dev.write(chunk, i * PAGE)
      chunk.copy(model, i * PAGE)
    } catch (err) {
      if (!(err instanceof ErrnoError) || err.errno !== Errno.EIO) throw new Error(`request at page ${i}: ${String(err)} ${(err as Error).stack}`)
      refused++
      // What a refused request leaves is each page's old or new contents: read them into the model.
      await dev.read(model.subarray(i * PAGE, (i + REQUEST_PAGES) * PAGE), i * PAGE)
      for (let k = 0; k < REQUEST_PAGES; k++) {
        const got = model.subarray((i + k) * PAGE, (i + k + 1) * PAGE)
        const fresh = chunk.subarray(k * PAGE, (k + 1) * PAGE)
        if (!got.equals(fresh) && !got.equals(Buffer.alloc(PAGE)) && !got.equals(model.subarray((i + k) * PAGE, (i + k + 1) * PAGE))) {
          throw new Error(`page ${i + k}: neither its old nor its new contents`)
        }
      }
    }
    peak = Math.max(peak, dev.stats().memUsedTotal)
  }
  return { refused, peak }
}

async function readsBack(t: Test, dev: ZramDevice, model: Buffer, what: string): Promise<void> {
  const out = Buffer.alloc(model.length)
  for (let pos = 0; pos < out.length; pos += 131072) await dev.read(out.subarray(pos, pos + 131072), pos)
  let bad = 0
  for (let p = 0; p < model.length / PAGE; p++) if (!out.subarray(p * PAGE, (p + 1) * PAGE).equals(model.subarray(p * PAGE, (p + 1) * PAGE))) bad++
  t.equal(bad, 0, `${what}: every acknowledged page reads back`)
}

t.test('pool_limit without a lower file: EIO at the limit, counted, logged once; writes again after a discard', async (t) => {
  const { lines, log } = capture()
  const dev = new ZramDevice(0, { log })
  t.teardown(() => dev.close())
  const pages = 2048
  t.equal(await store(dev, 'disksize', `${pages * PAGE}`), 0)
  t.equal(await store(dev, 'pool_limit', '1M'), 0)
  const model = Buffer.alloc(pages * PAGE)
  const { refused, peak } = await fill(dev, model, 0, pages, prng(seed))
  t.ok(refused > 0, `writes were refused (${refused} requests)`)
  t.ok(peak <= MiB, `mem_used_total ${peak} never passed the 1 MiB limit`)
  t.equal(dev.stats().failedWrites, refused, 'failed_writes counts each refused request')
  t.equal(Number(show(dev, 'pool_limit_hit')), refused, 'pool_limit_hit too')
  const episodes = lines.filter((l) => l.event === 'pool_limit_refused')
  t.equal(episodes.length, 1, 'one log line for the whole episode')
  t.equal(episodes[0]?.level, 'error')
  await readsBack(t, dev, model, 'at the limit')

  // Room returns: discard the first half, and the same writes succeed.
  await dev.discard(0, (pages / 2) * PAGE)
  model.fill(0, 0, (pages / 2) * PAGE)
  const again = Buffer.concat(Array.from({ length: REQUEST_PAGES }, () => makePage('text', prng(seed + 1))))
  await dev.write(again, 0)
  again.copy(model, 0)
  t.ok(lines.some((l) => l.event === 'pool_limit_recovered'), 'the end of the episode is logged')
  await readsBack(t, dev, model, 'after the discard')
})

t.test('mem_limit and pool_limit together: the smaller one holds', async (t) => {
  const dev = new ZramDevice(0)
  t.teardown(() => dev.close())
  t.equal(await store(dev, 'disksize', `${1024 * PAGE}`), 0)
  t.equal(await store(dev, 'pool_limit', '2M'), 0)
  t.equal(await store(dev, 'mem_limit', '512K'), 0)
  const model = Buffer.alloc(1024 * PAGE)
  const { refused, peak } = await fill(dev, model, 0, 1024, prng(seed + 2))
  t.ok(refused > 0)
  t.ok(peak <= 512 * 1024, `peak ${peak} within mem_limit, the smaller`)
})

t.test('the shrinker off, a lower file present: the limit holds (no writeback on its own, as the kernel\'s)', async (t) => {
  const dev = new ZramDevice(0)
  t.teardown(() => dev.close())
  t.equal(await store(dev, 'backing_dev', tmpPath(t)), 0)
  t.equal(await store(dev, 'disksize', `${1024 * PAGE}`), 0)
  t.equal(await store(dev, 'pool_limit', '512K'), 0)
  const model = Buffer.alloc(1024 * PAGE)
  const { refused, peak } = await fill(dev, model, 0, 1024, prng(seed + 3))
  t.ok(refused > 0)
  t.ok(peak <= 512 * 1024)
  t.equal(Number(show(dev, 'written_back_pages')), 0)
  await readsBack(t, dev, model, 'shrinker off')
})

t.test('the shrinker on, writeback_limit spent: pages cannot go down, the write fails with EIO', async (t) => {
  const dev = new ZramDevice(0)
  t.teardown(() => dev.close())
  t.equal(await store(dev, 'backing_dev', tmpPath(t)), 0)
  t.equal(await store(dev, 'compressed_writeback', '1'), 0)
  t.equal(await store(dev, 'disksize', `${2048 * PAGE}`), 0)
  t.equal(await store(dev, 'pool_limit', '512K'), 0)
  t.equal(await store(dev, 'writeback_limit', '64'), 0)
  t.equal(await store(dev, 'writeback_limit_enable', '1'), 0)
  t.equal(await store(dev, 'shrinker_enabled', '1'), 0)
  const model = Buffer.alloc(2048 * PAGE)
  const { refused, peak } = await fill(dev, model, 0, 2048, prng(seed + 4))
  await dev.shrinker.idle()
  t.ok(refused > 0, `refused ${refused} requests once the budget was spent`)
  t.ok(peak <= 512 * 1024 + REQUEST_PAGES * PAGE, `peak ${peak}: the limit plus at most one request`)
  t.ok(Number(show(dev, 'written_back_pages')) <= 64, 'no more pages on the lower file than the budget allowed')
  t.ok(Number(show(dev, 'writeback_limit')) < REQUEST_PAGES, 'what is left of the budget cannot take a whole request')
  await readsBack(t, dev, model, 'budget spent')
})

t.test('the shrinker on, a lower file that fills up: EIO, never over the limit, every acknowledged page reads back', async (t) => {
  if (process.getuid?.() !== 0) {
    t.skip('needs root to mount a small tmpfs', () => {})
    return
  }
  for (const format of ['packed', 'page'] as const) {
    const { lines, log } = capture()
    const dev = new ZramDevice(0, { log })
    t.teardown(() => dev.close())
    const lower = smallTmpfs(t, 2 * MiB) as string
    t.equal(await store(dev, 'backing_dev', lower), 0)
    if (format === 'packed') t.equal(await store(dev, 'compressed_writeback', '1'), 0)
    const pages = 8192 // 32 MiB of data against a 1 MiB pool and a 2 MiB file system
    t.equal(await store(dev, 'disksize', `${pages * PAGE}`), 0)
    t.equal(await store(dev, 'pool_limit', '1M'), 0)
    t.equal(await store(dev, 'shrinker_enabled', '1'), 0)
    const model = Buffer.alloc(pages * PAGE)
    const { refused, peak } = await fill(dev, model, 0, pages, prng(seed + 5))
    await dev.shrinker.idle()
    t.comment(`${format}: ${refused} requests refused; pool peak ${peak}; lower_errors ${show(dev, 'lower_errors').trim()}; written back ${show(dev, 'written_back_pages').trim()}`)
    t.ok(refused > 0, `${format}: writes were refused once the lower file was full`)
    t.ok(peak <= MiB + REQUEST_PAGES * PAGE, `${format}: mem_used_total ${peak} stays within the limit plus one request`)
    t.ok(Number(show(dev, 'written_back_pages')) > 0, `${format}: pages went to the lower file first`)
    t.equal(dev.stats().failedWrites, refused)
    t.equal(lines.filter((l) => l.event === 'pool_limit_refused').length >= 1, true, 'logged')
    t.ok(lines.filter((l) => l.event === 'pool_limit_refused').length <= refused, 'at most once per refused request, in episodes')
    await readsBack(t, dev, model, format)
    await store(dev, 'reset', '1')
  }
})

t.test('kcompressd: staged pages hold their room, so the pool never passes the limit', async (t) => {
  const dev = new ZramDevice(0, { workers: 1, kcompressd: { inlineWhenCheaper: false } })
  t.teardown(() => dev.close())
  t.equal(await store(dev, 'comp_algorithm', 'zstd'), 0)
  t.equal(await store(dev, 'disksize', `${4096 * PAGE}`), 0)
  const limitBytes = 2 * MiB
  t.equal(await store(dev, 'pool_limit', `${limitBytes}`), 0)
  await dev.workersReady()
  const model = Buffer.alloc(4096 * PAGE)
  const rand = prng(seed + 6)
  // Far from the limit, pages are staged.
  const first = await fill(dev, model, 0, 64, rand)
  t.equal(first.refused, 0)
  t.ok(dev.kcompressdStats().queued > 0, 'pages were staged while the pool was far from its limit')
  let peak = 0
  let refused = 0
  for (let i = 64; i < 4096; i += REQUEST_PAGES) {
    const r = await fill(dev, model, i, REQUEST_PAGES, rand)
    refused += r.refused
    // Staged pages count at their worst until committed; committed, the pool must stay within the limit.
    await dev.drain()
    peak = Math.max(peak, dev.stats().memUsedTotal)
  }
  t.ok(refused > 0, 'the limit was reached')
  t.ok(peak <= limitBytes, `mem_used_total ${peak} stayed within ${limitBytes} with pages staged`)
  t.comment(`headroom held per staged page: ${ZS_MAX_PAGES_PER_ZSPAGE} pages`)
  await readsBack(t, dev, model, 'kcompressd')
})

t.test('a page on its way to the lower file is not written back or recompressed from its old object meanwhile', async (t) => {
  const dev = new ZramDevice(0)
  t.teardown(() => dev.close())
  t.equal(await store(dev, 'backing_dev', tmpPath(t)), 0)
  t.equal(await store(dev, 'compressed_writeback', '1'), 0)
  const pages = 1024
  t.equal(await store(dev, 'disksize', `${pages * PAGE}`), 0)
  t.equal(await store(dev, 'pool_limit', '256K'), 0)
  t.equal(await store(dev, 'shrinker_enabled', '1'), 0)
  const rand = prng(seed + 7)
  // Fill to the limit: the last requests went straight to the lower file.
  for (let i = 0; i < 256; i += REQUEST_PAGES) await dev.write(Buffer.concat(Array.from({ length: REQUEST_PAGES }, () => makePage('text', rand))), i * PAGE)
  await dev.shrinker.idle()
  t.ok(Number(show(dev, 'pool_limit_hit')) > 0, 'precondition: the pool is at its limit')
  let raced = 0
  for (let p = 0; p < 256; p++) {
    // New contents for page p go to the lower file; a writeback of p starts before they land.
    const fresh = makePage('text', rand)
    const writing = dev.write(fresh, p * PAGE)
    const wb = store(dev, 'writeback', `page_index=${p}`)
    await writing
    // 0, or ENOSPC/EIO when no page was left to write back (the page is on the lower file already).
    if ((await wb) === 0) raced++
    const got = Buffer.alloc(PAGE)
    await dev.read(got, p * PAGE)
    if (!got.equals(fresh)) {
      t.fail(`page ${p}: the acknowledged write was lost to a writeback of the old contents`)
      return
    }
  }
  t.ok(raced > 0, `${raced} writebacks ran beside a direct store of the same page; every new write won`)
})

t.test('moving a page\'s old contents (writeback, segment cleaning) keeps SLOT_DIRECT; new contents clear it', async (t) => {
  const table = new PageTable(4)
  table.setObject(1, 1234, 900, false, 0)
  table.setFlag(1, SLOT_DIRECT)
  table.setWrittenBack(1, 8192, 900, false)
  t.ok(table.meta[1] & SLOT_DIRECT, 'written back meanwhile: the direct store still finds the page its own')
  table.setWrittenBack(1, 16384, 900, false)
  t.ok(table.meta[1] & SLOT_DIRECT, 'relocated by segment cleaning: likewise')
  table.clear(1)
  table.setObject(1, 99, 500, false, 0)
  t.notOk(table.meta[1] & SLOT_DIRECT, 'newer contents stored: the direct store is superseded')
})
