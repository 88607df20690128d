/**
 * recompress (CONFIG_ZRAM_MULTI_COMP): scan_slots_for_recompress, then recompress_slot for each
 * selected page, as in mainline zram_drv.c (7.1: one priority per run, no chaining); and our multi-page units when
 * zramfuse/recompress_unit_pages is 2..16.
 *
 * Off the request path: the scan is one synchronous pass over the page table (like the kernel's),
 * then one page (or one unit) is recompressed per turn of the event loop, so reads and writes of
 * other pages wait for at most one page's or one unit's work. Each page's work is synchronous, so
 * no request can see it half done; a page read, written or discarded after the scan loses its
 * SLOT_PP mark and is skipped (the kernel's ZRAM_PP_SLOT rule), and a reset ends the run.
 */
import { performance } from 'node:perf_hooks'
import type { CodecContext } from '../codec/codec'
import { Errno, ErrnoError } from '../errno'
import { classIndexOf, GEOMETRY, sizeClassIndex } from '../pool/size-class'
import {
  type PageTable, SLOT_ALLOCATED, SLOT_DIRECT, SLOT_HUGE, SLOT_IDLE, SLOT_INCOMPRESSIBLE, SLOT_PP, SLOT_SAME, SLOT_STAGED, SLOT_UNIT,
  SLOT_WB,
} from './page-table'
import { PAGE_SIZE } from '../page'
import { ZRAM_MAX_COMPS } from './recomp-algorithms'
import { MAX_UNIT_BYTES, MAX_UNIT_PAGES, type UnitLayout, unitLayout, type UnitStore } from './unit-store'

export const RECOMPRESS_IDLE = 1 << 0
export const RECOMPRESS_HUGE = 1 << 1

/** A `recompress` write once parsed (recompress_store's argument loop). */
export interface RecompressRequest {
  /** RECOMPRESS_* bits a page must all have; 0 = every page. */
  mode: number
  /** Only objects of at least this many bytes; a new size must also be below it (0: no threshold). */
  threshold: number
  /** max_pages: pages to attempt (Infinity for the kernel's default ULLONG_MAX). */
  maxPages: number
  /** The one priority whose algorithm the run uses (1..3, configured: the store checked it). */
  prio: number
}

/** What the recompressor needs from its device (the device stays the only writer of the table). */
export interface RecompressHost {
  readonly pageTable: PageTable | null
  readonly units: UnitStore
  /** comp_algs[prio], or null. */
  algorithmOf(prio: number): string | null
  /** comps[prio] after disksize, or null. */
  contextFor(prio: number): CodecContext | null
  /** Decompress the page from wherever it is in memory into out (4096 bytes); throws EIO. */
  decompressPage(index: number, out: Buffer): void
  /** The tail of recompress_slot: the page now lives in compressed[0, len), made by prio. */
  replaceObject(index: number, compressed: Uint8Array, len: number, prio: number): void
  /** Pages [first, first + pages) become one unit made by prio. */
  storeUnit(first: number, pages: number, compressed: Uint8Array, len: number, layout: UnitLayout, prio: number): void
  /** Store a page out of its (sparse) unit as a page of its own, compressed by prio. */
  splitMember(index: number, page: Buffer, prio: number): void
}

export interface RecompressStats {
  runs: number
  /** Pages moved to a recompression algorithm (singly or into units). */
  recompressedPages: number
  unitsWritten: number
  membersSplit: number
  /** Main-thread time spent recompressing, and the longest stretch without yielding. */
  mainNs: number
  maxSliceNs: number
  /** Stretches of work between two yields. */
  slices: number
}

/** zs_lookup_class_index(): the (merged) class index of a size, without the handle (as the kernel asks). */
export function lookupClassIndex(len: number): number {
  return GEOMETRY.merged[sizeClassIndex(len)]
}

/** PP_BUCKET_SIZE_RANGE: candidates are taken largest bucket first. */
const PP_BUCKET_SIZE_RANGE = 64
const NUM_PP_BUCKETS = PAGE_SIZE / PP_BUCKET_SIZE_RANGE + 1
/** Pages the scan looks at between two yields (about a millisecond's work). */
const SCAN_STRETCH = 16384

const yieldTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

export class Recompressor {
  /** zramfuse/recompress_unit_pages: 1 = the kernel's page-by-page recompression. */
  unitPages = 1
  private runs = 0
  private recompressedPages = 0
  private unitsWritten = 0
  private membersSplit = 0
  private mainNs = 0
  private maxSliceNs = 0
  private queue: Promise<unknown> = Promise.resolve()
  private readonly host: RecompressHost
  private readonly page = Buffer.alloc(PAGE_SIZE)
  /** The kernel's stream buffer: two pages, so any result fits. */
  private readonly cbuf = Buffer.alloc(2 * PAGE_SIZE)
  /** A run's pages and their unit, allocated at the first unit run (most devices never make one). */
  private unitBuffers: { pages: Buffer; compressed: Buffer } | null = null
  private slices = 0

  constructor(host: RecompressHost) {
    this.host = host
  }

  stats(): RecompressStats {
    return {
      runs: this.runs, recompressedPages: this.recompressedPages, unitsWritten: this.unitsWritten,
      membersSplit: this.membersSplit, mainNs: this.mainNs, maxSliceNs: this.maxSliceNs, slices: this.slices,
    }
  }

  /** reset: the device's settings and counters go back to their defaults. */
  reset(): void {
    this.unitPages = 1
    this.runs = this.recompressedPages = this.unitsWritten = this.membersSplit = 0
    this.mainNs = this.maxSliceNs = this.slices = 0
  }

  /** A member was split out of its unit (compaction); counted with the recompressor's. */
  countSplit(): void {
    this.membersSplit++
  }

  /**
   * recompress_store after its checks (the attribute's store): the run, after any run already
   * going (the kernel's dev_lock serialises post-processing). Resolves with the pages
   * recompressed; rejects with ENOMEM when the pool cannot take a new object, EIO when a page
   * cannot be read.
   */
  recompress(req: RecompressRequest): Promise<number> {
    const table = this.host.pageTable
    if (table === null) throw new ErrnoError(Errno.EINVAL, 'recompress on an uninitialised device')
    if (this.host.contextFor(req.prio) === null) throw new ErrnoError(Errno.EINVAL, `recompress: no algorithm at priority ${req.prio}`)
    const unitPages = this.unitPages
    const run = this.queue.then(() => this.run(table, req.mode, req.threshold, req.maxPages, req.prio, unitPages))
    this.queue = run.catch(() => undefined)
    return run
  }

  /** highest_priority_algorithm: no algorithm is configured above prio. */
  private highestPriority(prio: number): boolean {
    for (let p = prio + 1; p < ZRAM_MAX_COMPS; p++) if (this.host.algorithmOf(p) !== null) return false
    return true
  }

  private async run(table: PageTable, mode: number, threshold: number, maxPages: number, prio: number, unitPages: number): Promise<number> {
    if (this.host.pageTable !== table) return 0
    this.runs++
    const before = this.recompressedPages
    const candidates = unitPages > 1
      ? await this.scanForUnits(table, mode, threshold, prio)
      : await this.scanSlots(table, mode, prio)
    let budget = maxPages
    let i = 0
    let started: number
    try {
      while (i < candidates.length) {
        // recompress_store: `if (!num_recomp_pages) break;` before each slot.
        if (budget === 0) break
        await yieldTurn()
        if (this.host.pageTable !== table) break
        started = performance.now()
        const index = candidates[i]
        if ((table.meta[index] & SLOT_PP) === 0) {
          i++
          this.endSlice(started)
          continue
        }
        if (unitPages > 1) {
          let n = 1
          while (n < unitPages && n < budget && i + n < candidates.length && candidates[i + n] === index + n &&
            (table.meta[index + n] & SLOT_PP) !== 0) n++
          try {
            budget -= this.recompressRun(table, index, n, threshold, prio)
          } finally {
            for (let k = 0; k < n; k++) table.clearFlag(index + k, SLOT_PP)
          }
          i += n
        } else {
          try {
            if (this.recompressSlot(table, index, threshold, prio)) budget--
          } finally {
            table.clearFlag(index, SLOT_PP)
          }
          i++
        }
        this.endSlice(started)
      }
    } finally {
      // release_pp_ctl: slots selected but not reached lose the mark.
      if (this.host.pageTable === table) for (; i < candidates.length; i++) table.clearFlag(candidates[i], SLOT_PP)
    }
    return this.recompressedPages - before
  }

  private endSlice(startedMs: number): void {
    const ns = Math.round((performance.now() - startedMs) * 1e6)
    this.mainNs += ns
    this.slices++
    if (ns > this.maxSliceNs) this.maxSliceNs = ns
  }

  /** A page the kernel's scan may take: in the pool, not same-filled, written back or incompressible. */
  private eligible(meta: number, mode: number): boolean {
    if ((meta & SLOT_ALLOCATED) === 0) return false
    if ((mode & RECOMPRESS_IDLE) !== 0 && (meta & SLOT_IDLE) === 0) return false
    if ((mode & RECOMPRESS_HUGE) !== 0 && (meta & SLOT_HUGE) === 0) return false
    // SLOT_STAGED: not in the pool yet; SLOT_PP: a writeback holds it; SLOT_UNIT: already in a unit
    // (recompressing one member alone would only flag it incompressible).
    return (meta & (SLOT_WB | SLOT_SAME | SLOT_INCOMPRESSIBLE | SLOT_STAGED | SLOT_PP | SLOT_UNIT | SLOT_DIRECT)) === 0
  }

  /**
   * A pass over the page table in stretches of SCAN_STRETCH pages, yielding between them; a page
   * changed meanwhile simply does not carry SLOT_PP when its turn comes. Stops at a reset.
   */
  private async scan(table: PageTable, visit: (index: number) => void): Promise<void> {
    for (let from = 0; from < table.pages; from += SCAN_STRETCH) {
      if (from > 0) await yieldTurn()
      if (this.host.pageTable !== table) return
      const started = performance.now()
      const to = Math.min(table.pages, from + SCAN_STRETCH)
      for (let index = from; index < to; index++) visit(index)
      this.endSlice(started)
    }
  }

  /**
   * scan_slots_for_recompress, then select_pp_slot's order: buckets of 64 bytes of object size,
   * the largest bucket first, and in a bucket the slot placed last first (list_add).
   */
  private async scanSlots(table: PageTable, mode: number, prio: number): Promise<number[]> {
    const buckets: number[][] = []
    for (let b = 0; b < NUM_PP_BUCKETS; b++) buckets.push([])
    await this.scan(table, (index) => {
      const meta = table.meta[index]
      if (!this.eligible(meta, mode)) return
      // Already compressed with the same or a higher priority.
      if (table.priority(index) >= prio) return
      table.setFlag(index, SLOT_PP)
      buckets[Math.floor(table.size(index) / PP_BUCKET_SIZE_RANGE)].push(index)
    })
    const out: number[] = []
    for (let b = NUM_PP_BUCKETS - 1; b >= 0; b--) {
      const list = buckets[b]
      for (let k = list.length - 1; k >= 0; k--) out.push(list[k])
    }
    return out
  }

  /**
   * Unit mode: the pages the kernel's scan would take (and at least threshold bytes), plus every
   * live member of a unit that has fallen below half its pages (it is regrouped), in index order.
   */
  private async scanForUnits(table: PageTable, mode: number, threshold: number, prio: number): Promise<number[]> {
    const out: number[] = []
    const units = this.host.units
    await this.scan(table, (index) => {
      const meta = table.meta[index]
      let take: boolean
      if ((meta & SLOT_UNIT) !== 0) {
        take = (meta & (SLOT_PP | SLOT_INCOMPRESSIBLE)) === 0 && units.liveMembers(table, index) * 2 < table.unitPages(index)
      } else {
        take = this.eligible(meta, mode) && table.priority(index) < prio && table.size(index) >= threshold
      }
      if (!take) return
      table.setFlag(index, SLOT_PP)
      out.push(index)
    })
    return out
  }

  /**
   * recompress_slot (mainline 7.1, one algorithm: prio's): decompress, compress with prio, keep the
   * result if it lands in a strictly smaller size class (and under threshold when one is set);
   * if not, and prio is the highest configured priority, ZRAM_INCOMPRESSIBLE. Returns whether the
   * page counted against max_pages.
   */
  private recompressSlot(table: PageTable, index: number, threshold: number, prio: number): boolean {
    const lenOld = table.size(index)
    // Objects already "small enough" are not touched.
    if (lenOld < threshold) return false
    this.host.decompressPage(index, this.page)
    // Touched: no longer IDLE, so no other post-processing picks it for being idle.
    table.clearFlag(index, SLOT_IDLE)
    const ctx = this.host.contextFor(prio) as CodecContext
    let n: number
    try {
      n = ctx.compress(this.page, this.cbuf)
    } catch (err) {
      throw new ErrnoError(Errno.EIO, `page ${index}: recompression failed: ${String(err)}`)
    }
    // 0: not even two pages held it; no class is larger.
    const lenNew = n === 0 ? this.cbuf.length : n
    if (lookupClassIndex(lenNew) >= lookupClassIndex(lenOld) || (threshold !== 0 && lenNew >= threshold)) {
      // A later run with a higher priority may still try it, unless none is configured.
      if (this.highestPriority(prio)) table.setFlag(index, SLOT_INCOMPRESSIBLE)
      return true
    }
    this.host.replaceObject(index, this.cbuf, lenNew, prio)
    this.recompressedPages++
    return true
  }

  /**
   * Unit mode, n consecutive selected pages from first: one page goes the kernel's way (a lone
   * member of a sparse unit is split out instead); a run of 2 or more is compressed as one unit
   * by prio's algorithm if the unit takes less pool memory than the pages do now. If not, each
   * page goes the kernel's way. Returns the pages counted against max_pages.
   */
  private recompressRun(table: PageTable, first: number, n: number, threshold: number, prio: number): number {
    if (n === 1) {
      if ((table.meta[first] & SLOT_UNIT) === 0) return this.recompressSlot(table, first, threshold, prio) ? 1 : 0
      this.host.decompressPage(first, this.page)
      this.host.splitMember(first, this.page, table.priority(first))
      this.membersSplit++
      return 1
    }
    const units = this.host.units
    this.unitBuffers ??= { pages: Buffer.alloc(MAX_UNIT_PAGES * PAGE_SIZE), compressed: Buffer.alloc(MAX_UNIT_BYTES + 2 * PAGE_SIZE) }
    const { pages: ubuf, compressed: cunit } = this.unitBuffers
    let oldFootprint = 0
    for (let k = 0; k < n; k++) {
      const index = first + k
      this.host.decompressPage(index, ubuf.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE))
      table.clearFlag(index, SLOT_IDLE)
      // A member of a sparse unit carries its part of what the unit holds for its live members
      // (moving them all frees the whole unit); any other page its size class.
      const meta = table.meta[index]
      oldFootprint += (meta & SLOT_UNIT) !== 0
        ? units.footprintOf(table.handle(index)) / units.liveMembers(table, index)
        : GEOMETRY.size[classIndexOf(table.size(index))]
    }
    const src = ubuf.subarray(0, n * PAGE_SIZE)
    let len: number
    try {
      len = (this.host.contextFor(prio) as CodecContext).compress(src, cunit)
    } catch (err) {
      throw new ErrnoError(Errno.EIO, `pages ${first}..${first + n - 1}: unit compression failed: ${String(err)}`)
    }
    if (len !== 0 && len <= MAX_UNIT_BYTES) {
      const layout = unitLayout(len)
      if (units.footprint(layout) < oldFootprint) {
        this.host.storeUnit(first, n, cunit, len, layout, prio)
        this.recompressedPages += n
        this.unitsWritten++
        return n
      }
    }
    // No unit saves memory here: page by page, as the kernel would (already counted); members of
    // sparse units become pages of their own.
    for (let k = 0; k < n; k++) {
      const index = first + k
      if ((table.meta[index] & SLOT_UNIT) === 0) {
        this.recompressSlot(table, index, threshold, prio)
      } else {
        this.host.splitMember(index, ubuf.subarray(k * PAGE_SIZE, (k + 1) * PAGE_SIZE), table.priority(index))
        this.membersSplit++
      }
    }
    return n
  }
}
