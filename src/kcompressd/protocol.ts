/**
 * The messages between the main thread and a kcompressd worker. Page bytes never travel in a
 * message: a task names staging slots of a SharedArrayBuffer ring, a result carries only the
 * compressed bytes, in one transferable ArrayBuffer.
 *
 * Task.entries: ENTRY_WORDS Uint32 per page: slot, page index, ticket (the page's generation).
 * Result: Uint32 count, then RESULT_WORDS Uint32 per page (slot, page index, ticket, compressed
 * length), then the compressed bytes of each page back to back. A page whose compressed length
 * reaches `hugeLimit` carries no bytes: it is stored raw, from its slot.
 */
export const PAGE_SIZE = 4096
export const ENTRY_WORDS = 3
export const RESULT_WORDS = 4

/** Injected faults, for tests: none, throw, or end the worker thread mid-batch. */
export const FAULT_NONE = 0
export const FAULT_THROW = 1
export const FAULT_EXIT = 2

export interface CompressTask {
  ring: SharedArrayBuffer
  entries: Uint32Array
  algorithm: string
  level: number | null
  /** algorithm_params dict= bytes on a SharedArrayBuffer (shared with the worker, not copied), or null. */
  dict: Uint8Array | null
  hugeLimit: number
  /** Test hook: sleep this long before compressing (a slow worker). */
  delayMs: number
  fault: number
}
