/**
 * Pool objects reserved for the workers to write their results into (protocol.ts, the reservation
 * rings): per worker and per size class a few, allocated and pinned by the device, so that
 * committing a result is storing its handle. kcompressd knows nothing of the pool's layout: the
 * device names the size class of a length (ReservationPool.sizeClassOf), and every object reserved
 * for a class is as long as the longest result of the class.
 */
import {
  E_EPOCH, E_HANDLE, E_LEN0, E_OFF0, E_OFF1, E_SERIAL0, E_SERIAL1, R_HEAD, R_TAIL, resvBase, resvEntry, resvWords,
} from './protocol'
import { PAGE_SIZE } from '../page'
import { deeperReserve } from './policy'

/** What reservations need from the pool: the device provides it. */
export interface ReservationPool {
  /** The pool's size class (0, 1, ...) of an object of `len` bytes, 1..PAGE_SIZE (PAGE_SIZE: a page stored raw). */
  sizeClassOf(len: number): number
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
}

/** Where a reservation's pool chunk goes before the reservation is published: the worker's port. */
export interface ChunkMail {
  hasChunk(serial: number): boolean
  sendChunk(serial: number, buf: SharedArrayBuffer, populate: boolean): void
}

/** The reservations of every worker of a device: the pool's side, their count and the pool's generation. */
export class Reservations {
  /** Per length 1..PAGE_SIZE, its size class (the workers get a copy: WorkerData.sizeClass). */
  readonly sizeClass: Uint16Array
  /** Size classes: a worker has a reservation ring for each. */
  readonly classes: number
  /** Per class, its longest length: what every object reserved for the class holds. */
  private readonly longest: Int32Array
  private readonly pool: ReservationPool
  /** The pool's generation (C_POOL_EPOCH): a reservation of an older pool is void. */
  private poolEpoch = 1
  private reserved = 0

  constructor(pool: ReservationPool) {
    this.pool = pool
    this.sizeClass = new Uint16Array(PAGE_SIZE + 1)
    let classes = 0
    for (let len = 1; len <= PAGE_SIZE; len++) {
      const c = pool.sizeClassOf(len)
      if (!Number.isInteger(c) || c < 0 || c > 0xffff) throw new RangeError(`size class ${c} of length ${len} out of range`)
      this.sizeClass[len] = c
      if (c >= classes) classes = c + 1
    }
    this.classes = classes
    this.longest = new Int32Array(classes)
    for (let len = 1; len <= PAGE_SIZE; len++) this.longest[this.sizeClass[len]] = len
  }

  /** The pool's generation, stored with every reservation. */
  get epoch(): number {
    return this.poolEpoch
  }

  /** Objects reserved now (allocated, not yet holding a page). */
  get count(): number {
    return this.reserved
  }

  /**
   * The pool is being reset: every reservation belongs to the old one (workers skip those, and a
   * result written into one is dropped without touching the new pool). Returns the new generation.
   */
  newPool(): number {
    this.poolEpoch = this.poolEpoch === 0x7fffffff ? 1 : this.poolEpoch + 1
    this.reserved = 0
    return this.poolEpoch
  }

  /** The reservation rings of a new worker, whose pool chunks go to `mail`. */
  forWorker(mail: ChunkMail): WorkerReservations {
    return new WorkerReservations(this, mail)
  }

  /** Reserve an object for size class c, described into `out`; its handle, or 0 when the pool gives none. */
  reserve(c: number, out: Int32Array): number {
    const handle = this.pool.reserveObject(this.longest[c], out)
    if (handle !== 0) this.reserved++
    return handle
  }

  /** The payload length of every object reserved for size class c. */
  lengthOf(c: number): number {
    return this.longest[c]
  }

  chunkOf(handle: number, piece: number): SharedArrayBuffer {
    return this.pool.reservedChunk(handle, piece)
  }

  /** Free a reservation that will hold no page. */
  release(handle: number): void {
    this.reserved--
    this.pool.releaseObject(handle)
  }

  /** A worker wrote a result into a reservation: it is no longer one (committed next, or freed: free). */
  used(): void {
    this.reserved--
  }

  /** Free an object that was a reservation (used, then found stale). */
  free(handle: number): void {
    this.pool.releaseObject(handle)
  }
}

/** One worker's reservation rings (shared with the worker) and what to top up in them. */
export class WorkerReservations {
  /** The rings (WorkerData.resv; layout in protocol.ts). */
  readonly rings: Int32Array
  private readonly shared: Reservations
  private readonly mail: ChunkMail
  /** The size classes to top up after the next collect, ... */
  private readonly wanted: Int32Array
  private wantedCount = 0
  private readonly wantedFlag: Uint8Array
  /** ... and how many to keep reserved in each (deeperReserve whenever the worker ran out). */
  private readonly depth: Uint8Array
  /** Where the pool describes a new reservation (ZsPool.payloadPieces). */
  private readonly pieces = new Int32Array(5)

  constructor(shared: Reservations, mail: ChunkMail) {
    this.shared = shared
    this.mail = mail
    const classes = shared.classes
    this.rings = new Int32Array(new SharedArrayBuffer(resvWords(classes) * 4))
    this.wanted = new Int32Array(classes)
    this.wantedFlag = new Uint8Array(classes)
    this.depth = new Uint8Array(classes)
  }

  /** Some class is to be topped up (refill). */
  get wanting(): boolean {
    return this.wantedCount > 0
  }

  /**
   * The worker returned a result of `len` bytes: top up its class at the next refill; `ranOut`: it
   * had none there (it wrote the slot's result area), so keep more (deeperReserve).
   */
  want(len: number, ranOut: boolean): void {
    const c = this.shared.sizeClass[len]
    if (ranOut) this.depth[c] = deeperReserve(this.depth[c])
    if (this.wantedFlag[c] === 1) return
    this.wantedFlag[c] = 1
    this.wanted[this.wantedCount++] = c
  }

  /**
   * Top up the rings of the wanted classes. Each new object's chunk is sent to the worker before
   * the entry is published (the worker reads its port when it meets an unknown serial). Stops at
   * the first object the pool will not give.
   */
  refill(): void {
    const resv = this.rings
    const out = this.pieces
    const shared = this.shared
    for (let i = 0; i < this.wantedCount; i++) {
      const c = this.wanted[i]
      this.wantedFlag[c] = 0
      const b = resvBase(c)
      let tail = resv[b + R_TAIL]
      const len = shared.lengthOf(c)
      const depth = this.depth[c]
      while (((tail - Atomics.load(resv, b + R_HEAD)) | 0) < depth) {
        const handle = shared.reserve(c, out)
        if (handle === 0) {
          for (let j = i + 1; j < this.wantedCount; j++) this.wantedFlag[this.wanted[j]] = 0
          this.wantedCount = 0
          Atomics.store(resv, b + R_TAIL, tail)
          return
        }
        this.sendChunk(out[0], handle, 0)
        const e = resvEntry(c, tail)
        resv[e + E_HANDLE] = handle
        resv[e + E_EPOCH] = shared.epoch
        resv[e + E_SERIAL0] = out[0]
        resv[e + E_OFF0] = out[1]
        resv[e + E_LEN0] = out[2]
        if (out[2] < len) {
          this.sendChunk(out[3], handle, 1)
          resv[e + E_SERIAL1] = out[3]
          resv[e + E_OFF1] = out[4]
        }
        tail = (tail + 1) | 0
      }
      Atomics.store(resv, b + R_TAIL, tail)
    }
    this.wantedCount = 0
  }

  private sendChunk(serial: number, handle: number, piece: number): void {
    if (!this.mail.hasChunk(serial)) this.mail.sendChunk(serial, this.shared.chunkOf(handle, piece), false)
  }

  /**
   * Free the reservations on the rings (of the current pool; not `skip`) and empty them. Only when
   * the worker cannot be taking one: it has exited, or no slot is busy (Workers.releaseReservations).
   */
  releaseAll(skip: number): void {
    const resv = this.rings
    const shared = this.shared
    for (let c = 0; c < shared.classes; c++) {
      const b = resvBase(c)
      const tail = resv[b + R_TAIL]
      let pos = Atomics.load(resv, b + R_HEAD)
      if (pos === tail) continue
      for (; pos !== tail; pos = (pos + 1) | 0) {
        const e = resvEntry(c, pos)
        if (resv[e + E_EPOCH] === shared.epoch && resv[e + E_HANDLE] !== skip) shared.release(resv[e + E_HANDLE])
      }
      Atomics.store(resv, b + R_HEAD, tail)
    }
  }
}
