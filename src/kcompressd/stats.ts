/**
 * What kcompressd counts and measures as it runs: the counters zramfuse/ prints (KcompressdStats),
 * bumped by every part in one Counters, and the two cost estimates the writer's choice reads.
 */
import { nextCompressNs, WAKE_SAMPLES, wakeEstimate, wakeSampleNs } from './policy'

export interface KcompressdStats {
  workers: number
  fifoSize: number
  /** Slots in use now: queued, being compressed, or with a result not yet committed. */
  fifoDepth: number
  /** Of those, slots a worker has claimed and not yet published. */
  inFlight: number
  /** Stagings (a page rewritten while still queued counts again). */
  queued: number
  /** Results committed into the pool. */
  completed: number
  /** Stagings superseded (overwrite, discard, reset) whose result was dropped or never computed. */
  stale: number
  /** Staged pages that could not be stored at all (dropped, failed_writes counted). */
  failed: number
  /** Pages compressed inline because the FIFO was full. */
  inlineFallbacks: number
  /** Pages compressed inline because handing them off cost more (policy.ts cheaperInline). */
  inlineCheaper: number
  /** Single pages compressed inline because the outcome trials found requests faster that way (way-trial.ts). */
  inlineMeasured: number
  /** Outcome trials finished, and of those the ones that sent single pages inline. */
  trials: number
  trialsInline: number
  fifoFullEvents: number
  maxFifoDepth: number
  /** Worker runs: a worker woke up and compressed what was queued until the queue was empty. */
  batches: number
  /** Pages a worker failed to compress (it threw or died); each was compressed again here. */
  workerErrors: number
  /** Results committed that a worker had written into a reserved pool object (no copy here). */
  written: number
  /** Pool objects reserved for workers now (allocated, not yet holding a page). */
  reserved: number
  /** New pool chunks a worker faulted in for the main thread (chunkAdded). */
  populated: number
  /** Atomics.notify calls the writer made to wake a sleeping worker. */
  workerWakeups: number
  /** Times a worker woke the main thread to take results (requests stopped, or drain() waited). */
  mainWakeups: number
  /** The writer's estimate of a wake-up (ns per notify) and of compressing one page (ns, in a worker). */
  wakeNs: number
  compressNs: number
  /**
   * Main-thread nanoseconds spent staging and ending requests (sampled: one request in SAMPLE_EVERY is timed), waking
   * workers, taking and committing results.
   */
  mainNs: number
  mainNsPerPage: number
}

/** The running counts behind KcompressdStats, each bumped where its event happens. */
export class Counters {
  queued = 0
  completed = 0
  stale = 0
  failed = 0
  inlineFallbacks = 0
  inlineCheaper = 0
  inlineMeasured = 0
  fifoFullEvents = 0
  maxFifoDepth = 0
  workerErrors = 0
  written = 0
  workerWakeups = 0
  mainWakeups = 0
  /** Main-thread milliseconds (KcompressdStats.mainNs). */
  mainMs = 0
}

/** The writer's estimates of compressing a page in a worker and of waking a sleeping one, in ns. */
export class CostEstimates {
  private compress = 0
  private wake = 0
  private readonly wakeSamples = new Float64Array(WAKE_SAMPLES)
  private wakeSampleCount = 0

  /** Per page in a worker (policy.ts nextCompressNs); 0 while unknown. */
  get compressNs(): number {
    return this.compress
  }

  /** Per worker woken (policy.ts wakeEstimate); 0 before the first wake-up. */
  get wakeNs(): number {
    return this.wake
  }

  /** A worker compressed a page in `ns` (> 0). */
  noteCompress(ns: number): void {
    this.compress = nextCompressNs(this.compress, ns)
  }

  /** An Atomics.notify took `ms` and woke `woken` workers. */
  noteWake(ms: number, woken: number): void {
    this.wakeSamples[this.wakeSampleCount++ % WAKE_SAMPLES] = wakeSampleNs(ms, woken)
    this.wake = wakeEstimate(this.wakeSamples, Math.min(this.wakeSampleCount, WAKE_SAMPLES))
  }

  /** New codec parameters: what a page cost with the old ones says nothing now. */
  codecChanged(): void {
    this.compress = 0
  }

  /** For tests (KcompressdTestView.setCosts): both as if measured; the next measurement moves them again. */
  set(compressNs: number, wakeNs: number): void {
    this.compress = compressNs
    this.wake = wakeNs
  }
}
