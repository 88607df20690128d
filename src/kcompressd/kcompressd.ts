/**
 * kcompressd: compression off the FUSE request path, after the kernel's kcompressd series.
 *
 * The write callback copies a page into a free slot of a SharedArrayBuffer staging ring, the page
 * table marks the page STAGED (slot + ticket), and the request is answered. A piscina pool of
 * workers compresses batches of slots straight from shared memory; the main thread (the single
 * owner of the pool and the page table) commits each result only if the page still names that
 * slot and ticket, so an overwrite, discard or reset that happened meanwhile wins.
 *
 * The ring has `fifoSize` slots and is the bounded FIFO: a slot is busy from staging until its
 * result is committed or dropped. With no free slot the writer compresses inline (forward progress,
 * counted in inline_fallbacks; fifo_full_events counts the episodes).
 *
 * Slot life: FREE -> QUEUED (in the FIFO; rewritten in place when its page is overwritten) ->
 * INFLIGHT (named by a batch a worker holds; never rewritten) -> FREE. A queued slot whose page is
 * discarded gets ticket 0 and is freed when the dispatcher reaches it.
 */
import { performance } from 'node:perf_hooks'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { Piscina } from 'piscina'
import { type EventLog, silentLog } from '../log'
import { type CompressTask, ENTRY_WORDS, FAULT_EXIT, FAULT_NONE, FAULT_THROW, PAGE_SIZE, RESULT_WORDS } from './protocol'

export const DEFAULT_FIFO_SIZE = 256
export const MAX_FIFO_SIZE = 65536
export const MAX_WORKERS = 64
/** Largest batch one task carries. */
export const MAX_BATCH = 64

/**
 * One worker per core beyond the one the main thread and the FUSE threads need, up to 4. On two
 * cores or fewer it depends on the algorithm, as measured there (bench/kcompressd.ts, loop device, one
 * writer): for lz4 one worker made 4k QD1 writes 0.58x as fast as inline (a piscina dispatch costs
 * ~20 us of main-thread time per page, compressing it ~6-14 us), so 0 (inline); for zstd one worker
 * made 4k QD1 writes 1.39x as fast and 128k writes 1.00x, so 1 (measured with the asynchronous
 * zstd binding of the time; to be re-measured with the synchronous one).
 */
export function defaultWorkers(algorithm: string): number {
  const cores = availableParallelism()
  if (cores <= 2) return algorithm === 'zstd' ? 1 : 0
  return Math.min(4, cores - 1)
}

const FREE = 0
const QUEUED = 1
const INFLIGHT = 2

/** What kcompressd needs from the device that owns it. */
export interface KcompressdHost {
  readonly id: number
  readonly algorithm: string
  readonly compressionLevel: number | null
  /** algorithm_params dict=, in shared memory (workers read it without a copy), or null. */
  readonly compressionDict: Uint8Array | null
  /** The pool's huge class size: a result this long or longer is stored raw. */
  readonly hugeLimit: number
  /** Compress one page with the device's codec context (the inline path); valid until the next call. */
  compressInline(page: Buffer): Buffer
  /**
   * Commit a result if the page is still STAGED in `slot` with `ticket`; `src[off, off+len)` is the
   * compressed page, or null when it is huge and `raw` (the slot) is stored instead. Returns false
   * when the result is stale (dropped).
   */
  commitStaged(page: number, slot: number, ticket: number, src: Buffer | null, off: number, len: number, raw: Buffer): boolean
}

export interface KcompressdOptions {
  workers: number
  fifoSize?: number
  log?: EventLog
  /** Test hook: every worker sleeps this long before compressing a batch. */
  delayMs?: number
  /** Test hook: decides a fault for the n-th batch (0-based). */
  fault?: (batch: number) => 'throw' | 'exit' | null
}

export interface KcompressdStats {
  workers: number
  fifoSize: number
  /** Slots in use now: queued + in flight (including superseded ones awaiting their worker). */
  fifoDepth: number
  queued: number
  /** Results committed into the pool. */
  completed: number
  /** Stagings superseded (overwrite, discard, reset) whose result was dropped or never computed. */
  stale: number
  inlineFallbacks: number
  fifoFullEvents: number
  maxFifoDepth: number
  batches: number
  workerErrors: number
  /** Main-thread nanoseconds spent staging, dispatching and committing. */
  mainNs: number
}

const WORKER_FILE = join(__dirname, __filename.endsWith('.ts') ? 'worker.ts' : 'worker.js')

export class Kcompressd {
  private readonly host: KcompressdHost
  private readonly log: EventLog
  private readonly delayMs: number
  private readonly fault: ((batch: number) => 'throw' | 'exit' | null) | undefined
  private workerCount: number
  private pool: Piscina | null = null
  private closed = false

  // The ring and its bookkeeping, all sized fifoSize.
  private size = 0
  private ring!: SharedArrayBuffer
  private slotViews: Buffer[] = []
  private freeStack!: Uint32Array
  private freeTop = 0
  private state!: Uint8Array
  private slotPage!: Uint32Array
  private slotTicket!: Uint32Array
  private fifo!: Uint32Array
  private fifoHead = 0
  private fifoLen = 0
  private full = false
  private ticket = 0
  private inflightBatches = 0
  private drainWaiters: (() => void)[] = []

  // Counters.
  private nQueued = 0
  private nCompleted = 0
  private nStale = 0
  private nInline = 0
  private nFullEvents = 0
  private nMaxDepth = 0
  private nBatches = 0
  private nWorkerErrors = 0
  private mainMs = 0

  constructor(host: KcompressdHost, opts: KcompressdOptions) {
    this.host = host
    this.log = opts.log ?? silentLog
    this.delayMs = opts.delayMs ?? 0
    this.fault = opts.fault
    this.workerCount = checkWorkers(opts.workers)
    this.allocateRing(opts.fifoSize ?? DEFAULT_FIFO_SIZE)
  }

  /** Staging is on: workers > 0 and not closed. */
  get enabled(): boolean {
    return this.workerCount > 0 && !this.closed
  }

  get workers(): number {
    return this.workerCount
  }

  get fifoSize(): number {
    return this.size
  }

  /** Slots in use (staged and not yet committed or dropped). */
  get depth(): number {
    return this.size - this.freeTop
  }

  get freeSlots(): number {
    return this.freeTop
  }

  stats(): KcompressdStats {
    return {
      workers: this.workerCount,
      fifoSize: this.size,
      fifoDepth: this.depth,
      queued: this.nQueued,
      completed: this.nCompleted,
      stale: this.nStale,
      inlineFallbacks: this.nInline,
      fifoFullEvents: this.nFullEvents,
      maxFifoDepth: this.nMaxDepth,
      batches: this.nBatches,
      workerErrors: this.nWorkerErrors,
      mainNs: Math.round(this.mainMs * 1e6),
    }
  }

  /** Main-thread cost per staged page so far, in ns (0 before any). */
  get mainNsPerPage(): number {
    return this.nQueued === 0 ? 0 : Math.round((this.mainMs * 1e6) / this.nQueued)
  }

  /**
   * Stage one page (4096 bytes). `prevSlot` is the slot the page is STAGED in now, or -1: a slot
   * still waiting in the FIFO is rewritten in place. Returns the slot (read its ticket with
   * ticketOf), or -1 when the FIFO is full: the caller compresses inline.
   */
  stage(page: number, src: Buffer, prevSlot: number): number {
    const t0 = performance.now()
    let slot: number
    if (prevSlot >= 0 && this.state[prevSlot] === QUEUED) {
      // Rewritten in place before a worker saw it: the earlier staging is superseded.
      slot = prevSlot
      this.nStale++
    } else {
      if (this.freeTop === 0) {
        this.nInline++
        if (!this.full) {
          this.full = true
          this.nFullEvents++
        }
        return -1
      }
      slot = this.freeStack[--this.freeTop]
      this.state[slot] = QUEUED
      this.slotPage[slot] = page
      this.fifo[(this.fifoHead + this.fifoLen) % this.size] = slot
      this.fifoLen++
      const depth = this.size - this.freeTop
      if (depth > this.nMaxDepth) this.nMaxDepth = depth
    }
    src.copy(this.slotViews[slot], 0, 0, PAGE_SIZE)
    this.ticket = (this.ticket + 1) >>> 0
    if (this.ticket === 0) this.ticket = 1
    this.slotTicket[slot] = this.ticket
    this.nQueued++
    this.mainMs += performance.now() - t0
    return slot
  }

  ticketOf(slot: number): number {
    return this.slotTicket[slot]
  }

  /** Copy a staged page out of its slot (reads of a STAGED page). */
  copySlot(slot: number, out: Buffer): void {
    this.slotViews[slot].copy(out, 0, 0, PAGE_SIZE)
  }

  /** The page that owned `slot` was overwritten elsewhere or discarded: its result must be dropped. */
  supersede(slot: number): void {
    // A queued slot is skipped (and freed) by the dispatcher; an in-flight one fails the ticket
    // check when its result comes back.
    if (this.state[slot] === QUEUED) this.slotTicket[slot] = 0
  }

  /** Send waiting pages to idle workers: one page at once, a backlog in large batches. */
  pump(): void {
    if (this.fifoLen === 0) return
    const t0 = performance.now()
    if (this.pool === null && this.workerCount > 0 && !this.closed) this.pool = this.createPool(this.workerCount)
    if (this.pool === null) {
      // Workers were turned off (or closed) with pages still queued: compress them here.
      if (this.fifoLen > 0) this.runInline(this.takeBatch(this.fifoLen), false)
    } else {
      while (this.fifoLen > 0 && this.inflightBatches < this.workerCount) {
        const idle = this.workerCount - this.inflightBatches
        const entries = this.takeBatch(Math.min(MAX_BATCH, Math.ceil(this.fifoLen / idle)))
        if (entries === null) continue
        this.dispatch(this.pool, entries)
      }
    }
    this.mainMs += performance.now() - t0
  }

  /** Resolves once every staged page has been committed or dropped. */
  drain(): Promise<void> {
    this.pump()
    if (this.depth === 0) return Promise.resolve()
    return new Promise((resolve) => this.drainWaiters.push(resolve))
  }

  /**
   * reset: forget every queued page (their slots are freed now); batches in flight come back
   * stale and are dropped. The page table is being cleared by the caller.
   */
  discardAll(): void {
    while (this.fifoLen > 0) {
      const slot = this.fifo[this.fifoHead]
      this.fifoHead = (this.fifoHead + 1) % this.size
      this.fifoLen--
      this.nStale++
      this.freeSlot(slot)
    }
    this.settled()
  }

  /** workers store: a new pool of n threads (0: compress inline); batches in flight finish. */
  setWorkers(n: number): void {
    n = checkWorkers(n)
    if (n === this.workerCount && (n === 0 || this.pool !== null)) return
    const old = this.pool
    this.pool = null
    this.workerCount = n
    if (old !== null) void old.close().catch(() => {})
    if (n > 0 && !this.closed) this.pool = this.createPool(n)
    this.pump()
  }

  /** fifo_size store: only while nothing is staged (EBUSY otherwise, decided by the caller). */
  setFifoSize(n: number): void {
    if (this.depth !== 0) throw new Error('kcompressd: fifo_size changed while pages are staged')
    this.allocateRing(n)
  }

  /** Start the worker pool now (else at the first staged page). */
  start(): void {
    if (this.pool === null && this.workerCount > 0 && !this.closed) this.pool = this.createPool(this.workerCount)
  }

  /** Start the workers and resolve once all of them are up (or after timeoutMs). */
  async ready(timeoutMs = 30_000): Promise<void> {
    this.start()
    const deadline = Date.now() + timeoutMs
    while (this.pool !== null && this.pool.idleThreads < this.workerCount && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 10))
    }
  }

  /** Shutdown: discard the queue and stop the workers. */
  async close(): Promise<void> {
    this.closed = true
    this.discardAll()
    const pool = this.pool
    this.pool = null
    if (pool !== null) await pool.destroy()
  }

  /** The worker threads (tests kill them mid-batch). */
  get threads(): readonly { terminate(): Promise<number> }[] {
    return this.pool?.threads ?? []
  }

  // ---- internals ----

  private allocateRing(n: number): void {
    if (!Number.isInteger(n) || n < 1 || n > MAX_FIFO_SIZE) throw new RangeError(`fifo size ${n} out of range`)
    this.size = n
    this.ring = new SharedArrayBuffer(n * PAGE_SIZE)
    this.slotViews = new Array<Buffer>(n)
    for (let i = 0; i < n; i++) this.slotViews[i] = Buffer.from(this.ring, i * PAGE_SIZE, PAGE_SIZE)
    this.freeStack = new Uint32Array(n)
    for (let i = 0; i < n; i++) this.freeStack[i] = n - 1 - i
    this.freeTop = n
    this.state = new Uint8Array(n)
    this.slotPage = new Uint32Array(n)
    this.slotTicket = new Uint32Array(n)
    this.fifo = new Uint32Array(n)
    this.fifoHead = 0
    this.fifoLen = 0
    this.full = false
  }

  private createPool(n: number): Piscina {
    return new Piscina({
      filename: WORKER_FILE,
      minThreads: n,
      maxThreads: n,
      concurrentTasksPerWorker: 1,
      idleTimeout: Number.POSITIVE_INFINITY,
    })
  }

  private freeSlot(slot: number): void {
    this.state[slot] = FREE
    this.slotTicket[slot] = 0
    this.freeStack[this.freeTop++] = slot
    this.full = false
  }

  /** Up to n live entries from the FIFO head, marked INFLIGHT; null when all were superseded. */
  private takeBatch(n: number): Uint32Array | null {
    const tmp = new Uint32Array(n * ENTRY_WORDS)
    let k = 0
    while (k < n && this.fifoLen > 0) {
      const slot = this.fifo[this.fifoHead]
      this.fifoHead = (this.fifoHead + 1) % this.size
      this.fifoLen--
      if (this.slotTicket[slot] === 0) {
        this.nStale++
        this.freeSlot(slot)
        continue
      }
      this.state[slot] = INFLIGHT
      tmp[k * ENTRY_WORDS] = slot
      tmp[k * ENTRY_WORDS + 1] = this.slotPage[slot]
      tmp[k * ENTRY_WORDS + 2] = this.slotTicket[slot]
      k++
    }
    if (k === 0) {
      this.settled()
      return null
    }
    return k === n ? tmp : tmp.slice(0, k * ENTRY_WORDS)
  }

  private dispatch(pool: Piscina, entries: Uint32Array): void {
    const batch = this.nBatches++
    const f = this.fault?.(batch) ?? null
    const task: CompressTask = {
      ring: this.ring,
      entries,
      algorithm: this.host.algorithm,
      level: this.host.compressionLevel,
      dict: this.host.compressionDict,
      hugeLimit: this.host.hugeLimit,
      delayMs: this.delayMs,
      fault: f === 'throw' ? FAULT_THROW : f === 'exit' ? FAULT_EXIT : FAULT_NONE,
    }
    this.inflightBatches++
    const ring = this.ring
    ;(pool.run(task) as Promise<ArrayBuffer>).then(
      (result) => {
        this.inflightBatches--
        this.commitResult(ring, result)
        this.pump()
        this.settled()
      },
      (err: unknown) => {
        this.inflightBatches--
        this.workerFailed(entries, batch, err)
        this.runInline(entries, true)
        this.pump()
      },
    )
  }

  private commitResult(ring: SharedArrayBuffer, result: ArrayBuffer): void {
    const t0 = performance.now()
    const header = new Uint32Array(result, 0, 1 + new Uint32Array(result, 0, 1)[0] * RESULT_WORDS)
    const n = header[0]
    const body = Buffer.from(result)
    const hugeLimit = this.host.hugeLimit
    let off = header.byteLength
    for (let i = 0; i < n; i++) {
      const h = 1 + i * RESULT_WORDS
      const slot = header[h]
      const len = header[h + 3]
      const huge = len >= hugeLimit
      // The ring may have been replaced (fifo_size) only when nothing was staged: never here.
      const ok = ring === this.ring && this.state[slot] === INFLIGHT &&
        this.host.commitStaged(header[h + 1], slot, header[h + 2], huge ? null : body, off, len, this.slotViews[slot])
      if (ok) this.nCompleted++
      else this.nStale++
      if (!huge) off += len
      if (ring === this.ring) this.freeSlot(slot)
    }
    this.mainMs += performance.now() - t0
  }

  /**
   * Compress entries on the main thread (a failed worker's batch, or the queue left when workers
   * were turned off) and commit them; their slots stay INFLIGHT until then.
   */
  private runInline(entries: Uint32Array | null, afterFailure: boolean): void {
    if (entries === null) return
    const n = entries.length / ENTRY_WORDS
    const ring = this.ring
    // Counted as a batch in flight so pump() leaves a worker's share for the others.
    if (afterFailure || this.pool === null) this.inflightBatches++
    const work = async (): Promise<void> => {
      for (let i = 0; i < n; i++) {
        const slot = entries[i * ENTRY_WORDS]
        const page = entries[i * ENTRY_WORDS + 1]
        const ticket = entries[i * ENTRY_WORDS + 2]
        if (ring !== this.ring) return
        const raw = this.slotViews[slot]
        let ok = false
        try {
          const c = this.host.compressInline(raw)
          const huge = c.length >= this.host.hugeLimit
          ok = ring === this.ring && this.host.commitStaged(page, slot, ticket, huge ? null : c, 0, c.length, raw)
        } catch (err) {
          this.log.error({ event: 'kcompressd_inline_failed', device: `zram${this.host.id}`, page, err: String(err) },
            'inline recompression of a staged page failed: the page keeps its staged copy until overwritten')
          // Keep the slot: the page still reads from it. Leave it INFLIGHT (never reused).
          continue
        }
        if (ok) this.nCompleted++
        else this.nStale++
        if (ring === this.ring) this.freeSlot(slot)
      }
    }
    void work().finally(() => {
      this.inflightBatches--
      this.pump()
      this.settled()
    })
  }

  private workerFailed(entries: Uint32Array, batch: number, err: unknown): void {
    this.nWorkerErrors++
    const n = entries.length / ENTRY_WORDS
    const pages: number[] = []
    for (let i = 0; i < Math.min(n, 8); i++) pages.push(entries[i * ENTRY_WORDS + 1])
    // One line per failed batch (never per page), with what it held; the pages are recompressed.
    if (this.nWorkerErrors <= 10 || this.nWorkerErrors % 1000 === 0) {
      this.log.error({
        event: 'kcompressd_worker_failed', device: `zram${this.host.id}`, batch, batchPages: n, firstPages: pages,
        algorithm: this.host.algorithm, workerErrors: this.nWorkerErrors, err: String(err),
      }, 'a kcompressd worker failed: its pages are recompressed inline, nothing is lost')
    }
  }

  private settled(): void {
    if (this.depth !== 0 || this.drainWaiters.length === 0) return
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const w of waiters) w()
  }
}

function checkWorkers(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > MAX_WORKERS) throw new RangeError(`workers ${n} out of range 0..${MAX_WORKERS}`)
  return n
}
