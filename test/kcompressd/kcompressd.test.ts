// kcompressd: staged writes, slow and failing workers, a full FIFO, reset, against a model.
// Seeded: replay with ZRAMFUSE_SEED=<seed>.
import t, { type Test } from 'tap'
import { ZramDevice, type ZramDeviceOptions } from '../../src/device/zram-device'
import { makePage, PAGE_KINDS, prng, seedFromEnv } from '../helpers/pages'

const seed = seedFromEnv(20260504)
t.comment(`seed ${seed} (replay with ZRAMFUSE_SEED=${seed})`)

const PAGE = 4096

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

/** Start the workers and wait until one batch went through (TS workers compile for a while under tap). */
async function warm(dev: ZramDevice): Promise<void> {
  await dev.kcompressd.ready()
  const last = dev.disksize - PAGE
  const page = Buffer.alloc(PAGE)
  for (let i = 0; i < PAGE; i++) page[i] = (i * 31) >> 3
  await dev.write(page, last)
  await dev.drain()
  await dev.discard(last, PAGE)
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

/** mm_stat figures that do not depend on allocation order: must match an inline device. */
function dataStats(dev: ZramDevice): object {
  const s = dev.stats()
  return { orig: s.origDataSize, compr: s.comprDataSize, same: s.samePages, huge: s.hugePages }
}

for (const algorithm of ['lz4', 'zstd']) {
  t.test(`${algorithm}: staged pages read back before and after their worker commits them`, async (t) => {
    const rand = prng(seed)
    const dev = device(t, algorithm, { workers: 1, kcompressd: { delayMs: 20 } })
    const pages = PAGE_KINDS.map((k) => makePage(k, rand))
    const data = Buffer.concat(pages)
    const r = dev.write(data, 0)
    if (algorithm === 'zstd') t.equal(r, undefined, 'an aligned zstd write whose pages all fit is answered synchronously')
    await r
    t.ok(dev.kcompressd.depth > 0, 'pages are staged, not yet compressed')
    t.same(await read(dev, data.length, 0), data, 'read-your-writes from the staging slots')
    t.same(await read(dev, 100, PAGE + 50), data.subarray(PAGE + 50, PAGE + 150), 'partial read of a staged page')
    await dev.drain()
    t.equal(dev.kcompressd.depth, 0, 'drained')
    t.same(await read(dev, data.length, 0), data, 'same data after commit')
    const inline = device(t, algorithm, { workers: 0 })
    await inline.write(data, 0)
    t.same(dataStats(dev), dataStats(inline), 'mm_stat data figures equal the inline device after draining')
    const st = dev.kcompressd.stats()
    t.equal(st.queued, st.completed + st.stale, 'every staged page was committed or dropped')
    t.equal(st.inlineFallbacks, 0)
    t.ok(st.batches >= 1)
  })

  t.test(`${algorithm}: random interleavings with slow workers never return stale data`, async (t) => {
    const rand = prng(seed ^ (algorithm === 'lz4' ? 1 : 2))
    const NPAGES = 24
    const dev = device(t, algorithm, { workers: 2, fifoSize: 12, kcompressd: { delayMs: 3 } }, NPAGES + 1)
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
        await sleep(Math.floor(rand() * 8))
      }
      if (op % 300 === 299) ok = await check(`after op ${op}`)
    }
    await dev.drain()
    if (ok) ok = await check('after draining')
    t.ok(ok, `${OPS} random operations agree with the model`)
    const st = dev.kcompressd.stats()
    t.comment(JSON.stringify(st))
    t.equal(st.fifoDepth, 0, 'nothing staged after draining')
    t.equal(st.queued, st.completed + st.stale, 'queued = completed + stale')
    t.ok(st.stale > 0, 'some results were superseded and dropped')
    t.ok(st.batches > 0)
    // Replaying the final contents inline gives the same mm_stat data figures.
    const inline = device(t, algorithm, { workers: 0 }, NPAGES + 1)
    for (let p = 0; p < NPAGES; p++) {
      const pg = model.subarray(p * PAGE, (p + 1) * PAGE)
      if (dev.pageAllocated(p)) await inline.write(Buffer.from(pg), p * PAGE)
    }
    t.same(dataStats(dev), dataStats(inline), 'mm_stat data figures match an inline device holding the same pages')
  })
}

t.test('FIFO full: the writer compresses inline, no hang', async (t) => {
  const rand = prng(seed + 7)
  const dev = device(t, 'lz4', { workers: 1, fifoSize: 4, kcompressd: { delayMs: 200 } })
  await warm(dev)
  const data = Buffer.concat(Array.from({ length: 64 }, () => makePage('text', rand)))
  const t0 = Date.now()
  for (let p = 0; p < 64; p++) await dev.write(data.subarray(p * PAGE, (p + 1) * PAGE), p * PAGE)
  t.ok(Date.now() - t0 < 150, `64 writes answered without waiting for the slow worker (${Date.now() - t0} ms)`)
  const st = dev.kcompressd.stats()
  t.equal(st.maxFifoDepth, 4, 'the FIFO filled up')
  t.equal(st.inlineFallbacks, 60, 'the other 60 pages were compressed inline')
  t.equal(st.fifoFullEvents, 1, 'one full episode')
  t.same(await read(dev, data.length, 0), data)
  await dev.drain()
  t.same(await read(dev, data.length, 0), data)
  const inline = device(t, 'lz4', { workers: 0 })
  await inline.write(data, 0)
  t.same(dataStats(dev), dataStats(inline))
})

for (const algorithm of ['lz4', 'zstd']) {
  t.test(`${algorithm}: a worker killed mid-batch loses nothing`, async (t) => {
    const rand = prng(seed + 11)
    const logged: object[] = []
    const log = { info() {}, debug() {}, warn() {}, error: (o: object) => void logged.push(o) }
    const dev = device(t, algorithm, { workers: 1, log, kcompressd: { delayMs: 300 } })
    await warm(dev)
    const base = dev.kcompressd.stats()
    const data = Buffer.concat(Array.from({ length: 32 }, (_, i) => makePage(PAGE_KINDS[i % PAGE_KINDS.length], rand)))
    await dev.write(data, 0)
    await sleep(50) // the batch is in the worker, which is asleep
    t.ok(dev.kcompressd.threads.length >= 1)
    for (const w of dev.kcompressd.threads) await w.terminate()
    await dev.drain()
    const st = dev.kcompressd.stats()
    t.ok(st.workerErrors >= 1, 'the failure was counted')
    t.ok(st.queued - base.queued >= 15, 'pages were staged')
    t.equal(st.completed - base.completed, st.queued - base.queued, 'every staged page committed (recompressed inline)')
    t.equal(logged.length, st.workerErrors, 'one log line per failed batch')
    t.match(logged[0], { event: 'kcompressd_worker_failed', batchPages: Number, algorithm })
    t.same(await read(dev, data.length, 0), data, 'data intact')
    // The pool keeps serving with a replacement worker.
    const more = makePage('binary', rand)
    await dev.write(more, 40 * PAGE)
    await dev.drain()
    t.same(await read(dev, PAGE, 40 * PAGE), more)
    t.equal(dev.kcompressd.stats().workerErrors, st.workerErrors, 'the new worker works')
  })
}

for (const fault of ['throw', 'exit'] as const) {
  t.test(`injected worker fault (${fault}) on every third batch: nothing lost`, async (t) => {
    const rand = prng(seed + 13)
    const dev = device(t, 'lz4', { workers: 1, log: { info() {}, debug() {}, warn() {}, error() {} }, kcompressd: { fault: (b) => (b % 3 === 1 ? fault : null) } })
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
    const st = dev.kcompressd.stats()
    t.ok(st.workerErrors >= 1, `${st.workerErrors} failed batches`)
    t.equal(st.queued, st.completed + st.stale)
    t.same(await read(dev, model.length, 0), model)
  })
}

t.test('reset with pages staged and in flight: stale results are dropped', async (t) => {
  const rand = prng(seed + 17)
  const dev = device(t, 'lz4', { workers: 1, kcompressd: { delayMs: 100 } })
  await warm(dev)
  await dev.write(Buffer.concat([makePage('text', rand), makePage('binary', rand)]), 0)
  await sleep(20)
  dev.reset()
  dev.initialise(256 * PAGE)
  t.same(await read(dev, 2 * PAGE, 0), Buffer.alloc(2 * PAGE), 'reset device reads zeros')
  await dev.drain()
  t.same(await read(dev, 2 * PAGE, 0), Buffer.alloc(2 * PAGE), 'still zeros once the old batch came back')
  t.equal(dev.stats().origDataSize, 0)
  t.ok(dev.kcompressd.stats().stale >= 1)
})

t.test('workers can be changed at run time, 0 compresses queued pages inline', async (t) => {
  const rand = prng(seed + 19)
  const dev = device(t, 'zstd', { workers: 1, kcompressd: { delayMs: 50 } })
  const data = Buffer.concat(Array.from({ length: 8 }, () => makePage('text', rand)))
  await dev.write(data, 0)
  dev.kcompressd.setWorkers(0)
  t.equal(dev.kcompressd.enabled, false)
  await dev.write(data, 8 * PAGE)
  await dev.drain()
  t.same(await read(dev, 2 * data.length, 0), Buffer.concat([data, data]))
  dev.kcompressd.setWorkers(2)
  await dev.write(data, 16 * PAGE)
  await dev.drain()
  t.same(await read(dev, data.length, 16 * PAGE), data)
  t.equal(dev.kcompressd.stats().fifoDepth, 0)
})
