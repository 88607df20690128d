/**
 * recompress (CONFIG_ZRAM_MULTI_COMP): scan_slots_for_recompress, then recompress_slot for each
 * selected page, as in mainline zram_drv.c (7.1: one priority per run, no chaining); and our
 * multi-page units when zramfuse/recompress_unit_pages is 2..16.
 *
 * Off the request path: the scan passes over the page table in stretches; the compression runs
 * on a worker thread (src/kcompressd/recompress-offload.ts) while this thread only copies the
 * selected pages out and commits the results, a few pages per turn of the event loop. A page
 * read, written or discarded after the scan loses its SLOT_PP mark and is skipped (the kernel's
 * ZRAM_PP_SLOT rule), and a reset ends the run.
 */
import { performance } from 'node:perf_hooks'
import type { CodecContext } from '../codec/codec'
import { Errno, ErrnoError } from '../errno'
import { classIndexOf, GEOMETRY, sizeClassIndex } from '../pool/size-class'
import {
  SLOT_ALLOCATED, SLOT_DIRECT, SLOT_HUGE, SLOT_IDLE, SLOT_INCOMPRESSIBLE, SLOT_PP, SLOT_SAME, SLOT_STAGED, SLOT_UNIT,
  SLOT_WB,
} from './page-table'
import { PAGE_SIZE } from '../page'
import type { PageTableView, SlotStore } from './slot-store'
import { ZRAM_MAX_COMPS } from './recomp-algorithms'
import { MAX_UNIT_BYTES, type UnitLayout, unitLayout, type UnitStore } from './unit-store'
import { RecompressBatch, type RecompressConfig, RecompressOffload } from '../kcompressd/recompress-offload'

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

/** What the recompressor needs from its device (the slot store stays the only writer of the table). */
export interface RecompressHost {
  readonly pageTable: PageTableView | null
  /** Selection (SLOT_PP), IDLE and INCOMPRESSIBLE marks go through the slot store. */
  readonly slots: SlotStore
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
  /** The algorithm and parameters of priority prio, for the worker that compresses a run. */
  compressionConfigOf(prio: number): RecompressConfig
}

/** Where a run is: its candidates, the next one, max_pages left, pages to try again singly. */
interface Cursor {
  candidates: number[]
  i: number
  budget: number
  retry: number[]
  unitPages: number
  threshold: number
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
/** Pages the scan looks at between two yields (a few tens of microseconds' work). */
const SCAN_STRETCH = 2048
/** Pages copied into a batch, or committed, between two yields (tens of microseconds). */
const SLICE_PAGES = 8

const yieldTurn = (): Promise<void> => new Promise((resolve) => setImmediate(resolve))

/** Main-thread work in slices of SLICE_PAGES pages, each timed into the run's stats. */
class Slices {
  private started = performance.now()
  private pages = 0

  constructor(private readonly onSlice: (startedMs: number) => void) {}

  /** Count n pages of work; true when the slice is full and the caller should yield (next()). */
  add(n: number): boolean {
    this.pages += n
    return this.pages >= SLICE_PAGES
  }

  /** End this slice, let requests in, start the next. */
  async next(): Promise<void> {
    this.end()
    await yieldTurn()
    this.started = performance.now()
    this.pages = 0
  }

  end(): void {
    this.onSlice(this.started)
  }
}

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

  /** Members were split out of their units (compaction); counted with the recompressor's. */
  countSplit(members: number): void {
    this.membersSplit += members
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

  /**
   * The run: the scan, then a pipeline of two batches. The main thread fills one (decompressing
   * each selected page into the batch) while the worker compresses the other with prio's
   * algorithm, then commits what came back; it yields every SLICE_PAGES pages, so requests wait
   * for at most a slice, never for a compression. A page read, written or discarded between its
   * copy into a batch and the commit has lost SLOT_PP (touch, clear) and is left as it is; nothing
   * sets SLOT_PP on a page meanwhile (writeback and the shrinker pass such pages by), so a page
   * that still has it is exactly what was copied.
   */
  private async run(table: PageTableView, mode: number, threshold: number, maxPages: number, prio: number, unitPages: number): Promise<number> {
    if (this.host.pageTable !== table) return 0
    this.runs++
    const before = this.recompressedPages
    const candidates = unitPages > 1
      ? await this.scanForUnits(table, mode, threshold, prio)
      : await this.scanSlots(table, mode, prio)
    const cursor: Cursor = { candidates, i: 0, budget: maxPages, retry: [], unitPages, threshold }
    const inFlight: Array<{ batch: RecompressBatch; done: Promise<Int32Array> }> = []
    let offload: RecompressOffload | null = null
    try {
      if (candidates.length === 0) return 0
      offload = new RecompressOffload(this.host.compressionConfigOf(prio))
      const highest = this.highestPriority(prio)
      const spare = [new RecompressBatch(), new RecompressBatch()]
      for (;;) {
        while (spare.length > 0 && this.host.pageTable === table && (cursor.retry.length > 0 || (cursor.i < candidates.length && cursor.budget > 0))) {
          const batch = spare.pop() as RecompressBatch
          batch.clear()
          await this.gather(table, cursor, batch)
          if (batch.items === 0) {
            spare.push(batch)
            break
          }
          inFlight.push({ batch, done: offload.compress(batch) })
        }
        const next = inFlight.shift()
        if (next === undefined) break
        let lens: Int32Array
        try {
          lens = await next.done
        } catch (err) {
          inFlight.unshift(next)
          throw new ErrnoError(Errno.EIO, `recompression failed: ${String(err)}`)
        }
        if (this.host.pageTable !== table) break
        await this.commitBatch(table, cursor, next.batch, lens, prio, highest)
        spare.push(next.batch)
      }
    } finally {
      // release_pp_ctl: pages selected but not committed lose the mark.
      if (this.host.pageTable === table) {
        for (const { batch } of inFlight) {
          for (let k = 0; k < batch.items; k++) for (let j = 0; j < batch.pages[k]; j++) this.host.slots.deselect(batch.index[k] + j)
        }
        for (const index of cursor.retry) this.host.slots.deselect(index)
        for (let i = cursor.i; i < candidates.length; i++) this.host.slots.deselect(candidates[i])
      }
      if (offload !== null) void offload.close()
    }
    return this.recompressedPages - before
  }

  /**
   * Fill a batch: pages whose compression a unit did not pay for go again singly first, then the
   * candidates, a unit run of up to unitPages consecutive selected pages per item (or one page).
   * Each selected page is decompressed into the batch and loses IDLE (recompress_slot does that);
   * max_pages counts pages attempted. A lone member of a sparse unit is split out here.
   */
  private async gather(table: PageTableView, c: Cursor, batch: RecompressBatch): Promise<void> {
    const slices = new Slices((t) => this.endSlice(t))
    let full = false
    const copy = (index: number, n: number): void => {
      const at = batch.add(index, n)
      for (let k = 0; k < n; k++) {
        this.host.decompressPage(index + k, batch.inputBytes.subarray(at + k * PAGE_SIZE, at + (k + 1) * PAGE_SIZE))
        this.host.slots.setIdle(index + k, false)
      }
      full = slices.add(n)
    }
    try {
      while (batch.fits(1) && c.retry.length > 0) {
        const index = c.retry.shift() as number
        if ((table.meta[index] & SLOT_PP) === 0) continue
        copy(index, 1)
      }
      while (c.i < c.candidates.length && c.budget > 0) {
        if (full) {
          await slices.next()
          if (this.host.pageTable !== table) return
          full = false
        }
        const index = c.candidates[c.i]
        const meta = table.meta[index]
        if ((meta & SLOT_PP) === 0) {
          c.i++
          continue
        }
        let n = 1
        if (c.unitPages > 1) {
          while (n < c.unitPages && n < c.budget && c.i + n < c.candidates.length && c.candidates[c.i + n] === index + n &&
            (table.meta[index + n] & SLOT_PP) !== 0) n++
        }
        if (!batch.fits(n)) return
        if (n === 1 && (meta & SLOT_UNIT) !== 0) {
          // A lone live member of a sparse unit: it becomes a page of its own again.
          this.host.decompressPage(index, this.page)
          this.host.splitMember(index, this.page, table.priority(index))
          this.membersSplit++
          this.host.slots.deselect(index)
          c.budget--
          c.i++
          full = slices.add(1)
          continue
        }
        c.i += n
        // Objects already "small enough" are not touched, and not counted.
        if (n === 1 && table.size(index) < c.threshold) {
          this.host.slots.deselect(index)
          continue
        }
        copy(index, n)
        c.budget -= n
      }
    } finally {
      slices.end()
    }
  }

  /** Commit a compressed batch, item by item, yielding every SLICE_PAGES pages. */
  private async commitBatch(table: PageTableView, c: Cursor, batch: RecompressBatch, lens: Int32Array, prio: number, highest: boolean): Promise<void> {
    const slices = new Slices((t) => this.endSlice(t))
    try {
      for (let k = 0; k < batch.items; k++) {
        if (k > 0 && slices.add(batch.pages[k - 1])) {
          await slices.next()
          if (this.host.pageTable !== table) return
        }
        const index = batch.index[k]
        const n = batch.pages[k]
        let untouched = true
        for (let j = 0; j < n; j++) if ((table.meta[index + j] & SLOT_PP) === 0) untouched = false
        if (!untouched) {
          // Changed or read since it was copied: left as it is (the others keep their mark until then).
          for (let j = 0; j < n; j++) this.host.slots.deselect(index + j)
          continue
        }
        if (n === 1) {
          this.host.slots.deselect(index)
          this.commitSlot(table, index, lens[k], batch, k, c.threshold, prio, highest)
        } else {
          this.commitUnit(table, c, index, n, lens[k], batch, k, prio)
        }
      }
    } finally {
      slices.end()
    }
  }

  /**
   * recompress_slot's decision (mainline 7.1, one algorithm: prio's): keep the result if it lands
   * in a strictly smaller size class (and under threshold when one is set); if not, and prio is
   * the highest configured priority, ZRAM_INCOMPRESSIBLE.
   */
  private commitSlot(table: PageTableView, index: number, len: number, batch: RecompressBatch, k: number, threshold: number, prio: number,
    highest: boolean): void {
    // 0: not even two pages held it; no class is larger.
    const lenNew = len === 0 ? 2 * PAGE_SIZE : len
    if (lookupClassIndex(lenNew) >= lookupClassIndex(table.size(index)) || (threshold !== 0 && lenNew >= threshold)) {
      // A later run with a higher priority may still try it, unless none is configured.
      if (highest) this.host.slots.markIncompressible(index)
      return
    }
    this.host.replaceObject(index, batch.result(k, lenNew), lenNew, prio)
    this.recompressedPages++
  }

  /**
   * A unit of n pages from first, compressed by prio: kept if it takes less pool memory than the
   * pages do now (a member of a sparse unit carries its part of what that unit holds for its live
   * members; any other page its size class). If not, each page goes the kernel's way: plain pages
   * again singly, in a later batch; members of sparse units become pages of their own.
   */
  private commitUnit(table: PageTableView, c: Cursor, first: number, n: number, len: number, batch: RecompressBatch, k: number, prio: number): void {
    const units = this.host.units
    let oldFootprint = 0
    for (let j = 0; j < n; j++) {
      const index = first + j
      oldFootprint += (table.meta[index] & SLOT_UNIT) !== 0
        ? units.footprintOf(table.handle(index)) / units.liveMembers(table, index)
        : GEOMETRY.size[classIndexOf(table.size(index))]
    }
    if (len !== 0 && len <= MAX_UNIT_BYTES) {
      const layout = unitLayout(len)
      if (units.footprint(layout) < oldFootprint) {
        for (let j = 0; j < n; j++) this.host.slots.deselect(first + j)
        this.host.storeUnit(first, n, batch.result(k, len), len, layout, prio)
        this.recompressedPages += n
        this.unitsWritten++
        return
      }
    }
    const at = batch.first[k] * PAGE_SIZE
    for (let j = 0; j < n; j++) {
      const index = first + j
      if ((table.meta[index] & SLOT_UNIT) === 0) {
        // Keeps SLOT_PP: it waits for its turn as a single page.
        c.retry.push(index)
      } else {
        this.host.slots.deselect(index)
        this.host.splitMember(index, batch.inputBytes.subarray(at + j * PAGE_SIZE, at + (j + 1) * PAGE_SIZE), table.priority(index))
        this.membersSplit++
      }
    }
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
  private async scan(table: PageTableView, visit: (index: number) => void): Promise<void> {
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
  private async scanSlots(table: PageTableView, mode: number, prio: number): Promise<number[]> {
    const buckets: number[][] = []
    for (let b = 0; b < NUM_PP_BUCKETS; b++) buckets.push([])
    await this.scan(table, (index) => {
      const meta = table.meta[index]
      if (!this.eligible(meta, mode)) return
      // Already compressed with the same or a higher priority.
      if (table.priority(index) >= prio) return
      this.host.slots.select(index)
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
  private async scanForUnits(table: PageTableView, mode: number, threshold: number, prio: number): Promise<number[]> {
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
      this.host.slots.select(index)
      out.push(index)
    })
    return out
  }
}
