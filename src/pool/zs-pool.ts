/** Long because it mirrors mm/zsmalloc.c, one allocator in one file as there (the layout below). */
import { FrameAllocator } from './frames'
import {
  GEOMETRY, ZS_HANDLE_SIZE, ZS_MAX_ALLOC_SIZE, ZS_MAX_PAGES_PER_ZSPAGE, ZS_SIZE_CLASSES, classIndexOf,
} from './size-class'
import { PAGE_SHIFT, PAGE_SIZE } from '../page'

/*
 * A zsmalloc-like allocator (mm/zsmalloc.c). Objects live in zspages of 1..8 frames, one size class
 * per zspage, with the kernel's class sizes, zspage lengths, class merging, fullness groups,
 * allocation order and compaction, so totalPages is what the kernel's zs_get_total_pages() would
 * report for the same sequence of calls.
 *
 * Layout, as in the kernel: a non-huge object is class-size bytes whose first ZS_HANDLE_SIZE bytes
 * are a header (we use the first 32-bit word of it): a positive handle when the object is allocated
 * (OBJ_ALLOCATED_TAG), or <= 0 encoding the next free object of the zspage when it is free
 * (link_free). Object offsets are multiples of 16, so a header word never straddles a frame; the
 * payload after it may. Huge zspages (1 frame, 1 object) have no header: the object is the whole
 * frame and the handle is kept beside the zspage (the kernel keeps it in page->index).
 *
 * Unlike init_zspage(), a new zspage's free list is not written through all its objects: objects
 * never used yet are handed out by a bump index (zsFresh) once the free list is empty. That gives
 * the kernel's order (index order first, then LIFO) without touching the new zspage's memory.
 *
 * All metadata sits in typed arrays indexed by zspage id or handle; nothing per object on the heap.
 */

/** Fullness groups (enum fullness_group): 0 empty, 1..10 = 0-9%..90-99% in use, 11 full. */
const GROUP_EMPTY = 0
const GROUP_10 = 1
const GROUP_99 = 10
const GROUP_FULL = 11
const NR_GROUPS = 12
/** Bits 1..10 of a class's group mask: the non-empty, non-full groups. */
const PARTIAL_MASK = ((1 << (GROUP_99 + 1)) - 1) & ~((1 << GROUP_10) - 1)

const MAX_PAGES = ZS_MAX_PAGES_PER_ZSPAGE
const HEADER = ZS_HANDLE_SIZE
const MAX_HANDLE = 0x7fffffff

const { merged: MERGED, size: SIZE, pagesPerZspage: PAGES, objsPerZspage: OBJS, huge: HUGE } =
  GEOMETRY

/** get_fullness_group() precomputed per class: GROUP_TABLE[GROUP_BASE[c] + inuse]. */
const GROUP_BASE = new Int32Array(ZS_SIZE_CLASSES)
const GROUP_TABLE = ((): Uint8Array => {
  let total = 0
  for (let c = 0; c < ZS_SIZE_CLASSES; c++) {
    GROUP_BASE[c] = total
    total += OBJS[c] + 1
  }
  const t = new Uint8Array(total)
  for (let c = 0; c < ZS_SIZE_CLASSES; c++) {
    const objs = OBJS[c]
    for (let inuse = 0; inuse <= objs; inuse++) {
      let g: number
      if (inuse === 0) g = GROUP_EMPTY
      else if (inuse === objs) g = GROUP_FULL
      // ratio / 10 + 1: one object out of 127 still counts as 10%, not 0% (kernel comment)
      else g = Math.floor(Math.floor((100 * inuse) / objs) / 10) + 1
      t[GROUP_BASE[c] + inuse] = g
    }
  }
  return t
})()

if (GEOMETRY.maxObjsPerZspage > 0xffff) throw new Error('object index does not fit 16 bits')

export interface ZsPoolOptions {
  /** Frames per memory chunk (default 256 = 1 MiB). */
  chunkPages?: number
  /** Empty chunks kept for reuse while the pool holds pages (default 1). */
  spareChunks?: number
}

export class ZsPool {
  /** zram stores a page raw when its compressed length reaches this (3625 for 4 KiB pages). */
  static readonly hugeClassSize: number = GEOMETRY.hugeClassSize

  private readonly frames: FrameAllocator

  // ---- per zspage (index = zspage id); capacity doubles ----
  private zsCap = 0
  private zsClass = new Uint8Array(0)
  private zsInuse = new Int32Array(0)
  /** First object of the in-zspage free list, -1 when empty. */
  private zsFreeObj = new Int32Array(0)
  /** Objects [0, zsFresh) have been used; the rest were never handed out (headers undefined). */
  private zsFresh = new Int32Array(0)
  /** MAX_PAGES frame numbers per zspage. */
  private zsFrames = new Int32Array(0)
  /** Fullness list links; zsNext also links free zspage ids. */
  private zsPrev = new Int32Array(0)
  private zsNext = new Int32Array(0)
  /** Current fullness group, -1 while isolated (off every list) or unused. */
  private zsGroup = new Int8Array(0)
  /** Handle of the object of a huge zspage (page->index in the kernel). */
  private zsHugeHandle = new Int32Array(0)
  private zsTop = 0
  private zsFreeId = -1

  // ---- per class ----
  /** Head of fullness list (class, group) at [class * NR_GROUPS + group], -1 empty. */
  private readonly listHead = new Int32Array(ZS_SIZE_CLASSES * NR_GROUPS).fill(-1)
  /** Bit g set = list (class, g) is non-empty. */
  private readonly groupMask = new Int32Array(ZS_SIZE_CLASSES)
  private readonly classZspages = new Int32Array(ZS_SIZE_CLASSES)
  private readonly classInuse = new Int32Array(ZS_SIZE_CLASSES)

  // ---- handles: handle -> (zspage, object index); stable across compaction ----
  private hCap = 0
  /** >= 0: zspage id of an allocated handle; < 0: free, -1 - (next free handle or 0). */
  private hZs = new Int32Array(0)
  private hIdx = new Uint16Array(0)
  /** 1: the object is reserved for a kcompressd worker, which may write it: compaction leaves it. */
  private hPinned = new Uint8Array(0)
  /** Next never-used handle number; handle 0 is never used. */
  private hTop = 1
  private hFree = 0

  private objects = 0
  private compacted = 0

  constructor(opts?: ZsPoolOptions) {
    this.frames = new FrameAllocator(opts?.chunkPages ?? 256, opts?.spareChunks ?? 1)
    this.initMeta()
  }

  get totalPages(): number {
    return this.frames.framesInUse
  }
  get pagesCompacted(): number {
    return this.compacted
  }
  get objectCount(): number {
    return this.objects
  }
  get chunkCount(): number {
    return this.frames.chunkCount
  }

  /** New chunks are SharedArrayBuffers (kcompressd workers write objects in place); see FrameAllocator. */
  get shared(): boolean {
    return this.frames.shared
  }
  set shared(on: boolean) {
    this.frames.shared = on
  }

  /** Hears the serial of every shared chunk dropped. */
  set onChunkDrop(hook: ((serial: number) => void) | null) {
    this.frames.onDrop = hook
  }

  /** Hears of every shared chunk made (its serial and memory), before any object lies in it. */
  set onChunkAdd(hook: ((serial: number, buf: SharedArrayBuffer) => void) | null) {
    this.frames.onAdd = hook
  }

  /** Keep an allocated object where it is (compaction skips it) until unpin(). */
  pin(handle: number): void {
    this.lookup(handle)
    this.hPinned[handle] = 1
  }
  unpin(handle: number): void {
    this.hPinned[handle] = 0
  }

  /**
   * Where an allocated object's payload lives, for a thread that writes it in place: into `out`,
   * [serial, byteOffset, bytes] of the first piece and [serial, byteOffset] of the second (the rest
   * of the payload, when the object crosses into the zspage's next frame). Returns the number of
   * pieces (1 or 2), or 0 when a piece lies in a chunk that is not shared.
   */
  payloadPieces(handle: number, out: Int32Array): number {
    const c = this.zsClass[this.lookup(handle)]
    // locate() gives the same layout with frames where this names chunks by serial.
    const pieces = this.locate(handle, SIZE[c] - (HUGE[c] === 1 ? 0 : HEADER), out)
    out[0] = this.frames.serialOf(out[0])
    if (out[0] === 0) return 0
    if (pieces === 1) return 1
    out[3] = this.frames.serialOf(out[3])
    return out[3] === 0 ? 0 : 2
  }

  /** The memory of the (shared) chunk a payloadPieces() serial names, by a frame of the object. */
  chunkBufferOf(handle: number, piece: number): ArrayBuffer | SharedArrayBuffer {
    const zs = this.lookup(handle)
    const c = this.zsClass[zs]
    const hdr = HUGE[c] === 1 ? 0 : HEADER
    const off = this.hIdx[handle] * SIZE[c] + hdr
    return this.frames.bufferOf(this.zsFrames[zs * MAX_PAGES + (off >>> PAGE_SHIFT) + piece])
  }

  /** Size of the (merged) class an object of len bytes (0..4096) is stored in. */
  classSizeOf(len: number): number {
    if (!(len >= 0 && len <= ZS_MAX_ALLOC_SIZE)) throw new RangeError(`bad object length ${len}`)
    return SIZE[classIndexOf(Math.ceil(len))]
  }

  /** zs_malloc(): a handle to an object of len (1..4096) bytes, contents undefined. */
  malloc(len: number): number {
    // Kernel: 0 -> -EINVAL, > ZS_MAX_ALLOC_SIZE -> -ENOSPC; both are caller bugs here.
    if (!(len >= 1 && len <= ZS_MAX_ALLOC_SIZE) || len !== Math.floor(len)) {
      throw new RangeError(`zs_malloc: bad object length ${len}`)
    }
    const c = classIndexOf(len)
    let zs = this.findZspage(c)
    const fresh = zs < 0
    // A new zspage only when no zspage of the class has room (may throw when out of memory).
    if (fresh) zs = this.allocZspage(c)
    let h: number
    try {
      h = this.allocHandle()
    } catch (err) {
      if (fresh) this.freeZspage(zs, c)
      throw err
    }
    this.objMalloc(zs, c, h)
    if (fresh) this.insert(zs, c, GROUP_TABLE[GROUP_BASE[c] + this.zsInuse[zs]])
    else this.fixFullness(zs, c)
    this.objects++
    return h
  }

  /** zs_free(). Throws on a handle that is not allocated (double free). */
  free(handle: number): void {
    const zs = this.lookup(handle)
    this.hPinned[handle] = 0
    const c = this.zsClass[zs]
    this.objFree(zs, c, this.hIdx[handle])
    this.releaseHandle(handle)
    this.objects--
    // An emptied zspage is freed at once (zs_free -> fix_fullness_group -> free_zspage).
    if (this.fixFullness(zs, c) === GROUP_EMPTY) this.freeZspage(zs, c)
  }

  /** Copy len bytes of src (from srcOffset) into the object. */
  write(handle: number, src: Uint8Array, srcOffset: number, len: number): void {
    const zs = this.lookup(handle)
    const c = this.zsClass[zs]
    const hdr = HUGE[c] === 1 ? 0 : HEADER
    if (!(len >= 0 && len <= SIZE[c] - hdr && srcOffset >= 0 && srcOffset + len <= src.length)) {
      throw new RangeError(`zs write: bad range ${srcOffset}+${len} (object ${SIZE[c] - hdr})`)
    }
    let off = this.hIdx[handle] * SIZE[c] + hdr
    let at = src.byteOffset + srcOffset
    const sbuf = src.buffer
    while (len > 0) {
      const f = this.zsFrames[zs * MAX_PAGES + (off >>> PAGE_SHIFT)]
      const inFrame = off & (PAGE_SIZE - 1)
      const n = len < PAGE_SIZE - inFrame ? len : PAGE_SIZE - inFrame
      this.frames.bytesOf(f).set(new Uint8Array(sbuf, at, n), this.frames.offsetOf(f) + inFrame)
      off += n
      at += n
      len -= n
    }
  }

  /**
   * Where the object's first len bytes lie, for a reader that takes them in place (zs_obj_read_begin):
   * out[0] = frame and out[1] = byte offset in its chunk (chunkBytes(out[0])) of the first piece,
   * out[2] = its length; when the bytes cross into the zspage's next frame, out[3] and out[4] are
   * that frame and offset of the rest (len - out[2] bytes). Returns the number of pieces (1 or 2).
   */
  locate(handle: number, len: number, out: Int32Array): number {
    const zs = this.lookup(handle)
    const c = this.zsClass[zs]
    const hdr = HUGE[c] === 1 ? 0 : HEADER
    if (!(len >= 0 && len <= SIZE[c] - hdr)) throw new RangeError(`zs locate: bad length ${len} (object ${SIZE[c] - hdr})`)
    const off = this.hIdx[handle] * SIZE[c] + hdr
    const inFrame = off & (PAGE_SIZE - 1)
    const f0 = this.zsFrames[zs * MAX_PAGES + (off >>> PAGE_SHIFT)]
    out[0] = f0
    out[1] = this.frames.offsetOf(f0) + inFrame
    if (inFrame + len <= PAGE_SIZE) {
      out[2] = len
      return 1
    }
    out[2] = PAGE_SIZE - inFrame
    const f1 = this.zsFrames[zs * MAX_PAGES + (off >>> PAGE_SHIFT) + 1]
    out[3] = f1
    out[4] = this.frames.offsetOf(f1)
    return 2
  }

  /** The memory of the chunk that holds frame f (a frame locate() names). */
  chunkBytes(f: number): Uint8Array {
    return this.frames.bytesOf(f)
  }

  /** Copy len bytes of the object out into dst (at dstOffset). */
  read(handle: number, dst: Uint8Array, dstOffset: number, len: number): void {
    const zs = this.lookup(handle)
    const c = this.zsClass[zs]
    const hdr = HUGE[c] === 1 ? 0 : HEADER
    if (!(len >= 0 && len <= SIZE[c] - hdr && dstOffset >= 0 && dstOffset + len <= dst.length)) {
      throw new RangeError(`zs read: bad range ${dstOffset}+${len} (object ${SIZE[c] - hdr})`)
    }
    let off = this.hIdx[handle] * SIZE[c] + hdr
    while (len > 0) {
      const f = this.zsFrames[zs * MAX_PAGES + (off >>> PAGE_SHIFT)]
      const inFrame = off & (PAGE_SIZE - 1)
      const n = len < PAGE_SIZE - inFrame ? len : PAGE_SIZE - inFrame
      const from = this.frames.offsetOf(f) + inFrame
      dst.set(new Uint8Array(this.frames.bufferOf(f), from, n), dstOffset)
      off += n
      dstOffset += n
      len -= n
    }
  }

  /**
   * zs_compact(): per class, largest first, move objects from the emptiest zspages into the
   * fullest non-full ones and free the emptied zspages. Returns the pages freed by this call.
   */
  compact(): number {
    let freed = 0
    for (let c = ZS_SIZE_CLASSES - 1; c >= 0; c--) {
      if (MERGED[c] !== c) continue // merged into a larger class, compacted with it
      freed += this.compactClass(c)
    }
    this.compacted += freed
    return freed
  }

  /** Drop every object and every chunk; handles restart from 1. pagesCompacted is kept. */
  reset(): void {
    this.frames.reset()
    this.initMeta()
  }

  /**
   * Test / debug aid, O(pool): check every internal invariant (lists, groups, counts, free lists,
   * handle table) and throw an Error describing the first violation.
   */
  verify(): void {
    const fail = (msg: string): never => {
      throw new Error(`zs-pool verify: ${msg}`)
    }
    const zspages = new Int32Array(ZS_SIZE_CLASSES)
    const inuse = new Int32Array(ZS_SIZE_CLASSES)
    const seen = new Uint8Array(this.zsTop)
    let pages = 0
    for (let c = 0; c < ZS_SIZE_CLASSES; c++) {
      for (let g = 0; g < NR_GROUPS; g++) {
        const head = this.listHead[c * NR_GROUPS + g]
        if ((head >= 0) !== ((this.groupMask[c] & (1 << g)) !== 0)) fail(`mask ${c}/${g}`)
        if (head >= 0 && MERGED[c] !== c) fail(`list on merged class ${c}`)
        let prev = -1
        for (let zs = head; zs >= 0; zs = this.zsNext[zs]) {
          if (seen[zs] === 1) fail(`zspage ${zs} listed twice`)
          seen[zs] = 1
          if (this.zsPrev[zs] !== prev) fail(`zspage ${zs} prev link`)
          if (this.zsClass[zs] !== c) fail(`zspage ${zs} on list of class ${c}`)
          if (this.zsGroup[zs] !== g) fail(`zspage ${zs} group ${this.zsGroup[zs]} on list ${g}`)
          const n = this.zsInuse[zs]
          if (GROUP_TABLE[GROUP_BASE[c] + n] !== g) fail(`zspage ${zs} inuse ${n} in group ${g}`)
          if (g === GROUP_EMPTY) fail(`empty zspage ${zs} kept`)
          // walk the in-page free list and count allocated headers
          let free = OBJS[c] - this.zsFresh[zs]
          for (let i = this.zsFreeObj[zs]; i >= 0; i = this.nextFreeObj(zs, c, i)) {
            if (i >= this.zsFresh[zs]) fail(`zspage ${zs} free list holds a fresh object`)
            if (++free > OBJS[c]) fail(`zspage ${zs} free list loops`)
          }
          if (free !== OBJS[c] - n) fail(`zspage ${zs} free ${free} inuse ${n}`)
          let alloc = 0
          for (let i = 0; i < OBJS[c]; i++) {
            const h = this.handleAt(zs, c, i)
            if (h <= 0) continue
            alloc++
            if (this.hZs[h] !== zs || this.hIdx[h] !== i) fail(`handle ${h} does not map back`)
          }
          if (alloc !== n) fail(`zspage ${zs} has ${alloc} allocated, inuse ${n}`)
          zspages[c]++
          inuse[c] += n
          pages += PAGES[c]
          prev = zs
        }
      }
      if (zspages[c] !== this.classZspages[c]) fail(`class ${c} zspage count`)
      if (inuse[c] !== this.classInuse[c]) fail(`class ${c} inuse count`)
    }
    if (pages !== this.totalPages) fail(`pages ${pages} != totalPages ${this.totalPages}`)
    let live = 0
    for (let h = 1; h < this.hTop; h++) if (this.hZs[h] >= 0) live++
    if (live !== this.objects) fail(`live handles ${live} != objectCount ${this.objects}`)
  }

  // ------------------------------------------------------------------------------------------

  private initMeta(): void {
    this.zsCap = 0
    this.zsClass = new Uint8Array(0)
    this.zsInuse = new Int32Array(0)
    this.zsFreeObj = new Int32Array(0)
    this.zsFresh = new Int32Array(0)
    this.zsFrames = new Int32Array(0)
    this.zsPrev = new Int32Array(0)
    this.zsNext = new Int32Array(0)
    this.zsGroup = new Int8Array(0)
    this.zsHugeHandle = new Int32Array(0)
    this.zsTop = 0
    this.zsFreeId = -1
    this.growZspages()
    this.listHead.fill(-1)
    this.groupMask.fill(0)
    this.classZspages.fill(0)
    this.classInuse.fill(0)
    this.hCap = 0
    this.hZs = new Int32Array(0)
    this.hIdx = new Uint16Array(0)
    this.hPinned = new Uint8Array(0)
    this.hTop = 1
    this.hFree = 0
    this.growHandles()
    this.objects = 0
  }

  /** Zspage id of an allocated handle, or throw. */
  private lookup(handle: number): number {
    const zs = handle > 0 && handle < this.hTop ? this.hZs[handle] : -1
    if (!(zs >= 0)) throw new Error(`zsmalloc: handle ${handle} is not allocated`)
    return zs
  }

  private allocHandle(): number {
    let h = this.hFree
    if (h !== 0) {
      this.hFree = -1 - this.hZs[h]
    } else {
      if (this.hTop > MAX_HANDLE) throw new RangeError('zsmalloc: out of handles')
      if (this.hTop === this.hCap) this.growHandles()
      h = this.hTop++
    }
    return h
  }

  private releaseHandle(h: number): void {
    this.hZs[h] = -1 - this.hFree
    this.hFree = h
  }

  /** find_get_zspage(): head of the fullest non-full, non-empty group, or -1. */
  private findZspage(c: number): number {
    const m = this.groupMask[c] & PARTIAL_MASK
    if (m === 0) return -1
    return this.listHead[c * NR_GROUPS + 31 - Math.clz32(m)]
  }

  /** obj_malloc(): take the zspage's first free object for handle h. */
  private objMalloc(zs: number, c: number, h: number): void {
    let idx: number
    if (HUGE[c] === 1) {
      idx = 0 // the only object; an empty huge zspage never survives, so it is fresh
      this.zsFresh[zs] = 1
      this.zsHugeHandle[zs] = h
    } else {
      const head = this.zsFreeObj[zs]
      idx = head >= 0 ? head : this.zsFresh[zs]++
      const off = idx * SIZE[c]
      const f = this.zsFrames[zs * MAX_PAGES + (off >>> PAGE_SHIFT)]
      const words = this.frames.wordsOf(f)
      const w = (this.frames.offsetOf(f) + (off & (PAGE_SIZE - 1))) >>> 2
      if (head >= 0) this.zsFreeObj[zs] = -1 - words[w] // free header: -1 - next
      words[w] = h // allocated header: the handle
    }
    this.zsInuse[zs]++
    this.classInuse[c]++
    this.hZs[h] = zs
    this.hIdx[h] = idx
  }

  /** obj_free(): put object idx at the head of the zspage's free list. */
  private objFree(zs: number, c: number, idx: number): void {
    if (HUGE[c] === 1) {
      this.zsHugeHandle[zs] = 0 // the zspage empties and is freed by the caller
    } else {
      const off = idx * SIZE[c]
      const f = this.zsFrames[zs * MAX_PAGES + (off >>> PAGE_SHIFT)]
      this.frames.wordsOf(f)[(this.frames.offsetOf(f) + (off & (PAGE_SIZE - 1))) >>> 2] =
        -1 - this.zsFreeObj[zs]
      this.zsFreeObj[zs] = idx
    }
    this.zsInuse[zs]--
    this.classInuse[c]--
  }

  /** Header word of object idx: the handle if allocated, else <= 0. */
  private handleAt(zs: number, c: number, idx: number): number {
    if (HUGE[c] === 1) return this.zsInuse[zs] === 1 ? this.zsHugeHandle[zs] : 0
    if (idx >= this.zsFresh[zs]) return 0 // never used: the header is garbage
    const off = idx * SIZE[c]
    const f = this.zsFrames[zs * MAX_PAGES + (off >>> PAGE_SHIFT)]
    return this.frames.wordsOf(f)[(this.frames.offsetOf(f) + (off & (PAGE_SIZE - 1))) >>> 2]
  }

  private nextFreeObj(zs: number, c: number, idx: number): number {
    if (HUGE[c] === 1) return -1
    return -1 - this.handleAt(zs, c, idx)
  }

  /** fix_fullness_group(): move a listed zspage to its new group's list head if it changed. */
  private fixFullness(zs: number, c: number): number {
    const g = GROUP_TABLE[GROUP_BASE[c] + this.zsInuse[zs]]
    const old = this.zsGroup[zs]
    if (g !== old) {
      this.unlink(zs, c)
      if (g !== GROUP_EMPTY) this.insert(zs, c, g)
    }
    return g
  }

  /** insert_zspage(): list_add at the head, as the kernel does. */
  private insert(zs: number, c: number, g: number): void {
    const slot = c * NR_GROUPS + g
    const head = this.listHead[slot]
    this.zsPrev[zs] = -1
    this.zsNext[zs] = head
    if (head >= 0) this.zsPrev[head] = zs
    this.listHead[slot] = zs
    this.groupMask[c] |= 1 << g
    this.zsGroup[zs] = g
  }

  /** remove_zspage(); a no-op for an isolated zspage. */
  private unlink(zs: number, c: number): void {
    const g = this.zsGroup[zs]
    if (g < 0) return
    const prev = this.zsPrev[zs]
    const next = this.zsNext[zs]
    if (prev >= 0) this.zsNext[prev] = next
    else {
      const slot = c * NR_GROUPS + g
      this.listHead[slot] = next
      if (next < 0) this.groupMask[c] &= ~(1 << g)
    }
    if (next >= 0) this.zsPrev[next] = prev
    this.zsGroup[zs] = -1
  }

  /** alloc_zspage() + init_zspage(): frames; objects are handed out fresh (see zsFresh). */
  private allocZspage(c: number): number {
    if (this.zsFreeId < 0 && this.zsTop === this.zsCap) this.growZspages()
    const zs = this.zsFreeId >= 0 ? this.zsFreeId : this.zsTop
    const pages = PAGES[c]
    const base = zs * MAX_PAGES
    let got = 0
    try {
      for (; got < pages; got++) this.zsFrames[base + got] = this.frames.alloc()
    } catch (err) {
      // out of memory for a new chunk: undo, the pool stays consistent
      while (got > 0) this.frames.release(this.zsFrames[base + --got])
      this.frames.trim()
      throw err
    }
    if (zs === this.zsFreeId) this.zsFreeId = this.zsNext[zs]
    else this.zsTop++
    this.zsClass[zs] = c
    this.zsInuse[zs] = 0
    this.zsFreeObj[zs] = -1
    this.zsFresh[zs] = 0
    this.zsGroup[zs] = -1
    this.zsHugeHandle[zs] = 0
    this.classZspages[c]++
    return zs
  }

  /** free_zspage(): give the frames back (chunks may drop), recycle the id. */
  private freeZspage(zs: number, c: number): void {
    const base = zs * MAX_PAGES
    for (let i = PAGES[c] - 1; i >= 0; i--) this.frames.release(this.zsFrames[base + i])
    this.frames.trim()
    this.classZspages[c]--
    this.zsGroup[zs] = -1
    this.zsNext[zs] = this.zsFreeId
    this.zsFreeId = zs
  }

  /** zs_can_compact(): pages that compaction could free in class c. */
  private canCompact(c: number): number {
    const wasted = this.classZspages[c] * OBJS[c] - this.classInuse[c]
    return Math.floor(wasted / OBJS[c]) * PAGES[c]
  }

  /** isolate_src_zspage() / isolate_dst_zspage(): take a list head off its list. */
  private isolate(c: number, fromEmptiest: boolean): number {
    const m = this.groupMask[c] & PARTIAL_MASK
    if (m === 0) return -1
    const g = fromEmptiest ? 31 - Math.clz32(m & -m) : 31 - Math.clz32(m)
    const zs = this.listHead[c * NR_GROUPS + g]
    this.unlink(zs, c)
    return zs
  }

  /** putback_zspage(): back on the list of its current group; returns the group. */
  private putback(zs: number, c: number): number {
    const g = GROUP_TABLE[GROUP_BASE[c] + this.zsInuse[zs]]
    if (g !== GROUP_EMPTY) this.insert(zs, c, g)
    return g
  }

  /** __zs_compact() for one class. */
  private compactClass(c: number): number {
    let freed = 0
    let dst = -1
    /** Zspages holding only pinned objects besides what moved: kept off the lists until the end. */
    let stuck: number[] | null = null
    while (this.canCompact(c) > 0) {
      if (dst < 0) {
        dst = this.isolate(c, false)
        if (dst < 0) break
      }
      const src = this.isolate(c, true)
      if (src < 0) break // src and dst have met: nothing left to move from
      this.migrate(src, dst, c)
      if (this.zsInuse[src] === 0) {
        this.putback(src, c)
        this.freeZspage(src, c)
        freed += PAGES[c]
      } else if (this.zsInuse[dst] === OBJS[c]) {
        this.putback(src, c) // dst is full: src may hold more to move
      } else {
        ;(stuck ??= []).push(src) // what is left in src is pinned (kcompressd reservations)
      }
      if (this.zsInuse[dst] === OBJS[c]) {
        this.putback(dst, c)
        dst = -1
      }
    }
    if (dst >= 0) this.putback(dst, c)
    if (stuck !== null) for (const zs of stuck) this.putback(zs, c)
    return freed
  }

  /**
   * migrate_zspage(): move allocated objects, in index order, until dst is full or src empty.
   * Pinned objects stay.
   */
  private migrate(src: number, dst: number, c: number): void {
    const objs = OBJS[c]
    const size = SIZE[c]
    const hdr = HUGE[c] === 1 ? 0 : HEADER
    const used = this.zsFresh[src]
    for (let i = 0; i < used; i++) {
      const h = this.handleAt(src, c, i)
      if (h <= 0 || this.hPinned[h] === 1) continue
      this.objMalloc(dst, c, h) // re-points the handle at dst: the handle stays valid
      this.copyObject(src, i * size + hdr, dst, this.hIdx[h] * size + hdr, size - hdr)
      this.objFree(src, c, i)
      if (this.zsInuse[dst] === objs || this.zsInuse[src] === 0) break
    }
  }

  /** zs_object_copy(): len bytes between two zspages, splitting at either side's frame edges. */
  private copyObject(src: number, sOff: number, dst: number, dOff: number, len: number): void {
    while (len > 0) {
      const sf = this.zsFrames[src * MAX_PAGES + (sOff >>> PAGE_SHIFT)]
      const df = this.zsFrames[dst * MAX_PAGES + (dOff >>> PAGE_SHIFT)]
      const sIn = sOff & (PAGE_SIZE - 1)
      const dIn = dOff & (PAGE_SIZE - 1)
      let n = len
      if (n > PAGE_SIZE - sIn) n = PAGE_SIZE - sIn
      if (n > PAGE_SIZE - dIn) n = PAGE_SIZE - dIn
      this.frames
        .bytesOf(df)
        .set(
          new Uint8Array(this.frames.bufferOf(sf), this.frames.offsetOf(sf) + sIn, n),
          this.frames.offsetOf(df) + dIn,
        )
      sOff += n
      dOff += n
      len -= n
    }
  }

  private growZspages(): void {
    const n = this.zsCap === 0 ? 256 : this.zsCap * 2
    const grow = <T extends Uint8Array | Int8Array | Int32Array>(
      old: T,
      make: (k: number) => T,
      per = 1,
    ): T => {
      const a = make(n * per)
      a.set(old)
      return a
    }
    this.zsClass = grow(this.zsClass, (k) => new Uint8Array(k))
    this.zsInuse = grow(this.zsInuse, (k) => new Int32Array(k))
    this.zsFreeObj = grow(this.zsFreeObj, (k) => new Int32Array(k))
    this.zsFresh = grow(this.zsFresh, (k) => new Int32Array(k))
    this.zsFrames = grow(this.zsFrames, (k) => new Int32Array(k), MAX_PAGES)
    this.zsPrev = grow(this.zsPrev, (k) => new Int32Array(k))
    this.zsNext = grow(this.zsNext, (k) => new Int32Array(k))
    this.zsGroup = grow(this.zsGroup, (k) => new Int8Array(k).fill(-1))
    this.zsHugeHandle = grow(this.zsHugeHandle, (k) => new Int32Array(k))
    this.zsCap = n
  }

  private growHandles(): void {
    const n = this.hCap === 0 ? 1024 : this.hCap * 2
    const zs = new Int32Array(n)
    zs.set(this.hZs)
    const idx = new Uint16Array(n)
    idx.set(this.hIdx)
    const pinned = new Uint8Array(n)
    pinned.set(this.hPinned)
    this.hZs = zs
    this.hIdx = idx
    this.hPinned = pinned
    this.hCap = n
  }
}
