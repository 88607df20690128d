import t, { type Test } from 'tap'
import { ZramDevice } from '../../src/device/zram-device'
import { zstd } from '../../src/codec/zstd'
import { ErrnoError, Errno } from '../../src/errno'
import { makePage, PAGE_KINDS, prng, seedFromEnv } from '../helpers/pages'

/*
 * The asynchronous codec (zstd) compresses and decompresses the pages of one request
 * concurrently. These tests pin what that must not change: commit order, mem_limit semantics,
 * failures reported once with EIO and never as an unhandled rejection, and reads that see whole
 * pages only.
 */

const seed = seedFromEnv(9117)
t.comment(`seed ${seed} (replay with ZRAMFUSE_SEED=${seed})`)

const PAGE = 4096

function zstdDevice(size: number): ZramDevice {
  const dev = new ZramDevice(0, { workers: 0 })
  dev.setAlgorithm('zstd')
  dev.initialise(size)
  return dev
}

async function read(dev: ZramDevice, len: number, pos: number): Promise<Buffer> {
  const out = Buffer.alloc(len, 0xcc)
  const n = await dev.read(out, pos)
  return out.subarray(0, n)
}

async function errnoOf(p: () => unknown): Promise<number | null> {
  try {
    await p()
    return null
  } catch (err) {
    return err instanceof ErrnoError ? err.errno : -1
  }
}

/** Replace zstd's compress/decompress for one test; restored on teardown. */
function patchZstd(t: Test, patch: Partial<Pick<typeof zstd, 'compress' | 'decompress'>>): void {
  const saved = { compress: zstd.compress, decompress: zstd.decompress }
  Object.assign(zstd, patch)
  t.teardown(() => {
    Object.assign(zstd, saved)
  })
}

t.test('a 128 KiB request of mixed pages round-trips, aligned and unaligned', async (t) => {
  const dev = zstdDevice(1024 * 1024)
  const rand = prng(seed)
  const data = Buffer.concat(Array.from({ length: 40 }, (_, i) => makePage(PAGE_KINDS[i % PAGE_KINDS.length]!, rand)))
  await dev.write(data.subarray(0, 32 * PAGE), 0)
  t.same(await read(dev, 32 * PAGE, 0), data.subarray(0, 32 * PAGE), 'aligned')
  // Unaligned: partial head and tail pages are read-modify-written around 31 whole ones.
  await dev.write(data.subarray(100, 100 + 32 * PAGE), 64 * PAGE + 100)
  t.same(await read(dev, 32 * PAGE, 64 * PAGE + 100), data.subarray(100, 100 + 32 * PAGE), 'unaligned')
  t.same(await read(dev, 100, 64 * PAGE), Buffer.alloc(100), 'bytes before the unaligned write stay zero')
  const s = dev.stats()
  t.equal(s.origDataSize, (32 + 33) * PAGE, 'every touched page is stored once')
})

t.test('mem_limit inside one request: pages before the failure are stored, the rest keep their old data', async (t) => {
  const dev = zstdDevice(4 * 1024 * 1024)
  const rand = prng(seed + 1)
  // Same-filled old pages hold no pool memory, so the new ones need 32 pool pages against 16 allowed.
  const old = Buffer.concat(Array.from({ length: 32 }, () => makePage('pattern', rand)))
  await dev.write(old, 0)
  dev.setMemLimit(dev.stats().memUsedTotal + 16 * PAGE)
  const incompressible = Buffer.concat(Array.from({ length: 32 }, () => makePage('random', rand)))
  t.equal(await errnoOf(() => dev.write(incompressible, 0)), Errno.EIO, 'the request fails with EIO')
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

t.test('a compression failure in the middle of a request: EIO, counted once, no unhandled rejection', async (t) => {
  const dev = zstdDevice(1024 * 1024)
  const rand = prng(seed + 2)
  const real = zstd.compress
  let calls = 0
  patchZstd(t, {
    compress: (page, level) => (++calls === 3 ? Promise.reject(new Error('injected')) : real(page, level)),
  })
  const data = Buffer.concat(Array.from({ length: 8 }, () => makePage('text', rand)))
  // A partial tail page makes the loop await a read after the failing compression was started.
  t.equal(await errnoOf(() => dev.write(data.subarray(0, 8 * PAGE - 10), 0)), Errno.EIO)
  t.equal(dev.stats().failedWrites, 1)
  t.same(await read(dev, 2 * PAGE, 0), data.subarray(0, 2 * PAGE), 'the pages before the failure were committed')
  t.same(await read(dev, PAGE, 2 * PAGE), Buffer.alloc(PAGE), 'the failed page kept its old contents (zeros)')
  await dev.write(data, 0)
  t.same(await read(dev, 8 * PAGE, 0), data, 'the device keeps working')
})

t.test('a decompression failure in a multi-page read: EIO after every page settled', async (t) => {
  const dev = zstdDevice(1024 * 1024)
  const rand = prng(seed + 3)
  const data = Buffer.concat(Array.from({ length: 16 }, () => makePage('text', rand)))
  await dev.write(data, 0)
  const real = zstd.decompress
  let calls = 0
  let pendingAfterFailure = 0
  let failed = false
  patchZstd(t, {
    decompress: async (src, out) => {
      if (++calls === 2) {
        failed = true
        throw new Error('injected')
      }
      await real(src, out)
      if (failed) pendingAfterFailure++
    },
  })
  const out = Buffer.alloc(16 * PAGE)
  t.equal(await errnoOf(() => dev.read(out, 0)), Errno.EIO)
  t.equal(dev.stats().failedReads, 1)
  t.equal(calls, 16, 'every page was attempted')
  t.ok(pendingAfterFailure > 0, `pages still decompressing when one failed were waited for (${pendingAfterFailure})`)
})

t.test(`concurrent multi-page reads during writes see each page whole, old or new (seed ${seed})`, async (t) => {
  const pages = 64
  const dev = zstdDevice(pages * PAGE)
  const rand = prng(seed + 4)
  const versions: Buffer[][] = Array.from({ length: pages }, () => [Buffer.alloc(PAGE)])
  for (let round = 0; round < 20; round++) {
    const start = Math.floor(rand() * (pages - 32))
    const n = 1 + Math.floor(rand() * 32)
    const data = Buffer.concat(Array.from({ length: n }, () => makePage(PAGE_KINDS[Math.floor(rand() * PAGE_KINDS.length)]!, rand)))
    for (let i = 0; i < n; i++) versions[start + i]!.push(data.subarray(i * PAGE, (i + 1) * PAGE))
    const readers = Array.from({ length: 3 }, () => read(dev, 32 * PAGE, Math.floor(rand() * (pages - 32)) * PAGE))
    const [, ...got] = await Promise.all([dev.write(data, start * PAGE), ...readers])
    for (const buf of got) {
      for (let o = 0; o < buf.length; o += PAGE) {
        const page = buf.subarray(o, o + PAGE)
        if (!versions.some((v) => v.some((candidate) => candidate.equals(page)))) {
          t.fail(`round ${round}: a read returned a page that was never written`)
          return
        }
      }
    }
  }
  const final = await read(dev, pages * PAGE, 0)
  for (let i = 0; i < pages; i++) {
    t.same(final.subarray(i * PAGE, (i + 1) * PAGE), versions[i]![versions[i]!.length - 1], `page ${i} holds its last write`)
  }
})
