import { PAGE_SHIFT, PAGE_SIZE } from '../page'

/** Dropped chunks remembered (weakly) for reuse before the GC takes them. */
const MAX_GRAVEYARD = 16

/** A chunk's memory and the views the hot path uses. */
interface ChunkMem {
  buf: ArrayBuffer | SharedArrayBuffer
  u8: Uint8Array
  i32: Int32Array
}

/**
 * The pool's "page allocator": large chunks of memory cut into 4 KiB frames. Frame number
 * f = (chunk slot << chunkShift) | index, chunkShift = ceil(log2(chunkPages)), so the hot path
 * finds a frame's memory with a shift and a mask. Free frames are handed out lowest chunk first, so
 * that high chunks drain and can be given back; a chunk whose frames are all free is dropped
 * (left to the GC, which returns it to the OS), except that up to `spareChunks` empty chunks are
 * kept while the pool still holds pages, so a workload oscillating around a chunk boundary does
 * not allocate and drop a whole chunk per zspage. When no frame is in use every chunk is dropped.
 * A dropped chunk is only remembered through a WeakRef: if the GC has not collected it yet when a
 * chunk is needed again, it is taken back instead of allocating (and page-faulting) a new one.
 *
 * Shared mode (kcompressd workers writing objects in place): chunks made while `shared` is set are
 * SharedArrayBuffers, each with a serial number that is never reused, and a dropped shared chunk is
 * never taken back (a worker may still write into it after a reset); `onDrop` hears of every shared
 * chunk dropped, so whoever sent it to a worker can tell it to let go.
 */
export class FrameAllocator {
  readonly chunkPages: number
  readonly spareChunks: number
  private readonly chunkShift: number
  private readonly frameMask: number
  /** Make new chunks SharedArrayBuffers (see the class comment). */
  shared = false
  /** Called with the serial of every shared chunk dropped (trim or reset). */
  onDrop: ((serial: number) => void) | null = null
  /** Called with every shared chunk made, before any frame of it is handed out. */
  onAdd: ((serial: number, buf: SharedArrayBuffer) => void) | null = null
  /** Per chunk slot: the chunk's memory, or null for a vacant slot. */
  private bufs: (ArrayBuffer | SharedArrayBuffer | null)[] = []
  /** Per chunk slot: the serial of a shared chunk, 0 for an unshared one. */
  private serials = new Int32Array(0)
  private nextSerial = 1
  private u8: (Uint8Array | null)[] = []
  private i32: (Int32Array | null)[] = []
  /** Per chunk slot: the chunk record (held strongly while the chunk is in use) ... */
  private mems: (ChunkMem | null)[] = []
  /** ... and a weak reference to it, made once per allocation (creating one is slow). */
  private refs: (WeakRef<ChunkMem> | null)[] = []
  /** Per chunk slot: first released frame (global number) or -1. */
  private freeHead = new Int32Array(0)
  /** Per chunk slot: frames [0, fresh) have been handed out before; the rest come by bumping. */
  private fresh = new Int32Array(0)
  /** Per chunk slot: free frames in it, or -1 when the slot is vacant. */
  private freeCount = new Int32Array(0)
  /** Per frame: next released frame of the same chunk, or -1. */
  private frameNext = new Int32Array(0)
  /** Bitmap over chunk slots: bit set = the chunk holds at least one free frame. */
  private hasFree = new Uint32Array(0)
  /** No word of hasFree below this one has a bit set. */
  private lowWord = 0
  private slots = 0
  private chunks = 0
  private emptyChunks = 0
  private inUse = 0
  private graveyard: WeakRef<ChunkMem>[] = []

  constructor(chunkPages = 256, spareChunks = 1) {
    if (!Number.isInteger(chunkPages) || chunkPages < 1 || chunkPages * PAGE_SIZE > 0x40000000) {
      throw new RangeError(`chunkPages must be an integer in 1..262144, got ${chunkPages}`)
    }
    if (!Number.isInteger(spareChunks) || spareChunks < 0) {
      throw new RangeError(`spareChunks must be a non-negative integer, got ${spareChunks}`)
    }
    this.chunkPages = chunkPages
    this.spareChunks = spareChunks
    this.chunkShift = 32 - Math.clz32(chunkPages - 1)
    this.frameMask = (1 << this.chunkShift) - 1
  }

  /** Frames currently handed out. */
  get framesInUse(): number {
    return this.inUse
  }

  /** Chunks currently held (including an empty spare). */
  get chunkCount(): number {
    return this.chunks
  }

  /** The chunk memory that holds frame f (as bytes / as 32-bit words). */
  bytesOf(f: number): Uint8Array {
    return this.u8[f >>> this.chunkShift] as Uint8Array
  }
  bufferOf(f: number): ArrayBuffer | SharedArrayBuffer {
    return this.bufs[f >>> this.chunkShift] as ArrayBuffer | SharedArrayBuffer
  }
  /** Serial number of the shared chunk that holds frame f, or 0 when that chunk is not shared. */
  serialOf(f: number): number {
    return this.serials[f >>> this.chunkShift]
  }
  wordsOf(f: number): Int32Array {
    return this.i32[f >>> this.chunkShift] as Int32Array
  }
  /** Byte offset of frame f inside its chunk. */
  offsetOf(f: number): number {
    return (f & this.frameMask) << PAGE_SHIFT
  }

  alloc(): number {
    let c = this.lowestWithFree()
    if (c < 0) c = this.addChunk()
    let f = this.freeHead[c]
    if (f >= 0) this.freeHead[c] = this.frameNext[f]
    else f = (c << this.chunkShift) + this.fresh[c]++
    const left = --this.freeCount[c]
    if (left === this.chunkPages - 1) this.emptyChunks--
    if (left === 0) this.hasFree[c >>> 5] &= ~(1 << (c & 31))
    this.inUse++
    return f
  }

  /** Give frame f back. Call trim() once a batch of releases is done. */
  release(f: number): void {
    const c = f >>> this.chunkShift
    this.frameNext[f] = this.freeHead[c]
    this.freeHead[c] = f
    const n = ++this.freeCount[c]
    if (n === 1) {
      const w = c >>> 5
      this.hasFree[w] |= 1 << (c & 31)
      if (w < this.lowWord) this.lowWord = w
    }
    if (n === this.chunkPages) this.emptyChunks++
    this.inUse--
  }

  /** Drop empty chunks beyond the spare allowance (all of them when nothing is in use). */
  trim(): void {
    const keep = this.inUse === 0 ? 0 : this.spareChunks
    // Drop from the top: low slots are the ones allocation prefers.
    for (let c = this.slots - 1; c >= 0 && this.emptyChunks > keep; c--) {
      if (this.freeCount[c] === this.chunkPages) this.dropChunk(c)
    }
  }

  /** Drop every chunk (the caller forgets every frame). */
  reset(): void {
    for (let c = 0; c < this.slots; c++) if (this.bufs[c] !== null) this.bury(c)
    this.bufs = []
    this.serials = new Int32Array(0)
    this.mems = []
    this.refs = []
    this.u8 = []
    this.i32 = []
    this.freeHead = new Int32Array(0)
    this.fresh = new Int32Array(0)
    this.freeCount = new Int32Array(0)
    this.frameNext = new Int32Array(0)
    this.hasFree = new Uint32Array(0)
    this.lowWord = 0
    this.slots = 0
    this.chunks = 0
    this.emptyChunks = 0
    this.inUse = 0
  }

  private lowestWithFree(): number {
    const words = this.hasFree.length
    for (let w = this.lowWord; w < words; w++) {
      const bits = this.hasFree[w]
      if (bits !== 0) {
        this.lowWord = w
        return (w << 5) + 31 - Math.clz32(bits & -bits)
      }
    }
    this.lowWord = words
    return -1
  }

  private addChunk(): number {
    // Reuse the lowest vacant slot so frame numbers (and the per-frame array) stay small.
    let c = 0
    while (c < this.slots && this.freeCount[c] !== -1) c++
    if (c === this.slots) this.growSlots()
    const cp = this.chunkPages
    let mem: ChunkMem | undefined
    let ref: WeakRef<ChunkMem> | undefined
    let buf: ArrayBuffer | SharedArrayBuffer | null = null
    if (this.shared) {
      buf = new SharedArrayBuffer(cp * PAGE_SIZE) // never from the graveyard: see the class comment
    } else {
      while (mem === undefined && this.graveyard.length > 0) {
        ref = this.graveyard.pop()
        mem = ref?.deref()
      }
      // allocUnsafeSlow: its own ArrayBuffer (byteOffset 0, not from the shared pool), unzeroed.
      if (mem === undefined) buf = Buffer.allocUnsafeSlow(cp * PAGE_SIZE).buffer as ArrayBuffer
    }
    if (buf !== null) {
      mem = { buf, u8: new Uint8Array(buf), i32: new Int32Array(buf) }
      ref = new WeakRef(mem)
    }
    this.serials[c] = this.shared ? this.nextSerial++ : 0
    mem = mem as ChunkMem
    if (this.shared) this.onAdd?.(this.serials[c], mem.buf as SharedArrayBuffer)
    this.mems[c] = mem
    this.refs[c] = ref as WeakRef<ChunkMem>
    this.bufs[c] = mem.buf
    this.u8[c] = mem.u8
    this.i32[c] = mem.i32
    this.freeHead[c] = -1
    this.fresh[c] = 0
    this.freeCount[c] = cp
    const w = c >>> 5
    this.hasFree[w] |= 1 << (c & 31)
    if (w < this.lowWord) this.lowWord = w
    this.chunks++
    this.emptyChunks++
    return c
  }

  private dropChunk(c: number): void {
    this.bury(c)
    this.mems[c] = null
    this.refs[c] = null
    this.bufs[c] = null
    this.u8[c] = null
    this.i32[c] = null
    this.freeHead[c] = -1
    this.freeCount[c] = -1
    this.hasFree[c >>> 5] &= ~(1 << (c & 31))
    this.chunks--
    this.emptyChunks--
  }

  /** Forget a chunk, but keep a weak reference in case it is needed before the GC runs. */
  private bury(c: number): void {
    const serial = this.serials[c]
    if (serial !== 0) {
      // Never reused: a worker may write into it until it hears of the drop.
      this.serials[c] = 0
      this.onDrop?.(serial)
      return
    }
    if (this.graveyard.length === MAX_GRAVEYARD) this.graveyard.shift()
    this.graveyard.push(this.refs[c] as WeakRef<ChunkMem>)
  }

  private growSlots(): void {
    const old = this.slots
    const n = old === 0 ? 4 : old * 2
    // frame numbers must stay non-negative int32 (2^30 frames = 4 TiB of pool)
    if (n * 2 ** this.chunkShift > 2 ** 30) throw new RangeError('zsmalloc: pool too large')
    const fh = new Int32Array(n).fill(-1)
    fh.set(this.freeHead)
    const fr = new Int32Array(n)
    fr.set(this.fresh)
    const fc = new Int32Array(n).fill(-1)
    fc.set(this.freeCount)
    const fn = new Int32Array(n << this.chunkShift)
    fn.set(this.frameNext)
    const hf = new Uint32Array((n + 31) >>> 5)
    hf.set(this.hasFree)
    const se = new Int32Array(n)
    se.set(this.serials)
    this.serials = se
    this.freeHead = fh
    this.fresh = fr
    this.freeCount = fc
    this.frameNext = fn
    this.hasFree = hf
    for (let c = old; c < n; c++) {
      this.bufs.push(null)
      this.mems.push(null)
      this.refs.push(null)
      this.u8.push(null)
      this.i32.push(null)
    }
    this.slots = n
  }
}
