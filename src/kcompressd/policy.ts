/**
 * The rules kcompressd decides by, as pure functions of what the caller knows: whether the writer
 * compresses a request itself or hands it to a worker, when requests take the workers' results,
 * how the two cost estimates move, how many pool objects a worker keeps reserved, and the default
 * worker count. No clock, no shared memory, no state: the inputs that cost a read (the sleepers
 * word, the clock) reach cheaperInline through its caller's HandoffState, read only when the rule
 * gets that far.
 */
import { RESERVE_SLOTS } from './protocol'

/**
 * The least compression work worth a handoff, whatever a wake-up costs. 12 us: below this a
 * handoff costs the writer more than it saves, even to a polling worker (single lz4 pages, 2-10 us
 * in a worker, lose; zstd pages, 15-70 us, gain: docs/benchmarks.md).
 */
export const MIN_STAGED_WORK_NS = 12_000

/**
 * The writer compresses a request of `pages` pages itself when that takes less than a wake-up, or
 * less than MIN_STAGED_WORK_NS. `compressNs`: per page in a worker, 0 while unknown (then the
 * request is staged, which measures it); `wakeNs`: per Atomics.notify, or 0 where no wake-up would
 * be paid (cheaperInline).
 */
export function inlineIsCheaper(pages: number, compressNs: number, wakeNs: number): boolean {
  return compressNs > 0 && pages * compressNs < Math.max(wakeNs, MIN_STAGED_WORK_NS)
}

/** What cheaperInline reads only when its rule needs it (each read costs: shared memory, the clock). */
export interface HandoffState {
  /** Every running worker sleeps: a page staged now costs a wake-up. */
  allAsleep(): boolean
  /** Milliseconds since the previous call (Infinity at the first): the caller reads its clock here and keeps the time. */
  msSinceLastWeighed(): number
  /** zramfuse/poll_us: how long a woken worker polls for the next page. */
  readonly pollUs: number
}

/**
 * The writer's choice for a request of `pages` pages (inlineIsCheaper). The least work worth a
 * handoff applies whatever the workers do. A wake-up counts only when one would be paid: not while
 * a worker is awake (polling or busy, it takes the page by itself), and not for a request within
 * poll_us of the previous one that only the wake-up kept inline, because the worker it wakes polls
 * and takes the next ones without another; counted there, it would keep a stream inline from the
 * moment its worker fell asleep until the next probe.
 */
export function cheaperInline(pages: number, compressNs: number, wakeNs: number, state: HandoffState): boolean {
  if (inlineIsCheaper(pages, compressNs, 0)) return true
  if (!state.allAsleep()) return false
  const sinceMs = state.msSinceLastWeighed()
  return sinceMs >= state.pollUs / 1000 && inlineIsCheaper(pages, compressNs, wakeNs)
}

/**
 * Every this many requests kept inline by cost, one is staged anyway, so that compress_ns and
 * wake_ns stay measured (multi-page requests refresh both anyway). No more often: a probe costs the
 * writer far more than its own work (one in 64 cost 9-11 us per page at lz4 4k QD1: docs/benchmarks.md).
 */
export const PROBE_EVERY = 1024

/** The `run`-th request kept inline by cost (counted from 1) is a probe: staged anyway. */
export function isProbe(run: number): boolean {
  return run % PROBE_EVERY === 0
}

/**
 * One request in SAMPLE_EVERY, drawn at random, has its main-thread time measured and counted that
 * many times: a clock read costs about as much as staging a page. A power of two.
 */
export const SAMPLE_EVERY = 16

/** xorshift32: the next draw from `x` (not 0). Which requests are timed must follow no pattern of the workload. */
export function nextDraw(x: number): number {
  x ^= x << 13
  x ^= x >>> 17
  x ^= x << 5
  return x
}

/** The request that drew `draw` is timed (one in SAMPLE_EVERY). */
export function isSampled(draw: number): boolean {
  return (draw & (SAMPLE_EVERY - 1)) === 0
}

/**
 * Requests take results this many at a time (or half a small ring): taken one at a time, at the
 * start of the next request, each take and its reservation's refill run cold (docs/benchmarks.md).
 */
export const COLLECT_BATCH = 16

/**
 * A request takes the workers' results only when `busy` of the ring's `size` slots are busy: a
 * batch (COLLECT_BATCH, or half a small ring), or too many for the request's `pages` to find free
 * slots. Below that the next batch takes them, or the main thread when requests stop (wait.ts).
 */
export function resultsDue(busy: number, size: number, pages: number): boolean {
  return busy >= Math.min(COLLECT_BATCH, size >> 1) || size - busy < pages
}

/** Weight of a new sample in compress_ns, and the most one sample counts for. */
export const EWMA = 1 / 16
export const MAX_SAMPLE_NS = 100_000

/** compress_ns after a worker reports compressing a page in `sampleNs` (> 0); `estimate` 0: none yet. */
export function nextCompressNs(estimate: number, sampleNs: number): number {
  const x = Math.min(MAX_SAMPLE_NS, sampleNs)
  return estimate === 0 ? x : estimate + (x - estimate) * EWMA
}

/** Wake-up samples kept: wake_ns is their median. */
export const WAKE_SAMPLES = 16
/** The most one wake-up sample counts for: the top of what an unpreempted one costs on a VM (10-30 us). */
export const MAX_WAKE_NS = 30_000

/** The sample of one Atomics.notify that took `ms` and woke `woken` (> 0) workers: ns per worker, clamped. */
export function wakeSampleNs(ms: number, woken: number): number {
  return Math.min(MAX_WAKE_NS, ms * 1e6 / woken)
}

/**
 * wake_ns from the first `n` (1..WAKE_SAMPLES) of `samples`: their median. Not their mean: a notify
 * during which the host takes the vCPU away measures 100 us and more, and with those in a mean,
 * zstd pages look cheaper to compress here than a wake-up. Not their least: then single lz4 pages
 * look worth staging. Each sample is clamped too (wakeSampleNs): under host steal more than half
 * the notifies can be preempted, and then the median itself keeps 128k lz4 requests inline.
 */
export function wakeEstimate(samples: Float64Array, n: number): number {
  const sorted = samples.slice(0, n).sort()
  return n % 2 === 1 ? sorted[n >> 1] : (sorted[(n >> 1) - 1] + sorted[n >> 1]) / 2
}

/** Reservations a worker starts with in a size class it meets. */
export const MIN_RESERVED = 4

/**
 * How many objects of a size class to keep reserved for a worker that found none there with
 * `depth` kept: twice as many, up to RESERVE_SLOTS, so that a burst of one class (the 32 similar
 * pages of a 128k write) finds enough between two refills; a class it never meets costs nothing.
 */
export function deeperReserve(depth: number): number {
  return depth === 0 ? MIN_RESERVED : depth * 2 < RESERVE_SLOTS ? depth * 2 : RESERVE_SLOTS
}

/**
 * Workers on two cores or fewer, by algorithm: one zstd worker gains 1.4-2.1x over inline on 128k,
 * 1M and deep 4k writes; lz4 keeps its 4k requests inline anyway, and the objects reserved for a
 * worker leave holes that raise mem_used_total over the kernel's lz4 (docs/benchmarks.md). Two
 * workers are no better than one on two cores.
 */
const TWO_CORE_WORKERS: Readonly<Record<string, number>> = { lz4: 0, zstd: 1 }

/**
 * The default worker count (zramfuse/workers 'auto') for `algorithm` on `cores` CPUs: on two or
 * fewer it follows the algorithm (TWO_CORE_WORKERS); with more, one per core beyond the one the
 * main thread and the FUSE threads need, up to 4 (not measured).
 */
export function defaultWorkersFor(algorithm: string, cores: number): number {
  if (cores <= 2) return TWO_CORE_WORKERS[algorithm] ?? 1
  return Math.min(4, cores - 1)
}
