/**
 * zsmalloc's size-class geometry (mm/zsmalloc.c), computed the way zs_create_pool() computes it,
 * so that our zspage lengths, and with them mem_used_total, are the kernel's.
 */

import { PAGE_SIZE } from '../page'

/** MAX(32, (ZS_MAX_PAGES_PER_ZSPAGE << PAGE_SHIFT) >> OBJ_INDEX_BITS) is 32 on 64-bit kernels. */
export const ZS_MIN_ALLOC_SIZE = 32
export const ZS_MAX_ALLOC_SIZE = PAGE_SIZE
/** PAGE_SIZE >> CLASS_BITS (8). */
export const ZS_SIZE_CLASS_DELTA = 16
/** CONFIG_ZSMALLOC_CHAIN_SIZE default. */
export const ZS_MAX_PAGES_PER_ZSPAGE = 8
/** zs_malloc() reserves room for the handle in every non-huge object. */
export const ZS_HANDLE_SIZE = 8
/** DIV_ROUND_UP(ZS_MAX_ALLOC_SIZE - ZS_MIN_ALLOC_SIZE, ZS_SIZE_CLASS_DELTA) + 1 = 255. */
export const ZS_SIZE_CLASSES =
  Math.ceil((ZS_MAX_ALLOC_SIZE - ZS_MIN_ALLOC_SIZE) / ZS_SIZE_CLASS_DELTA) + 1

/** calculate_zspage_chain_size(): the zspage length (1..8 pages) that wastes the least tail. */
export function calculateZspageChainSize(classSize: number): number {
  // A power-of-two size divides the page exactly: one page.
  if ((classSize & (classSize - 1)) === 0) return 1
  let minWaste = Number.MAX_SAFE_INTEGER
  let chain = 1
  for (let i = 1; i <= ZS_MAX_PAGES_PER_ZSPAGE; i++) {
    const waste = (i * PAGE_SIZE) % classSize
    // strict '<': the smallest i wins a tie, as in the kernel
    if (waste < minWaste) {
      minWaste = waste
      chain = i
    }
  }
  return chain
}

/** get_size_class_index(): the unmerged class index of a size that already includes the handle. */
export function sizeClassIndex(size: number): number {
  let idx = 0
  if (size > ZS_MIN_ALLOC_SIZE) idx = Math.ceil((size - ZS_MIN_ALLOC_SIZE) / ZS_SIZE_CLASS_DELTA)
  return idx < ZS_SIZE_CLASSES - 1 ? idx : ZS_SIZE_CLASSES - 1
}

export interface Geometry {
  /** Per unmerged index: the index of the class that actually serves it (pool->size_class[i]). */
  readonly merged: Uint8Array
  /** Per index: the class's object size (for a merged index, that of the serving class). */
  readonly size: Int32Array
  readonly pagesPerZspage: Int32Array
  readonly objsPerZspage: Int32Array
  /** Per index: 1 if the serving class is huge (1 page, 1 object: no in-object handle). */
  readonly huge: Uint8Array
  /** zram stores a page raw when its compressed length is >= this. */
  readonly hugeClassSize: number
  /** Largest objs_per_zspage over all classes. */
  readonly maxObjsPerZspage: number
}

/** The class table as zs_create_pool() builds it: from the largest class down, merging. */
function buildGeometry(): Geometry {
  const n = ZS_SIZE_CLASSES
  const merged = new Uint8Array(n)
  const size = new Int32Array(n)
  const pages = new Int32Array(n)
  const objs = new Int32Array(n)
  const huge = new Uint8Array(n)
  let hugeClassSize = 0
  let maxObjs = 0
  let prev = -1
  for (let i = n - 1; i >= 0; i--) {
    let s = ZS_MIN_ALLOC_SIZE + i * ZS_SIZE_CLASS_DELTA
    if (s > ZS_MAX_ALLOC_SIZE) s = ZS_MAX_ALLOC_SIZE
    const p = calculateZspageChainSize(s)
    const o = Math.floor((p * PAGE_SIZE) / s)
    // The first class (from the top) that is not 1-page/1-object starts the non-huge range; the
    // kernel subtracts ZS_HANDLE_SIZE - 1 because zs_malloc() adds the handle before the lookup.
    if (p !== 1 && o !== 1 && hugeClassSize === 0) hugeClassSize = s - (ZS_HANDLE_SIZE - 1)
    // can_merge(): same zspage length and same object count -> share the larger class.
    if (prev >= 0 && pages[prev] === p && objs[prev] === o) {
      merged[i] = prev
      size[i] = size[prev]
      pages[i] = p
      objs[i] = o
      huge[i] = huge[prev]
      continue
    }
    merged[i] = i
    size[i] = s
    pages[i] = p
    objs[i] = o
    // alloc_zspage(): SetZsHugePage when objs_per_zspage == 1 && pages_per_zspage == 1
    huge[i] = p === 1 && o === 1 ? 1 : 0
    if (o > maxObjs) maxObjs = o
    prev = i
  }
  return {
    merged,
    size,
    pagesPerZspage: pages,
    objsPerZspage: objs,
    huge,
    hugeClassSize,
    maxObjsPerZspage: maxObjs,
  }
}

export const GEOMETRY: Geometry = buildGeometry()

/** Index of the (merged) class that serves an object of len bytes, as zs_malloc() picks it. */
export function classIndexOf(len: number): number {
  return GEOMETRY.merged[sizeClassIndex(len + ZS_HANDLE_SIZE)]
}
