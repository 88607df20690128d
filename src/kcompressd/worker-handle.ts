/**
 * One kcompressd worker thread (worker.ts) as the main thread holds it: its words in the staging
 * ring's meta, its completion ring, its reservation rings, and the pool chunks sent to it.
 */
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import {
  C_SQ_TAIL, type ChunkMessage, type ConfigMessage, type DropMessage, W_CQ_TAIL, W_INFLIGHT, W_INFLIGHT_EPOCH, W_MAIL, W_POPULATED, W_READY,
  W_RUN, W_RUNS, WORKER_WORDS, workerBase, type WorkerData, type WorkerFaults,
} from './protocol'
import type { ChunkMail, Reservations, WorkerReservations } from './reservations'
import type { Results } from './results'
import type { StagingRing } from './staging-ring'

const WORKER_FILE = join(__dirname, __filename.endsWith('.ts') ? 'worker.ts' : 'worker.js')

/** One worker thread, and the main thread's side of its words and rings. */
export class WorkerHandle implements ChunkMail {
  readonly id: number
  readonly thread: Worker
  /** The ring it was started on (a fifo_size change starts new workers on a new one). */
  readonly ring: StagingRing
  readonly resv: WorkerReservations
  /** Asked to stop (workers lowered, fifo_size changed, close): its exit is not a failure. */
  stopping = false
  /** The thread has ended: nothing more is reserved for it. */
  exited = false
  private readonly base: number
  /** Its completion ring, and the next entry to take. */
  private readonly cq: Int32Array
  private cqHead = 0
  /** The serials of the pool chunks sent to it. */
  private readonly sent = new Set<number>()
  private ready = false

  constructor(id: number, ring: StagingRing, reservations: Reservations, hugeLimit: number, config: ConfigMessage, faults: WorkerFaults) {
    this.id = id
    this.ring = ring
    this.base = workerBase(id)
    for (let w = 0; w < WORKER_WORDS; w++) ring.meta[this.base + w] = 0
    Atomics.store(ring.meta, this.base + W_RUN, 1)
    this.cq = new Int32Array(new SharedArrayBuffer(ring.size * 4))
    this.resv = reservations.forWorker(this)
    const data: WorkerData = {
      id, fifoSize: ring.size, meta: ring.meta.buffer as SharedArrayBuffer, pages: ring.pages, results: ring.results,
      cq: this.cq.buffer as SharedArrayBuffer, resv: this.resv.rings.buffer as SharedArrayBuffer, sizeClass: reservations.sizeClass,
      hugeLimit, config, faults,
    }
    this.thread = new Worker(WORKER_FILE, { workerData: data })
    // The daemon is kept alive by its mount, a test by what it awaits (drain holds a handle).
    this.thread.unref()
  }

  isReady(): boolean {
    if (!this.ready) this.ready = Atomics.load(this.ring.meta, this.base + W_READY) === 1
    return this.ready
  }

  /** Commit every result it published since the last call, then top up the reservations it used. */
  collect(results: Results): void {
    const ring = this.ring
    const tail = Atomics.load(ring.meta, this.base + W_CQ_TAIL)
    while (this.cqHead !== tail) {
      const slot = this.cq[this.cqHead % ring.size]
      this.cqHead = this.cqHead + 1 === ring.wrap ? 0 : this.cqHead + 1
      results.finish(ring, slot, this.resv)
    }
    // Never for a thread that is ending: what it does not take would only be freed at its exit.
    if (this.resv.wanting && !this.stopping && !this.exited) this.resv.refill()
  }

  /** Results published and not yet collected. */
  published(): number {
    const n = Atomics.load(this.ring.meta, this.base + W_CQ_TAIL) - this.cqHead
    return n < 0 ? n + this.ring.wrap : n
  }

  /** Times it woke up and compressed what was queued (the batches counter). */
  get runs(): number {
    return this.ring.meta[this.base + W_RUNS]
  }

  /** New pool chunks it faulted in. */
  get populated(): number {
    return Atomics.load(this.ring.meta, this.base + W_POPULATED)
  }

  /** Chunks announced to it (mailChunk) and not faulted in yet. */
  get mailUnread(): number {
    return Atomics.load(this.ring.meta, this.base + W_MAIL) - Atomics.load(this.ring.meta, this.base + W_POPULATED)
  }

  /** The reservation it was writing (of pool generation `epoch`) when it stopped, or 0. */
  reservationInFlight(epoch: number): number {
    const meta = this.ring.meta
    return meta[this.base + W_INFLIGHT] !== 0 && meta[this.base + W_INFLIGHT_EPOCH] === epoch ? meta[this.base + W_INFLIGHT] : 0
  }

  stop(): void {
    this.stopping = true
    Atomics.store(this.ring.meta, this.base + W_RUN, 0)
    Atomics.notify(this.ring.meta, this.base + W_RUN) // a test delay
    Atomics.notify(this.ring.meta, C_SQ_TAIL) // asleep on the queue: wakes, sees W_RUN 0, exits
  }

  hasChunk(serial: number): boolean {
    return this.sent.has(serial)
  }

  /** Give it a shared pool chunk (to fault in at once: `populate`); it keeps it until dropped. */
  sendChunk(serial: number, buf: SharedArrayBuffer, populate: boolean): void {
    this.sent.add(serial)
    this.thread.postMessage({ chunk: serial, buf, populate } satisfies ChunkMessage)
  }

  /** A new chunk for it to fault in: sent, and announced on its mail word (read between pages and while it polls). */
  mailChunk(serial: number, buf: SharedArrayBuffer): void {
    this.sendChunk(serial, buf, true)
    Atomics.add(this.ring.meta, this.base + W_MAIL, 1)
  }

  dropChunk(serial: number): void {
    if (this.sent.delete(serial)) this.thread.postMessage({ drop: serial } satisfies DropMessage)
  }
}
