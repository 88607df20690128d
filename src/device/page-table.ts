/**
 * zram's slot table (struct zram_table_entry), as typed arrays indexed by page number.
 * 16 bytes per page, like the kernel's entry on 64-bit:
 *   value[2i], value[2i+1]  pool handle (low word), or the same-filled 8-byte pattern (low, high),
 *                           or, while STAGED, the staging slot (low) and the staging ticket (high)
 *   meta[i]                 compressed size in bits 0..12 (0..4096), the compression priority in
 *                           bits 13..14 (ZRAM_COMP_PRIORITY: which algorithm holds the page), flags above
 *   atime[i]                seconds since the device was initialised, at the last access
 * Nothing per page lives on the JS heap as an object.
 */
export const SECTOR_SIZE = 512

const SIZE_MASK = 0x1fff
/** zram_drv.h ZRAM_COMP_PRIORITY_BIT1 and _MASK: 2 bits, priorities 0 (primary) .. 3. */
export const PRIO_SHIFT = 13
export const PRIO_MASK = 0x3
/**
 * The page is one member of a multi-page unit (our extension, src/device/unit-store.ts):
 * value[2i] is the unit's head handle, value[2i+1] its position (bits 0..7) and the unit's page
 * count (bits 8..15); the size field holds the page's share of the unit's bytes.
 */
export const SLOT_UNIT = 1 << 15
/** The slot holds an 8-byte pattern, not a handle (ZRAM_SAME). */
export const SLOT_SAME = 1 << 16
/** The slot holds the raw page (ZRAM_HUGE). */
export const SLOT_HUGE = 1 << 17
/** Marked by `idle` (ZRAM_IDLE). */
export const SLOT_IDLE = 1 << 18
/** A slot with data: a handle, or SAME. */
export const SLOT_ALLOCATED = 1 << 19

/**
 * The page's newest contents wait, uncompressed, in a kcompressd staging slot (src/kcompressd):
 * value[2i] is the slot, value[2i+1] the ticket (a per-staging generation number) a worker's result
 * must carry to be committed. Set together with SLOT_ALLOCATED; size() is 0.
 */
export const SLOT_STAGED = 1 << 20

/** The page lives on the lower file (ZRAM_WB): value[2i], value[2i+1] = its location (lo, hi). */
export const SLOT_WB = 1 << 21
/**
 * Selected for writeback (ZRAM_PP_SLOT). Any access or new contents clear it, and a writeback
 * whose page lost it drops its copy: the page changed while its old contents were being written.
 */
export const SLOT_PP = 1 << 22
/** Referenced since the shrinker's clock hand last passed (its second chance). */
export const SLOT_REF = 1 << 23
/** No algorithm compressed it below huge_class_size (ZRAM_INCOMPRESSIBLE). */
export const SLOT_INCOMPRESSIBLE = 1 << 24

/**
 * A store of new contents straight to the lower file is under way (the pool is at its limit).
 * Any other change of the page's contents drops it, and the store's result is then discarded.
 */
export const SLOT_DIRECT = 1 << 25

/**
 * Flags that survive a change of where the page's data lives: not of what it holds, which goes
 * through clear(). SLOT_DIRECT among them: new contents on their way to the lower file must still
 * find the page theirs when the old contents were moved meanwhile (setWrittenBack keeps it too,
 * with REF; IDLE goes, as zram_writeback_complete clears it).
 */
const KEEP_ON_MOVE = SLOT_IDLE | SLOT_REF | SLOT_DIRECT

export const BYTES_PER_PAGE_METADATA = 16

export class PageTable {
  readonly pages: number
  readonly value: Uint32Array
  readonly meta: Uint32Array
  readonly atime: Uint32Array

  constructor(pages: number) {
    this.pages = pages
    this.value = new Uint32Array(pages * 2)
    this.meta = new Uint32Array(pages)
    this.atime = new Uint32Array(pages)
  }

  /** Bytes of metadata this table holds: the figure the <= 16 bytes/page target is about. */
  get metadataBytes(): number {
    return this.value.byteLength + this.meta.byteLength + this.atime.byteLength
  }

  isAllocated(index: number): boolean {
    return (this.meta[index] & SLOT_ALLOCATED) !== 0
  }

  flags(index: number): number {
    return this.meta[index] & ~SIZE_MASK
  }

  size(index: number): number {
    return this.meta[index] & SIZE_MASK
  }

  handle(index: number): number {
    return this.value[index * 2]
  }

  setSame(index: number, lo: number, hi: number): void {
    this.value[index * 2] = lo
    this.value[index * 2 + 1] = hi
    this.meta[index] = SLOT_ALLOCATED | SLOT_SAME | (this.meta[index] & KEEP_ON_MOVE)
  }

  /** A pool object; prio is the algorithm that compressed it (0: the primary; raw pages keep 0). */
  setObject(index: number, handle: number, size: number, huge: boolean, prio = 0): void {
    this.value[index * 2] = handle
    this.value[index * 2 + 1] = 0
    this.meta[index] = SLOT_ALLOCATED | (huge ? SLOT_HUGE : 0) | (size & SIZE_MASK) | ((prio & PRIO_MASK) << PRIO_SHIFT) |
      (this.meta[index] & KEEP_ON_MOVE)
  }

  /** Member `position` of the unit at `head` (of `unitPages` pages), compressed with prio; share in bytes. */
  setUnitMember(index: number, head: number, position: number, unitPages: number, share: number, prio: number): void {
    this.value[index * 2] = head
    this.value[index * 2 + 1] = position | (unitPages << 8)
    this.meta[index] = SLOT_ALLOCATED | SLOT_UNIT | (share & SIZE_MASK) | ((prio & PRIO_MASK) << PRIO_SHIFT) |
      (this.meta[index] & KEEP_ON_MOVE)
  }

  /** Which algorithm holds the page (ZRAM_COMP_PRIORITY): 0 primary, 1..3 recompression. */
  priority(index: number): number {
    return (this.meta[index] >>> PRIO_SHIFT) & PRIO_MASK
  }

  unitPosition(index: number): number {
    return this.value[index * 2 + 1] & 0xff
  }

  unitPages(index: number): number {
    return (this.value[index * 2 + 1] >>> 8) & 0xff
  }

  /**
   * The page now lives on the lower file at `location` (a block index or a byte offset, < 2^53).
   * size is what the lower file holds (4096 for a raw page); HUGE and the compression priority are
   * kept as the kernel keeps them for compressed writeback (a decompressed block has priority 0).
   */
  setWrittenBack(index: number, location: number, size: number, huge: boolean, prio = 0): void {
    this.value[index * 2] = location >>> 0
    this.value[index * 2 + 1] = Math.floor(location / 0x100000000)
    this.meta[index] = SLOT_ALLOCATED | SLOT_WB | (huge ? SLOT_HUGE : 0) | (size & SIZE_MASK) |
      ((prio & PRIO_MASK) << PRIO_SHIFT) | (this.meta[index] & (SLOT_REF | SLOT_DIRECT))
  }

  /** A written-back page's location on the lower file. */
  location(index: number): number {
    return this.value[index * 2] + this.value[index * 2 + 1] * 0x100000000
  }

  setFlag(index: number, flag: number): void {
    this.meta[index] |= flag
  }

  clearFlag(index: number, flag: number): void {
    this.meta[index] &= ~flag
  }

  isStaged(index: number): boolean {
    return (this.meta[index] & SLOT_STAGED) !== 0
  }

  setStaged(index: number, slot: number, ticket: number): void {
    this.value[index * 2] = slot
    this.value[index * 2 + 1] = ticket
    this.meta[index] = SLOT_ALLOCATED | SLOT_STAGED | (this.meta[index] & KEEP_ON_MOVE)
  }

  clear(index: number): void {
    this.value[index * 2] = 0
    this.value[index * 2 + 1] = 0
    this.meta[index] = 0
  }

  /**
   * Every read and write marks the slot accessed (zram's mark_slot_accessed): clears IDLE and a
   * pending writeback selection, stamps the access time, and gives the shrinker's clock a reason
   * to pass the page over once.
   */
  touch(index: number, nowSeconds: number): void {
    this.meta[index] = (this.meta[index] & ~(SLOT_IDLE | SLOT_PP)) | SLOT_REF
    this.atime[index] = nowSeconds
  }
}
