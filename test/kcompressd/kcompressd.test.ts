// kcompressd: staged writes, slow and failing workers, a full FIFO, reset, against a model.
// Seeded: replay with ZRAMFUSE_SEED=<seed>. No assertion depends on wall-clock time: where a test
// needs a worker to hold a page, the worker's delay hook holds it and stopping the worker ends it.
import t, { type Test } from 'tap'
import { ZramDevice, type ZramDeviceOptions } from '../../src/device/zram-device'
import { type KcompressdTestView } from '../../src/kcompressd/kcompressd'
import { PAIRS, WARMUP, WINDOW } from '../../src/kcompressd/way-trial'
import type { EventLog } from '../../src/log'
import { extensionAttributes } from '../../src/sysfs/zramfuse-attributes'
import { makePage, PAGE_KINDS, prng, seedFromEnv } from '../helpers/pages'

const seed = seedFromEnv(20260504)
t.comment(`seed ${seed} (replay with ZRAMFUSE_SEED=${seed})`)

const PAGE = 4096
/** Long enough that nothing a test does meanwhile depends on the worker finishing first. */
const HOLD_MS = 600_000

function device(t: Test, algorithm: string, opts: ZramDeviceOptions, pages = 256): ZramDevice {
  const dev = new ZramDevice(0, opts)
  t.teardown(() => dev.close())
  dev.setAlgorithm(algorithm)
  dev.initialise(pages * PAGE)
  return dev
}

async function read(dev: ZramDevice, len: number, pos: number): Promise<Buffer> {
  const out = Buffer.alloc(len, 0xcc)
  const n = await dev.read(out, pos)
  return out.subarray(0, n)
}

/** Start the workers and wait until they are up (TS workers compile for a while under tap). */
async function warm(dev: ZramDevice): Promise<void> {
  await dev.workersReady()
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** Poll (never assert on time): resolves when cond() holds; fails the test after a generous bound. */
async function until(t: Test, what: string, cond: () => boolean): Promise<void> {
  for (let i = 0; i < 6000 && !cond(); i++) await sleep(5)
  if (!cond()) t.fail(`gave up waiting for: ${what}`)
}

/** kcompressd's test view (Kcompressd.testView) of a device, through its staging host. */
function kcompressdOf(dev: ZramDevice): KcompressdTestView {
  return dev.staging.kcompressd.testView()
}

function errorLog(lines: object[]): EventLog {
  return { info() {}, debug() {}, warn() {}, error: (o: object) => void lines.push(o) }
}

/** mm_stat figures that do not depend on allocation order: must match an inline device. */
function dataStats(dev: ZramDevice): object {
  const s = dev.stats()
  return { orig: s.origDataSize, compr: s.comprDataSize, same: s.samePages, huge: s.hugePages }
}

for (const algorithm of ['lz4', 'zstd']) {
  t.test(`${algorithm}: staged pages read back before and after their worker commits them`, async (t) => {
    const rand = prng(seed)
    const dev = device(t, algorithm, { workers: 1, kcompressd: { inlineWhenCheaper: false, delayMs: 20 } })
    await warm(dev)
    const pages = PAGE_KINDS.map((k) => makePage(k, rand))
    const data = Buffer.concat(pages)
    t.equal(dev.write(data, 0), undefined, 'an aligned write is answered synchronously')
    t.ok(dev.kcompressdStats().fifoDepth > 0, 'pages are staged, not yet compressed')
    t.same(await read(dev, data.length, 0), data, 'read-your-writes from the staging slots')
    t.same(await read(dev, 100, PAGE + 50), data.subarray(PAGE + 50, PAGE + 150), 'partial read of a staged page')
    await dev.drain()
    t.equal(dev.kcompressdStats().fifoDepth, 0, 'drained')
    t.same(await read(dev, data.length, 0), data, 'same data after commit')
    const inline = device(t, algorithm, { workers: 0 })
    await inline.write(data, 0)
    t.same(dataStats(dev), dataStats(inline), 'mm_stat data figures equal the inline device after draining')
    const st = dev.kcompressdStats()
    t.equal(st.queued, st.completed + st.stale + st.failed, 'every staged page was committed or dropped')
    t.ok(st.completed > 0, `${st.completed} pages committed from worker results`)
    t.equal(st.inlineFallbacks, 0)
    t.ok(st.batches >= 1, 'the worker woke at least once')
  })

  t.test(`${algorithm}: random interleavings with slow workers never return stale data`, async (t) => {
    const rand = prng(seed ^ (algorithm === 'lz4' ? 1 : 2))
    const NPAGES = 24
    const dev = device(t, algorithm, { workers: 2, fifoSize: 12, kcompressd: { delayMs: 1 } }, NPAGES + 1)
    await warm(dev)
    const model = Buffer.alloc(NPAGES * PAGE)
    const check = async (what: string): Promise<boolean> => {
      const got = await read(dev, model.length, 0)
      if (!got.equals(model)) {
        for (let p = 0; p < NPAGES; p++) {
          if (!got.subarray(p * PAGE, (p + 1) * PAGE).equals(model.subarray(p * PAGE, (p + 1) * PAGE))) {
            t.fail(`${what}: page ${p} differs from the model (seed ${seed})`)
            return false
          }
        }
      }
      return true
    }
    const OPS = 1500
    let ok = true
    for (let op = 0; op < OPS && ok; op++) {
      const x = rand()
      const page = Math.floor(rand() * NPAGES)
      if (x < 0.45) {
        // full-page or multi-page write
        const n = Math.min(NPAGES - page, 1 + Math.floor(rand() * 3))
        const buf = Buffer.concat(Array.from({ length: n }, () => makePage(PAGE_KINDS[Math.floor(rand() * PAGE_KINDS.length)], rand)))
        await dev.write(buf, page * PAGE)
        buf.copy(model, page * PAGE)
      } else if (x < 0.6) {
        // partial write: read-modify-write of a possibly staged page
        const off = Math.floor(rand() * PAGE)
        const len = 1 + Math.floor(rand() * Math.min(PAGE - off, 700))
        const buf = Buffer.alloc(len)
        for (let i = 0; i < len; i++) buf[i] = Math.floor(rand() * 256)
        await dev.write(buf, page * PAGE + off)
        buf.copy(model, page * PAGE + off)
      } else if (x < 0.7) {
        const n = Math.min(NPAGES - page, 1 + Math.floor(rand() * 2))
        await dev.discard(page * PAGE, n * PAGE)
        model.fill(0, page * PAGE, (page + n) * PAGE)
      } else if (x < 0.9) {
        const got = await read(dev, PAGE, page * PAGE)
        if (!got.equals(model.subarray(page * PAGE, (page + 1) * PAGE))) {
          t.fail(`op ${op}: read of page ${page} returned stale or wrong data (seed ${seed})`)
          ok = false
        }
      } else {
        // let results come back between operations
        await sleep(Math.floor(rand() * 4))
      }
      if (op % 300 === 299) ok = await check(`after op ${op}`)
    }
    await dev.drain()
    if (ok) ok = await check('after draining')
    t.ok(ok, `${OPS} random operations agree with the model`)
    const st = dev.kcompressdStats()
    t.comment(JSON.stringify(st))
    t.equal(st.fifoDepth, 0, 'nothing staged after draining')
    t.equal(st.queued, st.completed + st.stale + st.failed, 'queued = completed + stale + failed')
    t.ok(st.stale > 0, 'some results were superseded and dropped')
    t.ok(st.completed > 0, 'some results were committed')
    // Replaying the final contents inline gives the same mm_stat data figures.
    const inline = device(t, algorithm, { workers: 0 }, NPAGES + 1)
    for (let p = 0; p < NPAGES; p++) {
      const pg = model.subarray(p * PAGE, (p + 1) * PAGE)
      if (dev.pageAllocated(p)) await inline.write(Buffer.from(pg), p * PAGE)
    }
    t.same(dataStats(dev), dataStats(inline), 'mm_stat data figures match an inline device holding the same pages')
  })
}

t.test('an idle worker polls for poll_us after the pages it took: paced requests wake it once, not once each', async (t) => {
  const rand = prng(seed ^ 0x9011)
  const REQUESTS = 20
  const wakeups = async (pollUs: number, pagesPerRequest: number): Promise<number> => {
    const dev = device(t, 'lz4', { workers: 1, kcompressd: { inlineWhenCheaper: false, pollUs } })
    await warm(dev)
    for (let i = 0; i < REQUESTS; i++) {
      const data = Buffer.concat(Array.from({ length: pagesPerRequest }, () => makePage('text', rand)))
      const pos = i * pagesPerRequest * PAGE
      await dev.write(data, pos)
      // The worker commits them and goes idle before the next request (drain waits for the idle turn).
      await dev.drain()
      t.same(await read(dev, data.length, pos), data, `request ${i} reads back (poll_us ${pollUs}, ${pagesPerRequest} pages)`)
    }
    const st = dev.kcompressdStats()
    t.equal(st.completed, REQUESTS * pagesPerRequest, 'every page compressed by the worker')
    return st.workerWakeups
  }
  // poll_us 0: the worker sleeps as soon as the queue is empty, so every request after the first finds it asleep.
  t.ok(await wakeups(0, 8) >= REQUESTS - 1, 'poll_us 0: one wake-up per request')
  // A 1 s window: the requests here come within milliseconds of each other (a stall of a second
  // would end the window and cost one more wake-up: the bound allows two).
  t.ok(await wakeups(1_000_000, 8) <= 2, '8-page requests: the worker polled between them, the writer did not wake it')
  // Single pages start a poll too (the writer keeps them inline itself when handing them off costs it more).
  t.ok(await wakeups(1_000_000, 1) <= 2, '1-page requests: the worker polled between them too')
})

t.test('results below a batch are committed without another request, and a small ring never fills with them', async (t) => {
  const rand = prng(seed ^ 0xba7c)
  const dev = device(t, 'lz4', { workers: 1, fifoSize: 4, kcompressd: { inlineWhenCheaper: false, pollUs: 1_000_000 } })
  await warm(dev)
  const kc = kcompressdOf(dev)
  const pages: Buffer[] = []
  let timers = 0
  for (let i = 0; i < 40; i++) {
    pages.push(makePage('text', rand))
    await dev.write(pages[i], i * PAGE)
    // The worker has published it (nothing queued, nothing being compressed): only the main thread holds the slot.
    await until(t, `page ${i} compressed`, () => kc.queued === 0 && dev.kcompressdStats().inFlight === 0)
    t.ok(dev.kcompressdStats().fifoDepth <= 2, `page ${i}: at most half the ring waits to be taken`)
    if (kc.releaseArmed) timers++
  }
  // The worker polls for 1 s between these writes, so it never went to sleep: nothing woke the main
  // thread and no timer ran (a short timer in the event loop costs every request on a VM).
  t.equal(timers, 0, 'no timer armed while requests came')
  let st = dev.kcompressdStats()
  t.equal(st.inlineFallbacks, 0, 'no request found the ring full of results not yet taken')
  t.equal(st.queued, 40, 'every page staged')
  await until(t, 'the last results committed with no request after them', () => dev.kcompressdStats().fifoDepth === 0)
  st = dev.kcompressdStats()
  t.equal(st.completed, 40, 'all 40 committed')
  // The worker went to sleep after its poll window and woke the main thread, which took them; the
  // reservations go 100 ms later, and then nothing wakes the idle daemon again.
  t.ok(st.mainWakeups >= 1, `the main thread was woken (${st.mainWakeups})`)
  await until(t, 'the reservations freed once requests stopped', () => dev.kcompressdStats().reserved === 0 && !kc.releaseArmed)
  const wakes = dev.kcompressdStats().mainWakeups
  // Only a worker wakes the main thread, on its way to sleep (or idle, for drain), and a sleeping
  // worker wakes only when a request stages a page (or a new pool chunk, or a stop): with the worker
  // asleep, no timer armed and nothing staged or reserved, nothing can wake the idle daemon again.
  await until(t, 'the worker sleeps', () => kc.sleepers === 1 && kc.mailUnread === 0)
  t.equal(dev.kcompressdStats().mainWakeups, wakes, 'not woken again while idle')
  t.same(await read(dev, 40 * PAGE, 0), Buffer.concat(pages))
})

t.test('a wake-up counts against a handoff only when every worker sleeps', async (t) => {
  const rand = prng(seed ^ 0x51ee)
  for (const pollUs of [1_000_000, 0]) {
    const dev = device(t, 'lz4', { workers: 1, kcompressd: { pollUs } })
    await warm(dev)
    const kc = kcompressdOf(dev)
    // The cost is unknown at first, so this page is staged; then the worker polls (poll_us 1 s) or sleeps (0).
    await dev.write(makePage('text', rand), 0)
    await dev.drain()
    if (pollUs === 0) await until(t, 'the worker sleeps', () => kc.sleepers === 1 && kc.mailUnread === 0)
    // 15 us of compression: more than the least worth a handoff (12 us), less than a 30 us wake-up.
    kc.setCosts(15_000, 30_000)
    await dev.write(makePage('text', rand), PAGE)
    await dev.drain()
    const st = dev.kcompressdStats()
    if (pollUs > 0) {
      t.equal(st.queued, 2, 'worker polling: no wake-up to pay, the page is staged')
      t.equal(st.inlineCheaper, 0)
    } else {
      t.equal(st.queued, 1, 'worker asleep: the wake-up would cost more, the page is compressed inline')
      t.equal(st.inlineCheaper, 1)
    }
  }
})

// The race this guards (a chunk mailed between the worker's last look at its mail and its counting
// itself asleep, so that no wake-up came) is too narrow to force here; the worker now looks again
// after counting itself, and every second while asleep (worker.ts idle). This checks the path itself.
t.test('a pool chunk made while the worker sleeps is still faulted in by it', async (t) => {
  const rand = prng(seed ^ 0xc4c)
  // Small chunks: a few dozen pages make a new one.
  const dev = device(t, 'lz4', { workers: 1, chunkPages: 16, kcompressd: { pollUs: 0 } }, 4096)
  await warm(dev)
  const kc = kcompressdOf(dev)
  await dev.write(makePage('text', rand), 0)
  await dev.drain()
  await until(t, 'the worker sleeps with no mail unread', () => kc.sleepers === 1 && kc.mailUnread === 0)
  // 5 us a page: below the least worth a handoff, so every page goes inline and the worker is never
  // woken for one; only for the new chunks mailed to it.
  kc.setCosts(5_000, 30_000)
  const queued = dev.kcompressdStats().queued
  const before = dev.poolChunks
  for (let i = 1; i < 200 && dev.poolChunks < before + 2; i++) await dev.write(makePage('binary', rand), i * PAGE)
  t.ok(dev.poolChunks >= before + 2, `new chunks were made (${dev.poolChunks - before})`)
  t.equal(dev.kcompressdStats().queued, queued, 'every page went inline: nothing woke the worker')
  await until(t, 'the sleeping worker faulted the new chunks in', () => kc.mailUnread === 0)
  t.equal(kc.sleepers, 1, 'and it is asleep again')
})

t.test('with every worker asleep, the second of two requests within poll_us is staged (the woken worker polls for the next)', async (t) => {
  const rand = prng(seed ^ 0xde75)
  // poll_us 1 s (the most): two writes in a row fall within it even on a stalled runner; short enough to wait for the worker to sleep.
  const dev = device(t, 'lz4', { workers: 1, kcompressd: { pollUs: 1_000_000 } })
  await warm(dev)
  const kc = kcompressdOf(dev)
  await dev.write(makePage('text', rand), 0) // cost unknown: staged
  await dev.drain()
  const asleep = (): Promise<void> => until(t, 'the worker sleeps', () => kc.sleepers === 1 && kc.mailUnread === 0)
  // 15 us: worth a handoff (over 12 us), but less than a wake-up
  const costs = (): void => kc.setCosts(15_000, 30_000)
  await asleep()
  costs()
  await dev.write(makePage('text', rand), PAGE)
  let st = dev.kcompressdStats()
  t.equal(st.inlineCheaper, 1, 'the first request with the worker asleep: inline')
  costs()
  await dev.write(makePage('text', rand), 2 * PAGE)
  st = dev.kcompressdStats()
  t.equal(st.queued, 2, 'the next one, right after it: staged')
  t.equal(st.inlineCheaper, 1)
  await dev.drain()
  // The worker goes to sleep only after poll_us without a page since it took the last one, staged
  // after that request's choice: asleep, poll_us has passed since the last request.
  await asleep()
  costs()
  await dev.write(makePage('text', rand), 3 * PAGE)
  st = dev.kcompressdStats()
  t.equal(st.inlineCheaper, 2, 'a request long after the previous one: inline again')
  t.equal(st.queued, 2)
})

t.test('wake_ns: the median of recent wake-ups, each counted for at most 30 us', async (t) => {
  const dev = device(t, 'lz4', { workers: 1, kcompressd: { pollUs: 0, inlineWhenCheaper: false } })
  await warm(dev)
  const rand = prng(seed ^ 0x3a3e)
  for (let i = 0; i < 40; i++) {
    await dev.write(makePage('text', rand), i * PAGE)
    await dev.drain()
  }
  const st = dev.kcompressdStats()
  t.ok(st.workerWakeups >= 20, `the worker was woken for most pages (${st.workerWakeups})`)
  t.ok(st.wakeNs > 0 && st.wakeNs <= 30000, `wake_ns ${st.wakeNs} is measured and within the clamp`)
})

t.test('a codec far dearer than a wake-up: the writer stages single pages', async (t) => {
  const rand = prng(seed ^ 0x1c0)
  const dev = new ZramDevice(0, { workers: 1 })
  t.teardown(() => dev.close())
  dev.setAlgorithm('zstd')
  // Level 19: hundreds of microseconds per page here, against tens for a wake-up.
  dev.setParams({ level: 19, dict: null })
  dev.initialise(1024 * PAGE)
  await warm(dev)
  const data = Buffer.concat(Array.from({ length: 1024 }, () => makePage('text', rand)))
  for (let p = 0; p < 1024; p++) await dev.write(data.subarray(p * PAGE, (p + 1) * PAGE), p * PAGE)
  await dev.drain()
  const st = dev.kcompressdStats()
  t.comment(`compress_ns ${st.compressNs} wake_ns ${st.wakeNs} staged ${st.queued} inline ${st.inlineCheaper} measured ${st.inlineMeasured}`)
  t.ok(st.compressNs > st.wakeNs, 'a page costs the worker more than a wake-up costs the writer')
  t.equal(st.queued + st.inlineCheaper + st.inlineMeasured + st.inlineFallbacks, 1024, 'every page staged or compressed inline, once')
  // The worker is the slower one here, so the FIFO fills and the rest go inline as fallbacks (or
  // inline in the outcome trial's INLINE windows, 128 requests each).
  t.equal(st.inlineCheaper, 0, 'none inline by cost')
  t.ok(st.queued >= 256, `staged until the FIFO filled, and after (${st.queued})`)
  t.same(await read(dev, data.length, 0), data)
})

t.test('outcome trials: single pages take both ways in a trial, larger requests never; outcome_trials 0 stops them', async (t) => {
  const rand = prng(seed ^ 0x7a1)
  const span = WARMUP + WINDOW
  const trial = 2 * PAIRS * span
  const pages = Array.from({ length: 64 }, () => makePage('text', rand))
  for (const on of [true, false]) {
    const dev = device(t, 'zstd', { workers: 1, kcompressd: { outcomeTrials: on } }, 1024)
    await warm(dev)
    for (let i = 0; i <= trial; i++) await dev.write(pages[i % 64], (i % 1024) * PAGE)
    const big = Buffer.concat(pages.slice(0, 8))
    for (let i = 0; i < 64; i++) await dev.write(big, i * 8 * PAGE)
    await dev.drain()
    const st = dev.kcompressdStats()
    if (on) {
      t.equal(st.trials, 1, 'one trial finished')
      // Its INLINE windows: PAIRS of them, span requests each (the first window is one request longer).
      t.ok(st.inlineMeasured >= PAIRS * span, `the trial's INLINE windows went inline (${st.inlineMeasured})`)
      t.ok(st.inlineMeasured <= PAIRS * span + 1, 'and no page of the larger requests')
    } else {
      t.equal(st.trials, 0, 'no trial')
      t.equal(st.inlineMeasured, 0, 'no page inline by outcome')
    }
    t.same(await read(dev, 64 * PAGE, 960 * PAGE), Buffer.concat(pages), 'the single pages read back')
    t.same(await read(dev, 8 * PAGE, 63 * 8 * PAGE), big, 'the larger requests read back')
  }
})

t.test('FIFO full: the writer compresses inline and never waits for the worker', async (t) => {
  const rand = prng(seed + 7)
  // The worker holds its first page until it is stopped: nothing can complete while we write.
  const dev = device(t, 'lz4', { workers: 1, fifoSize: 4, kcompressd: { delayMs: HOLD_MS } })
  await warm(dev)
  const data = Buffer.concat(Array.from({ length: 64 }, () => makePage('text', rand)))
  for (let p = 0; p < 64; p++) await dev.write(data.subarray(p * PAGE, (p + 1) * PAGE), p * PAGE)
  const st = dev.kcompressdStats()
  t.equal(st.completed, 0, 'all 64 writes were answered while the worker still held its first page')
  t.equal(st.maxFifoDepth, 4, 'the FIFO filled up')
  t.equal(st.inlineFallbacks, 60, 'the other 60 pages were compressed inline')
  t.equal(st.fifoFullEvents, 1, 'one full episode')
  t.same(await read(dev, data.length, 0), data)
  // Stopping the worker ends its hold; the queued pages are compressed here.
  dev.setWorkers(0)
  await dev.drain()
  t.equal(dev.kcompressdStats().fifoDepth, 0)
  t.same(await read(dev, data.length, 0), data)
  const inline = device(t, 'lz4', { workers: 0 })
  await inline.write(data, 0)
  t.same(dataStats(dev), dataStats(inline))
})

t.test('a page overwritten while still queued is rewritten in its slot', async (t) => {
  const rand = prng(seed + 8)
  const dev = device(t, 'lz4', { workers: 1, kcompressd: { delayMs: HOLD_MS } })
  await warm(dev)
  await dev.write(makePage('text', rand), 0)
  await until(t, 'the worker claims page 0', () => dev.kcompressdStats().inFlight === 1)
  const b1 = makePage('binary', rand)
  const b2 = makePage('text', rand)
  await dev.write(b1, PAGE)
  const before = dev.kcompressdStats()
  t.equal(before.fifoDepth, 2, 'page 0 in flight, page 1 queued')
  await dev.write(b2, PAGE)
  const after = dev.kcompressdStats()
  t.equal(after.fifoDepth, 2, 'no new slot taken')
  t.equal(after.stale - before.stale, 1, 'the first staging of page 1 is superseded')
  t.same(await read(dev, PAGE, PAGE), b2)
  dev.setWorkers(0)
  await dev.drain()
  t.same(await read(dev, PAGE, PAGE), b2, 'the newer contents were committed')
})

for (const algorithm of ['lz4', 'zstd']) {
  t.test(`${algorithm}: a worker thread that dies mid-page loses nothing and is replaced`, async (t) => {
    const rand = prng(seed + 11)
    const logged: object[] = []
    // The 20th page each worker thread claims ends the thread; 24 pages in one request are all
    // staged (none same-filled).
    const dev = device(t, algorithm, {
      workers: 1, log: errorLog(logged), kcompressd: { inlineWhenCheaper: false, fault: { every: 20, kind: 'exit' } },
    })
    await warm(dev)
    const data = Buffer.concat(Array.from({ length: 24 }, (_, i) => makePage(i % 2 ? 'text' : 'binary', rand)))
    await dev.write(data, 0)
    await dev.drain()
    const st = dev.kcompressdStats()
    t.equal(st.workerErrors, 1, 'the page the worker died on was compressed again')
    t.equal(st.queued, st.completed + st.stale, 'every staged page committed')
    t.equal(logged.length, 1, 'one log line')
    t.match(logged[0], { event: 'kcompressd_worker_failed', algorithm, pagesRecompressed: Number })
    t.same(await read(dev, data.length, 0), data, 'data intact')
    // A replacement thread keeps serving: it took 4 pages, 12 more stay below its own 20th.
    const more = Buffer.concat(Array.from({ length: 12 }, () => makePage('binary', rand)))
    await dev.write(more, 40 * PAGE)
    await dev.drain()
    t.same(await read(dev, more.length, 40 * PAGE), more)
    const end = dev.kcompressdStats()
    t.equal(end.completed - st.completed, 12, 'the 12 pages were committed')
    t.equal(end.workerErrors, st.workerErrors, 'from worker results (nothing failed, nothing compressed here)')
  })
}

for (const [kind, every] of [['throw', 3], ['exit', 25]] as const) {
  t.test(`injected worker fault (${kind}) on every ${every}th page a thread claims: nothing lost`, async (t) => {
    const rand = prng(seed + 13)
    // Every page staged (never compressed inline because cheaper), so the faults come for sure.
    const dev = device(t, 'lz4', { workers: 1, log: errorLog([]), kcompressd: { inlineWhenCheaper: false, fault: { every, kind } } })
    await warm(dev)
    const model = Buffer.alloc(256 * PAGE)
    for (let i = 0; i < 200; i++) {
      const p = Math.floor(rand() * 256)
      const pg = makePage(PAGE_KINDS[Math.floor(rand() * PAGE_KINDS.length)], rand)
      await dev.write(pg, p * PAGE)
      pg.copy(model, p * PAGE)
      if (i % 10 === 0) await sleep(2)
    }
    await dev.drain()
    const st = dev.kcompressdStats()
    t.ok(st.workerErrors >= 1, `${st.workerErrors} failed pages`)
    t.equal(st.queued, st.completed + st.stale)
    t.same(await read(dev, model.length, 0), model)
  })
}

t.test('compression failing on the worker and on the main thread: the page is stored raw, no slot leaks', async (t) => {
  const rand = prng(seed + 14)
  const logged: object[] = []
  const dev = device(t, 'lz4', { workers: 1, log: errorLog(logged), kcompressd: { fault: { every: 1, kind: 'throw' } } })
  await warm(dev)
  let inlineCalls = 0
  dev.staging.compressInline = () => {
    inlineCalls++
    throw new Error('injected fault: the main thread cannot compress either')
  }
  const data = Buffer.concat([makePage('text', rand), makePage('binary', rand)])
  await dev.write(data, 0)
  await dev.drain()
  const st = dev.kcompressdStats()
  t.equal(st.fifoDepth, 0, 'drain resolved and every slot is free')
  t.equal(st.workerErrors, 2, 'both pages failed in the worker')
  t.equal(inlineCalls, 2, 'and again on the main thread')
  t.equal(st.completed, 2, 'both were stored')
  t.equal(dev.stats().hugePages, 2, 'raw, as huge pages')
  t.equal(dev.stats().failedWrites, 0)
  t.match(logged, [{ event: 'kcompressd_worker_failed' }], 'the worker failure is logged')
  t.ok(logged.some((l) => (l as { event?: string }).event === 'kcompressd_inline_failed'), 'and the inline one')
  t.same(await read(dev, data.length, 0), data, 'the data reads back')
  dev.setFifoSize(8)
  t.equal(dev.fifoSize, 8, 'fifo_size can change: nothing is held')
  dev.reset()
  dev.initialise(256 * PAGE)
  t.equal(dev.kcompressdStats().fifoDepth, 0, 'reset leaves nothing held either')
})

t.test('a staged page the pool cannot take at all is dropped visibly, its slot freed', async (t) => {
  const rand = prng(seed + 15)
  const logged: object[] = []
  const dev = device(t, 'lz4', { workers: 1, log: errorLog(logged), kcompressd: { fault: { every: 1, kind: 'throw' } } })
  await warm(dev)
  const commit = dev.staging.commitStaged.bind(dev.staging)
  let refused = 0
  dev.staging.commitStaged = (page, slot, ticket, src, off, len, raw) => {
    if (page === 1) {
      refused++
      throw new Error('injected fault: the pool cannot allocate')
    }
    return commit(page, slot, ticket, src, off, len, raw)
  }
  const data = Buffer.concat([makePage('text', rand), makePage('binary', rand)])
  await dev.write(data, 0)
  await dev.drain()
  const st = dev.kcompressdStats()
  t.equal(st.fifoDepth, 0, 'no slot held')
  t.equal(refused, 2, 'the compressed object, then the raw page, were refused')
  t.equal(st.failed, 1, 'one page could not be stored')
  t.equal(st.completed, 1)
  t.equal(dev.stats().failedWrites, 1, 'counted in failed_writes')
  t.equal(dev.stats().origDataSize, PAGE, 'only page 0 is stored')
  t.ok(logged.some((l) => (l as { event?: string; page?: number }).event === 'kcompressd_page_lost' && (l as { page?: number }).page === 1),
    'a log line names the lost page')
  t.same(await read(dev, PAGE, 0), data.subarray(0, PAGE), 'page 0 intact')
})

t.test('reset with one page in a worker and one queued: both results are dropped', async (t) => {
  const rand = prng(seed + 17)
  const dev = device(t, 'lz4', { workers: 1, kcompressd: { delayMs: 1500 } })
  await warm(dev)
  await dev.write(Buffer.concat([makePage('text', rand), makePage('binary', rand)]), 0)
  await until(t, 'the worker claims a page', () => dev.kcompressdStats().inFlight === 1)
  const before = dev.kcompressdStats()
  t.equal(before.inFlight, 1, 'precondition: one page is in the worker')
  t.equal(before.fifoDepth, 2, 'precondition: the other one is queued')
  t.equal(before.completed, 0, 'precondition: nothing committed yet')
  dev.reset()
  t.equal(dev.kcompressdStats().stale - before.stale, 1, 'the queued page is forgotten at once')
  dev.initialise(256 * PAGE)
  t.same(await read(dev, 2 * PAGE, 0), Buffer.alloc(2 * PAGE), 'reset device reads zeros')
  await dev.drain()
  const after = dev.kcompressdStats()
  t.equal(after.stale - before.stale, 2, 'the page in flight came back and was dropped')
  t.equal(after.completed, 0, 'nothing from before the reset was committed')
  t.same(await read(dev, 2 * PAGE, 0), Buffer.alloc(2 * PAGE), 'still zeros once the old result came back')
  t.equal(dev.stats().origDataSize, 0)
})

t.test('workers can be changed at run time, 0 compresses queued pages inline', async (t) => {
  const rand = prng(seed + 19)
  const dev = device(t, 'zstd', { workers: 1, kcompressd: { delayMs: 50 } })
  await warm(dev)
  const data = Buffer.concat(Array.from({ length: 8 }, () => makePage('text', rand)))
  await dev.write(data, 0)
  dev.setWorkers(0)
  await dev.write(data, 8 * PAGE)
  await dev.drain()
  t.same(await read(dev, 2 * data.length, 0), Buffer.concat([data, data]))
  t.equal(dev.kcompressdStats().queued, dev.kcompressdStats().completed + dev.kcompressdStats().stale)
  const queuedOff = dev.kcompressdStats().queued
  dev.setWorkers(2)
  await dev.workersReady()
  await dev.write(data, 16 * PAGE)
  await dev.drain()
  t.ok(dev.kcompressdStats().queued > queuedOff, 'staging again with 2 workers')
  t.same(await read(dev, data.length, 16 * PAGE), data)
  t.equal(dev.kcompressdStats().fifoDepth, 0)
})

t.test('new codec parameters reach running workers; fifo_size replaces them', async (t) => {
  const rand = prng(seed + 21)
  const pages = Array.from({ length: 48 }, (_, i) => makePage(i % 2 ? 'text' : 'binary', rand))
  const data = Buffer.concat(pages.slice(16))
  const dev = device(t, 'lz4', { workers: 1 })
  await warm(dev)
  await dev.write(data, 0)
  await dev.drain()
  dev.reset()
  // The same threads, now for zstd level 7 with a dictionary.
  dev.setAlgorithm('zstd')
  dev.setParams({ level: 7, dict: Buffer.concat(pages.slice(0, 16)) })
  dev.initialise(256 * PAGE)
  await dev.write(data, 0)
  await dev.drain()
  const inline = new ZramDevice(0, { workers: 0 })
  t.teardown(() => inline.close())
  inline.setAlgorithm('zstd')
  inline.setParams({ level: 7, dict: Buffer.concat(pages.slice(0, 16)) })
  inline.initialise(256 * PAGE)
  await inline.write(data, 0)
  t.ok(dev.kcompressdStats().completed >= 32, 'the worker compressed the zstd pages')
  t.equal(dev.stats().comprDataSize, inline.stats().comprDataSize, 'with the new level and dictionary')
  t.same(await read(dev, data.length, 0), data)
  const before = dev.kcompressdStats()
  dev.setFifoSize(16)
  await dev.write(data, 0)
  await dev.drain()
  t.equal(dev.fifoSize, 16)
  const after = dev.kcompressdStats()
  t.ok(after.maxFifoDepth >= 1, 'pages staged on the new ring')
  // The new ring carries the parameters' generation: its workers start on the zstd settings.
  t.equal(after.workerErrors, before.workerErrors, 'the new ring\'s workers do not fail')
  t.ok(after.completed - before.completed >= 16, 'and compress what was staged on it')
  t.same(await read(dev, data.length, 0), data)
  t.equal(dev.stats().comprDataSize, inline.stats().comprDataSize)
})

t.test('fifo_size while the main thread waits on the old ring: the next drain still completes', async (t) => {
  const rand = prng(seed + 22)
  const data = Buffer.concat(Array.from({ length: 8 }, () => makePage('text', rand)))
  const dev = device(t, 'zstd', { workers: 1 })
  await warm(dev)
  await dev.write(data, 0)
  await dev.drain()
  // Past poll_us the worker goes to sleep and wakes the main thread, which, with reservations out,
  // arms its next wait on this ring; the sleeping worker, stopped by setFifoSize, will not wake it.
  const kc = kcompressdOf(dev)
  await until(t, 'the worker sleeps and the main thread waits again', () => {
    const st = dev.kcompressdStats()
    return st.mainWakeups >= 1 && st.reserved > 0 && kc.sleepers === 1 && kc.mailUnread === 0 && kc.mainWaiting
  })
  dev.setFifoSize(32)
  await dev.write(data, 0)
  // Bounded, so that a drain that never ends fails here instead of leaving the test unfinished.
  let timer: NodeJS.Timeout | undefined
  const done = await Promise.race([dev.drain().then(() => true), new Promise<boolean>((resolve) => {
    timer = setTimeout(() => resolve(false), 30_000)
  })])
  clearTimeout(timer)
  t.ok(done, 'drain on the new ring completes')
  t.same(await read(dev, data.length, 0), data)
})

t.test('close() with a page in a worker: a pending drain resolves, nothing is held', async (t) => {
  const rand = prng(seed + 23)
  const dev = new ZramDevice(0, { workers: 1, kcompressd: { delayMs: HOLD_MS } })
  dev.initialise(16 * PAGE)
  await dev.workersReady()
  await dev.write(makePage('text', rand), 0)
  await until(t, 'the worker claims the page', () => dev.kcompressdStats().inFlight === 1)
  let drained = false
  const drain = dev.drain().then(() => {
    drained = true
  })
  t.equal(drained, false, 'precondition: the page is held')
  await dev.close()
  await drain
  t.equal(drained, true, 'drain resolved')
  t.equal(dev.kcompressdStats().fifoDepth, 0)
})

/** What zramfuse/<name> prints for dev. */
function show(dev: ZramDevice, name: string): string {
  const a = extensionAttributes.find((x) => x.name === name)
  if (!a?.show) throw new Error(`no readable zramfuse/${name}`)
  return a.show(dev)
}

interface PoolView { objectCount: number; verify(): void }
function poolOf(dev: ZramDevice): PoolView {
  return { get objectCount() { return dev.poolObjects }, verify: () => dev.verifyPool() }
}
/** Pool objects that hold a page: every stored page that is not same-filled (no writeback here). */
function pagesInPool(dev: ZramDevice): number {
  const s = dev.stats()
  return s.origDataSize / PAGE - s.samePages
}
/** Write in requests of `per` pages, draining after each, so workers find reservations made for them. */
async function writeDrained(dev: ZramDevice, data: Buffer, pos: number, per = 8): Promise<void> {
  for (let off = 0; off < data.length; off += per * PAGE) {
    await dev.write(data.subarray(off, off + per * PAGE), pos + off)
    await dev.drain()
  }
}
function mixedPages(rand: () => number, n: number): Buffer {
  return Buffer.concat(Array.from({ length: n }, (_, i) => makePage(PAGE_KINDS[i % PAGE_KINDS.length], rand)))
}

for (const algorithm of ['lz4', 'zstd']) {
  t.test(`${algorithm}: workers write results into pool objects reserved for them; compaction leaves those alone`, async (t) => {
    const rand = prng(seed + 29)
    const dev = device(t, algorithm, { workers: 1, kcompressd: { inlineWhenCheaper: false } }, 1024)
    await warm(dev)
    const data = mixedPages(rand, 400)
    await writeDrained(dev, data, 0)
    const st = dev.kcompressdStats()
    t.ok(st.written > 0 && st.written <= st.completed, `${st.written} of ${st.completed} results were written in place`)
    t.ok(st.reserved > 0, `${st.reserved} objects reserved`)
    t.equal(show(dev, 'written_in_place'), `${st.written}\n`, 'zramfuse/written_in_place')
    t.equal(show(dev, 'reserved_objects'), `${st.reserved}\n`, 'zramfuse/reserved_objects')
    t.same(await read(dev, data.length, 0), data, 'every page reads back')
    const inline = device(t, algorithm, { workers: 0 }, 1024)
    await inline.write(data, 0)
    t.same(dataStats(dev), dataStats(inline), 'mm_stat data figures equal the inline device (huge pages too)')
    poolOf(dev).verify()
    t.equal(poolOf(dev).objectCount, pagesInPool(dev) + st.reserved, 'every pool object holds a page or is reserved')
    t.ok(dev.stats().memUsedTotal >= inline.stats().memUsedTotal, 'reserved objects count in mem_used_total')

    // Free most objects (zero pages cost none), compact with the reservations pinned, write again.
    const zero = Buffer.alloc(PAGE)
    for (let p = 0; p < 400; p++) if (p % 4 !== 0) data.set(zero, p * PAGE)
    await writeDrained(dev, data, 0)
    t.ok(dev.compact() > 0, 'compaction frees pages around the pinned reservations')
    poolOf(dev).verify()
    t.same(await read(dev, data.length, 0), data, 'data intact after compaction')
    const more = mixedPages(rand, 200)
    await writeDrained(dev, more, 400 * PAGE)
    t.ok(dev.kcompressdStats().written > st.written, 'workers still write in place after compaction')
    t.same(await read(dev, more.length, 400 * PAGE), more, 'and those pages read back')
    t.equal(poolOf(dev).objectCount, pagesInPool(dev) + dev.kcompressdStats().reserved)

    dev.setWorkers(0)
    await until(t, "the stopped worker's reservations are freed", () => dev.kcompressdStats().reserved === 0)
    t.equal(poolOf(dev).objectCount, pagesInPool(dev), 'no object is left reserved')
    poolOf(dev).verify()
    t.same(await read(dev, data.length, 0), data)
  })
}

t.test('every shared chunk the pool makes is faulted in by a worker; the pages written meanwhile are intact', async (t) => {
  const rand = prng(seed + 47)
  const dev = device(t, 'zstd', { workers: 1, kcompressd: { inlineWhenCheaper: false } }, 4096)
  await warm(dev)
  // Writes make chunks and free none, and every chunk made after the workers started is shared.
  const before = dev.poolChunks
  const data = mixedPages(rand, 3000)
  // Requests of 4 pages, not drained: the main thread allocates from each new chunk while the worker faults it in.
  for (let off = 0; off < data.length; off += 4 * PAGE) await dev.write(data.subarray(off, off + 4 * PAGE), off)
  await dev.drain()
  const made = dev.poolChunks - before
  t.ok(made >= 3, `${made} shared chunks made`)
  await until(t, 'the worker faulted in every new chunk', () => dev.kcompressdStats().populated === made)
  t.equal(show(dev, 'populated_chunks'), `${made}\n`, 'zramfuse/populated_chunks')
  t.same(await read(dev, data.length, 0), data, 'every page reads back')
  poolOf(dev).verify()
  const inline = device(t, 'zstd', { workers: 0 }, 4096)
  await inline.write(data, 0)
  t.same(dataStats(dev), dataStats(inline), 'mm_stat data figures equal the inline device')
})

t.test('reset while a worker holds reservations: the new pool starts empty and only new ones are used', async (t) => {
  const rand = prng(seed + 31)
  const dev = device(t, 'lz4', { workers: 1, kcompressd: { inlineWhenCheaper: false } })
  await warm(dev)
  await writeDrained(dev, mixedPages(rand, 64), 0)
  const before = dev.kcompressdStats()
  t.ok(before.reserved > 0 && before.written > 0, 'precondition: reservations held and used')
  dev.reset()
  t.equal(poolOf(dev).objectCount, 0, 'reset frees every object, the reservations with them')
  t.equal(dev.kcompressdStats().reserved, 0)
  t.equal(dev.stats().memUsedTotal, 0)
  dev.initialise(256 * PAGE)
  const data = mixedPages(rand, 64)
  await writeDrained(dev, data, 0)
  const after = dev.kcompressdStats()
  t.ok(after.written > before.written, 'workers write in place again, into the new pool')
  t.same(await read(dev, data.length, 0), data, 'the new data reads back')
  poolOf(dev).verify()
  t.equal(poolOf(dev).objectCount, pagesInPool(dev) + after.reserved, 'no object of the old pool survives')
})

t.test('a worker that dies frees the reservations it held, once', async (t) => {
  const rand = prng(seed + 37)
  const logged: object[] = []
  const dev = device(t, 'lz4', {
    workers: 1, log: errorLog(logged), kcompressd: { inlineWhenCheaper: false, fault: { every: 24, kind: 'exit' } },
  })
  await warm(dev)
  const data = mixedPages(rand, 160)
  await writeDrained(dev, data, 0)
  await until(t, 'a replacement worker is up', () => dev.kcompressdStats().workers === 1 && dev.kcompressdStats().fifoDepth === 0)
  const st = dev.kcompressdStats()
  t.ok(st.workerErrors > 0, `${st.workerErrors} pages outlived their worker`)
  t.ok(st.written > 0, 'results were written in place between the deaths')
  t.same(await read(dev, data.length, 0), data, 'every page reads back')
  poolOf(dev).verify()
  t.equal(poolOf(dev).objectCount, pagesInPool(dev) + st.reserved, 'no reservation of a dead worker is left behind')
  dev.setWorkers(0)
  await until(t, 'reservations freed', () => dev.kcompressdStats().reserved === 0)
  t.equal(poolOf(dev).objectCount, pagesInPool(dev))
})

t.test('flush (fsync of the block file) commits what is staged and frees the reservations; so does idleness', async (t) => {
  const rand = prng(seed + 41)
  const dev = device(t, 'lz4', { workers: 1, kcompressd: { inlineWhenCheaper: false, delayMs: 5 } }, 1024)
  await warm(dev)
  const data = mixedPages(rand, 200)
  await writeDrained(dev, data.subarray(0, 100 * PAGE), 0)
  t.ok(dev.kcompressdStats().reserved > 0, 'precondition: reservations held')
  await dev.write(data.subarray(100 * PAGE), 100 * PAGE)
  t.ok(dev.kcompressdStats().fifoDepth > 0, 'precondition: pages staged')
  await dev.flush()
  const st = dev.kcompressdStats()
  t.equal(st.fifoDepth, 0, 'nothing staged after the flush')
  t.equal(st.reserved, 0, 'no reservation left')
  t.equal(poolOf(dev).objectCount, pagesInPool(dev), 'every pool object holds a page')
  const inline = device(t, 'lz4', { workers: 0 }, 1024)
  await inline.write(data, 0)
  t.same(dataStats(dev), dataStats(inline), 'compr_data_size and the rest as the inline device right after the flush')
  poolOf(dev).verify()
  t.same(await read(dev, data.length, 0), data)

  await writeDrained(dev, mixedPages(rand, 40), 300 * PAGE)
  t.ok(dev.kcompressdStats().reserved > 0, 'writing again reserves again')
  await until(t, 'reservations freed once nothing has been staged for a while', () => dev.kcompressdStats().reserved === 0)
  t.equal(poolOf(dev).objectCount, pagesInPool(dev))
  const before = dev.kcompressdStats().written
  await writeDrained(dev, mixedPages(rand, 40), 400 * PAGE)
  t.ok(dev.kcompressdStats().written > before, 'and the next burst writes in place again')
  poolOf(dev).verify()
})
