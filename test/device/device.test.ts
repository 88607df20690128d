import t from 'tap'
import { ZramDevice } from '../../src/device/zram-device'
import { BYTES_PER_PAGE_METADATA } from '../../src/device/page-table'
import { ErrnoError, Errno } from '../../src/errno'
import { makePage, PAGE_KINDS, prng, seedFromEnv } from '../helpers/pages'

const seed = seedFromEnv(4242)
t.comment(`seed ${seed} (replay with ZRAMFUSE_SEED=${seed})`)

const MiB = 1024 * 1024

async function write(dev: ZramDevice, buf: Buffer, pos: number): Promise<void> {
  await dev.write(buf, pos)
}

async function read(dev: ZramDevice, len: number, pos: number): Promise<Buffer> {
  const out = Buffer.alloc(len, 0xcc)
  const n = await dev.read(out, pos)
  return out.subarray(0, n)
}

function errnoOf(fn: () => unknown): number | null {
  try {
    fn()
    return null
  } catch (err) {
    return err instanceof ErrnoError ? err.errno : -1
  }
}

t.test('page table costs 16 bytes of metadata per page', async (t) => {
  const dev = new ZramDevice(0)
  dev.initialise(64 * MiB)
  const pages = (64 * MiB) / 4096
  t.equal(dev.metadataBytes / pages, BYTES_PER_PAGE_METADATA)
  t.ok(BYTES_PER_PAGE_METADATA <= 16)
  t.comment(`metadata: ${dev.metadataBytes} bytes for ${pages} pages = ${dev.metadataBytes / pages} bytes/page`)
})

t.test('disksize rounds up to a page and is set once', async (t) => {
  const dev = new ZramDevice(0)
  t.notOk(dev.initialised)
  dev.initialise(5000)
  t.equal(dev.disksize, 8192)
  t.equal(errnoOf(() => dev.initialise(4096)), Errno.EBUSY)
  t.equal(errnoOf(() => new ZramDevice(1).initialise(0)), Errno.EINVAL)
})

for (const algorithm of ['lz4', 'zstd']) {
  t.test(`${algorithm}: stores each page kind as the kernel does`, async (t) => {
    const dev = new ZramDevice(0)
    dev.setAlgorithm(algorithm)
    dev.initialise(1 * MiB)
    t.same(await read(dev, 4096, 0), Buffer.alloc(4096), 'never-written page reads as zeros')
    t.equal(dev.stats().origDataSize, 0, 'reading does not allocate')

    const rand = prng(seed)
    const pages = PAGE_KINDS.map((k) => makePage(k, rand))
    for (let i = 0; i < pages.length; i++) await write(dev, pages[i], i * 4096)
    for (let i = 0; i < pages.length; i++) t.same(await read(dev, 4096, i * 4096), pages[i], `${PAGE_KINDS[i]} reads back`)

    const s = dev.stats()
    t.equal(s.origDataSize, 5 * 4096, 'orig_data_size counts same-filled pages too')
    t.equal(s.samePages, 2, 'zero and pattern pages are same-filled')
    t.equal(s.hugePages, 1, 'the random page is huge')
    t.equal(s.hugePagesSince, 1)
    t.ok(s.comprDataSize > 4096 && s.comprDataSize < 3 * 4096, `compr_data_size ${s.comprDataSize}: huge page counts 4096`)
    t.ok(s.memUsedTotal >= 4096 && s.memUsedTotal % 4096 === 0, `mem_used_total ${s.memUsedTotal} is whole pages`)
    t.equal(s.memUsedMax, s.memUsedTotal)

    // Overwriting frees the old contents first: a huge page replaced by zeros.
    await write(dev, Buffer.alloc(4096), 4 * 4096)
    const s2 = dev.stats()
    t.equal(s2.hugePages, 0)
    t.equal(s2.hugePagesSince, 1, 'huge_pages_since is cumulative')
    t.equal(s2.samePages, 3)
    t.equal(s2.origDataSize, 5 * 4096)
    t.equal(s2.comprDataSize, s.comprDataSize - 4096)
  })

  t.test(`${algorithm}: random unaligned I/O matches a model (seed ${seed})`, async (t) => {
    const size = 256 * 1024
    const dev = new ZramDevice(0)
    dev.setAlgorithm(algorithm)
    dev.initialise(size)
    const model = Buffer.alloc(size)
    const rand = prng(seed + 1)
    const ops = algorithm === 'lz4' ? 3000 : 600
    for (let op = 0; op < ops; op++) {
      const pos = Math.floor(rand() * size)
      const len = Math.min(size - pos, 1 + Math.floor(rand() * (rand() < 0.3 ? 20000 : 600)))
      if (rand() < 0.6) {
        const kind = PAGE_KINDS[Math.floor(rand() * PAGE_KINDS.length)]
        const data = Buffer.alloc(len)
        for (let o = 0; o < len; o += 4096) makePage(kind, rand).copy(data, o)
        await write(dev, data, pos)
        data.copy(model, pos)
      } else if (rand() < 0.9) {
        const got = await read(dev, len, pos)
        if (!got.equals(model.subarray(pos, pos + len))) {
          t.fail(`op ${op}: read ${len} at ${pos} differs from the model`)
          return
        }
      } else {
        await dev.discard(pos, len)
        model.fill(0, pos, pos + len)
      }
    }
    t.same(await read(dev, size, 0), model, 'whole device equals the model at the end')
    const s = dev.stats()
    t.ok(s.origDataSize <= size)
    dev.compact()
    t.same(await read(dev, size, 0), model, 'and after compaction')
  })
}

t.test('I/O past the end is refused, never truncated', async (t) => {
  const dev = new ZramDevice(0)
  dev.initialise(8192)
  t.equal(errnoOf(() => dev.write(Buffer.alloc(4096, 1), 8192)), Errno.ENOSPC)
  t.equal(errnoOf(() => dev.write(Buffer.alloc(4096, 1), 6144)), Errno.ENOSPC, 'straddling the end')
  t.same(await read(dev, 8192, 0), Buffer.alloc(8192), 'nothing of the refused writes landed')
  t.equal((await read(dev, 4096, 6144)).length, 2048, 'a read straddling the end is short, as on a block device')
  t.equal((await read(dev, 4096, 8192)).length, 0, 'a read at the end returns 0')
  const uninit = new ZramDevice(1)
  t.equal(errnoOf(() => uninit.write(Buffer.alloc(512), 0)), Errno.ENOSPC, 'uninitialised device has no space')
})

t.test('mem_limit: writes fail with EIO, failed_writes counts, stored data is unharmed', async (t) => {
  const dev = new ZramDevice(0)
  dev.initialise(4 * MiB)
  dev.setMemLimit(64 * 1024)
  const rand = prng(seed + 2)
  const stored: Buffer[] = []
  let refused = 0
  for (let i = 0; i < 64; i++) {
    const page = makePage('random', rand)
    try {
      await write(dev, page, i * 4096)
      stored.push(page)
    } catch (err) {
      t.equal((err as ErrnoError).errno, Errno.EIO)
      refused++
      break
    }
  }
  t.equal(refused, 1, 'a write was refused')
  t.equal(dev.stats().failedWrites, 1)
  t.ok(dev.stats().memUsedTotal <= 64 * 1024, 'pool stays within the limit')
  for (let i = 0; i < stored.length; i++) t.same(await read(dev, 4096, i * 4096), stored[i])
  t.same(await read(dev, 4096, stored.length * 4096), Buffer.alloc(4096), 'the refused page kept its old contents')
  // Same-filled pages need no pool memory and still succeed at the limit.
  await write(dev, Buffer.alloc(4096, 9), 60 * 4096)
  t.same(await read(dev, 4096, 60 * 4096), Buffer.alloc(4096, 9))
})

t.test('discard frees whole pages and counts notify_free', async (t) => {
  const dev = new ZramDevice(0)
  dev.initialise(64 * 1024)
  const rand = prng(seed + 3)
  for (let i = 0; i < 16; i++) await write(dev, makePage('text', rand), i * 4096)
  const before = dev.stats()
  const page0 = await read(dev, 4096, 0)
  await dev.discard(2048, 4 * 4096) // whole pages 1..3 are freed; the partial edges are zeroed
  const after = dev.stats()
  t.equal(after.notifyFree, 3)
  t.equal(after.origDataSize, before.origDataSize - 3 * 4096)
  t.same(await read(dev, 4096, 4096), Buffer.alloc(4096))
  t.same(await read(dev, 2048, 0), page0.subarray(0, 2048), 'bytes before the range are kept')
  t.same(await read(dev, 4 * 4096, 2048), Buffer.alloc(4 * 4096), 'the whole range reads as zeros')
  t.equal(dev.blockStat.discardIos, 1)
  t.equal(dev.blockStat.discardSectors, 32)
})

t.test('reset refuses while open, then returns to defaults', async (t) => {
  const dev = new ZramDevice(0)
  dev.setAlgorithm('zstd')
  dev.initialise(1 * MiB)
  dev.setMemLimit(MiB)
  await write(dev, makePage('text', prng(1)), 0)
  dev.opened()
  t.equal(errnoOf(() => dev.reset()), Errno.EBUSY)
  dev.released()
  dev.reset()
  t.equal(dev.disksize, 0)
  t.equal(dev.algorithm, 'lz4')
  t.same(dev.stats(), {
    origDataSize: 0, comprDataSize: 0, memUsedTotal: 0, memLimit: 0, memUsedMax: 0, samePages: 0,
    pagesCompacted: 0, hugePages: 0, hugePagesSince: 0, failedReads: 0, failedWrites: 0, invalidIo: 0, notifyFree: 0, missFree: 0,
  })
})

t.test('compaction releases pages after fragmentation', async (t) => {
  const dev = new ZramDevice(0)
  dev.initialise(16 * MiB)
  const rand = prng(seed + 4)
  const n = 2048
  for (let i = 0; i < n; i++) await write(dev, makePage('text', rand), i * 4096)
  for (let i = 0; i < n; i++) if (i % 3 !== 0) await dev.discard(i * 4096, 4096)
  const before = dev.stats().memUsedTotal
  const freed = dev.compact()
  const after = dev.stats()
  t.ok(freed > 0, `compact freed ${freed} pages`)
  t.equal(after.memUsedTotal, before - freed * 4096)
  t.equal(after.pagesCompacted, freed)
  t.comment(`mem_used_total ${before} -> ${after.memUsedTotal}`)
})
