/**
 * What recompression and multi-page units do to the device's pages (recompressor.ts calls it as its
 * RecompressHost): a page's object replaced by a smaller one, pages grouped into a unit, a member
 * split out of a unit, and compact's regrouping of units that fell below half their pages.
 */
import type { CodecContext } from '../codec/codec'
import { Errno, ErrnoError } from '../errno'
import type { RecompressConfig } from '../kcompressd/recompress-offload'
import { PAGE_SIZE } from '../page'
import type { ZsPool } from '../pool/zs-pool'
import type { Compression } from './compression'
import type { PageStore } from './page-store'
import { SLOT_UNIT } from './page-table'
import type { RecompressHost } from './recompressor'
import type { PageTableView, SlotStore } from './slot-store'
import type { UnitLayout, UnitStore } from './unit-store'

export class RecompressSlots implements RecompressHost {
  constructor(
    readonly slots: SlotStore,
    readonly units: UnitStore,
    private readonly pool: ZsPool,
    private readonly pages: PageStore,
    private readonly compression: Compression,
  ) {}

  get pageTable(): PageTableView | null {
    return this.slots.table
  }

  algorithmOf(prio: number): string | null {
    return this.compression.algorithmOf(prio)
  }

  contextFor(prio: number): CodecContext | null {
    return this.compression.contextFor(prio)
  }

  compressionConfigOf(prio: number): RecompressConfig {
    return this.compression.configOf(prio)
  }

  decompressPage(index: number, out: Buffer): void {
    this.pages.load(this.slots.table as PageTableView, index, out)
  }

  /**
   * recompress_slot's end: the new object replaces the old one (slot_free: huge_pages, IDLE,
   * INCOMPRESSIBLE, the access time all go), pages_stored and compr_data_size move by the
   * difference. Not checked against mem_limit, as in the kernel. ENOMEM when the pool cannot grow.
   */
  replaceObject(index: number, compressed: Uint8Array, len: number, prio: number): void {
    let handle: number
    try {
      handle = this.pool.malloc(len)
    } catch (err) {
      // zs_malloc for recompression: no direct reclaim; the page stays as it was.
      throw new ErrnoError(Errno.ENOMEM, `cannot allocate ${len} bytes: ${String(err)}`)
    }
    this.pool.write(handle, compressed, 0, len)
    this.slots.replaceObject(index, handle, len, prio)
  }

  /**
   * Pages [first, first + pages) become members of one unit. compr_data_size gets the unit's pool
   * bytes (header + compressed) once, as each member's share (the size field of its entry); a
   * member that leaves takes its share with it.
   */
  storeUnit(first: number, pages: number, compressed: Uint8Array, len: number, layout: UnitLayout, prio: number): void {
    let head: number
    try {
      head = this.units.write(compressed, len, pages, layout)
    } catch (err) {
      throw new ErrnoError(Errno.ENOMEM, `cannot allocate a unit of ${layout.bytes} bytes: ${String(err)}`)
    }
    const base = Math.floor(layout.bytes / pages)
    const extra = layout.bytes % pages
    for (let j = 0; j < pages; j++) this.slots.setUnitMember(first + j, head, j, pages, base + (j < extra ? 1 : 0), prio)
  }

  /** A member of a sparse unit becomes a page of its own, compressed by prio (raw if huge). */
  splitMember(index: number, page: Buffer, prio: number): void {
    this.pages.storeWith(index, page, prio)
  }

  /**
   * compact: a unit whose live members fell below half its pages holds dead bytes; its members
   * become pages of their own (compressed by the unit's algorithm), which frees the unit. Returns
   * the members split.
   */
  splitSparseUnits(): number {
    const table = this.slots.table as PageTableView
    if (this.units.units === 0) return 0
    const page = Buffer.alloc(PAGE_SIZE)
    let split = 0
    for (let index = 0; index < table.pages; index++) {
      if ((table.meta[index] & SLOT_UNIT) === 0) continue
      const head = table.value[index * 2]
      const first = index - table.unitPosition(index)
      const pages = table.unitPages(index)
      // Handle each unit once, at its lowest live member.
      if (this.units.hasLiveMember(table, head, first, index - first, -1)) continue
      if (this.units.liveMembers(table, index) * 2 >= pages) continue
      for (let i = index; i < first + pages; i++) {
        if ((table.meta[i] & SLOT_UNIT) === 0 || table.value[i * 2] !== head) continue
        this.pages.load(table, i, page)
        this.pages.storeWith(i, page, table.priority(i))
        split++
      }
    }
    return split
  }
}
