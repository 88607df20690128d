/**
 * The main thread's wait for the workers' results. While requests come they take results in
 * batches (policy.ts resultsDue); what is left is taken when a worker wakes the main thread
 * (Atomics.waitAsync, no timeout): the next worker to go idle while drain() waits, else the next
 * one to go to sleep, which it does once requests have stopped for poll_us. No timer runs while
 * requests flow: any short timer in the event loop costs every request 3-5 us of main-thread time
 * (docs/benchmarks.md). Once requests stop, the workers' reservations are freed IDLE_RELEASE_MS later.
 */
import { performance } from 'node:perf_hooks'
import { C_MAIN_ARMED, C_MAIN_SEQ, MAIN_WAKE_IDLE, MAIN_WAKE_SLEEP } from './protocol'
import type { Reservations } from './reservations'
import type { Results } from './results'
import type { Counters } from './stats'
import type { Workers } from './workers'

/** Nothing staged for this long: the reservations are freed (they count in mem_used_total). */
const IDLE_RELEASE_MS = 100

interface WaitAsyncResult { async: boolean; value: Promise<string> | string }
const waitAsync = (Atomics as unknown as {
  waitAsync(ia: Int32Array, index: number, value: number, timeoutMs?: number): WaitAsyncResult
}).waitAsync

export class MainWait {
  /** An Atomics.waitAsync is pending on the ring's C_MAIN_SEQ. */
  private pending = false
  private drainWaiters: (() => void)[] = []
  /** Keeps the event loop alive while drain() waits (a pending waitAsync does not). */
  private keepAlive: ReturnType<typeof setInterval> | null = null
  /** Frees the reservations IDLE_RELEASE_MS after requests stopped, unless pages were staged since. */
  private releaseTimer: ReturnType<typeof setTimeout> | null = null
  /** When the current request started, and the last one that staged a page (performance.now ms). */
  private requestStartMs = 0
  private lastStageMs = 0

  constructor(
    private readonly threads: Workers, private readonly results: Results, private readonly resv: Reservations,
    private readonly counters: Counters,
  ) {}

  /** The main thread waits for a worker to wake it. */
  get waiting(): boolean {
    return this.pending
  }

  /** The timer that frees the reservations once requests stopped is armed. */
  get releaseArmed(): boolean {
    return this.releaseTimer !== null
  }

  /**
   * A request that may stage pages starts at `startMs`. Requests that flow but stage nothing (lz4
   * pages kept inline) free the reservations themselves, so that no timer has to run while they come.
   */
  requestStarted(startMs: number): void {
    this.requestStartMs = startMs
    if (this.resv.count > 0 && startMs - this.lastStageMs >= IDLE_RELEASE_MS && this.threads.ring.depth === 0) this.threads.releaseReservations()
  }

  /** The current request staged a page. */
  pageStaged(): void {
    this.lastStageMs = this.requestStartMs
  }

  /**
   * Take every published result (compressing queued pages here when no worker runs). While pages
   * or reservations are out, wait for a worker to wake us.
   */
  take(): void {
    const ring = this.threads.ring
    const meta = ring.meta
    const seq = Atomics.load(meta, C_MAIN_SEQ)
    // Armed before collecting: a result published after the collect is followed by its worker
    // going idle or to sleep, which then sees the flag and wakes us.
    Atomics.store(meta, C_MAIN_ARMED, this.drainWaiters.length > 0 ? MAIN_WAKE_IDLE : MAIN_WAKE_SLEEP)
    this.threads.collect()
    if (this.threads.running === 0 && ring.queued > 0) this.results.compressQueued(ring)
    if (ring.depth === 0) this.settled()
    if (ring.depth === 0 && this.resv.count === 0) {
      Atomics.store(meta, C_MAIN_ARMED, 0)
      return
    }
    if (this.pending || this.threads.closed) return
    this.pending = true
    const r = waitAsync(meta, C_MAIN_SEQ, seq)
    if (typeof r.value === 'string') queueMicrotask(this.woken)
    else void r.value.then(this.woken)
  }

  /** A worker woke us: requests stopped (or drain() waits). Take results; free reservations later. */
  private readonly woken = (): void => {
    this.pending = false
    if (this.threads.closed) return
    const t0 = performance.now()
    this.counters.mainWakeups++
    this.take()
    // Only when requests stopped: while they come (a worker can sleep between the pages staged in
    // a stream that keeps most inline) a timer would cost each of them; they free the reservations.
    if (this.threads.ring.depth === 0 && this.resv.count > 0 && t0 - this.requestStartMs >= this.threads.pollUs / 1000) this.armRelease()
    this.counters.mainMs += performance.now() - t0
  }

  /**
   * Free the reservations IDLE_RELEASE_MS from now if nothing is staged meanwhile; a later stop
   * starts the count again (a wake-up comes only when requests stop or drain() waits).
   */
  private armRelease(): void {
    if (this.threads.closed) return
    if (this.releaseTimer !== null) clearTimeout(this.releaseTimer)
    this.releaseTimer = setTimeout(() => {
      this.releaseTimer = null
      if (performance.now() - this.lastStageMs >= IDLE_RELEASE_MS) this.threads.releaseReservations()
    }, IDLE_RELEASE_MS)
    this.releaseTimer.unref()
  }

  /** Resolves once every staged page has been committed or dropped. */
  drain(): Promise<void> {
    if (this.threads.ring.depth === 0) return Promise.resolve()
    const done = new Promise<void>((resolve) => this.drainWaiters.push(resolve))
    // A pending Atomics.waitAsync does not keep the event loop alive; this does, until settled.
    if (this.keepAlive === null) this.keepAlive = setInterval(() => {}, 1 << 30)
    this.take()
    return done
  }

  /** Nothing staged: resolve the drain() waiters. */
  settled(): void {
    if (this.threads.ring.depth !== 0) return
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
   * The workers moved to a new ring (fifo_size): a wait armed on the old one would never be woken
   * by the new ring's workers, so it ends here (woken() then arms one on the new ring if anything is out).
   */
  ringReplaced(old: Int32Array): void {
    if (!this.pending) return
    Atomics.add(old, C_MAIN_SEQ, 1)
    Atomics.notify(old, C_MAIN_SEQ)
  }

  /** Shutdown: no timer is left behind. */
  close(): void {
    if (this.releaseTimer !== null) clearTimeout(this.releaseTimer)
    this.releaseTimer = null
  }
}
