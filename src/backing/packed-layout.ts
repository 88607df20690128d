import { Errno, ErrnoError } from '../errno'
import { blocksTouched, type LayoutOptions, type LowerLayout, ReadEpochs } from './layout'
import type { LowerFile } from './lower-file'
import { parseRecordHeader, RECORD_HEADER_BYTES, RECORD_HUGE, recordBytes, sealRecord, verifyRecord } from './record'

export const DEFAULT_SEGMENT_BYTES = 1 << 20

export interface PackedOptions extends LayoutOptions {
  segmentBytes?: number
  /** A sealed segment whose live bytes fall below this fraction of its used bytes is cleaned. */
  cleanBelow?: number
}

/** What the cleaner needs from the page table (the device owns it). */
export interface RecordOwner {
  /** The page still lives at this location on the lower file. */
  isAt(index: number, location: number): boolean
  /** Point the page at its record's new place; false if it changed meanwhile (the copy is dropped). */
  relocate(index: number, from: number, to: number): boolean
}

const SEG_FREE = 0
const SEG_OPEN = 1
const SEG_SEALED = 2

interface Pending {
  promise: Promise<void>
  resolve: () => void
  reject: (err: unknown) => void
}

function pending(): Pending {
  let resolve!: () => void
  let reject!: (err: unknown) => void
  const promise = new Promise<void>((res, rej) => {
    resolve = res
    reject = rej
  })
  // Awaited by every append of the chunk; a failure must not count as unhandled before that.
  promise.catch(() => undefined)
  return { promise, resolve, reject }
}

/**
 * Compressed records packed back to back into segments (1 MiB by default), each segment written
 * with as few large writes as possible: appends fill an in-memory segment buffer, and a chunk of
 * it goes to the file when the segment is full or on flush(). A later flush appends to the same
 * segment, so a short writeback does not waste the rest of a segment.
 *
 * Every record carries its page index, length, algorithm and a CRC-32 (record.ts), checked on every
 * read. Freed records leave dead bytes; segments whose live bytes fall below cleanBelow of what was
 * written are cleaned: live records are copied into the open segment and the old segment is punched
 * out of the file (fallocate(2), off the JavaScript thread) once no read can still be looking at it.
 * A punch that fails (a file system without hole punching: EOPNOTSUPP) is counted and the segment
 * is reused all the same: its blocks stay allocated and are overwritten in place.
 *
 * Counters (4 KiB units, bd_stat): bdCount = blocks of the lower file holding segment data
 * (written bytes of every segment in use, rounded up to 4 KiB per segment), bdWrites = blocks
 * touched by each write, bdReads = blocks touched by each record read.
 */
export class PackedLayout implements LowerLayout {
  readonly kind = 'packed'
  bdCount = 0
  bdReads = 0
  bdWrites = 0
  checksumErrors = 0
  segmentsCleaned = 0
  /** Retired segments punched out of the file (a block device's are never punched), and punches the file system refused. */
  segmentsPunched = 0
  punchErrors = 0
  lastPunchError: unknown = null
  readonly segmentBytes: number
  private readonly cleanBelow: number
  private readonly file: LowerFile
  private readonly maxSegments: number
  // Per segment, indexed by id (grown by doubling).
  private state = new Uint8Array(16)
  private used = new Uint32Array(16)
  private live = new Uint32Array(16)
  private writes = new Uint16Array(16)
  private segments = 0
  private freeIds: number[] = []
  // The open segment: its id, buffer, bytes appended, bytes already written, and the chunk waiting.
  private open = -1
  private buf: Buffer | null = null
  private flushedTo = 0
  private chunk: Pending | null = null
  private spare: Buffer[] = []
  private inFlight = 0
  private waiters: Array<() => void> = []
  private readonly epochs = new ReadEpochs()
  private cleaning = false
  // Retired segments whose punch has not finished yet (waiting for reads, or on the thread pool).
  private punchesPending = 0
  private punchWaiters: Array<() => void> = []

  constructor(opts: PackedOptions) {
    this.file = opts.file
    this.segmentBytes = opts.segmentBytes ?? DEFAULT_SEGMENT_BYTES
    this.cleanBelow = opts.cleanBelow ?? 0.5
    this.maxSegments = Math.min(0xffffffff, Math.floor(opts.file.capacityBytes / this.segmentBytes))
  }

  /** Bytes of live records: what the file would hold if it were perfectly packed. */
  get liveBytes(): number {
    let n = 0
    for (let s = 0; s < this.segments; s++) n += this.live[s]
    return n
  }

  get segmentsInUse(): number {
    return this.segments - this.freeIds.length
  }

  append(index: number, payload: Uint8Array, algorithm: number, huge: boolean): Promise<number> {
    const need = recordBytes(payload.length)
    if (this.open < 0 || this.used[this.open] + need > this.segmentBytes) this.openSegment()
    const seg = this.open
    const off = this.used[seg]
    const buf = this.buf as Buffer
    buf.set(payload, off + RECORD_HEADER_BYTES)
    sealRecord(buf, off, index, payload.length, algorithm, huge ? RECORD_HUGE : 0)
    this.setUsed(seg, off + need)
    this.live[seg] += need
    if (this.chunk === null) this.chunk = pending()
    const location = seg * this.segmentBytes + off
    return this.chunk.promise.then(() => location, (err: unknown) => {
      this.live[seg] -= need
      throw err
    })
  }

  backpressure(maxInFlight: number): Promise<void> | null {
    // A segment write is up to 1 MiB: two in flight keep the disk busy while the next one fills.
    const limit = Math.max(1, Math.min(maxInFlight, 2))
    if (this.inFlight < limit) return null
    return new Promise((resolve) => this.waiters.push(resolve))
  }

  async flush(): Promise<void> {
    if (this.open >= 0) this.writeChunk(this.open, false)
    while (this.inFlight > 0) await new Promise<void>((resolve) => this.waiters.push(resolve))
  }

  async read(location: number, index: number, payloadLen: number): Promise<Uint8Array> {
    const e = this.epochs.beginRead()
    try {
      const len = recordBytes(payloadLen)
      const buf = Buffer.allocUnsafe(len)
      const n = await this.file.pread(buf, 0, len, location)
      this.bdReads += blocksTouched(location, len)
      if (n !== len || !verifyRecord(buf, 0, index, payloadLen)) {
        this.checksumErrors++
        throw new ErrnoError(Errno.EIO, `page ${index}: record at ${location} of the lower file failed its checksum`)
      }
      return buf.subarray(RECORD_HEADER_BYTES)
    } finally {
      this.epochs.endRead(e)
    }
  }

  free(location: number, payloadLen: number): void {
    const seg = Math.floor(location / this.segmentBytes)
    this.live[seg] -= recordBytes(payloadLen)
    if (this.live[seg] !== 0 || this.writes[seg] !== 0 || this.chunk !== null && seg === this.open) return
    if (seg === this.open) {
      // The open segment emptied: close it rather than keep appending behind dead records.
      this.state[seg] = SEG_SEALED
      this.open = -1
      if (this.buf !== null && this.spare.length < 2) this.spare.push(this.buf)
      this.buf = null
    }
    if (this.state[seg] === SEG_SEALED) this.retire(seg)
  }

  /** Resolves once no retired segment waits for its hole punch (tests and the bench wait on it). */
  punchesSettled(): Promise<void> {
    if (this.punchesPending === 0) return Promise.resolve()
    return new Promise((resolve) => this.punchWaiters.push(resolve))
  }

  /** Sealed segments worth cleaning, emptiest first. */
  cleanCandidates(): number[] {
    const out: number[] = []
    for (let s = 0; s < this.segments; s++) {
      if (this.state[s] !== SEG_SEALED || this.writes[s] !== 0) continue
      if (this.live[s] < this.used[s] * this.cleanBelow) out.push(s)
    }
    return out.sort((a, b) => this.live[a] / this.used[a] - this.live[b] / this.used[b])
  }

  /**
   * Copy the live records of sparse segments into the open segment and retire the old ones.
   * Returns the number of segments cleaned. One cleaning at a time.
   */
  async clean(owner: RecordOwner, maxSegments = Infinity): Promise<number> {
    if (this.cleaning) return 0
    this.cleaning = true
    let cleaned = 0
    try {
      for (const seg of this.cleanCandidates()) {
        if (cleaned >= maxSegments) break
        if (this.state[seg] !== SEG_SEALED || this.writes[seg] !== 0) continue
        await this.cleanSegment(seg, owner)
        cleaned++
        this.segmentsCleaned++
      }
    } finally {
      this.cleaning = false
    }
    return cleaned
  }

  private async cleanSegment(seg: number, owner: RecordOwner): Promise<void> {
    const base = seg * this.segmentBytes
    const used = this.used[seg]
    const data = Buffer.allocUnsafe(used)
    const e = this.epochs.beginRead()
    try {
      const n = await this.file.pread(data, 0, used, base)
      this.bdReads += blocksTouched(base, used)
      if (n !== used) throw new ErrnoError(Errno.EIO, `short read of segment ${seg}`)
    } finally {
      this.epochs.endRead(e)
    }
    const moves: Array<Promise<void>> = []
    let failure: unknown = null
    try {
      for (let off = 0; off + RECORD_HEADER_BYTES <= used;) {
        const h = parseRecordHeader(data, off)
        if (h === null) break
        const at = base + off
        if (owner.isAt(h.index, at) && verifyRecord(data, off, h.index, h.payloadLen)) {
          const payload = data.subarray(off + RECORD_HEADER_BYTES, off + RECORD_HEADER_BYTES + h.payloadLen)
          const moved = this.append(h.index, payload, h.algorithm, (h.flags & RECORD_HUGE) !== 0).then((to) => {
            // relocate() frees the old record (the device calls free(from)) when it takes the move.
            if (!owner.relocate(h.index, at, to)) this.free(to, h.payloadLen)
          })
          moves.push(moved)
        }
        off += recordBytes(h.payloadLen)
      }
    } catch (err) {
      // No segment left for the moves (ENOSPC): the records moved so far still settle below.
      failure = err
    }
    // Every move is watched from now on, failed or not: one that failed while flush() waits, with
    // no handler yet, would be an unhandled rejection (the daemon's end).
    const settled = Promise.allSettled(moves)
    await this.flush()
    if (failure !== null) throw failure
    for (const r of await settled) if (r.status === 'rejected') throw r.reason
  }

  private openSegment(): void {
    if (this.open >= 0) this.writeChunk(this.open, true)
    let seg = this.freeIds.pop()
    if (seg === undefined) {
      if (this.segments >= this.maxSegments) {
        this.open = -1
        throw new ErrnoError(Errno.ENOSPC, `the backing device has no free segment (${this.maxSegments} of ${this.segmentBytes} bytes)`)
      }
      seg = this.segments++
      if (seg >= this.state.length) this.grow()
    }
    this.state[seg] = SEG_OPEN
    this.used[seg] = 0
    this.live[seg] = 0
    this.open = seg
    this.buf = this.spare.pop() ?? Buffer.allocUnsafe(this.segmentBytes)
    this.flushedTo = 0
  }

  /** Write the open segment's unwritten bytes; `seal` closes the segment for appends. */
  private writeChunk(seg: number, seal: boolean): void {
    const buf = this.buf as Buffer
    const from = this.flushedTo
    const to = this.used[seg]
    const chunk = this.chunk
    this.chunk = null
    this.flushedTo = to
    if (seal) {
      this.state[seg] = SEG_SEALED
      this.open = -1
      this.buf = null
    }
    if (to === from) {
      chunk?.resolve()
      if (seal) this.recycle(seg, buf)
      return
    }
    this.inFlight++
    this.writes[seg]++
    this.file.pwrite(buf, from, to - from, seg * this.segmentBytes + from).then(
      () => {
        this.bdWrites += blocksTouched(seg * this.segmentBytes + from, to - from)
        chunk?.resolve()
      },
      (err: unknown) => chunk?.reject(err),
    ).finally(() => {
      this.writes[seg]--
      this.inFlight--
      if (seal) this.recycle(seg, buf)
      const w = this.waiters
      this.waiters = []
      for (const f of w) f()
    })
  }

  /** A sealed segment's buffer can be reused once its last write is done. */
  private recycle(seg: number, buf: Buffer): void {
    if (this.writes[seg] !== 0) return
    if (this.spare.length < 2) this.spare.push(buf)
    if (this.live[seg] === 0) this.retire(seg)
  }

  /** A segment with no live record: back to the free list and out of the file, once reads allow. */
  private retire(seg: number): void {
    if (this.state[seg] === SEG_FREE) return
    this.state[seg] = SEG_FREE
    this.bdCount -= Math.ceil(this.used[seg] / 4096)
    this.used[seg] = 0
    this.punchesPending++
    this.epochs.defer(() => {
      this.file.punchHole(seg * this.segmentBytes, this.segmentBytes).then(
        () => { if (!this.file.isBlockDevice) this.segmentsPunched++ },
        (err: unknown) => {
          this.punchErrors++
          this.lastPunchError = err
        },
      ).finally(() => {
        this.freeIds.push(seg)
        // Reuse the lowest ids first: the file stays short.
        this.freeIds.sort((a, b) => b - a)
        if (--this.punchesPending === 0) {
          const w = this.punchWaiters
          this.punchWaiters = []
          for (const f of w) f()
        }
      })
    })
  }

  private setUsed(seg: number, to: number): void {
    this.bdCount += Math.ceil(to / 4096) - Math.ceil(this.used[seg] / 4096)
    this.used[seg] = to
  }

  private grow(): void {
    const n = this.state.length * 2
    const state = new Uint8Array(n)
    state.set(this.state)
    const used = new Uint32Array(n)
    used.set(this.used)
    const live = new Uint32Array(n)
    live.set(this.live)
    const writes = new Uint16Array(n)
    writes.set(this.writes)
    this.state = state
    this.used = used
    this.live = live
    this.writes = writes
  }
}
