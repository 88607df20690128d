/**
 * kcompressd: compression off the FUSE request path, after the kernel's kcompressd series. This
 * file holds what the device calls, and the writer's choice per request; the rest:
 *
 *   policy.ts          the rules, as pure functions: inline or staged, when results are taken, estimates
 *   limits.ts          the settings' bounds and defaults
 *   workers.ts         the worker threads: starting, stopping, waking, messages, a dead worker's pages
 *   worker.ts          a worker thread itself
 *   results.ts         committing what the workers return, or compressing here what they could not
 *   reservations.ts    the pool objects workers write their results into (ReservationPool: the device)
 *   wait.ts            the main thread's wait for results when requests stop, and drain()
 *   stats.ts           the counters and the two cost estimates
 *   protocol.ts, staging-ring.ts   the shared memory between the main thread and the workers
 *   way-trial.ts       outcome trials (zramfuse/outcome_trials)
 *
 * The write callback copies a page into a free slot of the shared staging ring, publishes the
 * slot on the submission queue, the page table marks the page STAGED (slot + ticket), and the
 * request is answered: per page a copy and an index update. Long-lived worker threads sleep on
 * the queue (Atomics.wait), claim whatever is queued, compress it into a pool object reserved for
 * them (or the slot's result area) and publish the slot on their completion rings; no message per
 * page or per batch either way. The main thread (the single owner of the pool's metadata and the
 * page table) takes results in batches at the start and end of requests, or when woken, and
 * commits each one only if the page still names that slot and ticket.
 *
 * When a request's pages cost less to compress than a wake-up (if every worker sleeps) or
 * MIN_STAGED_WORK_NS, the writer compresses them itself (inline_cheaper). With
 * zramfuse/outcome_trials (off by default), single pages also go inline for a while when a trial
 * of both ways found requests coming faster that way (inline_measured): a worker that shares a CPU
 * with the application can slow it more than it saves the writer.
 *
 * The ring has `fifoSize` slots and is the bounded FIFO: a slot is busy from staging until its
 * result is taken. With no free slot the writer compresses inline (forward progress, counted in
 * inline_fallbacks; fifo_full_events counts the episodes).
 */
import { availableParallelism } from 'node:os'
import { performance } from 'node:perf_hooks'
import { type EventLog, silentLog } from '../log'
import { PAGE_SIZE } from '../page'
import { checkFifoSize, checkPollUs, checkWorkers, DEFAULT_FIFO_SIZE, DEFAULT_POLL_US } from './limits'
import { cheaperInline, defaultWorkersFor, isProbe, isSampled, nextDraw, resultsDue, SAMPLE_EVERY } from './policy'
import { FREE } from './protocol'
import { type ReservationPool, Reservations } from './reservations'
import { type CommitHost, Results } from './results'
import { CostEstimates, Counters, type KcompressdStats } from './stats'
import { MainWait } from './wait'
import { WayTrial } from './way-trial'
import { Workers, type WorkersHost } from './workers'

export type { KcompressdStats } from './stats'

/** The default worker count for `algorithm` on this machine (policy.ts defaultWorkersFor). */
export function defaultWorkers(algorithm: string): number {
  return defaultWorkersFor(algorithm, availableParallelism())
}

/** What kcompressd needs from the device that owns it. */
export interface KcompressdHost extends CommitHost, ReservationPool, WorkersHost {}

export interface KcompressdOptions {
  workers: number
  fifoSize?: number
  log?: EventLog
  /** Compress a request inline when that costs less than a handoff (policy.ts cheaperInline; default true). */
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

export class Kcompressd {
  private readonly counters = new Counters()
  private readonly costs = new CostEstimates()
  private readonly resv: Reservations
  private readonly results: Results
  private readonly threads: Workers
  private readonly wait: MainWait
  private readonly trial = new WayTrial()
  private ticketSeq = 0

  // The writer's choice for the current request (beginRequest .. endRequest).
  private requestInline = false
  /** This request goes inline because a trial found that way faster (counted apart from cheaper). */
  private requestMeasured = false
  private stagedThisRequest = 0
  /** Requests kept inline by cost; every PROBE_EVERY-th is staged anyway (policy.ts isProbe). */
  private cheaperRun = 0
  /** zramfuse/inline_when_cheaper. */
  inlineWhenCheaper: boolean
  /** zramfuse/outcome_trials (applies only while inlineWhenCheaper). */
  private trialsOn: boolean
  /** This request's main-thread time is measured (policy.ts SAMPLE_EVERY). */
  private sampled = false
  private sampleDraw = 0x9e3779b9

  constructor(host: KcompressdHost, opts: KcompressdOptions) {
    const log = opts.log ?? silentLog
    const workers = checkWorkers(opts.workers)
    this.inlineWhenCheaper = opts.inlineWhenCheaper ?? true
    this.trialsOn = opts.outcomeTrials ?? false
    this.resv = new Reservations(host)
    this.results = new Results(host, this.resv, this.counters, this.costs, log)
    const settings = {
      workers,
      fifoSize: checkFifoSize(opts.fifoSize ?? DEFAULT_FIFO_SIZE),
      pollUs: checkPollUs(opts.pollUs ?? DEFAULT_POLL_US),
      faults: { delayMs: opts.delayMs ?? 0, every: opts.fault?.every ?? 0, kind: opts.fault?.kind ?? 'throw' },
    }
    this.threads = new Workers(host, settings, this.resv, this.results, this.costs, this.counters, log, () => this.wait.take())
    this.wait = new MainWait(this.threads, this.results, this.resv, this.counters)
  }

  /** Staging is on: workers wanted, not closed, and they could start. */
  get enabled(): boolean {
    return this.threads.enabled
  }

  get workers(): number {
    return this.threads.target
  }

  get fifoSize(): number {
    return this.threads.ring.size
  }

  /** zramfuse/poll_us: read by the workers from shared memory, so a change applies at their next idle. */
  get pollUs(): number {
    return this.threads.pollUs
  }

  set pollUs(us: number) {
    this.threads.pollUs = checkPollUs(us)
  }

  /** Slots in use (staged and not yet committed or dropped). */
  get depth(): number {
    return this.threads.ring.depth
  }

  stats(): KcompressdStats {
    const c = this.counters
    const ring = this.threads.ring
    const mainNs = c.mainMs * 1e6
    return {
      workers: this.threads.target,
      fifoSize: ring.size,
      fifoDepth: ring.depth,
      inFlight: this.threads.inFlight(),
      queued: c.queued,
      completed: c.completed,
      stale: c.stale,
      failed: c.failed,
      inlineFallbacks: c.inlineFallbacks,
      inlineCheaper: c.inlineCheaper,
      inlineMeasured: c.inlineMeasured,
      trials: this.trial.trials,
      trialsInline: this.trial.trialsInline,
      fifoFullEvents: c.fifoFullEvents,
      maxFifoDepth: c.maxFifoDepth,
      batches: this.threads.runs(),
      workerErrors: c.workerErrors,
      written: c.written,
      reserved: this.resv.count,
      populated: this.threads.populated(),
      workerWakeups: c.workerWakeups,
      mainWakeups: c.mainWakeups,
      wakeNs: Math.round(this.costs.wakeNs),
      compressNs: Math.round(this.costs.compressNs),
      mainNs: Math.round(mainNs),
      mainNsPerPage: c.queued === 0 ? 0 : Math.round(mainNs / c.queued),
    }
  }

  /**
   * A write request of `pages` pages begins at `startMs` (performance.now(), read by the caller
   * anyway): take finished results (freeing their slots) and decide whether its pages are staged or
   * compressed by the writer: a single page when the last trial found requests faster that way
   * (way-trial.ts), any request when handing it off costs more (policy.ts cheaperInline).
   */
  beginRequest(pages: number, startMs: number): void {
    this.stagedThisRequest = 0
    this.requestInline = false
    this.requestMeasured = false
    this.sampled = false
    if (!this.enabled) return
    this.wait.requestStarted(startMs)
    this.sampleDraw = nextDraw(this.sampleDraw)
    this.sampled = isSampled(this.sampleDraw)
    const t0 = this.sampled ? performance.now() : 0
    const ring = this.threads.ring
    if (resultsDue(ring.depth, ring.size, pages)) this.threads.collect()
    if (!this.inlineWhenCheaper) {
      // every page staged
    } else if (pages === 1 && this.trialsOn && this.trial.inlineNext(startMs)) {
      this.requestInline = this.requestMeasured = true
    } else {
      if (pages > 1 && this.trialsOn) this.trial.otherRequest()
      if (cheaperInline(pages, this.costs.compressNs, this.costs.wakeNs, this.threads)) this.requestInline = !isProbe(++this.cheaperRun)
    }
    if (this.sampled) this.counters.mainMs += (performance.now() - t0) * SAMPLE_EVERY
  }

  /**
   * Stage one page (4096 bytes). `prevSlot` is the slot the page is STAGED in now, or -1: a slot
   * still waiting in the queue is rewritten in place. Returns the slot (read its ticket with
   * ticketOf), or -1: the caller compresses inline (FIFO full, or cheaper this request).
   */
  stage(page: number, src: Buffer, prevSlot: number): number {
    const t0 = this.sampled ? performance.now() : 0
    const c = this.counters
    this.threads.spawn()
    if (this.threads.syncConfig()) this.costs.codecChanged()
    const ring = this.threads.ring
    const ticket = this.nextTicket()
    let slot = -1
    if (prevSlot >= 0 && ring.rewrite(prevSlot, src, ticket)) {
      // Rewritten before a worker claimed it: the earlier staging is superseded.
      slot = prevSlot
      c.stale++
    } else if (this.requestInline) {
      if (this.requestMeasured) c.inlineMeasured++
      else c.inlineCheaper++
    } else {
      slot = ring.push(page, src, ticket)
      if (slot < 0) {
        c.inlineFallbacks++
        if (!ring.full) {
          ring.full = true
          c.fifoFullEvents++
        }
      } else {
        this.stagedThisRequest++
        this.wait.pageStaged()
        const depth = ring.depth
        if (depth > c.maxFifoDepth) c.maxFifoDepth = depth
      }
    }
    if (slot >= 0) c.queued++
    if (this.sampled) c.mainMs += (performance.now() - t0) * SAMPLE_EVERY
    return slot
  }

  ticketOf(slot: number): number {
    return this.threads.ring.ticket[slot]
  }

  /** Copy a staged page out of its slot into out[at, at+4096) (reads of a STAGED page). */
  copySlot(slot: number, out: Buffer, at = 0): void {
    this.threads.ring.slotViews[slot].copy(out, at, 0, PAGE_SIZE)
  }

  /** The page that owned `slot` was overwritten elsewhere or discarded: its result will be dropped. */
  supersede(slot: number): void {
    // A worker that has not read the ticket yet skips the page; the commit checks the page table anyway.
    Atomics.store(this.threads.ring.ticket, slot, 0)
  }

  /**
   * The end of a request: wake a sleeping worker if pages were staged, take finished results, and
   * make sure the rest are taken even if no request follows.
   */
  endRequest(): void {
    const ring = this.threads.ring
    if (ring.depth === 0 && this.stagedThisRequest === 0) return
    // Timed in the sampled requests only, like staging: two clock reads cost ~0.25 us here.
    const t0 = this.sampled ? performance.now() : 0
    if (this.stagedThisRequest > 0) {
      this.threads.wakeFor(this.stagedThisRequest)
      this.stagedThisRequest = 0
    }
    this.requestInline = false
    if (resultsDue(ring.depth, ring.size, 0) || !this.wait.waiting) this.wait.take()
    if (this.sampled) this.counters.mainMs += (performance.now() - t0) * SAMPLE_EVERY
  }

  /** Resolves once every staged page has been committed or dropped. */
  drain(): Promise<void> {
    return this.wait.drain()
  }

  /**
   * reset: forget every queued page (their slots are freed now); pages being compressed come back
   * stale and are dropped. The page table is being cleared by the caller.
   */
  discardAll(): void {
    const ring = this.threads.ring
    for (let slot = ring.claim(); slot >= 0; slot = ring.claim()) {
      this.counters.stale++
      ring.release(slot)
    }
    this.wait.take()
  }

  /**
   * The pool is about to be reset (after discardAll): every reservation and every result written
   * into one belongs to the old pool; they are skipped and dropped without touching the new one.
   */
  poolReset(): void {
    this.threads.poolReset()
  }

  /** Free every reservation, if nothing is staged (else no-op); the next burst starts by refilling. */
  releaseIdle(): void {
    this.threads.releaseReservations()
  }

  /** The pool made a shared chunk: a worker faults it in (Workers.chunkAdded). */
  chunkAdded(serial: number, buf: SharedArrayBuffer): void {
    this.threads.chunkAdded(serial, buf)
  }

  /** The pool dropped a shared chunk: workers that have it let go. */
  chunkDropped(serial: number): void {
    this.threads.chunkDropped(serial)
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
    checkWorkers(n)
    this.trial.restart() // what the trials measured was with the old count
    this.threads.setTarget(n)
    this.wait.take()
  }

  /** fifo_size store: only while nothing is staged (EBUSY otherwise, decided by the caller). */
  setFifoSize(n: number): void {
    checkFifoSize(n)
    if (this.threads.ring.depth !== 0) throw new Error('kcompressd: fifo_size changed while pages are staged')
    this.wait.ringReplaced(this.threads.replaceRing(n))
  }

  /** Start the workers and resolve once all of them are up (or after timeoutMs). */
  ready(timeoutMs = 30_000): Promise<void> {
    return this.threads.ready(timeoutMs)
  }

  /** Shutdown: discard the queue and stop the workers. */
  async close(): Promise<void> {
    this.threads.close()
    this.wait.close()
    this.discardAll()
    await this.threads.terminate()
    // The threads are gone: what they held is dropped with the device's memory (drain() resolves).
    const ring = this.threads.ring
    for (let slot = 0; slot < ring.size; slot++) {
      if (Atomics.load(ring.state, slot) === FREE) continue
      this.counters.stale++
      ring.release(slot)
    }
    this.wait.settled()
  }

  private nextTicket(): number {
    // 1..2^31-1: stored in an Int32Array; 0 means superseded.
    this.ticketSeq = this.ticketSeq === 0x7fffffff ? 1 : this.ticketSeq + 1
    return this.ticketSeq
  }

  /**
   * For tests only (the daemon never calls it; a device's is at dev.staging.kcompressd): a live view of
   * the few internals the kcompressd tests wait on, and a way to set the two cost estimates the
   * writer's choice depends on.
   */
  testView(): KcompressdTestView {
    const threads = this.threads
    const wait = this.wait
    const costs = this.costs
    return {
      get queued() { return threads.ring.queued },
      get sleepers() { return threads.sleepers },
      get releaseArmed() { return wait.releaseArmed },
      get mainWaiting() { return wait.waiting },
      get mailUnread() { return threads.mailUnread() },
      setCosts(compressNs: number, wakeNs: number): void {
        costs.set(compressNs, wakeNs)
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
