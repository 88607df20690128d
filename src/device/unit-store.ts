/**
 * Multi-page units (our extension, opt-in through zramfuse/recompress_unit_pages): a run of up to
 * 16 neighbouring pages compressed together, kept in the pool as one logical object.
 *
 * zsmalloc objects are at most one page, so a unit's bytes S = header ‖ compressed are cut into
 * 4 KiB chunks: chunk 0 (the head, which starts with the header) and chunks 1..n-1 are separate
 * pool objects; every chunk but the last is a full 4096-byte object (the huge class: one frame,
 * no waste), the last one sits in the size class that fits it. The header:
 *   u8 pages, u8 chunks (n), u16 0, u32 compressed length, then u32 handle of chunk 1..n-1.
 * Each member's page-table entry names the head handle and its position (page-table.ts
 * SLOT_UNIT), so the unit itself needs no metadata outside the pool, and what it costs is in
 * mem_used_total.
 *
 * A read decodes the whole unit into one of a few cached buffers (a sequential reader decodes each
 * unit once); a unit is immutable until freed, so a cached copy is valid until free() drops it.
 */
import type { CodecContext } from '../codec/codec'
import type { ZsPool } from '../pool/zs-pool'
import { PAGE_SIZE, type PageTable, SLOT_UNIT } from './page-table'

export const MAX_UNIT_PAGES = 16
const HEADER_FIXED = 8
/** Decoded units kept for reads (each MAX_UNIT_PAGES pages: 256 KiB in all). */
const CACHE_ENTRIES = 4
/** Compressed units larger than this are never kept (they could not save memory). */
export const MAX_UNIT_BYTES = MAX_UNIT_PAGES * PAGE_SIZE

/** How a unit of `compressed` bytes is laid out in the pool. */
export interface UnitLayout {
  /** Pool objects (chunks), the head included. */
  chunks: number
  /** Header bytes (8 + 4 per chunk after the head). */
  header: number
  /** Bytes requested from the pool in all (header + compressed): what compr_data_size counts. */
  bytes: number
  /** Length of the last chunk. */
  lastLen: number
}

export function unitLayout(compressed: number): UnitLayout {
  // n chunks hold 8 + 4(n-1) + compressed bytes; the smallest n that fits (at most one step more).
  let n = Math.max(1, Math.ceil((HEADER_FIXED + compressed) / PAGE_SIZE))
  while (n * PAGE_SIZE < HEADER_FIXED + 4 * (n - 1) + compressed) n++
  const header = HEADER_FIXED + 4 * (n - 1)
  const bytes = header + compressed
  return { chunks: n, header, bytes, lastLen: bytes - (n - 1) * PAGE_SIZE }
}

export interface UnitStats {
  /** Units in the pool now, their member pages still live, and the pool bytes they requested. */
  units: number
  unitPages: number
  unitBytes: number
  cacheHits: number
  cacheMisses: number
}

export class UnitStore {
  private readonly pool: ZsPool
  /** header ‖ compressed of one unit, as read from or written to the pool. */
  private readonly sbuf = Buffer.alloc(MAX_UNIT_BYTES + PAGE_SIZE)
  private readonly cacheHead = new Int32Array(CACHE_ENTRIES).fill(-1)
  private readonly cacheUsed = new Float64Array(CACHE_ENTRIES)
  private readonly cachePages: Buffer[] = []
  private useClock = 0
  units = 0
  /** Member pages of live units (counted at write; a member leaving decrements it). */
  unitPages = 0
  unitBytes = 0
  cacheHits = 0
  cacheMisses = 0

  constructor(pool: ZsPool) {
    this.pool = pool
    for (let i = 0; i < CACHE_ENTRIES; i++) this.cachePages.push(Buffer.alloc(MAX_UNIT_PAGES * PAGE_SIZE))
  }

  /** The pool footprint of a layout: full chunks take a frame each, the last its size class. */
  footprint(layout: UnitLayout): number {
    return (layout.chunks - 1) * PAGE_SIZE + this.pool.classSizeOf(layout.lastLen)
  }

  /**
   * Store a unit of `pages` pages whose compressed form is compressed[0, len): allocate its chunks
   * and return the head handle. On an allocation failure nothing stays allocated and it throws.
   */
  write(compressed: Uint8Array, len: number, pages: number, layout: UnitLayout): number {
    const s = this.sbuf
    const { chunks, header, bytes } = layout
    const handles: number[] = []
    try {
      for (let j = 0; j < chunks; j++) handles.push(this.pool.malloc(j < chunks - 1 ? PAGE_SIZE : layout.lastLen))
    } catch (err) {
      for (const h of handles) this.pool.free(h)
      throw err
    }
    s[0] = pages
    s[1] = chunks
    s.writeUInt16LE(0, 2)
    s.writeUInt32LE(len, 4)
    for (let j = 1; j < chunks; j++) s.writeUInt32LE(handles[j], HEADER_FIXED + 4 * (j - 1))
    s.set(compressed.subarray(0, len), header)
    for (let j = 0; j < chunks; j++) {
      this.pool.write(handles[j], s, j * PAGE_SIZE, Math.min(PAGE_SIZE, bytes - j * PAGE_SIZE))
    }
    this.units++
    this.unitPages += pages
    this.unitBytes += bytes
    return handles[0]
  }

  /**
   * Copy page `position` of the unit at `head` into out (4096 bytes), decoding the unit with ctx
   * unless a cached copy has it. Throws when the unit does not decode.
   */
  read(head: number, position: number, ctx: CodecContext, out: Uint8Array): void {
    const e = this.decoded(head, ctx)
    const from = position * PAGE_SIZE
    out.set(this.cachePages[e].subarray(from, from + PAGE_SIZE))
  }

  /** Free every chunk of the unit at head (its last member left). */
  free(head: number): void {
    const s = this.sbuf
    this.pool.read(head, s, 0, HEADER_FIXED)
    const chunks = s[1]
    const len = s.readUInt32LE(4)
    if (chunks > 1) this.pool.read(head, s, 0, HEADER_FIXED + 4 * (chunks - 1))
    for (let j = 1; j < chunks; j++) this.pool.free(s.readUInt32LE(HEADER_FIXED + 4 * (j - 1)))
    this.pool.free(head)
    for (let e = 0; e < CACHE_ENTRIES; e++) {
      if (this.cacheHead[e] === head) {
        this.cacheHead[e] = -1
        this.cacheUsed[e] = 0
      }
    }
    this.units--
    this.unitBytes -= HEADER_FIXED + 4 * (chunks - 1) + len
  }

  /** A member left its unit (overwrite, discard, split, regrouping). */
  memberLeft(): void {
    this.unitPages--
  }

  /**
   * Is any other page still a member of the unit at head? Members are the pages
   * [first, first + pages) whose entry names head.
   */
  hasLiveMember(table: PageTable, head: number, first: number, pages: number, except: number): boolean {
    for (let i = first; i < first + pages; i++) {
      if (i !== except && (table.meta[i] & SLOT_UNIT) !== 0 && table.value[i * 2] === head) return true
    }
    return false
  }

  /** Live members of the unit that `index` belongs to. */
  liveMembers(table: PageTable, index: number): number {
    const head = table.value[index * 2]
    const first = index - table.unitPosition(index)
    const pages = table.unitPages(index)
    let n = 0
    for (let i = first; i < first + pages; i++) {
      if ((table.meta[i] & SLOT_UNIT) !== 0 && table.value[i * 2] === head) n++
    }
    return n
  }

  /** reset: the pool is gone; forget the cache and the counters. */
  reset(): void {
    this.cacheHead.fill(-1)
    this.cacheUsed.fill(0)
    this.units = this.unitPages = this.unitBytes = 0
    this.cacheHits = this.cacheMisses = 0
  }

  stats(): UnitStats {
    return { units: this.units, unitPages: this.unitPages, unitBytes: this.unitBytes, cacheHits: this.cacheHits, cacheMisses: this.cacheMisses }
  }

  /** The cache entry holding the decoded unit at head (decoding it into the least recently used one). */
  private decoded(head: number, ctx: CodecContext): number {
    const stamp = ++this.useClock
    let victim = 0
    for (let e = 0; e < CACHE_ENTRIES; e++) {
      if (this.cacheHead[e] === head) {
        this.cacheHits++
        this.cacheUsed[e] = stamp
        return e
      }
      if (this.cacheUsed[e] < this.cacheUsed[victim]) victim = e
    }
    this.cacheMisses++
    const s = this.sbuf
    this.pool.read(head, s, 0, HEADER_FIXED)
    const pages = s[0]
    const chunks = s[1]
    const len = s.readUInt32LE(4)
    const header = HEADER_FIXED + 4 * (chunks - 1)
    const bytes = header + len
    this.pool.read(head, s, 0, Math.min(PAGE_SIZE, bytes))
    for (let j = 1; j < chunks; j++) {
      this.pool.read(s.readUInt32LE(HEADER_FIXED + 4 * (j - 1)), s, j * PAGE_SIZE, Math.min(PAGE_SIZE, bytes - j * PAGE_SIZE))
    }
    // Invalidate first: a failed decode must not leave a half-written entry that claims a unit.
    this.cacheHead[victim] = -1
    ctx.decompress(s.subarray(header, bytes), this.cachePages[victim].subarray(0, pages * PAGE_SIZE))
    this.cacheHead[victim] = head
    this.cacheUsed[victim] = stamp
    return victim
  }
}
