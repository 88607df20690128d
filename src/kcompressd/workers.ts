/**
 * The worker threads (worker.ts) as the main thread holds them: starting and stopping them, the
 * staging ring they work on (replaced when fifo_size changes), the messages they get (codec
 * parameters, pool chunks), waking them, and compressing here the pages of one that dies.
 *
 * Waking a sleeping thread is not free (an Atomics.notify on a sleeping worker costs the writer
 * several microseconds on a VM whose other vCPU is halted), so the writer wakes workers only when
 * one sleeps, once per request, after the reply. A worker also faults in each new shared pool
 * chunk (chunkAdded), so the main thread's first writes into it do not fault.
 *
 * Plain worker_threads, not piscina: piscina's unit is a task that returns a result message,
 * which is exactly the per-batch cost kcompressd avoids; a task that never returns defeats its
 * queue, its idle accounting and its close(), and recovering a dead worker's claimed slots needs
 * the thread's identity and its exit event, which a pool hides.
 */
import { performance } from 'node:perf_hooks'
import type { EventLog } from '../log'
import {
  C_CONFIG_GEN, C_POLL_US, C_POOL_EPOCH, C_SLEEPERS, C_SQ_TAIL, CLAIMED_BASE, type ConfigMessage, MAX_WORKER_IDS, type WorkerFaults,
} from './protocol'
import type { HandoffState } from './policy'
import type { Reservations } from './reservations'
import type { Results } from './results'
import { StagingRing } from './staging-ring'
import type { CostEstimates, Counters } from './stats'
import { WorkerHandle } from './worker-handle'

/**
 * Called with the kernel thread id of every kcompressd worker that starts (any device), e.g. to place
 * it on CPUs of its own (daemon: --kcompressd-cpus). Process-wide, as CPU placement is.
 */
let workerThreadHook: ((tid: number, device: number, worker: number) => void) | null = null

export function onWorkerThread(hook: ((tid: number, device: number, worker: number) => void) | null): void {
  workerThreadHook = hook
}

/** What the workers need from the device: its name and its codec parameters. */
export interface WorkersHost {
  readonly id: number
  readonly algorithm: string
  readonly compressionLevel: number | null
  /** algorithm_params dict=, in shared memory (workers read it without a copy), or null. */
  readonly compressionDict: Uint8Array | null
  readonly hugeLimit: number
}

export interface WorkerSettings {
  /** Threads wanted (checked: limits.ts). */
  workers: number
  fifoSize: number
  pollUs: number
  faults: WorkerFaults
}

export class Workers implements HandoffState {
  private readonly faults: WorkerFaults
  private current: StagingRing
  private handles: WorkerHandle[] = []
  private wanted: number
  /** Handles not asked to stop. */
  private runningCount = 0
  private shut = false
  /** Workers failed to start: compress inline until the worker count is written again. */
  private startFailed = false
  private config: ConfigMessage
  /** Pages staged since the last wake-up; a microtask wakes sleeping workers for them. */
  private wakeCount = 0
  private readonly wakeLater = (): void => this.wake()
  /** When cheaperInline last weighed a wake-up (performance.now ms). */
  private lastWeighedMs = -Infinity
  /** The handle index chunkAdded tries first. */
  private populateNext = 0
  /** Of the workers that ended: their runs and chunks faulted in. */
  private runsDone = 0
  private populatedDone = 0

  /** `afterExit` is called once a dead worker's pages are dealt with: the caller takes results (wait.ts). */
  constructor(
    private readonly host: WorkersHost, settings: WorkerSettings, private readonly resv: Reservations, private readonly results: Results,
    private readonly costs: CostEstimates, private readonly counters: Counters, private readonly log: EventLog,
    private readonly afterExit: () => void,
  ) {
    this.faults = settings.faults
    this.wanted = settings.workers
    this.config = { gen: 0, algorithm: host.algorithm, level: host.compressionLevel, dict: host.compressionDict }
    this.current = this.newRing(settings.fifoSize, settings.pollUs)
  }

  /**
   * A staging ring whose shared words start as its workers must find them: the pool epoch, the
   * codec parameters' generation (a worker's first config message is this.config; a ring left at
   * generation 0 after a parameter change sent every new worker looking for a message never sent)
   * and poll_us.
   */
  private newRing(size: number, pollUs: number): StagingRing {
    const ring = new StagingRing(size)
    Atomics.store(ring.meta, C_POOL_EPOCH, this.resv.epoch)
    Atomics.store(ring.meta, C_CONFIG_GEN, this.config.gen)
    Atomics.store(ring.meta, C_POLL_US, pollUs)
    return ring
  }

  /** The ring pages are staged on now. */
  get ring(): StagingRing {
    return this.current
  }

  /** Workers wanted, not closed, and they could start. */
  get enabled(): boolean {
    return this.wanted > 0 && !this.shut && !this.startFailed
  }

  get target(): number {
    return this.wanted
  }

  get running(): number {
    return this.runningCount
  }

  get closed(): boolean {
    return this.shut
  }

  /** zramfuse/poll_us: read by the workers from shared memory, so a change applies at their next idle. */
  get pollUs(): number {
    return Atomics.load(this.current.meta, C_POLL_US)
  }

  set pollUs(us: number) {
    Atomics.store(this.current.meta, C_POLL_US, us)
  }

  /** Workers asleep on the queue (past their poll window). */
  get sleepers(): number {
    return Atomics.load(this.current.meta, C_SLEEPERS)
  }

  allAsleep(): boolean {
    return Atomics.load(this.current.meta, C_SLEEPERS) >= this.runningCount
  }

  msSinceLastWeighed(): number {
    const now = performance.now()
    const ms = now - this.lastWeighedMs
    this.lastWeighedMs = now
    return ms
  }

  /** Start threads until `target` run (at the first staged page, ready(), or to replace one that died). */
  spawn(): void {
    while (this.runningCount < this.wanted && !this.shut && !this.startFailed) {
      const used = new Set(this.handles.map((h) => h.id))
      let id = 0
      while (used.has(id)) id++
      if (id >= MAX_WORKER_IDS) return
      this.start(id)
    }
  }

  private start(id: number): void {
    const h = new WorkerHandle(id, this.current, this.resv, this.host.hugeLimit, this.config, this.faults)
    this.handles.push(h)
    this.runningCount++
    h.thread.on('error', (err) => this.log.error({ event: 'kcompressd_worker_error', device: `zram${this.host.id}`, worker: id, err: String(err) },
      'a kcompressd worker thread threw'))
    h.thread.on('exit', (code) => this.exited(h, code))
    h.thread.on('message', (m: unknown) => {
      const tid = (m as { tid?: unknown } | null)?.tid
      if (typeof tid === 'number' && Number.isInteger(tid) && tid > 0) workerThreadHook?.(tid, this.host.id, id)
    })
  }

  private stop(h: WorkerHandle): void {
    h.stop()
    this.runningCount--
  }

  /** workers store: start or stop threads to match n; pages in flight finish. */
  setTarget(n: number): void {
    this.wanted = n
    this.startFailed = false
    const running = this.handles.filter((h) => !h.stopping)
    for (const h of running.slice(n)) this.stop(h)
    // Threads start at the first staged page (or ready()); more join at once if some run already.
    if (this.runningCount > 0) this.spawn()
  }

  /** fifo_size store, with nothing staged: the workers move to a new ring of `size` slots. Returns the old ring's words. */
  replaceRing(size: number): Int32Array {
    const wasRunning = this.runningCount > 0
    for (const h of this.handles) if (!h.stopping) this.stop(h)
    const old = this.current.meta
    this.current = this.newRing(size, this.pollUs)
    if (wasRunning) this.spawn()
    return old
  }

  /** The pool is being reset: its new generation goes to the workers (Reservations.newPool). */
  poolReset(): void {
    Atomics.store(this.current.meta, C_POOL_EPOCH, this.resv.newPool())
  }

  /** The device's codec parameters changed since the workers got them: send them. True when they did. */
  syncConfig(): boolean {
    const c = this.config
    const host = this.host
    if (c.algorithm === host.algorithm && c.level === host.compressionLevel && c.dict === host.compressionDict) return false
    this.config = { gen: c.gen + 1, algorithm: host.algorithm, level: host.compressionLevel, dict: host.compressionDict }
    // Posted before the generation moves: a worker that sees the new one finds the message.
    for (const h of this.handles) h.thread.postMessage(this.config)
    Atomics.store(this.current.meta, C_CONFIG_GEN, this.config.gen)
    return true
  }

  /** Take every published result of every worker on the current ring. */
  collect(): void {
    for (const h of this.handles) {
      if (h.ring === this.current) h.collect(this.results)
    }
  }

  /**
   * A request staged `pages` pages: wake sleeping workers for them after the reply. fuse-native
   * answers in a nextTick, which runs before this microtask, so the wake-up is off the request's
   * path (the worker starts a few microseconds later).
   */
  wakeFor(pages: number): void {
    if (this.wakeCount === 0) queueMicrotask(this.wakeLater)
    this.wakeCount += pages
  }

  /** Wake as many sleeping workers as pages were staged since the last wake-up (one per page at most). */
  private wake(): void {
    const pages = this.wakeCount
    this.wakeCount = 0
    const sleepers = Atomics.load(this.current.meta, C_SLEEPERS)
    if (sleepers === 0 || this.shut) return
    const count = Math.min(sleepers, pages)
    const t0 = performance.now()
    Atomics.notify(this.current.meta, C_SQ_TAIL, count)
    const ms = performance.now() - t0
    this.counters.mainMs += ms
    this.costs.noteWake(ms, count)
    this.counters.workerWakeups++
  }

  /**
   * The pool made a shared chunk: a running worker faults its pages in (the next worker each time),
   * so that the main thread's first writes into it (object headers, in malloc) do not fault.
   */
  chunkAdded(serial: number, buf: SharedArrayBuffer): void {
    const n = this.handles.length
    for (let i = 0; i < n; i++) {
      const h = this.handles[(this.populateNext + i) % n]
      if (h.stopping || h.exited || h.ring !== this.current) continue
      this.populateNext = (this.populateNext + i + 1) % n
      h.mailChunk(serial, buf)
      // A sleeping worker reads its mail only when woken, and the main thread may make a chunk
      // after every worker went to sleep (refilling reservations when requests stopped): wake them
      // (one wake-up per MiB of pool, only while they sleep).
      if (Atomics.load(h.ring.meta, C_SLEEPERS) > 0) Atomics.notify(h.ring.meta, C_SQ_TAIL)
      return
    }
  }

  /** The pool dropped a shared chunk: workers that have it let go. */
  chunkDropped(serial: number): void {
    for (const h of this.handles) h.dropChunk(serial)
  }

  /**
   * Free every worker's reservations, if nothing is staged (else no-op): with no slot busy no worker
   * is writing one or about to take one, and none can until the main thread stages again, so the
   * rings can be emptied from this side. The next burst starts by refilling.
   */
  releaseReservations(): void {
    if (this.current.depth !== 0 || this.shut) return
    for (const h of this.handles) {
      if (h.exited) continue
      h.resv.releaseAll(0)
    }
  }

  /** Slots claimed by a worker and not yet published. */
  inFlight(): number {
    const ring = this.current
    let published = 0
    for (const h of this.handles) {
      if (h.ring === ring) published += h.published()
    }
    let claimed = 0
    for (let slot = 0; slot < ring.size; slot++) if (Atomics.load(ring.state, slot) >= CLAIMED_BASE) claimed++
    return claimed - published
  }

  /** Worker runs, of every worker so far. */
  runs(): number {
    let n = this.runsDone
    for (const h of this.handles) n += h.runs
    return n
  }

  /** Pool chunks faulted in by every worker so far. */
  populated(): number {
    let n = this.populatedDone
    for (const h of this.handles) n += h.populated
    return n
  }

  /** Chunks announced to the live workers of the current ring and not faulted in yet. */
  mailUnread(): number {
    let n = 0
    for (const h of this.handles) {
      if (h.exited || h.ring !== this.current) continue
      n += h.mailUnread
    }
    return n
  }

  /** Start the workers and resolve once all of them are up (or after timeoutMs). */
  async ready(timeoutMs: number): Promise<void> {
    if (!this.shut) this.spawn()
    const deadline = Date.now() + timeoutMs
    while (this.handles.some((h) => !h.stopping && !h.isReady()) && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, 5))
    }
  }

  /** Shutdown begins: no thread starts, wakes or is recovered from now on. */
  close(): void {
    this.shut = true
  }

  /** Stop every thread and resolve once they are gone. */
  async terminate(): Promise<void> {
    const exits = this.handles.map((h) => {
      if (!h.stopping) this.stop(h)
      return h.thread.terminate()
    })
    await Promise.allSettled(exits)
  }

  /**
   * A worker thread ended: take what it published, compress here what it had claimed but not
   * finished, and replace it unless it was asked to stop or never came up.
   */
  private exited(h: WorkerHandle, code: number): void {
    const t0 = performance.now()
    this.handles = this.handles.filter((x) => x !== h)
    h.exited = true
    if (!h.stopping) this.runningCount--
    this.runsDone += h.runs
    this.populatedDone += h.populated
    if (this.shut) return
    // The reservation it was writing when it died (if any), then those it never took.
    const inflight = h.reservationInFlight(this.resv.epoch)
    if (inflight !== 0) this.resv.release(inflight)
    h.resv.releaseAll(inflight)
    // A worker of a replaced ring (fifo_size) had nothing staged.
    if (h.ring !== this.current) return
    h.collect(this.results)
    const lost = this.recoverClaimed(h, inflight)
    const ready = h.isReady()
    if (lost > 0 || !h.stopping) {
      this.counters.workerErrors += lost
      this.results.logWorkerFailure({ worker: h.id, exitCode: code, pagesRecompressed: lost, ready },
        'a kcompressd worker ended: the pages it held were compressed on the main thread, nothing is lost')
    }
    if (!h.stopping) {
      if (ready) this.spawn()
      else if (this.runningCount === 0) this.startFailed = true // compress inline until workers is written again
    }
    this.afterExit()
    this.counters.mainMs += performance.now() - t0
  }

  /**
   * Compress here every page the ended worker h had claimed and not published, and free its slot;
   * a reservation it had written one into is freed (once: `inflight` is freed already). Returns
   * how many there were.
   */
  private recoverClaimed(h: WorkerHandle, inflight: number): number {
    const ring = this.current
    const claimed = CLAIMED_BASE + h.id
    let lost = 0
    for (let slot = 0; slot < ring.size; slot++) {
      if (Atomics.load(ring.state, slot) !== claimed) continue
      const written = ring.resultHandle[slot]
      if (written !== 0 && written !== inflight && ring.resultEpoch[slot] === this.resv.epoch) this.resv.release(written)
      lost++
      this.results.compressHere(ring, slot, ring.ticket[slot])
      ring.release(slot)
    }
    return lost
  }
}
