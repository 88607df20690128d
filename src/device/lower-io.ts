/**
 * Requests that meet the lower file: reads of written-back pages (read from the lower file off the
 * main thread, concurrently), the partial edges of a write or discard over written-back pages
 * (their old contents loaded first), and new pages stored straight on the lower file when the pool
 * is at its limit (zswap's rejected store going to swap, without rejecting).
 */
import { Errno, ErrnoError } from '../errno'
import { PAGE_SIZE } from '../page'
import { ZsPool } from '../pool/zs-pool'
import type { Aging } from './aging'
import type { IoCounters } from './io-counters'
import type { LowerTier } from './lower-tier'
import type { PageStore } from './page-store'
import { SLOT_DIRECT, SLOT_WB } from './page-table'
import { PageSpan } from './page-span'
import type { PageTableView, SlotStore } from './slot-store'

/** A foreground request touched the lower file (the shrinker holds back). */
export interface LowerPause {
  pause(): void
}

/** A written-back page's old contents, loaded for a partial write over it. */
export interface LoadedEdge {
  index: number
  /** where the page lived when it was read: it counts only if it still lives there */
  from: number
  page: Buffer
}

export class LowerIO {
  constructor(
    private readonly slots: SlotStore,
    private readonly lower: LowerTier,
    private readonly pages: PageStore,
    private readonly aging: Aging,
    private readonly counters: IoCounters,
    private readonly shrinker: LowerPause,
  ) {}

  /** Some page of [pos, pos+len) lives on the lower file. */
  touchesLower(pos: number, len: number): boolean {
    if (!this.lower.hasBackingDev) return false
    const table = this.slots.table as PageTableView
    const last = Math.floor((pos + len - 1) / PAGE_SIZE)
    for (let index = Math.floor(pos / PAGE_SIZE); index <= last; index++) {
      if (table.meta[index] & SLOT_WB) return true
    }
    return false
  }

  /**
   * A read that touches written-back pages: those are read from the lower file concurrently (off
   * the main thread), the others as usual. dst is written only before the returned promise settles.
   */
  async read(dst: Buffer, pos: number, len: number): Promise<void> {
    const table = this.slots.table as PageTableView
    const now = this.aging.nowSeconds()
    const loads: Promise<void>[] = []
    const rpage = Buffer.allocUnsafe(PAGE_SIZE)
    const p = new PageSpan().start(pos, len)
    while (p.next()) {
      if (table.meta[p.index] & SLOT_WB) {
        const whole = p.whole
        const out = whole ? dst.subarray(p.done, p.done + PAGE_SIZE) : Buffer.allocUnsafe(PAGE_SIZE)
        const { done, inPage, n } = p
        const index = p.index
        this.shrinker.pause()
        loads.push(this.lower.load(table, index, out).then(() => {
          if (!whole) out.copy(dst, done, inPage, inPage + n)
        }, (err: unknown) => {
          this.counters.failedReads++
          throw err instanceof ErrnoError ? err : new ErrnoError(Errno.EIO, `page ${index}: ${String(err)}`)
        }))
      } else if (p.whole) {
        this.pages.load(table, p.index, dst, p.done)
      } else {
        this.pages.load(table, p.index, rpage)
        rpage.copy(dst, p.done, p.inPage, p.inPage + p.n)
      }
      this.slots.touch(p.index, now)
    }
    // Wait for every page before failing: dst must not be written after the request is answered.
    const results = await Promise.allSettled(loads)
    for (const r of results) if (r.status === 'rejected') throw r.reason
  }

  /**
   * A partial write (or a discard's partial edge) on a written-back page needs its old contents:
   * read them from the lower file; the caller stores each page back in memory if it still lives
   * where it was read from (isCurrent), then runs again and finds ordinary pages. null when no
   * edge needs it.
   */
  loadEdges(pos: number, len: number): Promise<LoadedEdge[]> | null {
    if (!this.lower.hasBackingDev) return null
    const table = this.slots.table as PageTableView
    const first = Math.floor(pos / PAGE_SIZE)
    const last = Math.floor((pos + len - 1) / PAGE_SIZE)
    const edges: number[] = []
    if (pos % PAGE_SIZE !== 0 && (table.meta[first] & SLOT_WB)) edges.push(first)
    if ((pos + len) % PAGE_SIZE !== 0 && (table.meta[last] & SLOT_WB) && !edges.includes(last)) edges.push(last)
    if (edges.length === 0) return null
    this.shrinker.pause()
    return Promise.all(edges.map(async (index) => {
      const from = table.location(index)
      const page = Buffer.allocUnsafe(PAGE_SIZE)
      try {
        await this.lower.load(table, index, page)
      } catch (err) {
        this.counters.failedReads++
        throw err
      }
      return { index, from, page }
    }))
  }

  /** The edge still lives where loadEdges read it (a write in between wins). */
  isCurrent(table: PageTableView, edge: LoadedEdge): boolean {
    return this.slots.table === table && (table.meta[edge.index] & SLOT_WB) !== 0 && table.location(edge.index) === edge.from
  }

  /**
   * Store a write's pages straight on the lower file (the pool is at its limit). Same-filled pages
   * still cost nothing. If the lower file cannot take them (full, failing, writeback_limit spent),
   * each page is stored in memory if the pool has room again; the byte position of the first page
   * that fit nowhere is returned (-1: every page was stored), for the caller to refuse. The lower
   * file's error is counted (lower_errors) and logged once per episode by the tier.
   */
  async writeDirect(src: Buffer, pos: number): Promise<number> {
    const table = this.slots.table as PageTableView
    const now = this.aging.nowSeconds()
    this.shrinker.pause()
    const indexes: number[] = []
    const payloads: Buffer[] = []
    const raws: Buffer[] = []
    const huge: boolean[] = []
    const p = new PageSpan().start(pos, src.length)
    while (p.next()) {
      const page = Buffer.alloc(PAGE_SIZE)
      if (!p.whole) {
        if (table.meta[p.index] & SLOT_WB) await this.lower.load(table, p.index, page)
        else this.pages.load(table, p.index, page)
      }
      src.copy(page, p.inPage, p.done, p.done + p.n)
      if (this.pages.storeSame(p.index, page)) {
        this.slots.touch(p.index, now)
        continue
      }
      const compressed = this.pages.compress(page)
      const isHuge = compressed.length >= ZsPool.hugeClassSize
      // New contents are on their way: a writeback or recompression of the old object drops its
      // result (it lost PP), and none picks the page up meanwhile (SLOT_DIRECT).
      this.slots.beginDirect(p.index)
      indexes.push(p.index)
      payloads.push(isHuge || !this.lower.compressed ? page : Buffer.from(compressed))
      raws.push(page)
      huge.push(isHuge)
    }
    if (indexes.length === 0) return -1
    let refusedAt = -1
    let locations: number[] | null = null
    try {
      locations = await this.lower.storeDirect(indexes, payloads, huge)
    } catch {
      locations = null
    }
    for (let i = 0; i < indexes.length; i++) {
      const index = indexes[i]
      const current = this.slots.table === table && (table.meta[index] & SLOT_DIRECT) !== 0
      if (locations !== null) {
        if (!current) {
          this.lower.drop(locations[i], payloads[i].length)
          continue
        }
        this.slots.storedOnLower(index, locations[i], this.lower.compressed ? payloads[i].length : PAGE_SIZE, this.lower.compressed && huge[i])
      } else if (current) {
        // The lower file could not take it: in memory if the pool has room, else refused.
        this.slots.endDirect(index)
        if (!this.pages.storeCompressed(index, raws[i])) {
          if (refusedAt < 0) refusedAt = index * PAGE_SIZE
          continue
        }
      }
      this.slots.touch(index, now)
    }
    return refusedAt
  }
}
