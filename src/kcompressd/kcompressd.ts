/**
 * kcompressd: compression off the FUSE request path, after the kernel's kcompressd series.
 *
 * The write callback copies a page into a free slot of the shared staging ring, publishes the
 * slot on the submission queue, the page table marks the page STAGED (slot + ticket), and the
 * request is answered: per page a copy and an index update. Long-lived worker threads sleep on
 * the queue (Atomics.wait), claim whatever is queued, compress it into the slot's result area and
 * publish the slot on their completion rings; no message per page or per batch either way. The
 * main thread (the single owner of the pool's metadata and the page table) takes results at the
 * start and end of every request, or when woken, and commits each one only if the page still names
 * that slot and ticket, so an overwrite, discard or reset that happened meanwhile wins. A worker
 * writes its result into a pool object the main thread reserved for it (per size class, a few at a
 * time, pinned against compaction), so committing is storing a handle; with no reservation of the
 * class at hand it writes the slot's result area and the main thread copies (protocol.ts).
 *
 * Waking a sleeping thread is not free (an Atomics.notify on a sleeping worker costs the writer
 * several microseconds on a VM whose other vCPU is halted), so the writer notifies only when a
 * worker sleeps, once per request, and when the request's pages cost less to compress than a
 * wake-up (if every worker sleeps) or MIN_STAGED_WORK_NS (measured, both: inlineIsCheaper), it
 * compresses them itself (inline_cheaper). With zramfuse/outcome_trials (off by default), single
 * pages also go inline for a while when a trial of both ways found requests coming faster that way
 * (way-trial.ts, inline_measured): a worker that shares a CPU with the application can slow it more
 * than it saves the writer.
 * Results are taken without waking the main thread at all while requests keep coming, in batches
 * (resultsDue); when requests stop, the worker that goes to sleep after its poll window wakes the
 * main thread to take what is left (no timer runs while requests flow), and drain() asks the next
 * worker that goes idle to wake it. A worker also faults in each new shared
 * pool chunk (chunkAdded), so the main thread's first writes into it do not fault.
 *
 * The ring has `fifoSize` slots and is the bounded FIFO: a slot is busy from staging until its
 * result is taken. With no free slot the writer compresses inline (forward progress, counted in
 * inline_fallbacks; fifo_full_events counts the episodes). A page that no worker could compress is
 * compressed by the main thread, stored raw (huge) if that fails too, and if even that cannot be
 * stored it is dropped with failed_writes counted and a log line: a slot is never kept forever.
 *
 * Plain worker_threads, not piscina: piscina's unit is a task that returns a result message,
 * which is exactly the per-batch cost this removes; a task that never returns defeats its queue,
 * its idle accounting and its close(), and recovering a dead worker's claimed slots needs the
 * thread's identity and its exit event, which a pool hides.
 */
import { performance } from 'node:perf_hooks'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import { type EventLog, silentLog } from '../log'
import {
  C_CONFIG_GEN, C_MAIN_ARMED, C_MAIN_SEQ, C_POLL_US, C_POOL_EPOCH, C_SLEEPERS, C_SQ_TAIL, type ChunkMessage, CLAIMED_BASE, type ConfigMessage,
  type DropMessage, E_EPOCH, E_HANDLE, E_LEN0, E_OFF0, E_OFF1, E_SERIAL0, E_SERIAL1, FREE, MAX_WORKER_IDS, R_HEAD, R_TAIL,
  MAIN_WAKE_IDLE, MAIN_WAKE_SLEEP, RESULT_FAILED, RESULT_SKIPPED, resvBase, resvEntry, resvWords, W_CQ_TAIL, W_INFLIGHT, W_INFLIGHT_EPOCH, W_MAIL, W_POPULATED, W_READY, W_RUN, W_RUNS,
  WORKER_WORDS, workerBase, type WorkerData, type WorkerFaults,
} from './protocol'
import { PAGE_SIZE } from '../page'
import { classIndexOf, GEOMETRY, ZS_HANDLE_SIZE, ZS_SIZE_CLASSES } from '../pool/size-class'
import { checkFifoSize, checkPollUs, checkWorkers, DEFAULT_FIFO_SIZE, DEFAULT_POLL_US } from './limits'
import {
  deeperReserve, defaultWorkersFor, inlineIsCheaper, isProbe, isSampled, nextCompressNs, nextDraw, resultsDue, SAMPLE_EVERY, WAKE_SAMPLES,
  wakeEstimate, wakeSampleNs,
} from './policy'
import { StagingRing } from './staging-ring'
import { WayTrial } from './way-trial'

export { DEFAULT_FIFO_SIZE, DEFAULT_POLL_US, MAX_FIFO_SIZE, MAX_POLL_US, MAX_WORKERS } from './limits'

/** The default worker count for `algorithm` on this machine (policy.ts defaultWorkersFor). */
export function defaultWorkers(algorithm: string): number {
  return defaultWorkersFor(algorithm, availableParallelism())
}

/**
 * Called with the kernel thread id of every kcompressd worker that starts (any device), e.g. to place
 * it on CPUs of its own (daemon: --kcompressd-cpus). Process-wide, as CPU placement is.
 */
let workerThreadHook: ((tid: number, device: number, worker: number) => void) | null = null

export function onWorkerThread(hook: ((tid: number, device: number, worker: number) => void) | null): void {
  workerThreadHook = hook
}

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
  /**
   * The page STAGED in `slot` with `ticket` cannot be stored at all (not even raw): forget it and
   * count the failure. Returns false when it was stale anyway.
   */
  failStaged(page: number, slot: number, ticket: number): boolean
  /**
   * Reserve a pool object for a worker to write in place: allocated and pinned, payload at least
   * `len` bytes, its place described into `out` (ZsPool.payloadPieces). Returns the handle, or 0
   * when none can be had (pool memory not shared, a memory limit, no device, allocation failed).
   */
  reserveObject(len: number, out: Int32Array): number
  /** The SharedArrayBuffer holding piece `piece` (0 or 1) of a reserved object. */
  reservedChunk(handle: number, piece: number): SharedArrayBuffer
  /** Free a reserved object that will not be committed. */
  releaseObject(handle: number): void
  /**
   * Commit a result a worker wrote into reserved object `handle` (`len` bytes; PAGE_SIZE: the page
   * raw) if the page is still STAGED in `slot` with `ticket`. False when stale: the caller frees it.
   */
  commitWritten(page: number, slot: number, ticket: number, handle: number, len: number): boolean
}

export interface KcompressdOptions {
  workers: number
  fifoSize?: number
  log?: EventLog
  /** Compress a request inline when that costs less than a handoff (inlineIsCheaper; default true). */
  inlineWhenCheaper?: boolean
  /** Send single pages inline while outcome trials find them faster that way (way-trial.ts; default false). */
  outcomeTrials?: boolean
  /** Microseconds an idle worker polls before it sleeps until woken (default DEFAULT_POLL_US; 0: sleep at once). */
  pollUs?: number
  /** Test hook: every worker sleeps this long before each page (cut short when it is stopped). */
  delayMs?: number
  /** Test hook: every `every`-th page a worker claims throws in it or ends its thread. */
  fault?: { every: number; kind: 'throw' | 'exit' }
}

export interface KcompressdStats {
  workers: number
  fifoSize: number
  /** Slots in use now: queued, being compressed, or with a result not yet committed. */
  fifoDepth: number
  /** Of those, slots a worker has claimed and not yet published. */
  inFlight: number
  /** Stagings (a page rewritten while still queued counts again). */
  queued: number
  /** Results committed into the pool. */
  completed: number
  /** Stagings superseded (overwrite, discard, reset) whose result was dropped or never computed. */
  stale: number
  /** Staged pages that could not be stored at all (dropped, failed_writes counted). */
  failed: number
  /** Pages compressed inline because the FIFO was full. */
  inlineFallbacks: number
  /** Pages compressed inline because handing them off cost more (inlineIsCheaper). */
  inlineCheaper: number
  /** Single pages compressed inline because the outcome trials found requests faster that way (way-trial.ts). */
  inlineMeasured: number
  /** Outcome trials finished, and of those the ones that sent single pages inline. */
  trials: number
  trialsInline: number
  fifoFullEvents: number
  maxFifoDepth: number
  /** Worker runs: a worker woke up and compressed what was queued until the queue was empty. */
  batches: number
  /** Pages a worker failed to compress (it threw or died); each was compressed again here. */
  workerErrors: number
  /** Results committed that a worker had written into a reserved pool object (no copy here). */
  written: number
  /** Pool objects reserved for workers now (allocated, not yet holding a page). */
  reserved: number
  /** New pool chunks a worker faulted in for the main thread (chunkAdded). */
  populated: number
  /** Atomics.notify calls the writer made to wake a sleeping worker. */
  workerWakeups: number
  /** Times a worker woke the main thread to take results (requests stopped, or drain() waited). */
  mainWakeups: number
  /** The writer's estimate of a wake-up (ns per notify) and of compressing one page (ns, in a worker). */
  wakeNs: number
  compressNs: number
  /**
   * Main-thread nanoseconds spent staging and ending requests (sampled: one request in SAMPLE_EVERY is timed), waking
   * workers, taking and committing results.
   */
  mainNs: number
  mainNsPerPage: number
}

/** Nothing staged for this long: the reservations are freed (they count in mem_used_total). */
const IDLE_RELEASE_MS = 100

const WORKER_FILE = join(__dirname, __filename.endsWith('.ts') ? 'worker.ts' : 'worker.js')

interface WaitAsyncResult { async: boolean; value: Promise<string> | string }
const waitAsync = (Atomics as unknown as {
  waitAsync(ia: Int32Array, index: number, value: number, timeoutMs?: number): WaitAsyncResult
}).waitAsync

interface WorkerHandle {
  id: number
  thread: Worker
  ring: StagingRing
  cq: Int32Array
  cqHead: number
  /** Its reservation rings (protocol.ts) ... */
  resv: Int32Array
  /** ... the size classes to top up after the next collect, ... */
  wanted: Int32Array
  wantedCount: number
  wantedFlag: Uint8Array
  /** ... how many to keep reserved per class (doubled whenever the worker ran out), ... */
  depth: Uint8Array
  /** ... and the serials of the pool chunks sent to it. */
  sent: Set<number>
  /** Asked to stop (workers lowered, fifo_size changed, close): its exit is not a failure. */
  stopping: boolean
  /** The thread has ended: nothing more is reserved for it. */
  exited: boolean
  ready: boolean
}

export class Kcompressd {
  private readonly host: KcompressdHost
  private readonly log: EventLog
  private readonly faults: WorkerFaults
  private target: number
  private closed = false
  /** Workers failed to start: compress inline until the worker count is written again. */
  private startFailed = false
  private ring: StagingRing
  private handles: WorkerHandle[] = []
  /** Handles not asked to stop. */
  private running = 0
  private config: ConfigMessage
  private ticketSeq = 0

  // The writer's policy for the current request (beginRequest .. endRequest).
  private requestInline = false
  private stagedThisRequest = 0
  /** Requests kept inline by inlineIsCheaper; every PROBE_EVERY-th is staged anyway. */
  private cheaperRun = 0
  /** zramfuse/inline_when_cheaper. */
  inlineWhenCheaper: boolean
  /** zramfuse/outcome_trials (applies only while inlineWhenCheaper). */
  private trialsOn: boolean
  /** This request's staging is timed (main_ns is sampled, see SAMPLE_EVERY). */
  private sampled = false
  private sampleRng = 0x9e3779b9
  /** The cost of a wake-up: the median of the last WAKE_SAMPLES (see wakeWorkers). */
  private wakeNsEst = 0
  private readonly wakeSamples = new Float64Array(WAKE_SAMPLES)
  private wakeSampleCount = 0
  private compressNsEst = 0
  /** When cheaperInline last found every worker asleep for a request worth a handoff (performance.now ms). */
  private lastWakeCostMs = -Infinity

  /** Pages staged since the last wake-up; a microtask wakes sleeping workers for them. */
  private wakeCount = 0
  private readonly wakeLater = (): void => this.wakeWorkers()
  private waitPending = false
  /** Frees the reservations IDLE_RELEASE_MS after requests stopped, unless pages were staged since. */
  private releaseTimer: ReturnType<typeof setTimeout> | null = null
  /** When the current request started, and the last one that staged a page (performance.now ms). */
  private requestStartMs = 0
  private lastStageMs = 0
  private drainWaiters: (() => void)[] = []
  private keepAlive: ReturnType<typeof setInterval> | null = null
  private full = false

  // Counters.
  private nQueued = 0
  private nCompleted = 0
  private nStale = 0
  private nFailed = 0
  private nInline = 0
  private nInlineCheaper = 0
  private nInlineMeasured = 0
  /** This request goes inline because a trial found that way faster (counted apart from cheaper). */
  private requestMeasured = false
  private readonly trial = new WayTrial()
  private nFullEvents = 0
  private nMaxDepth = 0
  private nBatchesDone = 0
  private nPopulatedDone = 0
  private nWorkerErrors = 0
  private nWorkerWakeups = 0
  private nMainWakeups = 0
  private nWritten = 0
  private nReserved = 0
  private mainMs = 0
  /** The pool's generation (C_POOL_EPOCH): moved by poolReset(). */
  private epoch = 1
  private readonly pieces = new Int32Array(5)
  /** The handle index chunkAdded tries first. */
  private populateNext = 0

  constructor(host: KcompressdHost, opts: KcompressdOptions) {
    this.host = host
    this.log = opts.log ?? silentLog
    this.faults = { delayMs: opts.delayMs ?? 0, every: opts.fault?.every ?? 0, kind: opts.fault?.kind ?? 'throw' }
    this.target = checkWorkers(opts.workers)
    this.inlineWhenCheaper = opts.inlineWhenCheaper ?? true
    this.trialsOn = opts.outcomeTrials ?? false
    this.config = { gen: 0, algorithm: host.algorithm, level: host.compressionLevel, dict: host.compressionDict }
    this.ring = this.newRing(checkFifoSize(opts.fifoSize ?? DEFAULT_FIFO_SIZE), checkPollUs(opts.pollUs ?? DEFAULT_POLL_US))
  }

  /**
   * A staging ring whose shared words start as its workers must find them: the pool epoch, the
   * codec parameters' generation (a worker's first config message is this.config; a ring left at
   * generation 0 after a parameter change sent every new worker looking for a message never sent)
   * and poll_us.
   */
  private newRing(size: number, pollUs: number): StagingRing {
    const ring = new StagingRing(size)
    Atomics.store(ring.meta, C_POOL_EPOCH, this.epoch)
    Atomics.store(ring.meta, C_CONFIG_GEN, this.config.gen)
    Atomics.store(ring.meta, C_POLL_US, pollUs)
    return ring
  }

  /** Staging is on: workers wanted, not closed, and they could start. */
  get enabled(): boolean {
    return this.target > 0 && !this.closed && !this.startFailed
  }

  get workers(): number {
    return this.target
  }

  get fifoSize(): number {
    return this.ring.size
  }

  /** zramfuse/poll_us: read by the workers from shared memory, so a change applies at their next idle. */
  get pollUs(): number {
    return Atomics.load(this.ring.meta, C_POLL_US)
  }

  set pollUs(us: number) {
    Atomics.store(this.ring.meta, C_POLL_US, checkPollUs(us))
  }

  /** Slots in use (staged and not yet committed or dropped). */
  get depth(): number {
    return this.ring.depth
  }

  stats(): KcompressdStats {
    let batches = this.nBatchesDone
    let populated = this.nPopulatedDone
    for (const h of this.handles) {
      batches += h.ring.meta[workerBase(h.id) + W_RUNS]
      populated += Atomics.load(h.ring.meta, workerBase(h.id) + W_POPULATED)
    }
    return {
      workers: this.target,
      fifoSize: this.ring.size,
      fifoDepth: this.ring.depth,
      inFlight: this.inFlight(),
      queued: this.nQueued,
      completed: this.nCompleted,
      stale: this.nStale,
      failed: this.nFailed,
      inlineFallbacks: this.nInline,
      inlineCheaper: this.nInlineCheaper,
      inlineMeasured: this.nInlineMeasured,
      trials: this.trial.trials,
      trialsInline: this.trial.trialsInline,
      fifoFullEvents: this.nFullEvents,
      maxFifoDepth: this.nMaxDepth,
      batches,
      workerErrors: this.nWorkerErrors,
      written: this.nWritten,
      reserved: this.nReserved,
      populated,
      workerWakeups: this.nWorkerWakeups,
      mainWakeups: this.nMainWakeups,
      wakeNs: Math.round(this.wakeNsEst),
      compressNs: Math.round(this.compressNsEst),
      mainNs: Math.round(this.mainMs * 1e6),
      mainNsPerPage: this.nQueued === 0 ? 0 : Math.round((this.mainMs * 1e6) / this.nQueued),
    }
  }

  /**
   * A write request of `pages` pages begins at `startMs` (performance.now(), read by the caller
   * anyway): take finished results (freeing their slots) and decide whether its pages are staged or
   * compressed by the writer: a single page when the last trial found requests faster that way
   * (way-trial.ts), any request when a worker's wake-up is dearer than compressing its pages.
   */
  beginRequest(pages: number, startMs: number): void {
    this.stagedThisRequest = 0
    this.requestInline = false
    this.requestMeasured = false
    this.sampled = false
    if (!this.enabled) return
    this.requestStartMs = startMs
    // Requests flow but stage nothing (lz4 pages kept inline): they free the reservations, so that
    // no timer has to run while they come.
    if (this.nReserved > 0 && startMs - this.lastStageMs >= IDLE_RELEASE_MS && this.ring.depth === 0) this.releaseIdle()
    this.sampleRng = nextDraw(this.sampleRng)
    this.sampled = isSampled(this.sampleRng)
    const t0 = this.sampled ? performance.now() : 0
    if (this.collectDue(pages)) this.collect()
    if (!this.inlineWhenCheaper) {
      // every page staged
    } else if (pages === 1 && this.trialsOn && this.trial.inlineNext(startMs)) {
      this.requestInline = this.requestMeasured = true
    } else {
      if (pages > 1 && this.trialsOn) this.trial.otherRequest()
      if (this.cheaperInline(pages)) this.requestInline = !isProbe(++this.cheaperRun)
    }
    if (this.sampled) this.mainMs += (performance.now() - t0) * SAMPLE_EVERY
  }

  /** Compressing this request here costs less than handing it off (the rule: policy.ts cheaperInline). */
  private cheaperInline(pages: number): boolean {
    if (inlineIsCheaper(pages, this.compressNsEst, 0)) return true
    if (Atomics.load(this.ring.meta, C_SLEEPERS) < this.running) return false
    const now = performance.now() // only here: every worker asleep and a request worth a handoff
    const dense = now - this.lastWakeCostMs < this.pollUs / 1000
    this.lastWakeCostMs = now
    return !dense && inlineIsCheaper(pages, this.compressNsEst, this.wakeNsEst)
  }

  /**
   * Stage one page (4096 bytes). `prevSlot` is the slot the page is STAGED in now, or -1: a slot
   * still waiting in the queue is rewritten in place. Returns the slot (read its ticket with
   * ticketOf), or -1: the caller compresses inline (FIFO full, or cheaper this request).
   */
  stage(page: number, src: Buffer, prevSlot: number): number {
    const t0 = this.sampled ? performance.now() : 0
    if (this.running < this.target) this.spawnWorkers()
    this.checkConfig()
    const ticket = this.nextTicket()
    let slot = -1
    if (prevSlot >= 0 && this.ring.rewrite(prevSlot, src, ticket)) {
      // Rewritten before a worker claimed it: the earlier staging is superseded.
      slot = prevSlot
      this.nStale++
    } else if (this.requestInline) {
      if (this.requestMeasured) this.nInlineMeasured++
      else this.nInlineCheaper++
    } else {
      slot = this.ring.push(page, src, ticket)
      if (slot < 0) {
        this.nInline++
        if (!this.full) {
          this.full = true
          this.nFullEvents++
        }
      } else {
        this.stagedThisRequest++
        this.lastStageMs = this.requestStartMs
        const depth = this.ring.depth
        if (depth > this.nMaxDepth) this.nMaxDepth = depth
      }
    }
    if (slot >= 0) this.nQueued++
    if (this.sampled) this.mainMs += (performance.now() - t0) * SAMPLE_EVERY
    return slot
  }

  ticketOf(slot: number): number {
    return this.ring.ticket[slot]
  }

  /** Copy a staged page out of its slot into out[at, at+4096) (reads of a STAGED page). */
  copySlot(slot: number, out: Buffer, at = 0): void {
    this.ring.slotViews[slot].copy(out, at, 0, PAGE_SIZE)
  }

  /** The page that owned `slot` was overwritten elsewhere or discarded: its result will be dropped. */
  supersede(slot: number): void {
    // A worker that has not read the ticket yet skips the page; the commit checks the page table anyway.
    Atomics.store(this.ring.ticket, slot, 0)
  }

  /**
   * The end of a request: wake a sleeping worker if pages were staged, take finished results, and
   * make sure the rest are taken even if no request follows.
   */
  endRequest(): void {
    if (this.ring.depth === 0 && this.stagedThisRequest === 0) return
    // Timed in the sampled requests only, like staging: two clock reads cost ~0.25 us here.
    const t0 = this.sampled ? performance.now() : 0
    if (this.stagedThisRequest > 0) {
      // After the reply: fuse-native answers in a nextTick, which runs before this microtask, so
      // the wake-up is off the request's path (the worker starts a few microseconds later).
      if (this.wakeCount === 0) queueMicrotask(this.wakeLater)
      this.wakeCount += this.stagedThisRequest
      this.stagedThisRequest = 0
    }
    this.requestInline = false
    if (this.collectDue(0) || !this.waitPending) this.takeResults()
    if (this.sampled) this.mainMs += (performance.now() - t0) * SAMPLE_EVERY
  }

  private collectDue(pages: number): boolean {
    return resultsDue(this.ring.depth, this.ring.size, pages)
  }

  /** Resolves once every staged page has been committed or dropped. */
  drain(): Promise<void> {
    if (this.ring.depth === 0) return Promise.resolve()
    const done = new Promise<void>((resolve) => this.drainWaiters.push(resolve))
    // A pending Atomics.waitAsync does not keep the event loop alive; this does, until settled.
    if (this.keepAlive === null) this.keepAlive = setInterval(() => {}, 1 << 30)
    this.takeResults()
    return done
  }

  /**
   * reset: forget every queued page (their slots are freed now); pages being compressed come back
   * stale and are dropped. The page table is being cleared by the caller.
   */
  discardAll(): void {
    for (let slot = this.ring.claim(); slot >= 0; slot = this.ring.claim()) {
      this.nStale++
      this.freeSlot(slot)
    }
    this.takeResults()
  }

  /**
   * The pool is about to be reset (after discardAll): every reservation and every result written
   * into one belongs to the old pool; they are skipped and dropped without touching the new one.
   */
  poolReset(): void {
    this.epoch = this.epoch === 0x7fffffff ? 1 : this.epoch + 1
    Atomics.store(this.ring.meta, C_POOL_EPOCH, this.epoch)
    this.nReserved = 0
  }

  /**
   * Free every reservation, if nothing is staged (else no-op): with no slot busy no worker is
   * writing one or about to take one, and none can until the main thread stages again, so the
   * rings can be emptied from this side. The next burst starts by refilling.
   */
  releaseIdle(): void {
    if (this.ring.depth !== 0 || this.closed) return
    for (const h of this.handles) {
      if (h.exited) continue
      this.releaseReservations(h, 0)
    }
  }

  /**
   * The pool made a shared chunk: a running worker faults its pages in (the next worker each time),
   * so that the main thread's first writes into it (object headers, in malloc) do not fault.
   */
  chunkAdded(serial: number, buf: SharedArrayBuffer): void {
    const n = this.handles.length
    for (let i = 0; i < n; i++) {
      const h = this.handles[(this.populateNext + i) % n]
      if (h.stopping || h.exited || h.ring !== this.ring) continue
      this.populateNext = (this.populateNext + i + 1) % n
      this.postChunk(h, serial, buf, true)
      Atomics.add(h.ring.meta, workerBase(h.id) + W_MAIL, 1)
      // A sleeping worker reads its mail only when woken, and the main thread may make a chunk
      // after every worker went to sleep (refilling reservations when requests stopped): wake them
      // (one wake-up per MiB of pool, only while they sleep).
      if (Atomics.load(h.ring.meta, C_SLEEPERS) > 0) Atomics.notify(h.ring.meta, C_SQ_TAIL)
      return
    }
  }

  /** The pool dropped a shared chunk: workers that have it let go. */
  chunkDropped(serial: number): void {
    for (const h of this.handles) {
      if (h.sent.delete(serial)) h.thread.postMessage({ drop: serial } satisfies DropMessage)
    }
  }

  get outcomeTrials(): boolean {
    return this.trialsOn
  }

  /** outcome_trials store: off sends requests by the cost rule alone; on starts a fresh trial. */
  set outcomeTrials(on: boolean) {
    if (on && !this.trialsOn) this.trial.restart()
    this.trialsOn = on
  }

  /** workers store: start or stop threads to match n (0: compress inline); pages in flight finish. */
  setWorkers(n: number): void {
    this.target = checkWorkers(n)
    this.startFailed = false
    this.trial.restart() // what the trials measured was with the old count
    const running = this.handles.filter((h) => !h.stopping)
    for (const h of running.slice(n)) this.stopWorker(h)
    // Threads start at the first staged page (or ready()); more join at once if some run already.
    if (this.running > 0) this.spawnWorkers()
    this.takeResults()
  }

  /** fifo_size store: only while nothing is staged (EBUSY otherwise, decided by the caller). */
  setFifoSize(n: number): void {
    checkFifoSize(n)
    if (this.ring.depth !== 0) throw new Error('kcompressd: fifo_size changed while pages are staged')
    const wasRunning = this.running > 0
    for (const h of this.handles) if (!h.stopping) this.stopWorker(h)
    const old = this.ring.meta
    this.ring = this.newRing(n, this.pollUs)
    this.full = false
    if (wasRunning) this.spawnWorkers()
    // A wait armed on the old ring would never be woken by the new ring's workers: end it here
    // (woken() then arms one on the new ring if anything is out).
    if (this.waitPending) {
      Atomics.add(old, C_MAIN_SEQ, 1)
      Atomics.notify(old, C_MAIN_SEQ)
    }
  }

  /** Start the workers and resolve once all of them are up (or after timeoutMs). */
  async ready(timeoutMs = 30_000): Promise<void> {
    if (!this.closed) this.spawnWorkers()
    const deadline = Date.now() + timeoutMs
    while (this.handles.some((h) => !h.stopping && !this.isReady(h)) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }

  /** Shutdown: discard the queue and stop the workers. */
  async close(): Promise<void> {
    this.closed = true
    if (this.releaseTimer !== null) clearTimeout(this.releaseTimer)
    this.releaseTimer = null
    this.discardAll()
    const exits = this.handles.map((h) => {
      if (!h.stopping) this.stopWorker(h)
      return h.thread.terminate()
    })
    await Promise.allSettled(exits)
    // The threads are gone: what they held is dropped with the device's memory (drain() resolves).
    for (let slot = 0; slot < this.ring.size; slot++) {
      if (Atomics.load(this.ring.state, slot) === FREE) continue
      this.nStale++
      this.freeSlot(slot)
    }
    this.settled()
  }

  // ---- workers ----

  private inFlight(): number {
    let published = 0
    for (const h of this.handles) {
      if (h.ring !== this.ring) continue
      const n = Atomics.load(this.ring.meta, workerBase(h.id) + W_CQ_TAIL) - h.cqHead
      published += n < 0 ? n + this.ring.wrap : n
    }
    let claimed = 0
    for (let slot = 0; slot < this.ring.size; slot++) if (Atomics.load(this.ring.state, slot) >= CLAIMED_BASE) claimed++
    return claimed - published
  }

  private isReady(h: WorkerHandle): boolean {
    if (!h.ready) h.ready = Atomics.load(h.ring.meta, workerBase(h.id) + W_READY) === 1
    return h.ready
  }

  private spawnWorkers(): void {
    while (this.running < this.target && !this.closed && !this.startFailed) {
      const used = new Set(this.handles.map((h) => h.id))
      let id = 0
      while (used.has(id)) id++
      if (id >= MAX_WORKER_IDS) return
      this.spawn(id)
    }
  }

  private spawn(id: number): void {
    const ring = this.ring
    const base = workerBase(id)
    for (let w = 0; w < WORKER_WORDS; w++) ring.meta[base + w] = 0
    Atomics.store(ring.meta, base + W_RUN, 1)
    const cq = new Int32Array(new SharedArrayBuffer(ring.size * 4))
    const resv = new Int32Array(new SharedArrayBuffer(resvWords(ZS_SIZE_CLASSES) * 4))
    const data: WorkerData = {
      id, fifoSize: ring.size, meta: ring.meta.buffer as SharedArrayBuffer, pages: ring.pages, results: ring.results,
      cq: cq.buffer as SharedArrayBuffer, resv: resv.buffer as SharedArrayBuffer, config: this.config, faults: this.faults,
    }
    const thread = new Worker(WORKER_FILE, { workerData: data })
    // The daemon is kept alive by its mount, a test by what it awaits (drain holds a handle).
    thread.unref()
    const h: WorkerHandle = {
      id, thread, ring, cq, cqHead: 0, resv, wanted: new Int32Array(ZS_SIZE_CLASSES), wantedCount: 0,
      wantedFlag: new Uint8Array(ZS_SIZE_CLASSES), depth: new Uint8Array(ZS_SIZE_CLASSES), sent: new Set(), stopping: false,
      exited: false, ready: false,
    }
    this.handles.push(h)
    this.running++
    thread.on('error', (err) => this.log.error({ event: 'kcompressd_worker_error', device: `zram${this.host.id}`, worker: id, err: String(err) },
      'a kcompressd worker thread threw'))
    thread.on('exit', (code) => this.workerExited(h, code))
    thread.on('message', (m: unknown) => {
      const tid = (m as { tid?: unknown } | null)?.tid
      if (typeof tid === 'number' && Number.isInteger(tid) && tid > 0) workerThreadHook?.(tid, this.host.id, id)
    })
  }

  private stopWorker(h: WorkerHandle): void {
    h.stopping = true
    this.running--
    const base = workerBase(h.id)
    Atomics.store(h.ring.meta, base + W_RUN, 0)
    Atomics.notify(h.ring.meta, base + W_RUN) // a test delay
    Atomics.notify(h.ring.meta, C_SQ_TAIL) // asleep on the queue: wakes, sees W_RUN 0, exits
  }

  /**
   * A worker thread ended: take what it published, compress here what it had claimed but not
   * finished, and replace it unless it was asked to stop or never came up.
   */
  private workerExited(h: WorkerHandle, code: number): void {
    const t0 = performance.now()
    this.handles = this.handles.filter((x) => x !== h)
    h.exited = true
    if (!h.stopping) this.running--
    const base = workerBase(h.id)
    this.nBatchesDone += h.ring.meta[base + W_RUNS]
    this.nPopulatedDone += h.ring.meta[base + W_POPULATED]
    if (this.closed) return
    // The reservation it was writing when it died (if any), then those it never took.
    const inflight = h.ring.meta[base + W_INFLIGHT] !== 0 && h.ring.meta[base + W_INFLIGHT_EPOCH] === this.epoch
      ? h.ring.meta[base + W_INFLIGHT] : 0
    if (inflight !== 0) this.release(inflight)
    this.releaseReservations(h, inflight)
    // A worker of a replaced ring (fifo_size) had nothing staged.
    if (h.ring !== this.ring) return
    this.collectFrom(h)
    const claimed = CLAIMED_BASE + h.id
    let lost = 0
    for (let slot = 0; slot < this.ring.size; slot++) {
      if (Atomics.load(this.ring.state, slot) !== claimed) continue
      // Written into a reservation but never published: free it (once: it may be the in-flight one).
      const written = this.ring.resultHandle[slot]
      if (written !== 0 && written !== inflight && this.ring.resultEpoch[slot] === this.epoch) this.release(written)
      lost++
      this.compressHere(slot, this.ring.ticket[slot])
      this.freeSlot(slot)
    }
    const ready = this.isReady(h)
    if (lost > 0 || !h.stopping) {
      this.nWorkerErrors += lost
      this.logWorkerFailure({ worker: h.id, exitCode: code, pagesRecompressed: lost, ready },
        'a kcompressd worker ended: the pages it held were compressed on the main thread, nothing is lost')
    }
    if (!h.stopping) {
      if (ready) this.spawnWorkers()
      else if (this.running === 0) this.startFailed = true // compress inline until workers is written again
    }
    this.takeResults()
    this.mainMs += performance.now() - t0
  }

  /** Wake as many sleeping workers as pages were staged since the last wake-up (one per page at most). */
  private wakeWorkers(): void {
    const pages = this.wakeCount
    this.wakeCount = 0
    const sleepers = Atomics.load(this.ring.meta, C_SLEEPERS)
    if (sleepers === 0 || this.closed) return
    const count = Math.min(sleepers, pages)
    const t0 = performance.now()
    Atomics.notify(this.ring.meta, C_SQ_TAIL, count)
    const ms = performance.now() - t0
    this.mainMs += ms
    // The median of the recent samples, each clamped (policy.ts wakeEstimate).
    this.wakeSamples[this.wakeSampleCount++ % WAKE_SAMPLES] = wakeSampleNs(ms, count)
    this.wakeNsEst = wakeEstimate(this.wakeSamples, Math.min(this.wakeSampleCount, WAKE_SAMPLES))
    this.nWorkerWakeups++
  }

  private checkConfig(): void {
    const c = this.config
    const host = this.host
    if (c.algorithm === host.algorithm && c.level === host.compressionLevel && c.dict === host.compressionDict) return
    this.config = { gen: c.gen + 1, algorithm: host.algorithm, level: host.compressionLevel, dict: host.compressionDict }
    this.compressNsEst = 0
    // Posted before the generation moves: a worker that sees the new one finds the message.
    for (const h of this.handles) h.thread.postMessage(this.config)
    Atomics.store(this.ring.meta, C_CONFIG_GEN, this.config.gen)
  }

  private nextTicket(): number {
    // 1..2^31-1: stored in an Int32Array; 0 means superseded.
    this.ticketSeq = this.ticketSeq === 0x7fffffff ? 1 : this.ticketSeq + 1
    return this.ticketSeq
  }

  // ---- results ----

  /** Take every published result of every worker. */
  private collect(): void {
    for (const h of this.handles) {
      if (h.ring === this.ring) this.collectFrom(h)
    }
  }

  private collectFrom(h: WorkerHandle): void {
    const ring = this.ring
    const tail = Atomics.load(ring.meta, workerBase(h.id) + W_CQ_TAIL)
    while (h.cqHead !== tail) {
      const slot = h.cq[h.cqHead % ring.size]
      h.cqHead = h.cqHead + 1 === ring.wrap ? 0 : h.cqHead + 1
      this.finish(slot, h)
    }
    // Never for a thread that is ending: what it does not take would only be freed at its exit.
    if (h.wantedCount > 0 && !h.stopping && !h.exited) this.refill(h)
  }

  /**
   * Note that worker h wants reservations of size class c: it used one, or had none (`ranOut`: then
   * it keeps more: policy.ts deeperReserve).
   */
  private want(h: WorkerHandle, c: number, ranOut: boolean): void {
    if (ranOut) h.depth[c] = deeperReserve(h.depth[c])
    if (h.wantedFlag[c] === 1) return
    h.wantedFlag[c] = 1
    h.wanted[h.wantedCount++] = c
  }

  /**
   * Top up the reservation rings of the classes worker h wants. Each new object's chunk is sent
   * to the worker before the entry is published (the worker reads its port when it meets an
   * unknown serial). Stops at the first object the pool will not give.
   */
  private refill(h: WorkerHandle): void {
    const resv = h.resv
    const out = this.pieces
    for (let i = 0; i < h.wantedCount; i++) {
      const c = h.wanted[i]
      h.wantedFlag[c] = 0
      const b = resvBase(c)
      let tail = resv[b + R_TAIL]
      const len = GEOMETRY.huge[c] === 1 ? PAGE_SIZE : GEOMETRY.size[c] - ZS_HANDLE_SIZE
      const depth = h.depth[c]
      while (((tail - Atomics.load(resv, b + R_HEAD)) | 0) < depth) {
        const handle = this.host.reserveObject(len, out)
        if (handle === 0) {
          for (let j = i + 1; j < h.wantedCount; j++) h.wantedFlag[h.wanted[j]] = 0
          h.wantedCount = 0
          Atomics.store(resv, b + R_TAIL, tail)
          return
        }
        this.nReserved++
        this.sendChunk(h, out[0], handle, 0)
        const e = resvEntry(c, tail)
        resv[e + E_HANDLE] = handle
        resv[e + E_EPOCH] = this.epoch
        resv[e + E_SERIAL0] = out[0]
        resv[e + E_OFF0] = out[1]
        resv[e + E_LEN0] = out[2]
        if (out[2] < len) {
          this.sendChunk(h, out[3], handle, 1)
          resv[e + E_SERIAL1] = out[3]
          resv[e + E_OFF1] = out[4]
        }
        tail = (tail + 1) | 0
      }
      Atomics.store(resv, b + R_TAIL, tail)
    }
    h.wantedCount = 0
  }

  private sendChunk(h: WorkerHandle, serial: number, handle: number, piece: number): void {
    if (!h.sent.has(serial)) this.postChunk(h, serial, this.host.reservedChunk(handle, piece), false)
  }

  /** Give worker h a shared pool chunk (to fault in at once: `populate`); it keeps it until dropped. */
  private postChunk(h: WorkerHandle, serial: number, buf: SharedArrayBuffer, populate: boolean): void {
    h.sent.add(serial)
    h.thread.postMessage({ chunk: serial, buf, populate } satisfies ChunkMessage)
  }

  /**
   * Free the reservations on worker h's rings (of the current pool; not `skip`) and empty them. Only
   * when h cannot be taking one: it has exited, or no slot is busy (releaseIdle).
   */
  private releaseReservations(h: WorkerHandle, skip: number): void {
    const resv = h.resv
    for (let c = 0; c < ZS_SIZE_CLASSES; c++) {
      const b = resvBase(c)
      const tail = resv[b + R_TAIL]
      let pos = Atomics.load(resv, b + R_HEAD)
      if (pos === tail) continue
      for (; pos !== tail; pos = (pos + 1) | 0) {
        const e = resvEntry(c, pos)
        if (resv[e + E_EPOCH] === this.epoch && resv[e + E_HANDLE] !== skip) this.release(resv[e + E_HANDLE])
      }
      Atomics.store(resv, b + R_HEAD, tail)
    }
  }

  private release(handle: number): void {
    this.nReserved--
    this.host.releaseObject(handle)
  }

  private finish(slot: number, h: WorkerHandle | null): void {
    const ring = this.ring
    const r = ring.result[slot]
    const ticket = ring.resultTicket[slot]
    const written = ring.resultHandle[slot]
    try {
      if (r === RESULT_SKIPPED) {
        this.nStale++
      } else if (r === RESULT_FAILED) {
        this.nWorkerErrors++
        this.logWorkerFailure({ page: ring.slotPage[slot] }, 'a kcompressd worker failed to compress a page: compressed on the main thread')
        this.compressHere(slot, ticket)
      } else {
        const ns = ring.resultNs[slot]
        if (ns > 0) this.compressNsEst = nextCompressNs(this.compressNsEst, ns)
        const len = r >= this.host.hugeLimit ? PAGE_SIZE : r
        if (written !== 0) this.commitWritten(slot, ticket, written, len)
        else this.commit(slot, ticket, len === PAGE_SIZE ? null : ring.resultBytes, slot * PAGE_SIZE, r)
        if (h !== null) this.want(h, classIndexOf(len), written === 0)
      }
    } finally {
      this.freeSlot(slot)
    }
  }

  /**
   * Compress a staged page on the main thread (its worker failed, or no worker runs) and commit it;
   * if the codec fails, store the page raw. Never throws.
   */
  private compressHere(slot: number, ticket: number): void {
    let c: Buffer | null = null
    try {
      c = this.host.compressInline(this.ring.slotViews[slot])
    } catch (err) {
      this.log.error({ event: 'kcompressd_inline_failed', device: `zram${this.host.id}`, page: this.ring.slotPage[slot], err: String(err) },
        'compressing a staged page failed on the main thread too: it is stored uncompressed (huge)')
    }
    if (c === null) this.commit(slot, ticket, null, 0, PAGE_SIZE)
    else this.commit(slot, ticket, c.length >= this.host.hugeLimit ? null : c, 0, c.length)
  }

  /** Commit a result a worker wrote into a reservation (of the current pool, else it is dropped). */
  private commitWritten(slot: number, ticket: number, handle: number, len: number): void {
    if (this.ring.resultEpoch[slot] !== this.epoch) {
      this.nStale++ // written into the pool before a reset: nothing to free in this one
      return
    }
    this.nReserved--
    if (this.host.commitWritten(this.ring.slotPage[slot], slot, ticket, handle, len)) {
      this.nCompleted++
      this.nWritten++
    } else {
      this.nStale++
      this.host.releaseObject(handle)
    }
  }

  /** Commit a result; if the pool cannot take even that, drop the page visibly. Never throws. */
  private commit(slot: number, ticket: number, src: Buffer | null, off: number, len: number): void {
    const page = this.ring.slotPage[slot]
    const raw = this.ring.slotViews[slot]
    try {
      if (this.host.commitStaged(page, slot, ticket, src, off, len, raw)) this.nCompleted++
      else this.nStale++
      return
    } catch (err) {
      if (src !== null) {
        // A compressed object could not be stored: try the page as it is once more.
        try {
          if (this.host.commitStaged(page, slot, ticket, null, 0, PAGE_SIZE, raw)) this.nCompleted++
          else this.nStale++
          return
        } catch {
          // reported below
        }
      }
      if (this.host.failStaged(page, slot, ticket)) {
        this.nFailed++
        this.log.error({ event: 'kcompressd_page_lost', device: `zram${this.host.id}`, page, err: String(err) },
          'a staged page could not be stored in the pool: it is lost (failed_writes counts it)')
      } else {
        this.nStale++
      }
    }
  }

  /** No worker runs: compress what is queued here. */
  private compressQueuedHere(): void {
    for (let slot = this.ring.claim(); slot >= 0; slot = this.ring.claim()) {
      const ticket = this.ring.ticket[slot]
      if (ticket === 0) this.nStale++
      else this.compressHere(slot, ticket)
      this.freeSlot(slot)
    }
  }

  private freeSlot(slot: number): void {
    this.ring.release(slot)
    this.full = false
  }

  /**
   * Take every published result (compressing queued pages here when no worker runs). While pages
   * or reservations are out, wait (Atomics.waitAsync, no timeout) for a worker to wake us: the next
   * one to go idle while drain() waits, else the next one to go to sleep, which it does once
   * requests have stopped for poll_us. No timer runs while requests flow: any short timer in the
   * event loop costs every request 3-5 us of main-thread time (docs/benchmarks.md).
   */
  private takeResults(): void {
    const meta = this.ring.meta
    const seq = Atomics.load(meta, C_MAIN_SEQ)
    // Armed before collecting: a result published after the collect is followed by its worker
    // going idle or to sleep, which then sees the flag and wakes us.
    Atomics.store(meta, C_MAIN_ARMED, this.drainWaiters.length > 0 ? MAIN_WAKE_IDLE : MAIN_WAKE_SLEEP)
    this.collect()
    if (this.running === 0 && this.ring.queued > 0) this.compressQueuedHere()
    if (this.ring.depth === 0) this.settled()
    if (this.ring.depth === 0 && this.nReserved === 0) {
      Atomics.store(meta, C_MAIN_ARMED, 0)
      return
    }
    if (this.waitPending || this.closed) return
    this.waitPending = true
    const r = waitAsync(meta, C_MAIN_SEQ, seq)
    if (typeof r.value === 'string') queueMicrotask(this.woken)
    else void r.value.then(this.woken)
  }

  /** A worker woke us: requests stopped (or drain() waits). Take results; free reservations later. */
  private readonly woken = (): void => {
    this.waitPending = false
    if (this.closed) return
    const t0 = performance.now()
    this.nMainWakeups++
    this.takeResults()
    // Only when requests stopped: while they come (a worker can sleep between the pages staged in
    // a stream that keeps most inline) a timer would cost each of them; they free the reservations.
    if (this.ring.depth === 0 && this.nReserved > 0 && t0 - this.requestStartMs >= this.pollUs / 1000) this.armRelease()
    this.mainMs += performance.now() - t0
  }

  /**
   * Free the reservations IDLE_RELEASE_MS from now if nothing is staged meanwhile; a later stop
   * starts the count again (a wake-up comes only when requests stop or drain() waits).
   */
  private armRelease(): void {
    if (this.closed) return
    if (this.releaseTimer !== null) clearTimeout(this.releaseTimer)
    this.releaseTimer = setTimeout(() => {
      this.releaseTimer = null
      if (performance.now() - this.lastStageMs >= IDLE_RELEASE_MS) this.releaseIdle()
    }, IDLE_RELEASE_MS)
    this.releaseTimer.unref()
  }

  private logWorkerFailure(fields: object, msg: string): void {
    // Never one line per page under a persistent failure: the first ten, then every thousandth.
    if (this.nWorkerErrors > 10 && this.nWorkerErrors % 1000 !== 0) return
    this.log.error({ event: 'kcompressd_worker_failed', device: `zram${this.host.id}`, algorithm: this.host.algorithm,
      workerErrors: this.nWorkerErrors, ...fields }, msg)
  }

  private settled(): void {
    if (this.ring.depth !== 0) return
    if (this.keepAlive !== null) {
      clearInterval(this.keepAlive)
      this.keepAlive = null
    }
    if (this.drainWaiters.length === 0) return
    const waiters = this.drainWaiters
    this.drainWaiters = []
    for (const w of waiters) w()
  }

  /**
   * For tests only (the daemon never calls it): a live view of the few internals the kcompressd
   * tests wait on, and a way to set the two cost estimates the writer's choice depends on, so that
   * tests need not cast their way into private fields.
   */
  testView(): KcompressdTestView {
    const kc = this
    return {
      get queued() { return kc.ring.queued },
      get sleepers() { return Atomics.load(kc.ring.meta, C_SLEEPERS) },
      get releaseArmed() { return kc.releaseTimer !== null },
      get mainWaiting() { return kc.waitPending },
      get mailUnread() {
        let n = 0
        for (const h of kc.handles) {
          if (h.exited || h.ring !== kc.ring) continue
          const b = workerBase(h.id)
          n += Atomics.load(h.ring.meta, b + W_MAIL) - Atomics.load(h.ring.meta, b + W_POPULATED)
        }
        return n
      },
      setCosts(compressNs: number, wakeNs: number): void {
        kc.compressNsEst = compressNs
        kc.wakeNsEst = wakeNs
      },
    }
  }
}

/** Kcompressd.testView(): read live, at each access. */
export interface KcompressdTestView {
  /** Pages on the submission queue that no worker has claimed yet. */
  readonly queued: number
  /** Workers asleep on the queue (past their poll window; a page staged now costs a wake-up). */
  readonly sleepers: number
  /** The one-shot timer that frees the reservations once requests stopped is armed. */
  readonly releaseArmed: boolean
  /** The main thread waits (Atomics.waitAsync) for a worker to wake it. */
  readonly mainWaiting: boolean
  /**
   * Pool chunks announced to workers and not faulted in yet. A chunk announced to a sleeping worker
   * wakes it, so "asleep" holds for good only once this is 0: until then C_SLEEPERS still counts a
   * worker that was notified and has not run yet.
   */
  readonly mailUnread: number
  /** Set compress_ns and wake_ns as if measured (the next measurement moves them again). */
  setCosts(compressNs: number, wakeNs: number): void
}
