/**
 * Multi-page units (our extension, opt-in through zramfuse/recompress_unit_pages): a run of up to
 * 16 neighbouring pages compressed together, kept in the pool as one logical object.
 *
 * zsmalloc objects are at most one page, so a unit's compressed bytes are cut into pieces, each a
 * pool object, chained: the head starts with a header (u8 pages, u8 pieces, u16 0, u32 compressed
 * length) and every piece (the head too) with the handle of the next one (0 after the last), then
 * its share of the data. Piece lengths are chosen so that every piece lands exactly in a
 * power-of-two size class (4096, the huge class, then 2048 .. 32: zspages of one page): cutting
 * the tail to fit its own class instead spreads a few objects over many classes of 8-page
 * zspages, and the partly empty zspages cost more than the units save (measured: 13% more
 * mem_used_total than compr_data_size on a 32 MiB mix). The lengths are a function of the
 * compressed length alone, so a reader recomputes them from the header.
 * Each member's page-table entry names the head handle and its position (page-table.ts
 * SLOT_UNIT): the unit needs no metadata outside the pool, and what it costs is in mem_used_total.
 *
 * A read decodes the whole unit into one of a few cached buffers (a sequential reader decodes each
 * unit once); a unit is immutable until freed, so a cached copy is valid until free() drops it.
 */
import type { CodecContext } from '../codec/codec'
import type { ZsPool } from '../pool/zs-pool'
import { SLOT_UNIT } from './page-table'
import type { PageTableView } from './slot-store'
import { PAGE_SIZE } from '../page'

export const MAX_UNIT_PAGES = 16
const HEAD_HEADER = 8
const NEXT = 4
/** Piece lengths that fill a power-of-two class: 4096 (huge: no in-object handle), then 2^k - 8. */
const PIECE_LENS = [4096, 2040, 1016, 504, 248, 120, 56, 24]
/** Decoded units kept for reads (each MAX_UNIT_PAGES pages: 256 KiB in all). */
const CACHE_ENTRIES = 4
/** Compressed units larger than this are never kept (they could not save memory). */
export const MAX_UNIT_BYTES = MAX_UNIT_PAGES * PAGE_SIZE

/** How a unit of `compressed` bytes is laid out in the pool. */
export interface UnitLayout {
  /** Each piece's length, the head first. */
  lens: number[]
  /** Bytes requested from the pool in all (headers, links, data): what compr_data_size counts. */
  bytes: number
}

export function unitLayout(compressed: number): UnitLayout {
  const lens: number[] = []
  let left = compressed
  let bytes = 0
  while (left > 0 || lens.length === 0) {
    const over = (lens.length === 0 ? HEAD_HEADER : 0) + NEXT
    // The largest piece the data still fills; the last few bytes go into a piece of the 32 class.
    let len = left + over
    for (const full of PIECE_LENS) {
      if (left >= full - over) {
        len = full
        break
      }
    }
    lens.push(len)
    bytes += len
    left -= len - over
  }
  return { lens, bytes }
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
  /** One piece on its way to or from the pool. */
  private readonly piece = Buffer.alloc(PAGE_SIZE)
  /** A unit's compressed bytes, put together from its pieces (allocated with the cache). */
  private sbuf: Buffer = Buffer.alloc(0)
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
  }

  /** The pool memory a layout takes: the sizes of the classes its pieces land in. */
  footprint(layout: UnitLayout): number {
    let n = 0
    for (const len of layout.lens) n += this.pool.classSizeOf(len)
    return n
  }

  /**
   * Store a unit of `pages` pages whose compressed form is compressed[0, len): allocate its pieces
   * and return the head handle. On an allocation failure nothing stays allocated and it throws.
   */
  write(compressed: Uint8Array, len: number, pages: number, layout: UnitLayout): number {
    const lens = layout.lens
    const handles: number[] = []
    try {
      for (const n of lens) handles.push(this.pool.malloc(n))
    } catch (err) {
      for (const h of handles) this.pool.free(h)
      throw err
    }
    const p = this.piece
    let at = 0
    for (let j = 0; j < lens.length; j++) {
      let off = 0
      if (j === 0) {
        p[0] = pages
        p[1] = lens.length
        p.writeUInt16LE(0, 2)
        p.writeUInt32LE(len, 4)
        off = HEAD_HEADER
      }
      p.writeUInt32LE(j + 1 < lens.length ? handles[j + 1] : 0, off)
      off += NEXT
      const n = lens[j] - off
      p.set(compressed.subarray(at, at + n), off)
      at += n
      this.pool.write(handles[j], p, 0, lens[j])
    }
    this.units++
    this.unitPages += pages
    this.unitBytes += layout.bytes
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

  /** Free every piece of the unit at head (its last member left). */
  free(head: number): void {
    const p = this.piece
    this.pool.read(head, p, 0, HEAD_HEADER + NEXT)
    this.unitBytes -= unitLayout(p.readUInt32LE(4)).bytes
    let next = p.readUInt32LE(HEAD_HEADER)
    this.pool.free(head)
    while (next !== 0) {
      this.pool.read(next, p, 0, NEXT)
      const h = next
      next = p.readUInt32LE(0)
      this.pool.free(h)
    }
    for (let e = 0; e < CACHE_ENTRIES; e++) {
      if (this.cacheHead[e] === head) {
        this.cacheHead[e] = -1
        this.cacheUsed[e] = 0
      }
    }
    this.units--
  }

  /** The pool memory the unit at head takes. */
  footprintOf(head: number): number {
    this.pool.read(head, this.piece, 0, HEAD_HEADER)
    return this.footprint(unitLayout(this.piece.readUInt32LE(4)))
  }

  /** A member left its unit (overwrite, discard, split, regrouping). */
  memberLeft(): void {
    this.unitPages--
  }

  /**
   * Is any other page still a member of the unit at head? Members are the pages
   * [first, first + pages) whose entry names head.
   */
  hasLiveMember(table: PageTableView, head: number, first: number, pages: number, except: number): boolean {
    for (let i = first; i < first + pages; i++) {
      if (i !== except && (table.meta[i] & SLOT_UNIT) !== 0 && table.value[i * 2] === head) return true
    }
    return false
  }

  /** Live members of the unit that `index` belongs to. */
  liveMembers(table: PageTableView, index: number): number {
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
    // The first read of a unit: the cache (and the assembly buffer) come into being.
    if (this.cachePages.length === 0) {
      for (let i = 0; i < CACHE_ENTRIES; i++) this.cachePages.push(Buffer.alloc(MAX_UNIT_PAGES * PAGE_SIZE))
      this.sbuf = Buffer.alloc(MAX_UNIT_BYTES + PAGE_SIZE)
    }
    const p = this.piece
    const s = this.sbuf
    this.pool.read(head, p, 0, HEAD_HEADER)
    const pages = p[0]
    const len = p.readUInt32LE(4)
    const { lens } = unitLayout(len)
    let handle = head
    let at = 0
    for (let j = 0; j < lens.length; j++) {
      this.pool.read(handle, p, 0, lens[j])
      const off = j === 0 ? HEAD_HEADER : 0
      handle = p.readUInt32LE(off)
      p.copy(s, at, off + NEXT, lens[j])
      at += lens[j] - off - NEXT
    }
    // Invalidate first: a failed decode must not leave a half-written entry that claims a unit.
    this.cacheHead[victim] = -1
    ctx.decompress(s.subarray(0, len), this.cachePages[victim].subarray(0, pages * PAGE_SIZE))
    this.cacheHead[victim] = head
    this.cacheUsed[victim] = stamp
    return victim
  }
}
