import { ZsPool } from '../pool/zs-pool'
import { classIndexOf, ZS_MAX_PAGES_PER_ZSPAGE } from '../pool/size-class'
import { type Codec, type CodecContext, type CodecParams, CodecParamsError } from '../codec/codec'
import { codecs, DEFAULT_ALGORITHM, findCodec } from '../codec/registry'
import { bufferSameFilled, fillPattern } from '../codec/same-filled'
import { Errno, ErrnoError } from '../errno'
import { BlockStatCounters } from './block-stat'
import {
  PageTable, SECTOR_SIZE, SLOT_ALLOCATED, SLOT_DIRECT, SLOT_HUGE, SLOT_IDLE, SLOT_PP, SLOT_REF, SLOT_SAME, SLOT_STAGED, SLOT_UNIT, SLOT_WB,
} from './page-table'
import { PAGE_SIZE } from '../page'
import { RecompAlgorithms } from './recomp-algorithms'
import { type RecompressHost, type RecompressRequest, Recompressor } from './recompressor'
import type { RecompressConfig } from '../kcompressd/recompress-offload'
import { type UnitLayout, UnitStore } from './unit-store'
import { LowerTier, type LowerTierHost } from './lower-tier'
import { Shrinker, type ShrinkerHost } from '../writeback/shrinker'
import { PageSpan } from './page-span'
import {
  defaultWorkers, Kcompressd, type KcompressdHost, type KcompressdOptions, type KcompressdStats,
} from '../kcompressd/kcompressd'
import { type EventLog, silentLog } from '../log'

export interface ZramDeviceOptions {
  chunkPages?: number
  /**
   * kcompressd worker threads; 0 (the default here) compresses inline on the request path. 'auto':
   * defaultWorkers() for the current algorithm, re-chosen when comp_algorithm changes or on reset,
   * until `zramfuse/workers` is written.
   */
  workers?: number | 'auto'
  fifoSize?: number
  log?: EventLog
  /** Wall clock in ms (access times, `idle <age>`); tests pass a controllable one. */
  clockMs?: () => number
  /** kcompressd's policy and test hooks. */
  kcompressd?: Pick<KcompressdOptions, 'inlineWhenCheaper' | 'outcomeTrials' | 'pollUs' | 'delayMs' | 'fault'>
}

/** Everything mm_stat, io_stat and debug_stat print, in bytes or pages as the kernel does. */
export interface DeviceStats {
  origDataSize: number
  comprDataSize: number
  memUsedTotal: number
  memLimit: number
  memUsedMax: number
  samePages: number
  pagesCompacted: number
  hugePages: number
  hugePagesSince: number
  failedReads: number
  failedWrites: number
  /**
   * Requests refused for lying past the end. The kernel's zram counted them as io_stat's invalid_io
   * until 6.4; since then the block layer refuses them before zram sees them and io_stat prints a
   * literal 0 there. We count them (not as failed_writes) and show them in zramfuse/invalid_io.
   */
  invalidIo: number
  notifyFree: number
  missFree: number
}

/**
 * One zram device: the page table, the pool behind it, and the counters. The only writer of the
 * page table. Reads and writes take byte ranges; pages are compressed one by one, synchronously,
 * with one codec context made at initialisation (the kernel's zcomp stream) and reused.
 */
export class ZramDevice implements KcompressdHost, LowerTierHost, ShrinkerHost, RecompressHost {
  readonly id: number
  /** Compression off the request path (src/kcompressd); disabled when its workers is 0. */
  private readonly kcompressd: Kcompressd
  readonly blockStat = new BlockStatCounters()
  /** The writeback tier: backing_dev, writeback, bd_stat (src/backing through lower-tier.ts). */
  readonly lower: LowerTier
  /** Automatic writeback (zramfuse/shrinker_enabled), a zswap-like policy over the lower tier. */
  readonly shrinker: Shrinker
  /** recomp_algorithm and algorithm_params priority=1..3 (CONFIG_ZRAM_MULTI_COMP). */
  readonly recomp = new RecompAlgorithms()
  /** recompress, and our multi-page units (src/device/recompressor.ts, unit-store.ts). */
  readonly recompressor: Recompressor
  readonly units: UnitStore
  /** zramfuse/pool_limit in pages (0: the shrinker uses mem_limit). */
  private poolLimitOwnPages = 0
  /** The CLOCK hand of the shrinker's second-chance scan. */
  private clockHand = 0
  private readonly clockMs: () => number
  private readonly log: EventLog
  /** Writes are being refused at the pool limit (logged once per episode). */
  private limitEpisode = false
  private table: PageTable | null = null
  private readonly pool: ZsPool
  private codec: Codec
  /** algorithm_params of the primary algorithm; the dictionary lives in shared memory for kcompressd. */
  private params: CodecParams = { level: null, dict: null }
  /** Made at initialise (as the kernel's zcomp_create at disksize_store); the default before. */
  private ctx: CodecContext
  private disksizeBytes = 0
  private memLimitPages = 0
  private memUsedMaxPages = 0
  private openers = 0
  private initEpochSeconds = 0

  // Counters (zram_stats).
  private pagesStored = 0
  private comprBytes = 0
  private samePages = 0
  private hugePages = 0
  private hugePagesSince = 0
  private failedReads = 0
  private failedWrites = 0
  private invalidIo = 0
  private notifyFree = 0

  // Preallocated pages: wpage assembles a partial page written (read-modify-write).
  private readonly wpage = Buffer.from(new ArrayBuffer(PAGE_SIZE))
  private readonly rpage = Buffer.from(new ArrayBuffer(PAGE_SIZE))
  /** Compressed page: two pages, like the kernel's per-stream buffer, so any result fits. */
  private readonly cbuf = Buffer.alloc(PAGE_SIZE * 2)
  /** compressAhead's results: page k's compressed form at k*AHEAD_STRIDE, its length in aheadSizes[k]. */
  private ahead = Buffer.alloc(0)
  private aheadSizes = new Int32Array(0)
  /** readRange's batch: the chunks its objects lie in and 7 ints per page (CodecContext.decompressBatch). */
  private readonly rchunks: Uint8Array[] = []
  private readonly rdesc = new Int32Array(AHEAD_MAX_PAGES * 7)
  /** Where loadPage finds an object in the pool (ZsPool.locate). */
  private readonly loc = new Int32Array(5)
  private readonly pattern = new Uint32Array(2)
  /** One walker per loop, reused by every request (the loops never nest). */
  private readonly rspan = new PageSpan()
  private readonly wspan = new PageSpan()
  /** Worker count follows the algorithm (ZramDeviceOptions.workers 'auto'); reset restores it. */
  private workersAuto: boolean
  private readonly workersAutoDefault: boolean

  constructor(id: number, opts: ZramDeviceOptions = {}) {
    this.id = id
    this.pool = new ZsPool({ chunkPages: opts.chunkPages })
    this.units = new UnitStore(this.pool)
    this.recompressor = new Recompressor(this)
    this.codec = findCodec(DEFAULT_ALGORITHM) as Codec
    this.ctx = this.codec.createContext(this.params)
    this.workersAuto = this.workersAutoDefault = opts.workers === 'auto'
    this.log = opts.log ?? silentLog
    this.lower = new LowerTier(this, this.log)
    this.clockMs = opts.clockMs ?? Date.now
    this.shrinker = new Shrinker(this, this.clockMs)
    this.kcompressd = new Kcompressd(this, {
      workers: opts.workers === 'auto' ? this.autoWorkers() : opts.workers ?? 0, fifoSize: opts.fifoSize, log: opts.log, ...opts.kcompressd,
    })
    this.pool.onChunkDrop = (serial) => this.kcompressd.chunkDropped(serial)
    this.pool.onChunkAdd = (serial, buf) => this.kcompressd.chunkAdded(serial, buf)
    this.sharePool()
  }

  /**
   * With workers, new pool chunks are shared memory, so workers write their results in place
   * (kcompressd.ts); without, ordinary memory (copies into shared memory cost 2-3x more).
   */
  private sharePool(): void {
    this.pool.shared = this.kcompressd.workers > 0
  }

  get hugeLimit(): number {
    return ZsPool.hugeClassSize
  }

  /**
   * KcompressdHost: the inline path's compression, with the device's context. The result is a view
   * of the device's compression buffer, valid until the next compression.
   */
  compressInline(page: Buffer): Buffer {
    const n = this.ctx.compress(page, this.cbuf)
    return this.cbuf.subarray(0, n === 0 ? PAGE_SIZE : n)
  }

  /**
   * KcompressdHost: store a worker's result if the page is still STAGED in that slot with that
   * ticket (an overwrite, discard or reset meanwhile makes it stale). The limit is not checked
   * here: the write was answered already; staging keeps room for every staged page under the limit
   * (headroomPages), so only pages staged before a limit was set or lowered can pass it.
   */
  commitStaged(index: number, slot: number, ticket: number, src: Buffer | null, off: number, len: number, raw: Buffer): boolean {
    const table = this.stagedAs(index, slot, ticket)
    if (table === null) return false
    // commit() frees the STAGED entry once the pool allocation succeeded; kcompressd frees the slot.
    if (src === null) this.commit(table, index, raw, 0, PAGE_SIZE, raw, false)
    else this.commit(table, index, src, off, len, raw, false)
    this.shrinker.poke()
    return true
  }

  /** The page table, if page `index` is still STAGED in `slot` with `ticket` (else the result is stale). */
  private stagedAs(index: number, slot: number, ticket: number): PageTable | null {
    const table = this.table
    if (table === null || index >= table.pages || !table.isStaged(index)) return null
    if (table.value[index * 2] !== slot || table.value[index * 2 + 1] !== ticket) return null
    return table
  }

  /** mem_used_max follows the pool's high-water mark. */
  private noteMemUsed(): void {
    const used = this.pool.totalPages
    if (used > this.memUsedMaxPages) this.memUsedMaxPages = used
  }

  /** KcompressdHost: the pool's size class of an object of len bytes (reservations are kept per class). */
  sizeClassOf(len: number): number {
    return classIndexOf(len)
  }

  /** KcompressdHost: a pinned object in shared pool memory for a worker to write, or 0. */
  reserveObject(len: number, out: Int32Array): number {
    if (this.table === null || !this.pool.shared || this.headroomPages() < ZS_MAX_PAGES_PER_ZSPAGE) return 0
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
    this.noteMemUsed()
    return handle
  }

  /** KcompressdHost: the shared chunk of a reserved object's piece. */
  reservedChunk(handle: number, piece: number): SharedArrayBuffer {
    return this.pool.chunkBufferOf(handle, piece) as SharedArrayBuffer
  }

  /** KcompressdHost: a reservation that will hold no page. */
  releaseObject(handle: number): void {
    this.pool.free(handle)
  }

  /** KcompressdHost: like commitStaged, for a result a worker wrote into reserved object `handle`. */
  commitWritten(index: number, slot: number, ticket: number, handle: number, len: number): boolean {
    const table = this.stagedAs(index, slot, ticket)
    if (table === null) return false
    this.pool.unpin(handle)
    this.place(table, index, handle, len, len >= ZsPool.hugeClassSize, 0)
    this.shrinker.poke()
    return true
  }

  /**
   * KcompressdHost: a staged page could not be stored at all (the pool refused even the raw page):
   * it is forgotten and counted in failed_writes, as a write the kernel could not store is.
   */
  failStaged(index: number, slot: number, ticket: number): boolean {
    const table = this.stagedAs(index, slot, ticket)
    if (table === null) return false
    table.clear(index)
    this.pagesStored--
    this.failedWrites++
    return true
  }

  // ---- kcompressd, as sysfs and the daemon see it ----

  /** zramfuse/workers: kcompressd threads (0: compress inline). */
  get workers(): number {
    return this.kcompressd.workers
  }

  /** zramfuse/fifo_size: staging slots. */
  get fifoSize(): number {
    return this.kcompressd.fifoSize
  }

  /** zramfuse/fifo_size store: EBUSY while pages are staged. */
  setFifoSize(n: number): void {
    if (this.kcompressd.depth !== 0) throw new ErrnoError(Errno.EBUSY, 'pages are staged')
    this.kcompressd.setFifoSize(n)
  }

  /** zramfuse/inline_when_cheaper: with every worker asleep, compress a request whose pages cost less than a wake-up. */
  get inlineWhenCheaper(): boolean {
    return this.kcompressd.inlineWhenCheaper
  }

  set inlineWhenCheaper(on: boolean) {
    this.kcompressd.inlineWhenCheaper = on
  }

  /** zramfuse/outcome_trials: single pages go inline while trials find requests faster that way. */
  get outcomeTrials(): boolean {
    return this.kcompressd.outcomeTrials
  }

  set outcomeTrials(on: boolean) {
    this.kcompressd.outcomeTrials = on
  }

  /** zramfuse/poll_us: how long an idle kcompressd worker polls before it sleeps until woken. */
  get pollUs(): number {
    return this.kcompressd.pollUs
  }

  set pollUs(us: number) {
    this.kcompressd.pollUs = us
  }

  kcompressdStats(): KcompressdStats {
    return this.kcompressd.stats()
  }

  /** Start the kcompressd workers now and resolve once they are up (else they start at the first staged page). */
  workersReady(): Promise<void> {
    return this.kcompressd.ready()
  }

  /** The page table holds something for this page (stored, same-filled or staged). */
  pageAllocated(index: number): boolean {
    return this.table !== null && index < this.table.pages && this.table.isAllocated(index)
  }

  // ---- LowerTierHost: what the writeback tier needs from the pool ----

  get pageTable(): PageTable | null {
    return this.table
  }

  get algorithmId(): number {
    return codecs.indexOf(this.codec)
  }

  copyPoolObject(index: number, out: Buffer): number {
    const table = this.table as PageTable
    const size = table.size(index)
    this.pool.read(table.handle(index), out, 0, size)
    return size
  }

  decompressPage(index: number, out: Buffer): void {
    this.loadPage(this.table as PageTable, index, out)
  }

  decompressPayload(src: Uint8Array, out: Buffer, prio = 0): void {
    const ctx = this.contextFor(prio)
    if (ctx === null) throw new ErrnoError(Errno.EIO, `no algorithm at priority ${prio}`)
    ctx.decompress(src, out)
  }

  // ---- RecompressHost ----

  algorithmOf(prio: number): string | null {
    return prio === 0 ? this.codec.name : this.recomp.nameOf(prio)
  }

  /** The codec context of a priority (comps[prio]); null when the slot has none. */
  contextFor(prio: number): CodecContext | null {
    return prio === 0 ? this.ctx : this.recomp.contextOf(prio)
  }

  /**
   * recompress_slot's end: the new object replaces the old one (slot_free: huge_pages, IDLE,
   * INCOMPRESSIBLE, the access time all go), pages_stored and compr_data_size move by the
   * difference. Not checked against mem_limit, as in the kernel. ENOMEM when the pool cannot grow.
   */
  replaceObject(index: number, compressed: Uint8Array, len: number, prio: number): void {
    const table = this.table as PageTable
    const handle = this.poolMalloc(len)
    this.pool.write(handle, compressed, 0, len)
    this.freeSlot(table, index)
    table.setObject(index, handle, len, false, prio)
    table.atime[index] = 0
    this.comprBytes += len
    this.pagesStored++
  }

  /**
   * Pages [first, first + pages) become members of one unit. compr_data_size gets the unit's pool
   * bytes (header + compressed) once, as each member's share (the size field of its entry); a
   * member that leaves takes its share with it.
   */
  storeUnit(first: number, pages: number, compressed: Uint8Array, len: number, layout: UnitLayout, prio: number): void {
    const table = this.table as PageTable
    let head: number
    try {
      head = this.units.write(compressed, len, pages, layout)
    } catch (err) {
      throw new ErrnoError(Errno.ENOMEM, `cannot allocate a unit of ${layout.bytes} bytes: ${String(err)}`)
    }
    const base = Math.floor(layout.bytes / pages)
    const extra = layout.bytes % pages
    for (let j = 0; j < pages; j++) {
      const index = first + j
      const share = base + (j < extra ? 1 : 0)
      this.freeSlot(table, index)
      table.setUnitMember(index, head, j, pages, share, prio)
      table.atime[index] = 0
      this.comprBytes += share
      this.pagesStored++
    }
  }

  /** A member of a sparse unit becomes a page of its own, compressed by prio (raw if huge). */
  splitMember(index: number, page: Buffer, prio: number): void {
    const table = this.table as PageTable
    const ctx = this.contextFor(prio)
    const p = ctx === null ? 0 : prio
    const n = (ctx ?? this.ctx).compress(page, this.cbuf)
    const len = n === 0 ? PAGE_SIZE : n
    this.commit(table, index, this.cbuf, 0, len, page, false, len >= ZsPool.hugeClassSize ? 0 : p)
  }

  /** RecompressHost: comp_algs[prio] and params[prio], as the worker of a recompression run needs them. */
  compressionConfigOf(prio: number): RecompressConfig {
    if (prio === 0) return { algorithm: this.codec.name, level: this.params.level, dict: this.params.dict }
    const codec = this.recomp.codecOf(prio)
    if (codec === null) throw new ErrnoError(Errno.EINVAL, `no algorithm at priority ${prio}`)
    const p = this.recomp.paramsOf(prio)
    return { algorithm: codec.name, level: p.level, dict: p.dict }
  }

  /** zs_malloc for recompression: no direct reclaim, a failure is ENOMEM and the page stays as it was. */
  private poolMalloc(len: number): number {
    try {
      return this.pool.malloc(len)
    } catch (err) {
      throw new ErrnoError(Errno.ENOMEM, `cannot allocate ${len} bytes: ${String(err)}`)
    }
  }

  /** recompress: see src/device/recompressor.ts. */
  recompress(req: RecompressRequest): Promise<number> {
    return this.recompressor.recompress(req)
  }

  /** zram_writeback_complete: the pool object is freed, the slot now names the lower file. */
  movedToLower(index: number, location: number, size: number, huge: boolean): void {
    const table = this.table as PageTable
    this.pool.free(table.handle(index))
    this.comprBytes -= table.size(index)
    if (table.flags(index) & SLOT_HUGE) this.hugePages--
    // A compressed record still needs its algorithm (the kernel keeps the priority for wb_compressed).
    table.setWrittenBack(index, location, size, huge, size < PAGE_SIZE ? table.priority(index) : 0)
  }

  /** The registry index of the algorithm that compressed the page (packed records carry it). */
  algorithmIdOf(index: number): number {
    const table = this.table as PageTable
    const prio = table.priority(index)
    return codecs.indexOf(prio === 0 ? this.codec : this.recomp.codecOf(prio) ?? this.codec)
  }

  // ---- ShrinkerHost ----

  poolPages(): number {
    return this.pool.totalPages
  }

  /** The pool's limit in pages: the smaller of zramfuse/pool_limit and mem_limit, of those set; 0 = none. */
  poolLimitPages(): number {
    const own = this.poolLimitOwnPages
    const mem = this.memLimitPages
    return own === 0 ? mem : mem === 0 ? own : Math.min(own, mem)
  }

  /**
   * Pages the pool may still grow by under its limit, every staged page counted at its worst (its
   * commit opens a new zspage of ZS_MAX_PAGES_PER_ZSPAGE pages): a staged write was answered and
   * cannot fail later, so its room is held from the moment it is staged. Infinity without a limit.
   */
  private headroomPages(): number {
    const limit = this.poolLimitPages()
    if (limit === 0) return Infinity
    return limit - this.pool.totalPages - this.kcompressd.depth * ZS_MAX_PAGES_PER_ZSPAGE
  }

  /** zramfuse/pool_limit: bytes, rounded up to pages; 0 = use mem_limit. */
  setPoolLimit(bytes: number): void {
    this.poolLimitOwnPages = Math.ceil(bytes / PAGE_SIZE)
    this.shrinker.poke()
  }

  /**
   * The shrinker's victims: a CLOCK sweep over the page table. A page referenced since the hand
   * last passed loses its reference bit and stays (second chance); one that was not is taken.
   */
  coldPages(max: number): number[] {
    const table = this.table
    const out: number[] = []
    if (table === null) return out
    const pages = table.pages
    for (let scanned = 0; scanned < 2 * pages && out.length < max; scanned++) {
      const index = this.clockHand
      this.clockHand = index + 1 === pages ? 0 : index + 1
      const meta = table.meta[index]
      // Unit members are not written back (see lower-tier.ts eligible()): the CLOCK passes them by.
      if ((meta & SLOT_ALLOCATED) === 0 || (meta & (SLOT_SAME | SLOT_STAGED | SLOT_WB | SLOT_PP | SLOT_UNIT | SLOT_DIRECT)) !== 0) continue
      if (meta & SLOT_REF) table.clearFlag(index, SLOT_REF)
      else out.push(index)
    }
    return out
  }

  writeBack(indexes: number[]): Promise<number> {
    return this.lower.writebackChosen(indexes)
  }

  /**
   * idle_store: mark every page with data in memory IDLE ('all'), or only those not accessed for
   * ageSeconds (clearing IDLE on the others); same-filled and written-back pages are skipped.
   */
  markIdle(age: 'all' | number): void {
    const table = this.table
    if (table === null) throw new ErrnoError(Errno.EINVAL, 'idle on an uninitialised device')
    const cutoff = age === 'all' ? Infinity : this.nowSeconds() - age
    for (let index = 0; index < table.pages; index++) {
      const meta = table.meta[index]
      if ((meta & SLOT_ALLOCATED) === 0 || (meta & (SLOT_WB | SLOT_SAME)) !== 0) continue
      if (table.atime[index] < cutoff) table.setFlag(index, SLOT_IDLE)
      else table.clearFlag(index, SLOT_IDLE)
    }
  }

  /** Wait until every staged page is committed (tests, benchmarks). */
  drain(): Promise<void> {
    return this.kcompressd.drain()
  }

  /**
   * fsync of the block file: every staged page committed and the workers' reservations freed, so
   * mm_stat then reads as the kernel's does after its (synchronous) writes.
   */
  async flush(): Promise<void> {
    await this.kcompressd.drain()
    this.kcompressd.releaseIdle()
  }

  /** Shutdown: discard staged work and stop the workers. */
  close(): Promise<void> {
    this.lower.close()
    return this.kcompressd.close()
  }

  // ---- configuration (the sysfs layer validates text; these validate state) ----

  get initialised(): boolean {
    return this.disksizeBytes !== 0
  }

  get disksize(): number {
    return this.disksizeBytes
  }

  get algorithm(): string {
    return this.codec.name
  }

  get compressionLevel(): number | null {
    return this.params.level
  }

  /** The dictionary set by algorithm_params dict= (in shared memory), or null. */
  get compressionDict(): Uint8Array | null {
    return this.params.dict
  }

  get isOpen(): boolean {
    return this.openers > 0
  }

  get metadataBytes(): number {
    return this.table ? this.table.metadataBytes : 0
  }

  get poolLimitBytes(): number {
    return this.poolLimitOwnPages * PAGE_SIZE
  }

  get poolChunks(): number {
    return this.pool.chunkCount
  }

  /** disksize_store: page-aligned, once. */
  initialise(bytes: number): void {
    if (bytes <= 0) throw new ErrnoError(Errno.EINVAL, 'disksize must be non-zero')
    if (this.initialised) throw new ErrnoError(Errno.EBUSY, 'cannot change disksize of an initialised device')
    const aligned = Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE
    if (!Number.isSafeInteger(aligned)) throw new ErrnoError(Errno.ENOMEM, `disksize ${bytes} too large`)
    // zcomp_create: the backend checks its parameters now (an lz4 dictionary over 64 KiB, a
    // corrupt zstd dictionary); disksize_store fails with EINVAL and the device stays as it was.
    try {
      this.ctx = this.codec.createContext(this.params)
      this.recomp.createContexts()
    } catch (err) {
      if (err instanceof CodecParamsError) throw new ErrnoError(Errno.EINVAL, `compression parameters refused: ${err.message}`)
      throw new ErrnoError(Errno.ENOMEM, `cannot create a compression context: ${String(err)}`)
    }
    try {
      this.table = new PageTable(aligned / PAGE_SIZE)
    } catch (err) {
      throw new ErrnoError(Errno.ENOMEM, `cannot allocate the page table for ${aligned} bytes: ${String(err)}`)
    }
    this.disksizeBytes = aligned
    this.initEpochSeconds = Math.floor(this.clockMs() / 1000)
    this.lower.initialise(aligned / PAGE_SIZE)
  }

  setAlgorithm(name: string): void {
    const codec = findCodec(name)
    if (!codec) throw new ErrnoError(Errno.EINVAL, `unknown compression algorithm ${JSON.stringify(name)}`)
    if (this.initialised) throw new ErrnoError(Errno.EBUSY, 'cannot change the algorithm of an initialised device')
    this.codec = codec
    this.followAlgorithm()
  }

  /** zramfuse/workers store: an explicit count, kept until reset. */
  setWorkers(n: number): void {
    this.workersAuto = false
    this.kcompressd.setWorkers(n)
    this.sharePool()
  }

  private followAlgorithm(): void {
    if (this.workersAuto) this.kcompressd.setWorkers(this.autoWorkers())
    this.sharePool()
  }

  private autoWorkers(): number {
    return defaultWorkers(this.codec.name)
  }

  /**
   * algorithm_params of the primary algorithm: level (null: the backend's default) and dictionary
   * (null: none), replacing both as the kernel's comp_params_store does. The backend checks them
   * at initialise.
   */
  setParams(params: CodecParams, prio = 0): void {
    if (this.initialised) throw new ErrnoError(Errno.EBUSY, 'cannot change algorithm parameters of an initialised device')
    if (prio !== 0) {
      this.recomp.setParams(prio, params)
      return
    }
    let dict: Uint8Array | null = null
    if (params.dict !== null && params.dict.length > 0) {
      // Shared memory: kcompressd's workers see it without a copy per batch.
      dict = new Uint8Array(new SharedArrayBuffer(params.dict.length))
      dict.set(params.dict)
    }
    this.params = { level: params.level, dict }
  }

  /** recomp_algorithm_store after parsing: EBUSY once initialised. */
  setRecompAlgorithm(prio: number, name: string): void {
    if (this.initialised) throw new ErrnoError(Errno.EBUSY, 'cannot change the algorithms of an initialised device')
    this.recomp.set(prio, name)
  }

  /** mem_limit_store: bytes, rounded to pages; 0 = unlimited. Writable any time. */
  setMemLimit(bytes: number): void {
    this.memLimitPages = Math.ceil(bytes / PAGE_SIZE)
  }

  /** mem_used_max_store: only 0 is accepted (checked above); resets the peak to the current use. */
  resetMemUsedMax(): void {
    this.memUsedMaxPages = this.pool.totalPages
  }

  compact(): number {
    if (!this.initialised) throw new ErrnoError(Errno.EINVAL, 'compact on an uninitialised device')
    this.splitSparseUnits()
    return this.pool.compact()
  }

  /**
   * A unit whose live members fell below half its pages holds dead bytes: its members become pages
   * of their own (compressed by the unit's algorithm), which frees the unit.
   */
  private splitSparseUnits(): void {
    const table = this.table as PageTable
    if (this.units.units === 0) return
    const page = Buffer.alloc(PAGE_SIZE)
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
        this.loadPage(table, i, page)
        this.splitMember(i, page, table.priority(i))
        this.recompressor.countSplit()
      }
    }
  }

  /** New pages go to the lower file instead of the pool when the pool is full (the shrinker's way). */
  private get storesToLower(): boolean {
    return this.shrinker.enabled && this.lower.hasBackingDev
  }

  /** The pool has no room for another page, and the lower file takes new pages. */
  private divertToLower(): boolean {
    return this.storesToLower && this.headroomPages() < ZS_MAX_PAGES_PER_ZSPAGE
  }

  opened(): void {
    this.openers++
  }

  released(): void {
    if (this.openers > 0) this.openers--
  }

  /** reset_store: frees everything and returns the device to its uninitialised defaults. */
  reset(): void {
    if (this.openers > 0) throw new ErrnoError(Errno.EBUSY, 'device is open')
    // Queued pages are forgotten; batches in flight come back stale (no table) and are dropped.
    this.kcompressd.discardAll()
    this.table = null
    this.kcompressd.poolReset()
    this.pool.reset()
    this.codec = findCodec(DEFAULT_ALGORITHM) as Codec
    this.workersAuto = this.workersAutoDefault
    this.followAlgorithm()
    this.params = { level: null, dict: null }
    this.ctx = this.codec.createContext(this.params)
    this.recomp.reset()
    this.units.reset()
    this.recompressor.reset()
    this.disksizeBytes = 0
    this.memLimitPages = 0
    this.memUsedMaxPages = 0
    this.pagesStored = this.comprBytes = this.samePages = 0
    this.hugePages = this.hugePagesSince = 0
    this.failedReads = this.failedWrites = this.invalidIo = this.notifyFree = 0
    this.blockStat.reset()
    this.lower.reset()
    // The shrinker's settings are the daemon's (--shrinker, --pool-limit); its counters are the device's.
    this.shrinker.runs = this.shrinker.paused = this.shrinker.poolLimitHit = 0
    this.clockHand = 0
  }

  stats(): DeviceStats {
    return {
      origDataSize: this.pagesStored * PAGE_SIZE,
      comprDataSize: this.comprBytes,
      memUsedTotal: this.pool.totalPages * PAGE_SIZE,
      memLimit: this.memLimitPages * PAGE_SIZE,
      memUsedMax: this.memUsedMaxPages * PAGE_SIZE,
      samePages: this.samePages,
      pagesCompacted: this.pool.pagesCompacted,
      hugePages: this.hugePages,
      hugePagesSince: this.hugePagesSince,
      failedReads: this.failedReads,
      failedWrites: this.failedWrites,
      invalidIo: this.invalidIo,
      notifyFree: this.notifyFree,
      missFree: 0,
    }
  }

  // ---- I/O ----
  // One synchronous loop each for read, write and discard. The signatures allow a promise so a
  // slower tier (pages written back to a lower file) can answer later; nothing here awaits.

  /**
   * Read up to dst.length bytes at pos into dst; returns the byte count (short at the end of the
   * device, 0 past it: a block device's semantics).
   */
  read(dst: Buffer, pos: number): number | Promise<number> {
    const len = Math.max(0, Math.min(dst.length, this.disksizeBytes - pos))
    if (len === 0) return 0
    const stat = this.blockStat
    const started = stat.begin()
    stat.readIos++
    stat.readSectors += Math.ceil(len / SECTOR_SIZE)
    if (this.lower.hasBackingDev && this.rangeHasWrittenBack(pos, len)) {
      return this.readRangeLower(dst, pos, len).finally(() => {
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
    if (pos < 0 || pos + len > this.disksizeBytes) {
      this.invalidIo++
      throw new ErrnoError(Errno.ENOSPC, `write of ${len} bytes at ${pos} past the end of a ${this.disksizeBytes}-byte device`)
    }
    if (len === 0) return
    const promoting = this.promoteWrittenBackEdges(pos, len)
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
    if (this.limitEpisode) this.endLimitEpisode()
    finish()
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
        await this.writeDirect(src.subarray(done), pos + done)
        break
      }
      if (this.kcompressd.depth === 0 || this.table === null) throw this.refuseAtLimit(pos + done)
      await this.kcompressd.drain()
      if (this.table === null) throw this.refuseAtLimit(pos + done)
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
    if (this.limitEpisode) this.endLimitEpisode()
  }

  /** A write refused at the pool limit: counted, logged once per episode, answered EIO. */
  private refuseAtLimit(pos: number): ErrnoError {
    this.failedWrites++
    const limit = this.poolLimitPages() * PAGE_SIZE
    if (!this.limitEpisode) {
      this.limitEpisode = true
      this.log.error({
        event: 'pool_limit_refused', device: `zram${this.id}`, limit, memUsedTotal: this.pool.totalPages * PAGE_SIZE, pos,
        lower: this.lower.hasBackingDev ? (this.shrinker.enabled ? 'cannot take the page' : 'shrinker off') : 'none',
      })
    }
    // Logged here once per episode; the FUSE layer need not log every refused request of it.
    return new ErrnoError(Errno.EIO, `the pool is at its limit of ${limit} bytes and the page has nowhere else to go`, true)
  }

  private endLimitEpisode(): void {
    this.limitEpisode = false
    this.log.info({ event: 'pool_limit_recovered', device: `zram${this.id}`, memUsedTotal: this.pool.totalPages * PAGE_SIZE })
  }

  /** Hand a page to kcompressd (copied); false when staging is off, the FIFO is full or the pool near its limit (compress inline). */
  private stagePage(table: PageTable, index: number, page: Buffer): boolean {
    if (!this.kcompressd.enabled || this.headroomPages() < ZS_MAX_PAGES_PER_ZSPAGE) return false
    const prev = table.isStaged(index) ? table.value[index * 2] : -1
    const slot = this.kcompressd.stage(index, page, prev)
    if (slot < 0) return false
    if (slot === prev) {
      table.value[index * 2 + 1] = this.kcompressd.ticketOf(slot)
      return true
    }
    this.freeSlot(table, index)
    table.setStaged(index, slot, this.kcompressd.ticketOf(slot))
    this.pagesStored++
    return true
  }

  /**
   * Discard (fallocate PUNCH_HOLE) or write-zeroes (ZERO_RANGE): frees the whole pages inside the
   * range, notify_free++ for each, as zram_bio_discard does. Partial pages at the edges are zeroed
   * in place: over a file the range must read back as zeros afterwards (a loop device also sends
   * write-zeroes as PUNCH_HOLE), where the kernel's zram simply skips them.
   */
  discard(pos: number, len: number, op: 'discard' | 'write_zeroes' = 'discard'): void | Promise<void> {
    if (pos < 0 || len < 0 || pos + len > this.disksizeBytes) {
      throw new ErrnoError(Errno.EINVAL, `${op} of ${len} bytes at ${pos} past the end of a ${this.disksizeBytes}-byte device`)
    }
    if (len === 0) return
    const promoting = this.promoteWrittenBackEdges(pos, len)
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
      const table = this.table as PageTable
      for (let index = firstWhole; index < endWhole; index++) {
        this.freeSlot(table, index)
        this.notifyFree++
      }
    } finally {
      this.kcompressd.endRequest()
      const took = stat.end(started)
      if (op === 'discard') stat.discardTicksMs += took
      else stat.writeTicksMs += took
    }
  }

  private nowSeconds(): number {
    return Math.floor(this.clockMs() / 1000) - this.initEpochSeconds
  }

  private rangeHasWrittenBack(pos: number, len: number): boolean {
    const table = this.table as PageTable
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
  private async readRangeLower(dst: Buffer, pos: number, len: number): Promise<void> {
    const table = this.table as PageTable
    const now = this.nowSeconds()
    const loads: Promise<void>[] = []
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
          this.failedReads++
          throw err instanceof ErrnoError ? err : new ErrnoError(Errno.EIO, `page ${index}: ${String(err)}`)
        }))
      } else if (p.whole) {
        this.loadPage(table, p.index, dst, p.done)
      } else {
        this.loadPage(table, p.index, this.rpage)
        this.rpage.copy(dst, p.done, p.inPage, p.inPage + p.n)
      }
      table.touch(p.index, now)
    }
    // Wait for every page before failing: dst must not be written after the request is answered.
    const results = await Promise.allSettled(loads)
    for (const r of results) if (r.status === 'rejected') throw r.reason
  }

  /**
   * A partial write (or a discard's partial edge) on a written-back page needs its old contents:
   * read them from the lower file and store the whole page back in memory first, then the caller
   * runs again and finds an ordinary page. null when no edge needs it.
   */
  private promoteWrittenBackEdges(pos: number, len: number): Promise<void> | null {
    if (!this.lower.hasBackingDev) return null
    const table = this.table as PageTable
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
        this.failedReads++
        throw err
      }
      // Only if the page still lives where it was read from (a write in between wins).
      if (this.table === table && (table.meta[index] & SLOT_WB) && table.location(index) === from) {
        await this.write(page, index * PAGE_SIZE)
      }
    })).then(() => undefined)
  }

  /**
   * The pool is at its limit: store the request's pages straight on the lower file (zswap's
   * rejected store going to swap, without rejecting). Same-filled pages still cost nothing. If
   * the lower file cannot take them (full, failing, writeback_limit spent), each page is stored
   * in memory if the pool has room again, else the write fails with EIO (refuseAtLimit); the
   * lower file's error is counted (lower_errors) and logged once per episode.
   */
  private async writeDirect(src: Buffer, pos: number): Promise<void> {
    const table = this.table as PageTable
    const now = this.nowSeconds()
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
        else this.loadPage(table, p.index, page)
      }
      src.copy(page, p.inPage, p.done, p.done + p.n)
      if (this.storeSame(table, p.index, page)) {
        table.touch(p.index, now)
        continue
      }
      const n = this.ctx.compress(page, this.cbuf)
      const isHuge = n === 0 || n >= ZsPool.hugeClassSize
      // New contents are on their way: a writeback or recompression of the old object drops its
      // result (it lost PP), and none picks the page up meanwhile (SLOT_DIRECT).
      table.setFlag(p.index, SLOT_DIRECT)
      table.clearFlag(p.index, SLOT_PP)
      indexes.push(p.index)
      payloads.push(isHuge || !this.lower.compressed ? page : Buffer.from(this.cbuf.subarray(0, n)))
      raws.push(page)
      huge.push(isHuge)
    }
    if (indexes.length === 0) return
    let refusedAt = -1
    let locations: number[] | null = null
    try {
      locations = await this.lower.storeDirect(indexes, payloads, huge)
    } catch {
      locations = null
    }
    for (let i = 0; i < indexes.length; i++) {
      const index = indexes[i]
      const current = this.table === table && (table.meta[index] & SLOT_DIRECT) !== 0
      if (locations !== null) {
        if (!current) {
          this.lower.drop(locations[i], payloads[i].length)
          continue
        }
        this.freeSlot(table, index)
        table.setWrittenBack(index, locations[i], this.lower.compressed ? payloads[i].length : PAGE_SIZE,
          this.lower.compressed && huge[i])
        this.pagesStored++
      } else if (current) {
        // The lower file could not take it: in memory if the pool has room, else refused.
        table.clearFlag(index, SLOT_DIRECT)
        if (!this.storeCompressed(table, index, raws[i])) {
          if (refusedAt < 0) refusedAt = index * PAGE_SIZE
          continue
        }
      }
      table.touch(index, now)
    }
    if (refusedAt >= 0) throw this.refuseAtLimit(refusedAt)
  }

  /**
   * Whole pages decompress straight into dst; partial ones through rpage. In a read of 4 pages or
   * more, the whole pages that are plain compressed objects of the primary algorithm are gathered
   * and decompressed in one addon call, shared with its helper thread (CodecContext.decompressBatch).
   */
  private readRange(dst: Buffer, pos: number, len: number): void {
    const table = this.table as PageTable
    const now = this.nowSeconds()
    const batching = len >= AHEAD_MIN_PAGES * PAGE_SIZE
    let batched = 0
    const p = this.rspan.start(pos, len)
    while (p.next()) {
      if (batching && p.whole && (table.flags(p.index) & NOT_PLAIN) === SLOT_ALLOCATED && table.priority(p.index) === 0) {
        this.describePage(table, p.index, batched++, p.done)
        if (batched === AHEAD_MAX_PAGES) {
          this.decompressDescribed(table, dst, pos, batched)
          batched = 0
        }
      } else if (p.whole) {
        this.loadPage(table, p.index, dst, p.done)
      } else {
        this.loadPage(table, p.index, this.rpage)
        this.rpage.copy(dst, p.done, p.inPage, p.inPage + p.n)
      }
      table.touch(p.index, now)
    }
    if (batched > 0) this.decompressDescribed(table, dst, pos, batched)
  }

  /** Decompress the pages describePage gathered (a read at pos into dst). */
  private decompressDescribed(table: PageTable, dst: Buffer, pos: number, pages: number): void {
    const failed = this.ctx.decompressBatch(this.rchunks, this.rdesc, pages, dst)
    // From the first failure on, page by page: loadPage reports it (EIO, failed_reads) as a read without the batch would.
    for (let k = failed < 0 ? pages : failed; k < pages; k++) {
      const at = this.rdesc[k * 7 + 6] as number
      this.loadPage(table, (pos + at) / PAGE_SIZE, dst, at)
    }
  }

  /** Batch entry k: where page index's object lies (ZsPool.locate) and where in dst it goes. */
  private describePage(table: PageTable, index: number, k: number, at: number): void {
    const size = table.size(index)
    const loc = this.loc
    const pieces = this.pool.locate(table.handle(index), size, loc)
    const d = this.rdesc
    const o = k * 7
    this.rchunks[2 * k] = this.pool.chunkBytes(loc[0])
    d[o] = 2 * k
    d[o + 1] = loc[1]
    d[o + 2] = loc[2]
    if (pieces === 2) {
      this.rchunks[2 * k + 1] = this.pool.chunkBytes(loc[3])
      d[o + 3] = 2 * k + 1
      d[o + 4] = loc[4]
      d[o + 5] = size - loc[2]
    } else {
      d[o + 3] = -1
    }
    d[o + 6] = at
  }

  private writeRange(src: Buffer, pos: number): void {
    const table = this.table as PageTable
    const now = this.nowSeconds()
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
        this.loadPage(table, p.index, page)
        src.copy(page, p.inPage, p.done, p.done + p.n)
      }
      if (this.storeSame(table, p.index, page)) {
        // no pool memory
      } else if (this.divertToLower()) {
        throw new PoolFull(p.done)
      } else if (p.index >= aheadFirst && p.index < aheadEnd) {
        const k = p.index - aheadFirst
        const n = this.aheadSizes[k] as number
        if (!this.commit(table, p.index, this.ahead, k * AHEAD_STRIDE, n === 0 ? PAGE_SIZE : n, page, true)) throw new PoolFull(p.done)
      } else if (!this.stagePage(table, p.index, page) && !this.storeCompressed(table, p.index, page)) {
        throw new PoolFull(p.done)
      }
      table.touch(p.index, now)
    }
  }

  /**
   * With compression inline (no kcompressd workers), compress the whole pages of a write from byte
   * `head` of src in one addon call, which shares them with its helper thread: a 128k write then
   * compresses on two cores. Returns how many pages from there are in ahead/aheadSizes (0: none,
   * fewer on a compression failure, which the page-by-page path then reports). A same-filled page is
   * compressed for nothing; it is cheap, and the loop stores it as a pattern all the same.
   */
  private compressAhead(src: Buffer, head: number): number {
    if (this.kcompressd.enabled || head >= src.length) return 0
    const pages = Math.min(Math.floor((src.length - head) / PAGE_SIZE), AHEAD_MAX_PAGES)
    if (pages < AHEAD_MIN_PAGES) return 0
    if (this.ahead.length < pages * AHEAD_STRIDE) {
      this.ahead = Buffer.allocUnsafe(AHEAD_MAX_PAGES * AHEAD_STRIDE)
      this.aheadSizes = new Int32Array(AHEAD_MAX_PAGES)
    }
    const failed = this.ctx.compressBatch(src, head, pages, this.ahead, AHEAD_STRIDE, this.aheadSizes)
    return failed < 0 ? pages : failed
  }

  /** Compress a page into cbuf and commit it from there (zram_write_page); false: no room under the limit. */
  private storeCompressed(table: PageTable, index: number, page: Buffer): boolean {
    let n: number
    try {
      n = this.ctx.compress(page, this.cbuf)
    } catch (err) {
      this.failedWrites++
      throw new ErrnoError(Errno.EIO, `page ${index}: compression failed: ${String(err)}`)
    }
    // 0: not even two pages held it; store it raw like any page at or over huge_class_size.
    return this.commit(table, index, this.cbuf, 0, n === 0 ? PAGE_SIZE : n, page, true)
  }

  /** If the page is same-filled, replace the slot with its pattern (no pool memory). */
  private storeSame(table: PageTable, index: number, page: Buffer): boolean {
    if (!bufferSameFilled(page, this.pattern)) return false
    this.freeSlot(table, index)
    table.setSame(index, this.pattern[0], this.pattern[1])
    this.samePages++
    this.pagesStored++
    return true
  }

  /**
   * Store a page's compressed form, compressed[off, off+len) (or `raw`, the page itself, when the
   * result reaches huge_class_size) in the pool and point the slot at it. The old contents are
   * freed only after the new allocation succeeded, so a failure leaves the page as it was. With
   * enforceLimit, false when the allocation took the pool past its limit (zram_write_page's
   * check after zs_malloc, with staged pages' room held): nothing is stored.
   */
  private commit(table: PageTable, index: number, compressed: Uint8Array, off: number, len: number, raw: Uint8Array, enforceLimit: boolean,
    prio = 0): boolean {
    const huge = len >= ZsPool.hugeClassSize
    const src = huge ? raw : compressed
    const srcOff = huge ? 0 : off
    const size = huge ? PAGE_SIZE : len
    const handle = this.pool.malloc(size)
    if (enforceLimit && this.headroomPages() < 0) {
      this.pool.free(handle)
      return false
    }
    this.pool.write(handle, src, srcOff, size)
    this.place(table, index, handle, size, huge, prio)
    return true
  }

  /** The page now lives in pool object `handle` (size bytes written): free what it was, account. */
  private place(table: PageTable, index: number, handle: number, size: number, huge: boolean, prio: number): void {
    this.freeSlot(table, index)
    table.setObject(index, handle, size, huge, huge ? 0 : prio)
    this.comprBytes += size
    this.pagesStored++
    if (huge) {
      this.hugePages++
      this.hugePagesSince++
    }
    this.noteMemUsed()
  }

  private freeSlot(table: PageTable, index: number): void {
    if (!table.isAllocated(index)) return
    const flags = table.flags(index)
    if (flags & SLOT_STAGED) {
      // Its queued or in-flight compression is superseded: the result will be dropped.
      this.kcompressd.supersede(table.value[index * 2])
    } else if (flags & SLOT_SAME) {
      this.samePages--
    } else if (flags & SLOT_WB) {
      this.lower.release(table, index)
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
      if (flags & SLOT_HUGE) this.hugePages--
    }
    this.pagesStored--
    table.clear(index)
  }

  /**
   * Fill out[at, at+4096) with the page at index: unwritten, staged, same-filled, huge or
   * compressed. A compressed page decompresses from where its object lies in the pool, both pieces of
   * one that crosses a frame gathered by the codec (CodecContext.decompressAt), so the common case
   * makes no view and no copy in JavaScript.
   */
  private loadPage(table: PageTable, index: number, out: Buffer, at = 0): void {
    if (!table.isAllocated(index)) {
      out.fill(0, at, at + PAGE_SIZE)
      return
    }
    const flags = table.flags(index)
    if (flags & SLOT_STAGED) {
      this.kcompressd.copySlot(table.value[index * 2], out, at)
    } else if (flags & SLOT_SAME) {
      fillPatternBytes(out, at, table.value[index * 2], table.value[index * 2 + 1])
    } else if (flags & SLOT_HUGE) {
      this.pool.read(table.handle(index), out, at, PAGE_SIZE)
    } else if (flags & SLOT_UNIT) {
      try {
        this.units.read(table.handle(index), table.unitPosition(index), this.contextFor(table.priority(index)) as CodecContext,
          at === 0 && out.length === PAGE_SIZE ? out : out.subarray(at, at + PAGE_SIZE))
      } catch (err) {
        this.failedReads++
        throw new ErrnoError(Errno.EIO, `page ${index}: its unit does not decompress: ${String(err)}`)
      }
    } else {
      const size = table.size(index)
      const loc = this.loc
      const pieces = this.pool.locate(table.handle(index), size, loc)
      try {
        // The algorithm that holds the page (ZRAM_COMP_PRIORITY): the primary, or a recompression one.
        (this.contextFor(table.priority(index)) as CodecContext).decompressAt(this.pool.chunkBytes(loc[0]), loc[1], loc[2],
          pieces === 2 ? this.pool.chunkBytes(loc[3]) : null, loc[4], size - loc[2], out, at, PAGE_SIZE)
      } catch (err) {
        this.failedReads++
        throw new ErrnoError(Errno.EIO, `page ${index}: decompression failed: ${String(err)}`)
      }
    }
  }
}

const ZERO_PAGE = Buffer.alloc(PAGE_SIZE)
/** Room per page of compressAhead's output: two pages, as cbuf (zstd may need room beyond its result). */
const AHEAD_STRIDE = PAGE_SIZE * 2
/** A batch below this is not worth the helper's wake-up; above it (1 MiB, the largest FUSE request) the rest goes page by page. */
const AHEAD_MIN_PAGES = 4
const AHEAD_MAX_PAGES = 256
/** The flags that make a page other than a plain compressed object in the pool (loadPage's last case). */
const NOT_PLAIN = SLOT_ALLOCATED | SLOT_STAGED | SLOT_SAME | SLOT_HUGE | SLOT_UNIT | SLOT_WB

/** Thrown inside the synchronous write loop when the pool has no room for the page at byte `done` of the request. */
class PoolFull extends Error {
  readonly done: number
  constructor(done: number) {
    super('the pool is at its limit')
    this.done = done
  }
}

/** Fill out[at, at+4096), possibly unaligned, with an 8-byte pattern by doubling copies. */
function fillPatternBytes(whole: Buffer, at: number, lo: number, hi: number): void {
  if (lo === hi && (lo === 0 || lo === 0xffffffff)) {
    whole.fill(lo === 0 ? 0 : 0xff, at, at + PAGE_SIZE)
    return
  }
  const out = at === 0 && whole.length === PAGE_SIZE ? whole : whole.subarray(at, at + PAGE_SIZE)
  if (out.byteOffset % 4 === 0) {
    fillPattern(new Uint32Array(out.buffer, out.byteOffset, out.length / 4), lo, hi)
    return
  }
  out.writeUInt32LE(lo, 0)
  out.writeUInt32LE(hi, 4)
  for (let n = 8; n < out.length; n *= 2) out.copyWithin(n, 0, Math.min(n, out.length - n))
}
