/**
 * One page's contents in and out of memory: load a page from wherever it lives in memory (never
 * written, staged, same-filled, huge, a unit member, a compressed object), store a page as a
 * pattern, compressed or raw, and the batched forms of both that share the codec's helper thread.
 * The byte-range loops of requests (request-io.ts) and the other tiers build on these.
 */
import type { CodecContext } from '../codec/codec'
import { bufferSameFilled, fillPattern } from '../codec/same-filled'
import { Errno, ErrnoError } from '../errno'
import { PAGE_SIZE } from '../page'
import { ZsPool } from '../pool/zs-pool'
import type { Compression } from './compression'
import type { IoCounters } from './io-counters'
import { SLOT_ALLOCATED, SLOT_HUGE, SLOT_SAME, SLOT_STAGED, SLOT_UNIT, SLOT_WB } from './page-table'
import type { PoolLimits } from './pool-limits'
import type { PageTableView, SlotStore } from './slot-store'
import type { UnitStore } from './unit-store'

/** Room per page of compressAhead's output: two pages, as cbuf (zstd may need room beyond its result). */
export const AHEAD_STRIDE = PAGE_SIZE * 2
/** A batch below this is not worth the helper's wake-up; above it (1 MiB, the largest FUSE request) the rest goes page by page. */
export const AHEAD_MIN_PAGES = 4
export const AHEAD_MAX_PAGES = 256
/** The flags that make a page other than a plain compressed object in the pool (loadPage's last case). */
const NOT_PLAIN = SLOT_ALLOCATED | SLOT_STAGED | SLOT_SAME | SLOT_HUGE | SLOT_UNIT | SLOT_WB

/** Where a STAGED page's contents wait (kcompressd's staging ring). */
export interface StagedCopy {
  copySlot(slot: number, out: Buffer, at: number): void
}

export class PageStore {
  /** Compressed page: two pages, like the kernel's per-stream buffer, so any result fits. */
  private readonly cbuf = Buffer.alloc(PAGE_SIZE * 2)
  /** compressAhead's results: page k's compressed form at k*AHEAD_STRIDE, its length in aheadSizes[k]. */
  private ahead = Buffer.alloc(0)
  private aheadSizes = new Int32Array(0)
  /** The read batch: the chunks its objects lie in and 7 ints per page (CodecContext.decompressBatch). */
  private readonly rchunks: Uint8Array[] = []
  private readonly rdesc = new Int32Array(AHEAD_MAX_PAGES * 7)
  /** Where loadPage finds an object in the pool (ZsPool.locate). */
  private readonly loc = new Int32Array(5)
  private readonly pattern = new Uint32Array(2)

  constructor(
    private readonly slots: SlotStore,
    private readonly pool: ZsPool,
    private readonly units: UnitStore,
    private readonly compression: Compression,
    private readonly staged: StagedCopy,
    private readonly limits: PoolLimits,
    private readonly counters: IoCounters,
  ) {}

  /**
   * Fill out[at, at+4096) with the page at index: unwritten, staged, same-filled, huge or
   * compressed. A compressed page decompresses from where its object lies in the pool, both pieces of
   * one that crosses a frame gathered by the codec (CodecContext.decompressAt), so the common case
   * makes no view and no copy in JavaScript.
   */
  load(table: PageTableView, index: number, out: Buffer, at = 0): void {
    if (!table.isAllocated(index)) {
      out.fill(0, at, at + PAGE_SIZE)
      return
    }
    const flags = table.flags(index)
    if (flags & SLOT_STAGED) {
      this.staged.copySlot(table.value[index * 2], out, at)
    } else if (flags & SLOT_SAME) {
      fillPatternBytes(out, at, table.value[index * 2], table.value[index * 2 + 1])
    } else if (flags & SLOT_HUGE) {
      this.pool.read(table.handle(index), out, at, PAGE_SIZE)
    } else if (flags & SLOT_UNIT) {
      try {
        this.units.read(table.handle(index), table.unitPosition(index), this.compression.contextFor(table.priority(index)) as CodecContext,
          at === 0 && out.length === PAGE_SIZE ? out : out.subarray(at, at + PAGE_SIZE))
      } catch (err) {
        this.counters.failedReads++
        throw new ErrnoError(Errno.EIO, `page ${index}: its unit does not decompress: ${String(err)}`)
      }
    } else {
      const size = table.size(index)
      const loc = this.loc
      const pieces = this.pool.locate(table.handle(index), size, loc)
      try {
        // The algorithm that holds the page (ZRAM_COMP_PRIORITY): the primary, or a recompression one.
        (this.compression.contextFor(table.priority(index)) as CodecContext).decompressAt(this.pool.chunkBytes(loc[0]), loc[1], loc[2],
          pieces === 2 ? this.pool.chunkBytes(loc[3]) : null, loc[4], size - loc[2], out, at, PAGE_SIZE)
      } catch (err) {
        this.counters.failedReads++
        throw new ErrnoError(Errno.EIO, `page ${index}: decompression failed: ${String(err)}`)
      }
    }
  }

  /** The page is a plain compressed object of the primary algorithm: the read batch can take it. */
  batchable(table: PageTableView, index: number): boolean {
    return (table.flags(index) & NOT_PLAIN) === SLOT_ALLOCATED && table.priority(index) === 0
  }

  /** Batch entry k: where page index's object lies (ZsPool.locate) and where in dst it goes. */
  describe(table: PageTableView, index: number, k: number, at: number): void {
    const size = table.size(index)
    const loc = this.loc
    const pieces = this.pool.locate(table.handle(index), size, loc)
    const d = this.rdesc
    const o = k * 7
    this.rchunks[2 * k] = this.pool.chunkBytes(loc[0])
    d[o] = 2 * k
    d[o + 1] = loc[1]
    d[o + 2] = loc[2]
    if (pieces === 2) {
      this.rchunks[2 * k + 1] = this.pool.chunkBytes(loc[3])
      d[o + 3] = 2 * k + 1
      d[o + 4] = loc[4]
      d[o + 5] = size - loc[2]
    } else {
      d[o + 3] = -1
    }
    d[o + 6] = at
  }

  /** Decompress the `pages` pages describe() gathered for a read at pos into dst. */
  decompressDescribed(table: PageTableView, dst: Buffer, pos: number, pages: number): void {
    const failed = this.compression.ctx.decompressBatch(this.rchunks, this.rdesc, pages, dst)
    // From the first failure on, page by page: load() reports it (EIO, failed_reads) as a read without the batch would.
    for (let k = failed < 0 ? pages : failed; k < pages; k++) {
      const at = this.rdesc[k * 7 + 6] as number
      this.load(table, (pos + at) / PAGE_SIZE, dst, at)
    }
  }

  /**
   * Compress `pages` whole pages of src from byte `head` in one addon call, which shares them with
   * its helper thread. Returns how many are in the ahead buffer (fewer on a compression failure,
   * which the page-by-page path then reports).
   */
  compressAhead(src: Buffer, head: number, pages: number): number {
    if (this.ahead.length < pages * AHEAD_STRIDE) {
      this.ahead = Buffer.allocUnsafe(AHEAD_MAX_PAGES * AHEAD_STRIDE)
      this.aheadSizes = new Int32Array(AHEAD_MAX_PAGES)
    }
    const failed = this.compression.ctx.compressBatch(src, head, pages, this.ahead, AHEAD_STRIDE, this.aheadSizes)
    return failed < 0 ? pages : failed
  }

  /** Commit compressAhead's page k as page index; false: no room under the limit. */
  storeAhead(index: number, k: number, page: Buffer): boolean {
    const n = this.aheadSizes[k] as number
    return this.commit(index, this.ahead, k * AHEAD_STRIDE, n === 0 ? PAGE_SIZE : n, page, true)
  }

  /** Compress a page into cbuf and commit it from there (zram_write_page); false: no room under the limit. */
  storeCompressed(index: number, page: Buffer): boolean {
    let n: number
    try {
      n = this.compression.ctx.compress(page, this.cbuf)
    } catch (err) {
      this.counters.failedWrites++
      throw new ErrnoError(Errno.EIO, `page ${index}: compression failed: ${String(err)}`)
    }
    // 0: not even two pages held it; store it raw like any page at or over huge_class_size.
    return this.commit(index, this.cbuf, 0, n === 0 ? PAGE_SIZE : n, page, true)
  }

  /** Compress a page with priority prio's context (the primary's if that slot has none) and store it, over any limit. */
  storeWith(index: number, page: Buffer, prio: number): void {
    const ctx = this.compression.contextFor(prio)
    const n = (ctx ?? this.compression.ctx).compress(page, this.cbuf)
    const len = n === 0 ? PAGE_SIZE : n
    this.commit(index, this.cbuf, 0, len, page, false, len >= ZsPool.hugeClassSize || ctx === null ? 0 : prio)
  }

  /** The primary's compression of a page into cbuf: a view valid until the next compression. */
  compress(page: Buffer): Buffer {
    const n = this.compression.ctx.compress(page, this.cbuf)
    return this.cbuf.subarray(0, n === 0 ? PAGE_SIZE : n)
  }

  /** If the page is same-filled, replace the slot with its pattern (no pool memory). */
  storeSame(index: number, page: Buffer): boolean {
    if (!bufferSameFilled(page, this.pattern)) return false
    this.slots.setSame(index, this.pattern[0], this.pattern[1])
    return true
  }

  /**
   * Store a page's compressed form, compressed[off, off+len) (or `raw`, the page itself, when the
   * result reaches huge_class_size) in the pool and point the slot at it. The old contents are
   * freed only after the new allocation succeeded, so a failure leaves the page as it was. With
   * enforceLimit, false when the allocation took the pool past its limit (zram_write_page's
   * check after zs_malloc, with staged pages' room held): nothing is stored.
   */
  commit(index: number, compressed: Uint8Array, off: number, len: number, raw: Uint8Array, enforceLimit: boolean,
    prio = 0): boolean {
    const huge = len >= ZsPool.hugeClassSize
    const src = huge ? raw : compressed
    const srcOff = huge ? 0 : off
    const size = huge ? PAGE_SIZE : len
    const handle = this.pool.malloc(size)
    if (enforceLimit && this.limits.headroomPages() < 0) {
      this.pool.free(handle)
      return false
    }
    this.pool.write(handle, src, srcOff, size)
    this.place(index, handle, size, huge, prio)
    return true
  }

  /** The page now lives in pool object `handle` (size bytes written). */
  place(index: number, handle: number, size: number, huge: boolean, prio: number): void {
    this.slots.setObject(index, handle, size, huge, prio)
    this.limits.noteUsed()
  }
}

/** Fill out[at, at+4096), possibly unaligned, with an 8-byte pattern by doubling copies. */
function fillPatternBytes(whole: Buffer, at: number, lo: number, hi: number): void {
  if (lo === hi && (lo === 0 || lo === 0xffffffff)) {
    whole.fill(lo === 0 ? 0 : 0xff, at, at + PAGE_SIZE)
    return
  }
  const out = at === 0 && whole.length === PAGE_SIZE ? whole : whole.subarray(at, at + PAGE_SIZE)
  if (out.byteOffset % 4 === 0) {
    fillPattern(new Uint32Array(out.buffer, out.byteOffset, out.length / 4), lo, hi)
    return
  }
  out.writeUInt32LE(lo, 0)
  out.writeUInt32LE(hi, 4)
  for (let n = 8; n < out.length; n *= 2) out.copyWithin(n, 0, Math.min(n, out.length - n))
}
