/**
 * The main thread's side of the staging ring (layout in protocol.ts): fifoSize slots of shared
 * memory, a stack of free slots, and the submission queue it produces into. The main thread is its
 * only producer; it consumes too when it compresses queued pages itself.
 */
import {
  C_SQ_HEAD, C_SQ_TAIL, CLAIMED_MAIN, FREE, metaLayout, QUEUED, queueWrap, WRITING,
} from './protocol'
import { PAGE_SIZE } from '../page'

export class StagingRing {
  readonly size: number
  readonly wrap: number
  readonly meta: Int32Array
  readonly pages: SharedArrayBuffer
  readonly results: SharedArrayBuffer
  /** The slot's page, for reads of a STAGED page and for storing it raw. */
  readonly slotViews: Buffer[]
  /** All of `results`: a slot's compressed bytes start at slot * PAGE_SIZE. */
  readonly resultBytes: Buffer
  readonly sq: Int32Array
  readonly state: Int32Array
  readonly ticket: Int32Array
  readonly result: Int32Array
  readonly resultTicket: Int32Array
  readonly resultNs: Int32Array
  readonly resultHandle: Int32Array
  readonly resultEpoch: Int32Array
  /** The page index each busy slot holds (main thread only). */
  readonly slotPage: Uint32Array
  /**
   * A FIFO-full episode: set by the writer when a push found no free slot (it counts the episode
   * once), ended by the next release.
   */
  full = false
  private readonly freeStack: Uint32Array
  private freeTop: number
  /** Our copy of C_SQ_TAIL (we are the only producer). */
  private tail = 0

  constructor(size: number) {
    this.size = size
    this.wrap = queueWrap(size)
    const layout = metaLayout(size)
    this.meta = new Int32Array(new SharedArrayBuffer(layout.words * 4))
    this.pages = new SharedArrayBuffer(size * PAGE_SIZE)
    this.results = new SharedArrayBuffer(size * PAGE_SIZE)
    this.slotViews = new Array<Buffer>(size)
    for (let s = 0; s < size; s++) this.slotViews[s] = Buffer.from(this.pages, s * PAGE_SIZE, PAGE_SIZE)
    this.resultBytes = Buffer.from(this.results)
    const view = (at: number): Int32Array => this.meta.subarray(at, at + size)
    this.sq = view(layout.sq)
    this.state = view(layout.slotState)
    this.ticket = view(layout.slotTicket)
    this.result = view(layout.slotResult)
    this.resultTicket = view(layout.slotResultTicket)
    this.resultNs = view(layout.slotResultNs)
    this.resultHandle = view(layout.slotResultHandle)
    this.resultEpoch = view(layout.slotResultEpoch)
    this.slotPage = new Uint32Array(size)
    this.freeStack = new Uint32Array(size)
    for (let s = 0; s < size; s++) this.freeStack[s] = size - 1 - s
    this.freeTop = size
  }

  get freeSlots(): number {
    return this.freeTop
  }

  /** Slots busy: queued, being compressed, or with a result not yet taken. */
  get depth(): number {
    return this.size - this.freeTop
  }

  /** Pages queued and not yet claimed by anyone. */
  get queued(): number {
    const n = this.tail - Atomics.load(this.meta, C_SQ_HEAD)
    return n < 0 ? n + this.wrap : n
  }

  /** Copy a page (`src`: exactly PAGE_SIZE bytes) into a free slot and queue it; -1 if none is free. */
  push(page: number, src: Uint8Array, ticket: number): number {
    if (this.freeTop === 0) return -1
    const slot = this.freeStack[--this.freeTop]
    this.slotPage[slot] = page
    // No subarray(): a Buffer view made per page cost ~130 ns of the copy's ~450 (in a loop, here).
    this.slotViews[slot].set(src)
    this.ticket[slot] = ticket
    this.state[slot] = QUEUED
    this.sq[this.tail % this.size] = slot
    this.tail = this.tail + 1 === this.wrap ? 0 : this.tail + 1
    // A sequentially consistent store: whoever sees the new tail sees the slot's words above.
    Atomics.store(this.meta, C_SQ_TAIL, this.tail)
    return slot
  }

  /**
   * Rewrite a queued page (`src`: exactly PAGE_SIZE bytes) in place, an overwrite before any worker
   * claimed it; false when a worker has claimed it already (the caller stages into a new slot).
   */
  rewrite(slot: number, src: Uint8Array, ticket: number): boolean {
    if (Atomics.compareExchange(this.state, slot, QUEUED, WRITING) !== QUEUED) return false
    this.slotViews[slot].set(src)
    this.ticket[slot] = ticket
    Atomics.store(this.state, slot, QUEUED)
    return true
  }

  /** Take the oldest queued slot for the main thread, or -1 when the queue is empty. */
  claim(): number {
    for (;;) {
      const head = Atomics.load(this.meta, C_SQ_HEAD)
      if (head === this.tail) return -1
      const slot = this.sq[head % this.size]
      if (Atomics.compareExchange(this.meta, C_SQ_HEAD, head, head + 1 === this.wrap ? 0 : head + 1) !== head) continue
      // Only the main thread writes QUEUED -> WRITING, so the slot is QUEUED here.
      Atomics.store(this.state, slot, CLAIMED_MAIN)
      return slot
    }
  }

  release(slot: number): void {
    Atomics.store(this.state, slot, FREE)
    this.ticket[slot] = 0
    this.freeStack[this.freeTop++] = slot
    this.full = false
  }
}
