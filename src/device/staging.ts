/**
 * The device's side of kcompressd: staging a written page (copied into the staging ring, the slot
 * marked STAGED), and the host kcompressd calls back to commit each worker's result, reserve pool
 * objects for workers to write in place, or drop a page that could not be stored.
 */
import { ZsPool } from '../pool/zs-pool'
import { classIndexOf } from '../pool/size-class'
import { Kcompressd, type KcompressdHost, type KcompressdOptions } from '../kcompressd/kcompressd'
import { PAGE_SIZE } from '../page'
import type { Compression } from './compression'
import type { IoCounters } from './io-counters'
import type { PageStore } from './page-store'
import type { PoolLimits } from './pool-limits'
import type { PageTableView, SlotStore } from './slot-store'

/** Told after every commit: the pool grew (the shrinker may start). */
export interface PoolGrowth {
  poke(): void
}

export class Staging implements KcompressdHost {
  readonly id: number
  readonly kcompressd: Kcompressd
  private readonly slots: SlotStore
  private readonly pool: ZsPool
  private readonly compression: Compression
  private readonly pages: PageStore
  private readonly limits: PoolLimits
  private readonly counters: IoCounters
  private readonly growth: PoolGrowth

  constructor(id: number, deps: { slots: SlotStore, pool: ZsPool, compression: Compression, pages: PageStore, limits: PoolLimits,
    counters: IoCounters, growth: PoolGrowth }, opts: KcompressdOptions) {
    this.id = id
    this.slots = deps.slots
    this.pool = deps.pool
    this.compression = deps.compression
    this.pages = deps.pages
    this.limits = deps.limits
    this.counters = deps.counters
    this.growth = deps.growth
    this.kcompressd = new Kcompressd(this, opts)
  }

  get algorithm(): string {
    return this.compression.algorithm
  }

  get compressionLevel(): number | null {
    return this.compression.level
  }

  get compressionDict(): Uint8Array | null {
    return this.compression.dict
  }

  get hugeLimit(): number {
    return ZsPool.hugeClassSize
  }

  /** The pool's size class of an object of len bytes (reservations are kept per class). */
  sizeClassOf(len: number): number {
    return classIndexOf(len)
  }

  /** Hand a page to kcompressd (copied); false when staging is off, the FIFO is full or the pool near its limit (compress inline). */
  stage(table: PageTableView, index: number, page: Buffer): boolean {
    const kcompressd = this.kcompressd
    if (!kcompressd.enabled || !this.limits.hasRoom()) return false
    const prev = table.isStaged(index) ? table.value[index * 2] : -1
    const slot = kcompressd.stage(index, page, prev)
    if (slot < 0) return false
    if (slot === prev) this.slots.restage(index, kcompressd.ticketOf(slot))
    else this.slots.setStaged(index, slot, kcompressd.ticketOf(slot))
    return true
  }

  /** The inline path's compression, with the device's context: a view valid until the next compression. */
  compressInline(page: Buffer): Buffer {
    return this.pages.compress(page)
  }

  /**
   * Store a worker's result if the page is still STAGED in that slot with that ticket (an
   * overwrite, discard or reset meanwhile makes it stale). The limit is not checked here: the write
   * was answered already; staging keeps room for every staged page under the limit (PoolLimits
   * headroomPages), so only pages staged before a limit was set or lowered can pass it.
   */
  commitStaged(index: number, slot: number, ticket: number, src: Buffer | null, off: number, len: number, raw: Buffer): boolean {
    if (!this.isStagedAs(index, slot, ticket)) return false
    // commit() frees the STAGED entry once the pool allocation succeeded; kcompressd frees the slot.
    if (src === null) this.pages.commit(index, raw, 0, PAGE_SIZE, raw, false)
    else this.pages.commit(index, src, off, len, raw, false)
    this.growth.poke()
    return true
  }

  /** A pinned object in shared pool memory for a worker to write, or 0. */
  reserveObject(len: number, out: Int32Array): number {
    if (this.slots.table === null || !this.pool.shared || !this.limits.hasRoom()) return 0
    let handle: number
    try {
      handle = this.pool.malloc(len)
    } catch {
      return 0
    }
    if (this.pool.payloadPieces(handle, out) === 0) {
      // It landed in a chunk made before workers were turned on: no use to a worker.
      this.pool.free(handle)
      return 0
    }
    this.pool.pin(handle)
    this.limits.noteUsed()
    return handle
  }

  /** The shared chunk of a reserved object's piece. */
  reservedChunk(handle: number, piece: number): SharedArrayBuffer {
    return this.pool.chunkBufferOf(handle, piece) as SharedArrayBuffer
  }

  /** A reservation that will hold no page. */
  releaseObject(handle: number): void {
    this.pool.free(handle)
  }

  /** Like commitStaged, for a result a worker wrote into reserved object `handle`. */
  commitWritten(index: number, slot: number, ticket: number, handle: number, len: number): boolean {
    if (!this.isStagedAs(index, slot, ticket)) return false
    this.pool.unpin(handle)
    this.pages.place(index, handle, len, len >= ZsPool.hugeClassSize, 0)
    this.growth.poke()
    return true
  }

  /**
   * A staged page could not be stored at all (the pool refused even the raw page): it is forgotten
   * and counted in failed_writes, as a write the kernel could not store is.
   */
  failStaged(index: number, slot: number, ticket: number): boolean {
    if (!this.isStagedAs(index, slot, ticket)) return false
    this.slots.forgetStaged(index)
    this.counters.failedWrites++
    return true
  }

  /** Page `index` is still STAGED in `slot` with `ticket` (else the result is stale). */
  private isStagedAs(index: number, slot: number, ticket: number): boolean {
    const table = this.slots.table
    if (table === null || index >= table.pages || !table.isStaged(index)) return false
    return table.value[index * 2] === slot && table.value[index * 2 + 1] === ticket
  }
}
