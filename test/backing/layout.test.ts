import t, { type Test } from 'tap'
import { mkdtempSync, openSync, readSync, rmSync, writeSync, closeSync, statSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { BlockLayout } from '../../src/backing/block-layout'
import { LowerFile } from '../../src/backing/lower-file'
import { PackedLayout, type RecordOwner } from '../../src/backing/packed-layout'
import { ReadEpochs, blocksTouched } from '../../src/backing/layout'
import { Errno, ErrnoError } from '../../src/errno'
import { errnoOf, prng, seedFromEnv } from '../helpers/pages'

const seed = seedFromEnv(9090)
t.comment(`seed ${seed} (replay with ZRAMFUSE_SEED=${seed})`)

function tmpFile(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'zf-backing-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, 'lower')
}

function payload(rand: () => number, len: number): Buffer {
  const b = Buffer.alloc(len)
  for (let i = 0; i < len; i++) b[i] = Math.floor(rand() * 256)
  return b
}

/** A page table stand-in: page index -> location. */
class Owner implements RecordOwner {
  at = new Map<number, number>()
  lens = new Map<number, number>()
  constructor(private readonly layout: PackedLayout) {}
  isAt(index: number, location: number): boolean {
    return this.at.get(index) === location
  }
  relocate(index: number, from: number, to: number): boolean {
    if (this.at.get(index) !== from) return false
    this.at.set(index, to)
    this.layout.free(from, this.lens.get(index) as number)
    return true
  }
}

t.test('blocksTouched counts the 4 KiB blocks a byte range touches', async (t) => {
  t.equal(blocksTouched(0, 4096), 1)
  t.equal(blocksTouched(1, 4096), 2)
  t.equal(blocksTouched(4095, 2), 2)
  t.equal(blocksTouched(8192, 1), 1)
  t.equal(blocksTouched(0, 0), 0)
})

t.test('ReadEpochs holds a release until reads that started before it finish', async (t) => {
  const e = new ReadEpochs()
  let released = 0
  e.defer(() => released++)
  t.equal(released, 1, 'no read in flight: released at once')
  const r1 = e.beginRead()
  e.defer(() => released++)
  t.equal(released, 1, 'held while r1 runs')
  const r2 = e.beginRead()
  e.endRead(r1)
  t.equal(released, 2, 'r2 started after the free: it does not hold it')
  e.endRead(r2)
})

t.test('open: a missing file is created 0600; a bad path gets open(2)\'s errno', async (t) => {
  const path = tmpFile(t)
  const f = LowerFile.open(path)
  t.equal(statSync(path).mode & 0o777, 0o600)
  t.equal(f.capacityBytes, Infinity)
  f.close()
  try {
    LowerFile.open('/nonexistent-dir/x')
    t.fail('opened')
  } catch (err) {
    t.equal((err as ErrnoError).errno, Errno.ENOENT)
  }
  try {
    LowerFile.open('/proc')
    t.fail('opened a directory')
  } catch (err) {
    t.equal((err as ErrnoError).errno, Errno.EISDIR)
  }
})

t.test('block layout: first-fit blocks, raw and compressed payloads read back, freed blocks reused', async (t) => {
  const file = LowerFile.open(tmpFile(t))
  t.teardown(() => file.close())
  const layout = new BlockLayout({ file, devicePages: 4 })
  const rand = prng(seed)
  const raw = payload(rand, 4096)
  const comp = payload(rand, 1000)
  const b0 = await layout.append(0, raw, 0, true)
  const b1 = await layout.append(1, comp, 0, false)
  t.same([b0, b1], [0, 1])
  t.equal(layout.bdCount, 2)
  t.equal(layout.bdWrites, 2)
  const out = Buffer.alloc(4096)
  const r0 = await layout.read(b0, 0, 4096, out)
  t.ok(Buffer.from(r0).equals(raw), 'raw page into out')
  const r1 = await layout.read(b1, 1, 1000, out)
  t.ok(Buffer.from(r1).equals(comp), 'compressed bytes')
  t.equal(layout.bdReads, 2)
  layout.free(b0, 4096)
  t.equal(layout.bdCount, 1)
  t.equal(await layout.append(2, comp, 0, false), 0, 'freed block 0 reused first')
  await layout.append(3, comp, 0, false)
  await layout.append(4, comp, 0, false)
  t.equal(await errnoOf(() => layout.append(5, comp, 0, false)), Errno.ENOSPC, 'no more blocks than device pages')
})

t.test('packed layout: records read back, checksums catch a flipped byte on that record only', async (t) => {
  const path = tmpFile(t)
  const file = LowerFile.open(path)
  t.teardown(() => file.close())
  const layout = new PackedLayout({ file, devicePages: 1024, segmentBytes: 64 * 1024 })
  const rand = prng(seed + 1)
  const pages: Buffer[] = []
  const locs: Promise<number>[] = []
  for (let i = 0; i < 100; i++) {
    const p = payload(rand, 200 + Math.floor(rand() * 3000))
    pages.push(p)
    locs.push(layout.append(i, p, 1, false))
  }
  await layout.flush()
  const at = await Promise.all(locs)
  const bytes = pages.reduce((n, p) => n + p.length + 16, 0)
  t.equal(layout.liveBytes, bytes)
  t.ok(layout.bdWrites * 4096 <= bytes + 4096 * layout.segmentsInUse * 2, `bd_writes ${layout.bdWrites} blocks for ${bytes} bytes`)
  const minBlocks = Math.ceil(bytes / 4096)
  t.ok(layout.bdCount >= minBlocks && layout.bdCount <= minBlocks + layout.segmentsInUse, `bd_count ${layout.bdCount}: written bytes per segment, rounded up (${minBlocks}+)`)
  for (let i = 0; i < 100; i++) {
    const got = await layout.read(at[i], i, pages[i].length)
    if (!Buffer.from(got).equals(pages[i])) t.fail(`page ${i} differs`)
  }
  // The wrong page index or length is refused too (a stale location).
  t.equal(await errnoOf(() => layout.read(at[5], 6, pages[5].length)), Errno.EIO)
  // Flip one byte inside record 10's payload.
  const fd = openSync(path, 'r+')
  const one = Buffer.alloc(1)
  readSync(fd, one, 0, 1, at[10] + 16 + 7)
  one[0] ^= 0x40
  writeSync(fd, one, 0, 1, at[10] + 16 + 7)
  closeSync(fd)
  t.equal(await errnoOf(() => layout.read(at[10], 10, pages[10].length)), Errno.EIO)
  t.equal(layout.checksumErrors, 2)
  t.ok(Buffer.from(await layout.read(at[9], 9, pages[9].length)).equals(pages[9]), 'neighbour before intact')
  t.ok(Buffer.from(await layout.read(at[11], 11, pages[11].length)).equals(pages[11]), 'neighbour after intact')
})

t.test('packed layout: a flush mid-segment keeps appending to the same segment', async (t) => {
  const file = LowerFile.open(tmpFile(t))
  t.teardown(() => file.close())
  const layout = new PackedLayout({ file, devicePages: 64, segmentBytes: 64 * 1024 })
  const a = layout.append(0, Buffer.alloc(100, 1), 0, false)
  await layout.flush()
  const b = layout.append(1, Buffer.alloc(100, 2), 0, false)
  await layout.flush()
  t.equal(await b, (await a) + 116, 'dense: the second record follows the first')
  t.equal(layout.segmentsInUse, 1)
})

t.test('packed layout: 10x rewrite with cleaning keeps the file under 2x the live bytes', async (t) => {
  const path = tmpFile(t)
  const file = LowerFile.open(path)
  t.teardown(() => file.close())
  const seg = 256 * 1024
  const layout = new PackedLayout({ file, devicePages: 4096, segmentBytes: seg })
  const owner = new Owner(layout)
  const rand = prng(seed + 2)
  const pages = 1024
  let maxAllocated = 0
  for (let round = 0; round < 10; round++) {
    const writes: Promise<void>[] = []
    for (let i = 0; i < pages; i++) {
      const p = payload(rand, 300 + Math.floor(rand() * 2000))
      const old = owner.at.get(i)
      const oldLen = owner.lens.get(i)
      owner.at.delete(i)
      if (old !== undefined) layout.free(old, oldLen as number)
      owner.lens.set(i, p.length)
      writes.push(layout.append(i, p, 0, false).then((loc) => { owner.at.set(i, loc) }))
    }
    await layout.flush()
    await Promise.all(writes)
    await layout.clean(owner)
    // Retired segments are punched on the thread pool after clean() returns: measure once they are.
    await layout.punchesSettled()
    // What is left allocated is the segments in use: every retired one is out of the file.
    if (file.allocatedBytes() > layout.bdCount * 4096 + 64 * 1024) t.fail(`round ${round}: ${file.allocatedBytes()} bytes allocated, ${layout.bdCount * 4096} in use`)
    maxAllocated = Math.max(maxAllocated, file.allocatedBytes())
  }
  const live = layout.liveBytes
  t.comment(`live ${live} bytes, file allocated at most ${maxAllocated} (${(maxAllocated / live).toFixed(2)}x), ${layout.segmentsCleaned} segments cleaned`)
  t.ok(layout.segmentsCleaned > 0, 'segments were cleaned')
  t.ok(layout.segmentsPunched >= layout.segmentsCleaned, `every cleaned segment was punched (${layout.segmentsPunched})`)
  t.equal(layout.punchErrors, 0, 'no punch refused')
  t.ok(maxAllocated < 2 * live, 'allocated < 2x live')
  // Every page still reads back from wherever cleaning put it.
  for (let i = 0; i < pages; i += 97) {
    await layout.read(owner.at.get(i) as number, i, owner.lens.get(i) as number)
  }
})

t.test('close waits for I/O in flight: a pending write never lands in a file that reuses the descriptor', async (t) => {
  const path = tmpFile(t)
  const file = LowerFile.open(path)
  const big = Buffer.alloc(8 << 20, 0x5a)
  const w = file.pwrite(big, 0, big.length, 0)
  file.close()
  t.notOk(file.isOpen, 'closed for new I/O at once')
  t.equal(await errnoOf(() => file.pwrite(big, 0, 16, 0)), Errno.EIO, 'new I/O is refused')
  await w
  t.equal(statSync(path).size, big.length, 'the write in flight completed into its own file')
})
