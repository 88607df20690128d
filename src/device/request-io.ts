/**
 * The block file's requests: read, write and discard of byte ranges, split into pages. One
 * synchronous loop each; a request that meets the lower file or the pool's limit continues
 * asynchronously (lower-io.ts), so the signatures allow a promise. Every request counts in the
 * block statistics (stat, io_stat) and touches the pages it reads or writes.
 */
import { Errno, ErrnoError } from '../errno'
import type { Kcompressd } from '../kcompressd/kcompressd'
import { PAGE_SIZE } from '../page'
import type { Shrinker } from '../writeback/shrinker'
import type { Aging } from './aging'
import type { BlockStatCounters } from './block-stat'
import type { IoCounters } from './io-counters'
import type { LowerIO } from './lower-io'
import type { LowerTier } from './lower-tier'
import { AHEAD_MAX_PAGES, AHEAD_MIN_PAGES, type PageStore } from './page-store'
import { SECTOR_SIZE } from './page-table'
import { PageSpan } from './page-span'
import type { PoolLimits } from './pool-limits'
import type { PageTableView, SlotStore } from './slot-store'
import type { Staging } from './staging'

const ZERO_PAGE = Buffer.alloc(PAGE_SIZE)

/** Thrown inside the synchronous write loop when the pool has no room for the page at byte `done` of the request. */
class PoolFull extends Error {
  readonly done: number
  constructor(done: number) {
    super('the pool is at its limit')
    this.done = done
  }
}

export interface RequestDeps {
  slots: SlotStore
  pages: PageStore
  staging: Staging
  lowerIO: LowerIO
  lower: LowerTier
  shrinker: Shrinker
  limits: PoolLimits
  counters: IoCounters
  blockStat: BlockStatCounters
  aging: Aging
}

export class RequestIO {
  /** The device's size in bytes (0: uninitialised); the device sets it at disksize and reset. */
  disksize = 0
  private readonly slots: SlotStore
  private readonly pages: PageStore
  private readonly staging: Staging
  private readonly kcompressd: Kcompressd
  private readonly lowerIO: LowerIO
  private readonly lower: LowerTier
  private readonly shrinker: Shrinker
  private readonly limits: PoolLimits
  private readonly counters: IoCounters
  private readonly blockStat: BlockStatCounters
  private readonly aging: Aging
  // Preallocated pages: wpage assembles a partial page written (read-modify-write).
  private readonly wpage = Buffer.from(new ArrayBuffer(PAGE_SIZE))
  private readonly rpage = Buffer.from(new ArrayBuffer(PAGE_SIZE))
  /** One walker per loop, reused by every request (the loops never nest). */
  private readonly rspan = new PageSpan()
  private readonly wspan = new PageSpan()

  constructor(d: RequestDeps) {
    this.slots = d.slots
    this.pages = d.pages
    this.staging = d.staging
    this.kcompressd = d.staging.kcompressd
    this.lowerIO = d.lowerIO
    this.lower = d.lower
    this.shrinker = d.shrinker
    this.limits = d.limits
    this.counters = d.counters
    this.blockStat = d.blockStat
    this.aging = d.aging
  }

  /**
   * Read up to dst.length bytes at pos into dst; returns the byte count (short at the end of the
   * device, 0 past it: a block device's semantics).
   */
  read(dst: Buffer, pos: number): number | Promise<number> {
    const len = Math.max(0, Math.min(dst.length, this.disksize - pos))
    if (len === 0) return 0
    const stat = this.blockStat
    const started = stat.begin()
    stat.readIos++
    stat.readSectors += Math.ceil(len / SECTOR_SIZE)
    if (this.lowerIO.touchesLower(pos, len)) {
      return this.lowerIO.read(dst, pos, len).finally(() => {
        stat.readTicksMs += stat.end(started)
      }).then(() => len)
    }
    try {
      this.readRange(dst, pos, len)
    } finally {
      stat.readTicksMs += stat.end(started)
    }
    return len
  }

  /**
   * Write all of src at pos. Refused whole (ENOSPC) if any of it lies past the end: never a silent
   * truncation. A page that cannot be stored (mem_limit) fails the request with EIO and leaves that
   * page's previous contents intact; the pages before it in the request are stored, as zram stops
   * at the failing segment of a bio.
   */
  write(src: Buffer, pos: number): void | Promise<void> {
    const len = src.length
    if (pos < 0 || pos + len > this.disksize) {
      this.counters.invalidIo++
      throw new ErrnoError(Errno.ENOSPC, `write of ${len} bytes at ${pos} past the end of a ${this.disksize}-byte device`)
    }
    if (len === 0) return
    const promoting = this.promoteEdges(pos, len)
    if (promoting !== null) return promoting.then(() => this.write(src, pos))
    const stat = this.blockStat
    const started = stat.begin()
    stat.writeIos++
    stat.writeSectors += Math.ceil(len / SECTOR_SIZE)
    const finish = (): void => {
      stat.writeTicksMs += stat.end(started)
    }
    this.kcompressd.beginRequest(Math.ceil(((pos % PAGE_SIZE) + len) / PAGE_SIZE), started)
    if (this.divertToLower()) {
      this.kcompressd.endRequest()
      return this.writeAtLimit(src, pos, 0).finally(finish)
    }
    try {
      this.writeRange(src, pos)
    } catch (err) {
      // The pool reached its limit mid-request: the pages before are stored; the rest waits for
      // staged pages to settle, goes to the lower file, or is refused (writeAtLimit).
      if (err instanceof PoolFull) {
        // Nothing staged holds room and no lower file takes pages: refused now, as the kernel's is.
        if (!this.storesToLower && this.kcompressd.depth === 0) {
          this.shrinker.poolLimitHit++
          err = this.refuseAtLimit(pos + err.done)
        } else {
          return this.writeAtLimit(src, pos, err.done).finally(finish)
        }
      }
      finish()
      throw err
    } finally {
      this.kcompressd.endRequest()
      this.shrinker.poke()
    }
    this.limits.accepted()
    finish()
  }

  /**
   * Discard (fallocate PUNCH_HOLE) or write-zeroes (ZERO_RANGE): frees the whole pages inside the
   * range, notify_free++ for each, as zram_bio_discard does. Partial pages at the edges are zeroed
   * in place: over a file the range must read back as zeros afterwards (a loop device also sends
   * write-zeroes as PUNCH_HOLE), where the kernel's zram simply skips them.
   */
  discard(pos: number, len: number, op: 'discard' | 'write_zeroes' = 'discard'): void | Promise<void> {
    if (pos < 0 || len < 0 || pos + len > this.disksize) {
      throw new ErrnoError(Errno.EINVAL, `${op} of ${len} bytes at ${pos} past the end of a ${this.disksize}-byte device`)
    }
    if (len === 0) return
    const promoting = this.promoteEdges(pos, len)
    if (promoting !== null) return promoting.then(() => this.discard(pos, len, op))
    const stat = this.blockStat
    const started = stat.begin()
    const sectors = Math.ceil(len / SECTOR_SIZE)
    if (op === 'discard') {
      stat.discardIos++
      stat.discardSectors += sectors
    } else {
      stat.writeIos++
      stat.writeSectors += sectors
    }
    const end = pos + len
    const firstWhole = Math.ceil(pos / PAGE_SIZE)
    const endWhole = Math.floor(end / PAGE_SIZE)
    // Edges: [pos, head) and [tail, end) are partial pages (the whole range when it is inside one).
    const head = Math.min(firstWhole * PAGE_SIZE, end)
    const tail = Math.max(endWhole * PAGE_SIZE, head)
    try {
      if (head > pos) this.writeRange(ZERO_PAGE.subarray(0, head - pos), pos)
      if (end > tail) this.writeRange(ZERO_PAGE.subarray(0, end - tail), tail)
      for (let index = firstWhole; index < endWhole; index++) {
        this.slots.free(index)
        this.counters.notifyFree++
      }
    } finally {
      this.kcompressd.endRequest()
      const took = stat.end(started)
      if (op === 'discard') stat.discardTicksMs += took
      else stat.writeTicksMs += took
    }
  }

  /** New pages go to the lower file instead of the pool when the pool is full (the shrinker's way). */
  private get storesToLower(): boolean {
    return this.shrinker.enabled && this.lower.hasBackingDev
  }

  /** The pool has no room for another page, and the lower file takes new pages. */
  private divertToLower(): boolean {
    return this.storesToLower && !this.limits.hasRoom()
  }

  /**
   * Written-back pages under a partial edge of [pos, pos+len) come back into memory first (their
   * old contents are needed); then the request runs again and finds ordinary pages.
   */
  private promoteEdges(pos: number, len: number): Promise<void> | null {
    const table = this.slots.table as PageTableView
    const loading = this.lowerIO.loadEdges(pos, len)
    if (loading === null) return null
    return loading.then(async (edges) => {
      for (const edge of edges) {
        if (this.lowerIO.isCurrent(table, edge)) await this.write(edge.page, edge.index * PAGE_SIZE)
      }
    })
  }

  /**
   * src[done..] of a write at pos met the pool's limit. With the shrinker and a lower file, those
   * pages go to the lower file. Otherwise staged pages may still hold room they will not need
   * (each is counted at its worst until committed): commit them and try again. With no room left
   * the write fails with EIO, as zram_write_page does past mem_limit, and zswap refuses a store
   * past max_pool_percent: a limit the user set holds. Every page before stays stored; the page
   * that did not fit keeps its previous contents.
   */
  private async writeAtLimit(src: Buffer, pos: number, done: number): Promise<void> {
    this.shrinker.poolLimitHit++
    for (;;) {
      if (this.storesToLower) {
        const refusedAt = await this.lowerIO.writeDirect(src.subarray(done), pos + done)
        if (refusedAt >= 0) throw this.refuseAtLimit(refusedAt)
        break
      }
      if (this.kcompressd.depth === 0 || this.slots.table === null) throw this.refuseAtLimit(pos + done)
      await this.kcompressd.drain()
      if (this.slots.table === null) throw this.refuseAtLimit(pos + done)
      this.kcompressd.beginRequest(Math.ceil((((pos + done) % PAGE_SIZE) + src.length - done) / PAGE_SIZE), performance.now())
      try {
        this.writeRange(src.subarray(done), pos + done)
        break
      } catch (err) {
        if (!(err instanceof PoolFull)) throw err
        done += err.done
      } finally {
        this.kcompressd.endRequest()
      }
    }
    this.limits.accepted()
  }

  /** A write refused at the pool limit: counted in failed_writes, logged once per episode, answered EIO. */
  private refuseAtLimit(pos: number): ErrnoError {
    this.counters.failedWrites++
    return this.limits.refuse(pos, this.lower.hasBackingDev ? (this.shrinker.enabled ? 'cannot take the page' : 'shrinker off') : 'none')
  }

  /**
   * Whole pages decompress straight into dst; partial ones through rpage. In a read of 4 pages or
   * more, the whole pages that are plain compressed objects of the primary algorithm are gathered
   * and decompressed in one addon call, shared with its helper thread (CodecContext.decompressBatch).
   */
  private readRange(dst: Buffer, pos: number, len: number): void {
    const table = this.slots.table as PageTableView
    const pages = this.pages
    const now = this.aging.nowSeconds()
    const batching = len >= AHEAD_MIN_PAGES * PAGE_SIZE
    let batched = 0
    const p = this.rspan.start(pos, len)
    while (p.next()) {
      if (batching && p.whole && pages.batchable(table, p.index)) {
        pages.describe(table, p.index, batched++, p.done)
        if (batched === AHEAD_MAX_PAGES) {
          pages.decompressDescribed(table, dst, pos, batched)
          batched = 0
        }
      } else if (p.whole) {
        pages.load(table, p.index, dst, p.done)
      } else {
        pages.load(table, p.index, this.rpage)
        this.rpage.copy(dst, p.done, p.inPage, p.inPage + p.n)
      }
      this.slots.touch(p.index, now)
    }
    if (batched > 0) pages.decompressDescribed(table, dst, pos, batched)
  }

  private writeRange(src: Buffer, pos: number): void {
    const table = this.slots.table as PageTableView
    const pages = this.pages
    const now = this.aging.nowSeconds()
    // Whole pages compressed ahead, on both cores: [aheadFirst, aheadEnd) by page index.
    const head = (PAGE_SIZE - (pos % PAGE_SIZE)) % PAGE_SIZE
    const aheadFirst = (pos + head) / PAGE_SIZE
    const aheadEnd = aheadFirst + this.compressAhead(src, head)
    const p = this.wspan.start(pos, src.length)
    while (p.next()) {
      // A whole page is used where it is (the request's buffer: every step below is synchronous);
      // a partial one is read-modify-written in wpage, as zram_bvec_write does.
      let page: Buffer
      if (p.whole) {
        page = p.done === 0 && src.length === PAGE_SIZE ? src : src.subarray(p.done, p.done + PAGE_SIZE)
      } else {
        page = this.wpage
        pages.load(table, p.index, page)
        src.copy(page, p.inPage, p.done, p.done + p.n)
      }
      if (pages.storeSame(p.index, page)) {
        // no pool memory
      } else if (this.divertToLower()) {
        throw new PoolFull(p.done)
      } else if (p.index >= aheadFirst && p.index < aheadEnd) {
        if (!pages.storeAhead(p.index, p.index - aheadFirst, page)) throw new PoolFull(p.done)
      } else if (!this.staging.stage(table, p.index, page) && !pages.storeCompressed(p.index, page)) {
        throw new PoolFull(p.done)
      }
      this.slots.touch(p.index, now)
    }
  }

  /**
   * With compression inline (no kcompressd workers), compress the whole pages of a write from byte
   * `head` of src in one addon call, which shares them with its helper thread: a 128k write then
   * compresses on two cores. Returns how many pages from there are compressed ahead (0: none,
   * fewer on a compression failure, which the page-by-page path then reports). A same-filled page
   * is compressed for nothing; it is cheap, and the loop stores it as a pattern all the same.
   */
  private compressAhead(src: Buffer, head: number): number {
    if (this.kcompressd.enabled || head >= src.length) return 0
    const pages = Math.min(Math.floor((src.length - head) / PAGE_SIZE), AHEAD_MAX_PAGES)
    if (pages < AHEAD_MIN_PAGES) return 0
    return this.pages.compressAhead(src, head, pages)
  }
}
