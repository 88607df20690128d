/**
 * One zram device: the operations the transport, sysfs and the daemon call, and the wiring of the
 * modules behind them. Where a page's data goes and who owns each piece of state:
 *   slot-store.ts    the page table and the counters that follow it (its one writer)
 *   compression.ts   the algorithms, their parameters and codec contexts
 *   page-store.ts    one page in and out of the pool (load, store as a pattern, compressed or raw)
 *   request-io.ts    the block file's read, write and discard loops
 *   staging.ts       kcompressd's host: staged pages and their commits (src/kcompressd)
 *   lower-io.ts      requests that meet the lower file; lower-tier.ts the writeback tier itself
 *   pool-limits.ts   mem_limit, pool_limit, mem_used_max and the room a write may take
 *   aging.ts         access times, idle, the shrinker's CLOCK hand
 *   recompressor.ts, recompress-host.ts, unit-store.ts   recompress and multi-page units
 * The pool (src/pool) is owned here and lent to those modules; nothing else allocates in it.
 */
import { ZsPool } from '../pool/zs-pool'
import type { CodecContext, CodecParams } from '../codec/codec'
import { Errno, ErrnoError } from '../errno'
import { type EventLog, silentLog } from '../log'
import { PAGE_SIZE } from '../page'
import { defaultWorkers, type Kcompressd, type KcompressdOptions, type KcompressdStats } from '../kcompressd/kcompressd'
import { Shrinker } from '../writeback/shrinker'
import { Aging } from './aging'
import { BlockStatCounters } from './block-stat'
import { Compression } from './compression'
import { IoCounters } from './io-counters'
import { LowerIO } from './lower-io'
import { LowerTier } from './lower-tier'
import { PageStore } from './page-store'
import { PoolLimits } from './pool-limits'
import type { RecompAlgorithms } from './recomp-algorithms'
import { RecompressSlots } from './recompress-host'
import { type RecompressRequest, Recompressor } from './recompressor'
import { RequestIO } from './request-io'
import { type PageTableView, SlotStore } from './slot-store'
import { Staging } from './staging'
import { UnitStore } from './unit-store'

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
  /** Requests refused for lying past the end (io-counters.ts). */
  invalidIo: number
  notifyFree: number
  missFree: number
}

export class ZramDevice {
  readonly id: number
  readonly blockStat = new BlockStatCounters()
  /** The writeback tier: backing_dev, writeback, bd_stat (src/backing through lower-tier.ts). */
  readonly lower: LowerTier
  /** Automatic writeback (zramfuse/shrinker_enabled), a zswap-like policy over the lower tier. */
  readonly shrinker: Shrinker
  /** recompress, and our multi-page units (src/device/recompressor.ts, unit-store.ts). */
  readonly recompressor: Recompressor
  readonly units: UnitStore
  /** kcompressd's host (staged pages and their commits); tests reach kcompressd through it. */
  readonly staging: Staging
  private readonly kcompressd: Kcompressd
  private readonly pool: ZsPool
  private readonly slots: SlotStore
  private readonly compression = new Compression()
  private readonly pages: PageStore
  private readonly requests: RequestIO
  private readonly limits: PoolLimits
  private readonly aging: Aging
  private readonly counters = new IoCounters()
  private readonly recompressSlots: RecompressSlots
  private disksizeBytes = 0
  private openers = 0
  /** Worker count follows the algorithm (ZramDeviceOptions.workers 'auto'); reset restores it. */
  private workersAuto: boolean
  private readonly workersAutoDefault: boolean

  constructor(id: number, opts: ZramDeviceOptions = {}) {
    this.id = id
    const log = opts.log ?? silentLog
    const pool = this.pool = new ZsPool({ chunkPages: opts.chunkPages })
    const units = this.units = new UnitStore(pool)
    // Freeing a slot tells kcompressd and the lower tier; both exist by the time a slot is freed.
    const slots = this.slots = new SlotStore(pool, units, {
      supersede: (slot) => this.kcompressd.supersede(slot),
      releaseLower: (table, index) => this.lower.release(table, index),
    })
    const compression = this.compression
    this.workersAuto = this.workersAutoDefault = opts.workers === 'auto'
    const aging = this.aging = new Aging(slots, opts.clockMs ?? Date.now)
    // The modules get small views of each other, read only once construction is over.
    this.limits = new PoolLimits(pool, () => this.kcompressd.depth, log, `zram${id}`)
    this.pages = new PageStore(slots, pool, units, compression, { copySlot: (slot, out, at) => this.kcompressd.copySlot(slot, out, at) },
      this.limits, this.counters)
    this.lower = new LowerTier({
      get pageTable(): PageTableView | null { return slots.table },
      slots,
      copyPoolObject: (index, out) => {
        const table = slots.table as PageTableView
        const size = table.size(index)
        pool.read(table.handle(index), out, 0, size)
        return size
      },
      decompressPage: (index, out) => this.pages.load(slots.table as PageTableView, index, out),
      movedToLower: (index, location, size, huge) => slots.movedToLower(index, location, size, huge),
      decompressPayload: (src, out, prio) => {
        const ctx = compression.contextFor(prio)
        if (ctx === null) throw new ErrnoError(Errno.EIO, `no algorithm at priority ${prio}`)
        ctx.decompress(src, out)
      },
      get algorithmId(): number { return compression.algorithmId },
      algorithmIdOf: (index) => compression.algorithmIdOf((slots.table as PageTableView).priority(index)),
    }, log)
    this.shrinker = new Shrinker({
      poolPages: () => pool.totalPages,
      poolLimitPages: () => this.limits.limitPages(),
      coldPages: (max) => aging.coldPages(max),
      writeBack: (indexes) => this.lower.writebackChosen(indexes),
      compact: () => this.compact(),
    }, aging.clockMs)
    this.recompressSlots = new RecompressSlots(slots, units, pool, this.pages, compression)
    this.recompressor = new Recompressor(this.recompressSlots)
    this.staging = new Staging(id, {
      slots, pool, compression, pages: this.pages, limits: this.limits, counters: this.counters, growth: this.shrinker,
    }, { workers: opts.workers === 'auto' ? this.autoWorkers() : opts.workers ?? 0, fifoSize: opts.fifoSize, log: opts.log, ...opts.kcompressd })
    this.kcompressd = this.staging.kcompressd
    this.requests = new RequestIO({
      slots, pages: this.pages, staging: this.staging, lowerIO: new LowerIO(slots, this.lower, this.pages, aging, this.counters, this.shrinker),
      lower: this.lower, shrinker: this.shrinker, limits: this.limits, counters: this.counters, blockStat: this.blockStat, aging,
    })
    pool.onChunkDrop = (serial) => this.kcompressd.chunkDropped(serial)
    pool.onChunkAdd = (serial, buf) => this.kcompressd.chunkAdded(serial, buf)
    this.sharePool()
  }

  /**
   * With workers, new pool chunks are shared memory, so workers write their results in place
   * (kcompressd.ts); without, ordinary memory (copies into shared memory cost 2-3x more).
   */
  private sharePool(): void {
    this.pool.shared = this.kcompressd.workers > 0
  }

  // ---- I/O: request-io.ts ----

  read(dst: Buffer, pos: number): number | Promise<number> {
    return this.requests.read(dst, pos)
  }

  write(src: Buffer, pos: number): void | Promise<void> {
    return this.requests.write(src, pos)
  }

  discard(pos: number, len: number, op: 'discard' | 'write_zeroes' = 'discard'): void | Promise<void> {
    return this.requests.discard(pos, len, op)
  }

  opened(): void {
    this.openers++
  }

  released(): void {
    if (this.openers > 0) this.openers--
  }

  get isOpen(): boolean {
    return this.openers > 0
  }

  /** The page table holds something for this page (stored, same-filled or staged). */
  pageAllocated(index: number): boolean {
    const table = this.slots.table
    return table !== null && index < table.pages && table.isAllocated(index)
  }

  /** The page table, read-only (bench and tests look at slots; only the slot store writes them). */
  get pageTable(): PageTableView | null {
    return this.slots.table
  }

  // ---- kcompressd, as sysfs and the daemon see it ----

  /** zramfuse/workers: kcompressd threads (0: compress inline). */
  get workers(): number {
    return this.kcompressd.workers
  }

  /** zramfuse/workers store: an explicit count, kept until reset. */
  setWorkers(n: number): void {
    this.workersAuto = false
    this.kcompressd.setWorkers(n)
    this.sharePool()
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
    return this.compression.algorithm
  }

  get compressionLevel(): number | null {
    return this.compression.level
  }

  /** The dictionary set by algorithm_params dict= (in shared memory), or null. */
  get compressionDict(): Uint8Array | null {
    return this.compression.dict
  }

  /** recomp_algorithm and algorithm_params priority=1..3 (CONFIG_ZRAM_MULTI_COMP), to read. */
  get recomp(): Pick<RecompAlgorithms, 'nameOf'> {
    return this.compression.recomp
  }

  /** The codec context of a priority (comps[prio]); null when the slot has none. */
  contextFor(prio: number): CodecContext | null {
    return this.compression.contextFor(prio)
  }

  /** The pool's huge class size: a compressed page this long or longer is stored raw. */
  get hugeLimit(): number {
    return ZsPool.hugeClassSize
  }

  get metadataBytes(): number {
    const table = this.slots.table
    return table ? table.metadataBytes : 0
  }

  get poolChunks(): number {
    return this.pool.chunkCount
  }

  /** Objects allocated in the pool, kcompressd's reservations included (tests check the accounting). */
  get poolObjects(): number {
    return this.pool.objectCount
  }

  /** The pool's own consistency check (ZsPool.verify: throws on a broken invariant); tests call it. */
  verifyPool(): void {
    this.pool.verify()
  }

  /** disksize_store: page-aligned, once. */
  initialise(bytes: number): void {
    if (bytes <= 0) throw new ErrnoError(Errno.EINVAL, 'disksize must be non-zero')
    if (this.initialised) throw new ErrnoError(Errno.EBUSY, 'cannot change disksize of an initialised device')
    const aligned = Math.ceil(bytes / PAGE_SIZE) * PAGE_SIZE
    if (!Number.isSafeInteger(aligned)) throw new ErrnoError(Errno.ENOMEM, `disksize ${bytes} too large`)
    this.compression.createContexts()
    try {
      this.slots.create(aligned / PAGE_SIZE)
    } catch (err) {
      throw new ErrnoError(Errno.ENOMEM, `cannot allocate the page table for ${aligned} bytes: ${String(err)}`)
    }
    this.disksizeBytes = this.requests.disksize = aligned
    this.aging.start()
    this.lower.initialise(aligned / PAGE_SIZE)
  }

  /** comp_algorithm_store after parsing: an unknown name EINVAL, then EBUSY once initialised. */
  setAlgorithm(name: string): void {
    this.compression.setAlgorithm(name, this.initialised)
    this.followAlgorithm()
  }

  /**
   * algorithm_params of priority prio: level (null: the backend's default) and dictionary (null:
   * none), replacing both as the kernel's comp_params_store does. The backend checks them at
   * initialise.
   */
  setParams(params: CodecParams, prio = 0): void {
    if (this.initialised) throw new ErrnoError(Errno.EBUSY, 'cannot change algorithm parameters of an initialised device')
    this.compression.setParams(params, prio)
  }

  /** recomp_algorithm_store after parsing: EBUSY once initialised. */
  setRecompAlgorithm(prio: number, name: string): void {
    if (this.initialised) throw new ErrnoError(Errno.EBUSY, 'cannot change the algorithms of an initialised device')
    this.compression.recomp.set(prio, name)
  }

  private followAlgorithm(): void {
    if (this.workersAuto) this.kcompressd.setWorkers(this.autoWorkers())
    this.sharePool()
  }

  private autoWorkers(): number {
    return defaultWorkers(this.compression.algorithm)
  }

  /** mem_limit_store: bytes, rounded to pages; 0 = unlimited. Writable any time. */
  setMemLimit(bytes: number): void {
    this.limits.memLimitPages = Math.ceil(bytes / PAGE_SIZE)
  }

  /** mem_used_max_store: only 0 is accepted (checked above); resets the peak to the current use. */
  resetMemUsedMax(): void {
    this.limits.resetUsedMax()
  }

  /** zramfuse/pool_limit: bytes, rounded up to pages; 0 = use mem_limit. */
  setPoolLimit(bytes: number): void {
    this.limits.ownPages = Math.ceil(bytes / PAGE_SIZE)
    this.shrinker.poke()
  }

  get poolLimitBytes(): number {
    return this.limits.ownPages * PAGE_SIZE
  }

  /** The pool's limit in pages: the smaller of zramfuse/pool_limit and mem_limit, of those set; 0 = none. */
  poolLimitPages(): number {
    return this.limits.limitPages()
  }

  // ---- post-processing: idle, writeback, recompress, compact ----

  /** idle_store (aging.ts). */
  markIdle(age: 'all' | number): void {
    this.aging.markIdle(age)
  }

  /** The shrinker's victims: the CLOCK hand's next cold pages (aging.ts). */
  coldPages(max: number): number[] {
    return this.aging.coldPages(max)
  }

  /** recompress: see src/device/recompressor.ts. */
  recompress(req: RecompressRequest): Promise<number> {
    return this.recompressor.recompress(req)
  }

  compact(): number {
    if (!this.initialised) throw new ErrnoError(Errno.EINVAL, 'compact on an uninitialised device')
    this.recompressor.countSplit(this.recompressSlots.splitSparseUnits())
    return this.pool.compact()
  }

  /** reset_store: frees everything and returns the device to its uninitialised defaults. */
  reset(): void {
    if (this.openers > 0) throw new ErrnoError(Errno.EBUSY, 'device is open')
    // Queued pages are forgotten; batches in flight come back stale (no table) and are dropped.
    this.kcompressd.discardAll()
    this.slots.drop()
    this.kcompressd.poolReset()
    this.pool.reset()
    this.compression.reset()
    this.workersAuto = this.workersAutoDefault
    this.followAlgorithm()
    this.units.reset()
    this.recompressor.reset()
    this.disksizeBytes = this.requests.disksize = 0
    this.limits.reset()
    this.counters.reset()
    this.blockStat.reset()
    this.lower.reset()
    // The shrinker's settings are the daemon's (--shrinker, --pool-limit); its counters are the device's.
    this.shrinker.runs = this.shrinker.paused = this.shrinker.poolLimitHit = 0
    this.aging.reset()
  }

  stats(): DeviceStats {
    const slots = this.slots
    const c = this.counters
    return {
      origDataSize: slots.pagesStored * PAGE_SIZE,
      comprDataSize: slots.comprDataSize,
      memUsedTotal: this.pool.totalPages * PAGE_SIZE,
      memLimit: this.limits.memLimitPages * PAGE_SIZE,
      memUsedMax: this.limits.usedMaxPages * PAGE_SIZE,
      samePages: slots.samePages,
      pagesCompacted: this.pool.pagesCompacted,
      hugePages: slots.hugePages,
      hugePagesSince: slots.hugePagesSince,
      failedReads: c.failedReads,
      failedWrites: c.failedWrites,
      invalidIo: c.invalidIo,
      notifyFree: c.notifyFree,
      missFree: 0,
    }
  }
}
