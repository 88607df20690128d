/**
 * Committing what the workers return. Each result is committed only if the page still names its
 * slot and ticket (the device checks), so an overwrite, discard or reset meanwhile wins. A page no
 * worker could compress is compressed here, stored raw if that fails too, and if even that cannot
 * be stored it is dropped with failed_writes counted and a log line: a slot is never kept forever.
 */
import type { EventLog } from '../log'
import { PAGE_SIZE } from '../page'
import { RESULT_FAILED, RESULT_SKIPPED } from './protocol'
import type { Reservations, WorkerReservations } from './reservations'
import type { StagingRing } from './staging-ring'
import type { CostEstimates, Counters } from './stats'

/** What committing needs from the device that owns the pages. */
export interface CommitHost {
  readonly id: number
  readonly algorithm: string
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
   * Commit a result a worker wrote into reserved object `handle` (`len` bytes; PAGE_SIZE: the page
   * raw) if the page is still STAGED in `slot` with `ticket`. False when stale: the caller frees it.
   */
  commitWritten(page: number, slot: number, ticket: number, handle: number, len: number): boolean
}

export class Results {
  constructor(
    private readonly host: CommitHost, private readonly resv: Reservations, private readonly counters: Counters,
    private readonly costs: CostEstimates, private readonly log: EventLog,
  ) {}

  /** Commit (or drop) the result a worker published in `slot`, and free the slot; `wres`: that worker's reservations. */
  finish(ring: StagingRing, slot: number, wres: WorkerReservations): void {
    const r = ring.result[slot]
    const ticket = ring.resultTicket[slot]
    const written = ring.resultHandle[slot]
    try {
      if (r === RESULT_SKIPPED) {
        this.counters.stale++
      } else if (r === RESULT_FAILED) {
        this.counters.workerErrors++
        this.logWorkerFailure({ page: ring.slotPage[slot] }, 'a kcompressd worker failed to compress a page: compressed on the main thread')
        this.compressHere(ring, slot, ticket)
      } else {
        const ns = ring.resultNs[slot]
        if (ns > 0) this.costs.noteCompress(ns)
        const len = r >= this.host.hugeLimit ? PAGE_SIZE : r
        if (written !== 0) this.commitWritten(ring, slot, ticket, written, len)
        else this.commit(ring, slot, ticket, len === PAGE_SIZE ? null : ring.resultBytes, slot * PAGE_SIZE, r)
        wres.want(len, written === 0)
      }
    } finally {
      ring.release(slot)
    }
  }

  /**
   * Compress a staged page on the main thread (its worker failed, or no worker runs) and commit it;
   * if the codec fails, store the page raw. Never throws.
   */
  compressHere(ring: StagingRing, slot: number, ticket: number): void {
    let c: Buffer | null = null
    try {
      c = this.host.compressInline(ring.slotViews[slot])
    } catch (err) {
      this.log.error({ event: 'kcompressd_inline_failed', device: `zram${this.host.id}`, page: ring.slotPage[slot], err: String(err) },
        'compressing a staged page failed on the main thread too: it is stored uncompressed (huge)')
    }
    if (c === null) this.commit(ring, slot, ticket, null, 0, PAGE_SIZE)
    else this.commit(ring, slot, ticket, c.length >= this.host.hugeLimit ? null : c, 0, c.length)
  }

  /** No worker runs: compress what is queued here. */
  compressQueued(ring: StagingRing): void {
    for (let slot = ring.claim(); slot >= 0; slot = ring.claim()) {
      const ticket = ring.ticket[slot]
      if (ticket === 0) this.counters.stale++
      else this.compressHere(ring, slot, ticket)
      ring.release(slot)
    }
  }

  logWorkerFailure(fields: object, msg: string): void {
    // Never one line per page under a persistent failure: the first ten, then every thousandth.
    const errors = this.counters.workerErrors
    if (errors > 10 && errors % 1000 !== 0) return
    this.log.error({ event: 'kcompressd_worker_failed', device: `zram${this.host.id}`, algorithm: this.host.algorithm,
      workerErrors: errors, ...fields }, msg)
  }

  /** Commit a result a worker wrote into a reservation (of the current pool, else it is dropped). */
  private commitWritten(ring: StagingRing, slot: number, ticket: number, handle: number, len: number): void {
    if (ring.resultEpoch[slot] !== this.resv.epoch) {
      this.counters.stale++ // written into the pool before a reset: nothing to free in this one
      return
    }
    this.resv.used()
    if (this.host.commitWritten(ring.slotPage[slot], slot, ticket, handle, len)) {
      this.counters.completed++
      this.counters.written++
    } else {
      this.counters.stale++
      this.resv.free(handle)
    }
  }

  /** Commit a result; if the pool cannot take even that, drop the page visibly. Never throws. */
  private commit(ring: StagingRing, slot: number, ticket: number, src: Buffer | null, off: number, len: number): void {
    const page = ring.slotPage[slot]
    const raw = ring.slotViews[slot]
    try {
      if (this.host.commitStaged(page, slot, ticket, src, off, len, raw)) this.counters.completed++
      else this.counters.stale++
      return
    } catch (err) {
      if (src !== null) {
        // A compressed object could not be stored: try the page as it is once more.
        try {
          if (this.host.commitStaged(page, slot, ticket, null, 0, PAGE_SIZE, raw)) this.counters.completed++
          else this.counters.stale++
          return
        } catch {
          // reported below
        }
      }
      if (this.host.failStaged(page, slot, ticket)) {
        this.counters.failed++
        this.log.error({ event: 'kcompressd_page_lost', device: `zram${this.host.id}`, page, err: String(err) },
          'a staged page could not be stored in the pool: it is lost (failed_writes counts it)')
      } else {
        this.counters.stale++
      }
    }
  }
}
