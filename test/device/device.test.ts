import t, { type Test } from 'tap'
import { ZramDevice } from '../../src/device/zram-device'
import type { Codec, CodecContext } from '../../src/codec/codec'
import { findCodec } from '../../src/codec/registry'
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

// ---- one synchronous path: what the asynchronous one pinned still holds ----

const PAGE = 4096

/** Wrap the contexts `codec` makes from now on (fault injection); restored on teardown. */
function patchContexts(t: Test, codec: Codec, wrap: (real: CodecContext) => CodecContext): void {
  const real = codec.createContext
  ;(codec as { createContext: Codec['createContext'] }).createContext = (params) => wrap(real.call(codec, params))
  t.teardown(() => {
    ;(codec as { createContext: Codec['createContext'] }).createContext = real
  })
}

function device(algorithm: string, size: number): ZramDevice {
  const dev = new ZramDevice(0, { workers: 0 })
  dev.setAlgorithm(algorithm)
  dev.initialise(size)
  return dev
}

for (const algorithm of ['lz4', 'zstd']) {
  t.test(`${algorithm}: a 128 KiB request of mixed pages round-trips, aligned and unaligned, synchronously`, async (t) => {
    const dev = device(algorithm, MiB)
    const rand = prng(seed + 10)
    const data = Buffer.concat(Array.from({ length: 40 }, (_, i) => makePage(PAGE_KINDS[i % PAGE_KINDS.length]!, rand)))
    t.equal(dev.write(data.subarray(0, 32 * PAGE), 0), undefined, 'write answers synchronously')
    const out = Buffer.alloc(32 * PAGE)
    t.equal(dev.read(out, 0), 32 * PAGE, 'read answers synchronously')
    t.same(out, data.subarray(0, 32 * PAGE), 'aligned')
    // Unaligned: partial head and tail pages are read-modify-written around 31 whole ones.
    await write(dev, data.subarray(100, 100 + 32 * PAGE), 64 * PAGE + 100)
    t.same(await read(dev, 32 * PAGE, 64 * PAGE + 100), data.subarray(100, 100 + 32 * PAGE), 'unaligned')
    t.same(await read(dev, 100, 64 * PAGE), Buffer.alloc(100), 'bytes before the unaligned write stay zero')
    // A read into a buffer at an odd byte offset (a FUSE buffer need not be aligned).
    const area = Buffer.alloc(4 * PAGE + 3)
    t.equal(dev.read(area.subarray(3), 0), 4 * PAGE)
    t.same(area.subarray(3), data.subarray(0, 4 * PAGE), 'whole pages decompress straight into an unaligned view')
    t.equal(dev.stats().origDataSize, (32 + 33) * PAGE, 'every touched page is stored once')
  })
}

t.test('mem_limit inside one request: pages before the failure are stored, the rest keep their old data', async (t) => {
  const dev = device('zstd', 4 * MiB)
  const rand = prng(seed + 11)
  // Same-filled old pages hold no pool memory, so the new ones need 32 pool pages against 16 allowed.
  const old = Buffer.concat(Array.from({ length: 32 }, () => makePage('pattern', rand)))
  await write(dev, old, 0)
  dev.setMemLimit(dev.stats().memUsedTotal + 16 * PAGE)
  const incompressible = Buffer.concat(Array.from({ length: 32 }, () => makePage('random', rand)))
  t.equal(errnoOf(() => dev.write(incompressible, 0)), Errno.EIO, 'the request fails with EIO')
  const s = dev.stats()
  t.equal(s.failedWrites, 1, 'failed_writes counts the request once')
  t.ok(s.memUsedTotal <= s.memLimit, 'the pool stays within mem_limit')
  const after = await read(dev, 32 * PAGE, 0)
  let newPages = 0
  for (let i = 0; i < 32; i++) {
    const got = after.subarray(i * PAGE, (i + 1) * PAGE)
    const isNew = got.equals(incompressible.subarray(i * PAGE, (i + 1) * PAGE))
    const isOld = got.equals(old.subarray(i * PAGE, (i + 1) * PAGE))
    if (!isNew && !isOld) {
      t.fail(`page ${i} is neither the old nor the new data`)
      return
    }
    if (isNew && newPages !== i) {
      t.fail(`page ${i} was committed after an earlier page failed`)
      return
    }
    if (isNew) newPages++
  }
  t.ok(newPages > 0 && newPages < 32, `a prefix of the request was committed (${newPages} pages)`)
  t.equal(s.origDataSize, 32 * PAGE, 'orig_data_size still counts 32 pages')
})

/** compressBatch over a context's compress(), page by page, as the addon's contract has it. */
function batchOver(compress: CodecContext['compress']): CodecContext['compressBatch'] {
  return (src, srcOff, pages, dst, stride, sizes) => {
    for (let i = 0; i < pages; i++) {
      try {
        sizes[i] = compress(src.subarray(srcOff + i * PAGE, srcOff + (i + 1) * PAGE), dst.subarray(i * stride, (i + 1) * stride))
      } catch {
        return i
      }
    }
    return -1
  }
}

for (const [what, length] of [['page by page', 4 * PAGE - 10], ['a batch compressed ahead', 8 * PAGE - 10]] as const) {
  t.test(`a compression failure in the middle of a request (${what}): EIO, counted once, the pages before it stored`, async (t) => {
    const rand = prng(seed + 12)
    const data = Buffer.concat(Array.from({ length: 8 }, () => makePage('text', rand)))
    const bad = Buffer.from(data.subarray(2 * PAGE, 3 * PAGE))
    let batches = 0
    patchContexts(t, findCodec('zstd')!, (real) => {
      // The codec fails on one page's contents, every time, as a real codec does.
      const compress = (src: Uint8Array, dst: Uint8Array): number => {
        if (Buffer.compare(src, bad) === 0) throw new Error('injected')
        return real.compress(src, dst)
      }
      const batch = batchOver(compress)
      return {
        compress,
        decompress: (src, dst) => real.decompress(src, dst),
        decompressAt: (...a) => real.decompressAt(...a),
        compressBatch: (...a) => (batches++, batch(...a)),
        decompressBatch: (...a) => real.decompressBatch(...a),
      }
    })
    const dev = device('zstd', MiB)
    t.equal(errnoOf(() => dev.write(data.subarray(0, length), 0)), Errno.EIO)
    t.equal(batches, length > 4 * PAGE ? 1 : 0, 'the write was compressed ahead exactly when it had 4 whole pages or more')
    t.equal(dev.stats().failedWrites, 1)
    t.same(await read(dev, 2 * PAGE, 0), data.subarray(0, 2 * PAGE), 'the pages before the failure were committed')
    t.same(await read(dev, PAGE, 2 * PAGE), Buffer.alloc(PAGE), 'the failed page kept its old contents (zeros)')
    t.same(await read(dev, PAGE, 3 * PAGE), Buffer.alloc(PAGE), 'nothing after it was stored')
    data.fill(7, 2 * PAGE, 3 * PAGE)
    await write(dev, data, 0)
    t.same(await read(dev, 8 * PAGE, 0), data, 'the device keeps working')
  })
}

/** decompressBatch over a context's decompressAt(), page by page, as the addon's contract has it. */
function decompressBatchOver(decompressAt: CodecContext['decompressAt']): CodecContext['decompressBatch'] {
  return (chunks, desc, pages, dst) => {
    for (let k = 0; k < pages; k++) {
      const d = desc.subarray(k * 7, k * 7 + 7)
      try {
        decompressAt(chunks[d[0]!]!, d[1]!, d[2]!, d[3]! >= 0 ? chunks[d[3]!]! : null, d[4]!, d[3]! >= 0 ? d[5]! : 0, dst, d[6]!, PAGE)
      } catch {
        return k
      }
    }
    return -1
  }
}

for (const [what, pages] of [['page by page', 3], ['a batch', 16]] as const) {
  t.test(`a decompression failure in a multi-page read (${what}): EIO, failed_reads counted once`, async (t) => {
    const rand = prng(seed + 13)
    const data = Buffer.concat(Array.from({ length: 16 }, () => makePage('text', rand)))
    const bad = Buffer.from(data.subarray(PAGE, 2 * PAGE))
    let batches = 0
    patchContexts(t, findCodec('lz4')!, (real) => {
      // The object of page 1 fails every time it is decoded, as a corrupt one would.
      const decompressAt: CodecContext['decompressAt'] = (...a) => {
        real.decompressAt(...a)
        if (Buffer.compare(a[6].subarray(a[7], a[7] + a[8]), bad) === 0) throw new Error('injected')
      }
      const batch = decompressBatchOver(decompressAt)
      return {
        compress: (src, dst) => real.compress(src, dst),
        compressBatch: (...a) => real.compressBatch(...a),
        decompress: (src, dst) => real.decompress(src, dst),
        decompressAt,
        decompressBatch: (...a) => (batches++, batch(...a)),
      }
    })
    const dev = device('lz4', MiB)
    await write(dev, data, 0)
    t.equal(errnoOf(() => dev.read(Buffer.alloc(pages * PAGE), 0)), Errno.EIO)
    t.equal(batches, pages >= 4 ? 1 : 0, 'the read was batched exactly when it had 4 pages or more')
    t.equal(dev.stats().failedReads, 1)
    t.same(await read(dev, (pages - 2) * PAGE, 2 * PAGE), data.subarray(2 * PAGE, pages * PAGE), 'the pages after it still read')
    data.fill(9, PAGE, 2 * PAGE - 1)
    await write(dev, data, 0)
    t.same(await read(dev, 16 * PAGE, 0), data, 'rewritten, the whole range reads back')
  })
}

t.test('algorithm_params: level and dictionary reach the codec at disksize; bad ones fail there with EINVAL', async (t) => {
  const rand = prng(seed + 14)
  const pages = Array.from({ length: 32 }, () => makePage('text', rand))
  const dict = Buffer.concat(pages.slice(0, 8))
  const stored = (dev: ZramDevice): number => {
    for (let i = 8; i < 32; i++) dev.write(pages[i]!, (i - 8) * PAGE)
    return dev.stats().comprDataSize
  }
  for (const algorithm of ['lz4', 'zstd']) {
    const plain = device(algorithm, MiB)
    const withDict = new ZramDevice(0, { workers: 0 })
    withDict.setAlgorithm(algorithm)
    withDict.setParams({ level: null, dict })
    t.equal(withDict.compressionDict?.length, dict.length, 'the dictionary is kept')
    t.ok(withDict.compressionDict?.buffer instanceof SharedArrayBuffer, 'in shared memory, for kcompressd')
    withDict.initialise(MiB)
    const a = stored(plain)
    const b = stored(withDict)
    t.ok(b < a, `${algorithm}: ${a} bytes without, ${b} with a dictionary`)
    t.same(await read(withDict, 24 * PAGE, 0), Buffer.concat(pages.slice(8)), `${algorithm}: pages read back`)
    t.equal(errnoOf(() => withDict.setParams({ level: null, dict: null })), Errno.EBUSY, 'EBUSY once initialised')
    withDict.reset()
    t.equal(withDict.compressionDict, null, 'reset forgets the dictionary')
    t.equal(withDict.compressionLevel, null)
  }
  const big = new ZramDevice(0, { workers: 0 })
  big.setParams({ level: null, dict: Buffer.alloc(100 * 1024, 7) })
  t.equal(errnoOf(() => big.initialise(MiB)), Errno.EINVAL, 'lz4: a dictionary over 64 KiB fails disksize with EINVAL')
  t.notOk(big.initialised, 'and the device stays uninitialised')
  big.setParams({ level: null, dict: null })
  big.initialise(MiB)
  t.ok(big.initialised, 'without it, disksize works')
  const lz4Level = device('lz4', MiB)
  const fast = new ZramDevice(0, { workers: 0 })
  fast.setParams({ level: 64, dict: null })
  fast.initialise(MiB)
  t.ok(stored(fast) > stored(lz4Level), 'lz4 level= is the acceleration (backend_lz4)')
})

t.test('kcompressd workers compress with the device\'s level and dictionary: the same sizes as inline', async (t) => {
  const rand = prng(seed + 15)
  const pages = Array.from({ length: 64 }, (_, i) => makePage(i % 2 ? 'text' : 'binary', rand))
  const dict = Buffer.concat(pages.slice(0, 8))
  const data = Buffer.concat(pages.slice(8))
  const sizes: number[] = []
  for (const workers of [0, 1]) {
    const dev = new ZramDevice(0, { workers })
    t.teardown(() => dev.close())
    dev.setAlgorithm('zstd')
    dev.setParams({ level: 5, dict })
    dev.initialise(MiB)
    await dev.workersReady()
    for (let i = 0; i < 56; i++) dev.write(data.subarray(i * PAGE, (i + 1) * PAGE), i * PAGE)
    await dev.drain()
    if (workers > 0) t.ok(dev.kcompressdStats().completed > 0, `${dev.kcompressdStats().completed} pages compressed by the worker`)
    t.same(await read(dev, data.length, 0), data, `workers=${workers}: reads back`)
    sizes.push(dev.stats().comprDataSize)
  }
  t.equal(sizes[1], sizes[0], `compr_data_size ${sizes[0]} inline and through the worker`)
})

t.test('a read or write of more than 256 pages in one call: batches of 256, every page right', async (t) => {
  const rand = prng(seed + 15)
  const dev = device('lz4', 4 * MiB)
  const data = Buffer.concat(Array.from({ length: 600 }, (_, i) => makePage(i % 5 === 0 ? 'zero' : 'text', rand)))
  await write(dev, data, 0)
  t.same(await read(dev, data.length, 0), data, '600 pages read back in one call')
  t.same(await read(dev, 300 * PAGE - 100, 50), data.subarray(50, 300 * PAGE - 50), 'unaligned: partial pages at both ends')
})
