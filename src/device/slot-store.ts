/**
 * The page table's one writer. Every change of what a slot holds, or of its flags, is an operation
 * here, and each keeps the counters that move with slots (pages_stored, compr_data_size,
 * same_pages, huge_pages) true: the rest of the device, the lower tier and the recompressor read
 * the table through PageTableView, which has no setters (test/device/slot-owner.test.ts checks that
 * no other module calls one).
 *
 * A reset drops the table (`table` is null until the next disksize): an asynchronous caller that
 * held a view checks `slots.table === view` before it changes anything.
 */
import type { ZsPool } from '../pool/zs-pool'
import { PAGE_SIZE } from '../page'
import {
  PageTable, SLOT_DIRECT, SLOT_HUGE, SLOT_IDLE, SLOT_INCOMPRESSIBLE, SLOT_PP, SLOT_REF, SLOT_SAME, SLOT_STAGED, SLOT_UNIT, SLOT_WB,
} from './page-table'
import type { UnitStore } from './unit-store'

/** Typed-array reads only: element writes do not compile through it. */
export interface ReadonlyU32 {
  readonly [index: number]: number
  readonly length: number
}

/** The page table as every module but the slot store sees it: reads only. */
export interface PageTableView {
  readonly pages: number
  readonly value: ReadonlyU32
  readonly meta: ReadonlyU32
  readonly atime: ReadonlyU32
  readonly metadataBytes: number
  isAllocated(index: number): boolean
  isStaged(index: number): boolean
  flags(index: number): number
  size(index: number): number
  handle(index: number): number
  priority(index: number): number
  unitPosition(index: number): number
  unitPages(index: number): number
  location(index: number): number
}

/** What freeing a slot must tell the slot's other owners. */
export interface SlotRelease {
  /** A STAGED page's queued or in-flight compression is superseded (kcompressd drops its result). */
  supersede(slot: number): void
  /** A written-back page's copy on the lower file is no longer needed. */
  releaseLower(table: PageTableView, index: number): void
}

export class SlotStore {
  private current: PageTable | null = null

  // zram_stats that follow the slots.
  private stored = 0
  private comprBytes = 0
  private same = 0
  private huge = 0
  private hugeSince = 0

  constructor(
    private readonly pool: ZsPool,
    private readonly units: UnitStore,
    private readonly release: SlotRelease,
  ) {}

  /** The table of the initialised device, or null. */
  get table(): PageTableView | null {
    return this.current
  }

  /** pages_stored: pages with data (in the pool, same-filled, staged or written back). */
  get pagesStored(): number {
    return this.stored
  }

  get comprDataSize(): number {
    return this.comprBytes
  }

  get samePages(): number {
    return this.same
  }

  get hugePages(): number {
    return this.huge
  }

  get hugePagesSince(): number {
    return this.hugeSince
  }

  /** disksize_store: a table of `pages` empty slots. */
  create(pages: number): void {
    this.current = new PageTable(pages)
  }

  /** reset: the table goes (the pool is reset by its owner) and the counters with it. */
  drop(): void {
    this.current = null
    this.stored = this.comprBytes = this.same = this.huge = this.hugeSince = 0
  }

  /** Free whatever the slot holds, telling its other owners (zram_free_page). */
  free(index: number): void {
    const table = this.current as PageTable
    if (!table.isAllocated(index)) return
    const flags = table.flags(index)
    if (flags & SLOT_STAGED) {
      this.release.supersede(table.value[index * 2])
    } else if (flags & SLOT_SAME) {
      this.same--
    } else if (flags & SLOT_WB) {
      this.release.releaseLower(table, index)
    } else if (flags & SLOT_UNIT) {
      // The page takes its share of the unit's bytes; the unit goes with its last member.
      this.comprBytes -= table.size(index)
      this.units.memberLeft()
      const head = table.value[index * 2]
      const first = index - table.unitPosition(index)
      if (!this.units.hasLiveMember(table, head, first, table.unitPages(index), index)) this.units.free(head)
    } else {
      this.pool.free(table.handle(index))
      this.comprBytes -= table.size(index)
      if (flags & SLOT_HUGE) this.huge--
    }
    this.stored--
    table.clear(index)
  }

  /** The page now lives in pool object `handle` (size bytes; huge: the raw page), made by prio. */
  setObject(index: number, handle: number, size: number, huge: boolean, prio: number): void {
    const table = this.current as PageTable
    this.free(index)
    table.setObject(index, handle, size, huge, huge ? 0 : prio)
    this.comprBytes += size
    this.stored++
    if (huge) {
      this.huge++
      this.hugeSince++
    }
  }

  /**
   * recompress_slot's end: a new object made by prio replaces the page's (slot_free: huge_pages,
   * IDLE, INCOMPRESSIBLE and the access time all go).
   */
  replaceObject(index: number, handle: number, size: number, prio: number): void {
    const table = this.current as PageTable
    this.free(index)
    table.setObject(index, handle, size, false, prio)
    table.atime[index] = 0
    this.comprBytes += size
    this.stored++
  }

  /** Same-filled: the 8-byte pattern (lo, hi) in the slot, no pool memory (ZRAM_SAME). */
  setSame(index: number, lo: number, hi: number): void {
    const table = this.current as PageTable
    this.free(index)
    table.setSame(index, lo, hi)
    this.same++
    this.stored++
  }

  /** The page's newest contents wait in kcompressd's staging `slot` under `ticket`. */
  setStaged(index: number, slot: number, ticket: number): void {
    const table = this.current as PageTable
    this.free(index)
    table.setStaged(index, slot, ticket)
    this.stored++
  }

  /** A STAGED page rewritten in its own slot before a worker took it: only the ticket moves on. */
  restage(index: number, ticket: number): void {
    ;(this.current as PageTable).value[index * 2 + 1] = ticket
  }

  /** A STAGED page that could not be stored at all is forgotten (its slot is kcompressd's to free). */
  forgetStaged(index: number): void {
    ;(this.current as PageTable).clear(index)
    this.stored--
  }

  /** Member `position` of a unit of `unitPages` pages at `head`, made by prio; `share` of its bytes. */
  setUnitMember(index: number, head: number, position: number, unitPages: number, share: number, prio: number): void {
    const table = this.current as PageTable
    this.free(index)
    table.setUnitMember(index, head, position, unitPages, share, prio)
    table.atime[index] = 0
    this.comprBytes += share
    this.stored++
  }

  /** zram_writeback_complete: the pool object is freed, the slot names the lower file instead. */
  movedToLower(index: number, location: number, size: number, huge: boolean): void {
    const table = this.current as PageTable
    this.pool.free(table.handle(index))
    this.comprBytes -= table.size(index)
    if (table.flags(index) & SLOT_HUGE) this.huge--
    // A compressed record still needs its algorithm (the kernel keeps the priority for wb_compressed).
    table.setWrittenBack(index, location, size, huge, size < PAGE_SIZE ? table.priority(index) : 0)
  }

  /** New contents stored straight on the lower file (the pool at its limit) replace the page's. */
  storedOnLower(index: number, location: number, size: number, huge: boolean): void {
    const table = this.current as PageTable
    this.free(index)
    table.setWrittenBack(index, location, size, huge)
    this.stored++
  }

  /** Segment cleaning moved a written-back page's record to `location`. */
  relocate(index: number, location: number): void {
    const table = this.current as PageTable
    table.setWrittenBack(index, location, table.size(index), (table.meta[index] & SLOT_HUGE) !== 0, table.priority(index))
  }

  /** Every read and write marks the slot accessed (mark_slot_accessed; PageTable.touch). */
  touch(index: number, nowSeconds: number): void {
    ;(this.current as PageTable).touch(index, nowSeconds)
  }

  /** Selected for post-processing, writeback or recompression (ZRAM_PP_SLOT). */
  select(index: number): void {
    ;(this.current as PageTable).setFlag(index, SLOT_PP)
  }

  /** release_pp_slot: the selection ends, done or not. */
  deselect(index: number): void {
    ;(this.current as PageTable).clearFlag(index, SLOT_PP)
  }

  /** New contents are on their way to the lower file: a writeback or recompression of the old drops its result. */
  beginDirect(index: number): void {
    const table = this.current as PageTable
    table.setFlag(index, SLOT_DIRECT)
    table.clearFlag(index, SLOT_PP)
  }

  /** The direct store is over (stored, or the page goes to memory instead). */
  endDirect(index: number): void {
    ;(this.current as PageTable).clearFlag(index, SLOT_DIRECT)
  }

  setIdle(index: number, idle: boolean): void {
    const table = this.current as PageTable
    if (idle) table.setFlag(index, SLOT_IDLE)
    else table.clearFlag(index, SLOT_IDLE)
  }

  /** No algorithm up to the highest configured one made it smaller (ZRAM_INCOMPRESSIBLE). */
  markIncompressible(index: number): void {
    ;(this.current as PageTable).setFlag(index, SLOT_INCOMPRESSIBLE)
  }

  /** The CLOCK hand passed a referenced page: its second chance is used. */
  clearReferenced(index: number): void {
    ;(this.current as PageTable).clearFlag(index, SLOT_REF)
  }
}
