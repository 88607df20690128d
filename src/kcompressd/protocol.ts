/**
 * The shared memory between the main thread and the kcompressd workers. Nothing per page travels
 * in a message: the main thread writes a page into a slot and publishes the slot's number; a
 * worker claims it, compresses it into the slot's result area and publishes the slot's number back
 * on its own completion ring. Messages carry only a worker's start-up data, codec parameters and
 * pool chunks (one it will write into, or a new one to fault in: W_MAIL).
 *
 *   pages     SharedArrayBuffer, fifoSize x 4 KiB   the staged pages (the staging ring's slots)
 *   results   SharedArrayBuffer, fifoSize x 4 KiB   a slot's compressed bytes, written by the worker
 *   meta      Int32Array: control words | per-worker words | submission queue | per-slot words
 *   cq        one Int32Array ring of fifoSize slot numbers per worker (single producer, single consumer)
 *
 * The submission queue holds the number of every QUEUED slot exactly once, so it never holds more
 * than fifoSize entries; positions run modulo `wrap` (a multiple of fifoSize below 2^30) so that
 * they never overflow an Int32. Workers take entries with a compare-and-swap on its head (many
 * consumers); the main thread is the only producer, and a consumer too when it compresses queued
 * pages itself (reset, workers turned off, a worker that died).
 *
 * Results written in place: the main thread keeps, per worker and per size class, a few pool
 * objects reserved (allocated and pinned, in shared chunks) on the worker's reservation rings
 * (resv, below). A worker whose result's class has one writes the result straight into it and
 * publishes the handle with the slot (slotResultHandle), so the main thread commits it by storing
 * the handle: it never reads the bytes a worker wrote on the other CPU (reading them cost the
 * writer ~1.3 us per page at 128k: docs/benchmarks.md, kcompressd). With none, the
 * worker writes its result area as before and the main thread reserves that class for next time.
 * A reservation names the pool's epoch (C_POOL_EPOCH, moved by reset): one from an older pool is
 * skipped by the worker, and a result written into one is dropped without touching the new pool.
 *
 * Slot states (slotState, Int32): FREE -> QUEUED (main) -> CLAIMED_BASE + worker (the worker's CAS)
 * -> FREE (main, once it has taken the result). QUEUED -> WRITING -> QUEUED is the main thread
 * rewriting a page that no worker has claimed yet, in place; a worker that meets WRITING waits
 * for the copy to end. The main thread never writes a slot in any other state, so a worker reads
 * a page that does not change under it.
 */

/** Control words, indexes into meta. */
export const C_SQ_HEAD = 0
export const C_SQ_TAIL = 1
/** Workers asleep (or about to sleep) on C_SQ_TAIL: the main thread notifies only then. */
export const C_SLEEPERS = 2
/** Bumped by a worker that wakes the main thread (Atomics.waitAsync on this word). */
export const C_MAIN_SEQ = 3
/**
 * Whether and when a worker wakes the main thread (bumping C_MAIN_SEQ): 0 never; MAIN_WAKE_IDLE
 * (drain) the next worker to go idle; MAIN_WAKE_SLEEP the next worker to go to sleep after its
 * poll window, i.e. once requests have stopped for poll_us.
 */
export const C_MAIN_ARMED = 4
export const MAIN_WAKE_IDLE = 1
export const MAIN_WAKE_SLEEP = 2
/** Generation of the codec parameters; a worker that sees a new one reads its ConfigMessage. */
export const C_CONFIG_GEN = 5
/**
 * Microseconds a worker keeps polling for pages (short timed waits, not counted in C_SLEEPERS)
 * after its queue ran empty, before it sleeps until notified; 0: sleep at once.
 */
export const C_POLL_US = 6
/** The pool's generation: moved when the pool is reset (reservations from before are void). */
export const C_POOL_EPOCH = 7
const CONTROL_WORDS = 8

/** Per-worker words: meta[workerBase(id) + W_*]. */
export const W_RUN = 0
/** Position after the last published entry of the worker's completion ring (written by the worker). */
export const W_CQ_TAIL = 1
/** Times the worker woke up and compressed what was queued (the batches counter). */
export const W_RUNS = 2
/** 1 once the worker has its codec context and waits for pages. */
export const W_READY = 3
/**
 * The reservation a worker is writing (handle and epoch), from before it takes the entry off its
 * ring until its result records it: if the thread dies meanwhile, the main thread frees it once.
 */
export const W_INFLIGHT = 4
export const W_INFLIGHT_EPOCH = 5
/**
 * Bumped by the main thread after it posts the worker a chunk to fault in (ChunkMessage.populate):
 * the worker reads its port when this moves, between pages and while it polls.
 */
export const W_MAIL = 6
/** Chunks the worker has faulted in (the populated counter). */
export const W_POPULATED = 7
export const WORKER_WORDS = 8
/** Worker ids, including ones still finishing while replacements start. */
export const MAX_WORKER_IDS = 128

export const FREE = 0
export const QUEUED = 1
export const WRITING = 2
export const CLAIMED_MAIN = 3
export const CLAIMED_BASE = 16

/** slotResult values below 0: no compressed bytes. 0 < n < 4096: compressed length; 4096: stored raw. */
export const RESULT_SKIPPED = -1
export const RESULT_FAILED = -2

export interface MetaLayout {
  control: number
  sq: number
  slotState: number
  slotTicket: number
  /** Compressed length or a RESULT_* code, written by the worker before it publishes the slot. */
  slotResult: number
  /** The ticket the worker read when it claimed the slot. */
  slotResultTicket: number
  /** Nanoseconds the worker spent compressing the slot (the cost estimate the writer uses). */
  slotResultNs: number
  /** > 0: the result was written into this reserved pool object (not the result area). */
  slotResultHandle: number
  /** The C_POOL_EPOCH of that reservation. */
  slotResultEpoch: number
  words: number
}

export function metaLayout(fifoSize: number): MetaLayout {
  const sq = CONTROL_WORDS + MAX_WORKER_IDS * WORKER_WORDS
  return {
    control: 0,
    sq,
    slotState: sq + fifoSize,
    slotTicket: sq + 2 * fifoSize,
    slotResult: sq + 3 * fifoSize,
    slotResultTicket: sq + 4 * fifoSize,
    slotResultNs: sq + 5 * fifoSize,
    slotResultHandle: sq + 6 * fifoSize,
    slotResultEpoch: sq + 7 * fifoSize,
    words: sq + 8 * fifoSize,
  }
}

export function workerBase(id: number): number {
  return CONTROL_WORDS + id * WORKER_WORDS
}

/** Queue positions wrap here: a multiple of fifoSize, so position % fifoSize stays continuous. */
export function queueWrap(fifoSize: number): number {
  return fifoSize * Math.floor(2 ** 30 / fifoSize)
}

/**
 * A worker's reservation rings (an Int32Array on a SharedArrayBuffer of its own): per size class
 * index, a head the worker advances, a tail the main thread advances (one producer, one consumer),
 * and RESERVE_SLOTS entries of RESV_ENTRY words.
 */
export const RESERVE_SLOTS = 64
export const R_HEAD = 0
export const R_TAIL = 1
const R_ENTRIES = 2
/** Entry words: the handle, its pool epoch, and where the payload is (ZsPool.payloadPieces). */
export const E_HANDLE = 0
export const E_EPOCH = 1
export const E_SERIAL0 = 2
export const E_OFF0 = 3
export const E_LEN0 = 4
export const E_SERIAL1 = 5
export const E_OFF1 = 6
export const RESV_ENTRY = 8
const RESV_CLASS_WORDS = R_ENTRIES + RESERVE_SLOTS * RESV_ENTRY

/** Words of a worker's reservation rings for `classes` size classes. */
export function resvWords(classes: number): number {
  return classes * RESV_CLASS_WORDS
}
/** Index of class c's R_HEAD. */
export function resvBase(c: number): number {
  return c * RESV_CLASS_WORDS
}
/** Index of the first word of entry position `pos` (any integer; taken modulo RESERVE_SLOTS) of class c. */
export function resvEntry(c: number, pos: number): number {
  return c * RESV_CLASS_WORDS + R_ENTRIES + (pos & (RESERVE_SLOTS - 1)) * RESV_ENTRY
}

/** A shared pool chunk a reservation lies in, sent to a worker before the reservation is published. */
export interface ChunkMessage {
  chunk: number
  buf: SharedArrayBuffer
  /** A new chunk: fault its pages in now, so the main thread's first writes into it do not fault. */
  populate?: boolean
}
/** The pool dropped that chunk: the worker lets go of it. */
export interface DropMessage {
  drop: number
}

/** Codec parameters, sent at start-up and whenever they change (before C_CONFIG_GEN moves). */
export interface ConfigMessage {
  gen: number
  algorithm: string
  level: number | null
  /** algorithm_params dict= bytes on a SharedArrayBuffer (shared, not copied), or null. */
  dict: Uint8Array | null
}

/** Test hooks, fixed for the life of a worker. */
export interface WorkerFaults {
  /** Sleep this long before each page (a slow worker); cut short when the worker is stopped. */
  delayMs: number
  /** Every `every`-th page a worker claims (1-based) throws or ends the thread; 0: never. */
  every: number
  kind: 'throw' | 'exit'
}

export interface WorkerData {
  id: number
  fifoSize: number
  meta: SharedArrayBuffer
  pages: SharedArrayBuffer
  results: SharedArrayBuffer
  cq: SharedArrayBuffer
  /** The worker's reservation rings (resvWords). */
  resv: SharedArrayBuffer
  /** Per result length (1..4096), the size class whose ring to take a reservation from (ReservationPool.sizeClassOf). */
  sizeClass: Uint16Array
  /** A result this long or longer is stored raw (the page itself), as the device does. */
  hugeLimit: number
  config: ConfigMessage
  faults: WorkerFaults
}
