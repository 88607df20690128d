/**
 * Which way write requests go, decided by what each way does to the requests that follow: the
 * writer's own costs (policy.ts inlineIsCheaper) cannot see that with no more CPUs than busy
 * threads a worker's compression takes CPU from the application, so that staging can cost the
 * application more than compressing inline does. On this VM (2 vCPUs, none halted) one zstd worker
 * gave 0.77x of inline at 4k QD1, where at QD32 it gave 1.81x; the daemon cannot tell the two apart
 * (the FUSE connection's `waiting` read 0 or 1 at both depths), but the time between requests can.
 *
 * For single-page requests a trial runs windows of WARMUP + WINDOW requests each way in turn
 * (RULE: the writer's cost rule as before; INLINE: the page compressed by the writer), PAIRS pairs
 * in alternating order, and takes for each window the median time from a request's start to the
 * next request's start over its last WINDOW requests, which a pause of the application does not
 * move. If INLINE's median is lower in every pair, and by more than MARGIN (the median of the
 * pairs' ratios), single pages go inline for the next RUN_WINDOWS windows' worth of requests, else
 * by the rule; then a new trial. Half of each trial's requests go the worse way: PAIRS / (2 * PAIRS
 * + RUN_WINDOWS) = 1 in 18 of all at first, so each trial that confirms the way it had doubles the
 * next run, up to MAX_RUN_WINDOWS (1 in 130): with fixed runs, zstd 4k libaio QD32 gave 0.89x of
 * the rule alone, its 6% of pages in INLINE windows taking twice as long.
 *
 * Larger requests always go by the rule: staging them gained 1.19-2.24x over inline in every run
 * measured (128k and 1M, lz4 and zstd, halting vCPUs or not; docs/benchmarks.md, kcompressd), and
 * at a millisecond a request a trial would take seconds. The interval after one is not counted.
 *
 * Off by default (zramfuse/outcome_trials): across the runs after the idle tick went, its effect
 * was inside the kcompressd bench's noise at 4k (docs/benchmarks.md).
 *
 * Pure bookkeeping on times the caller already has (the request's start, read for the block
 * statistics): no clock read, no allocation per request.
 */

export const WINDOW = 128
/**
 * Requests at the start of each window whose intervals are not counted: a switch of way leaves the
 * other way's state behind (a worker asleep, reserved objects freed after 100 ms with nothing staged).
 */
export const WARMUP = 64
export const PAIRS = 4
export const RUN_WINDOWS = 64
/** A trial that confirms the way before it doubles the next run, up to this many windows. */
export const MAX_RUN_WINDOWS = 512
export const MARGIN = 0.03

const RULE = 0
const INLINE = 1

export class WayTrial {
  /** RULE or INLINE: the way the current window (or run) sends single pages; the last trial's choice. */
  private way = RULE
  /** The last trial's choice, -1 before the first (since a restart). */
  private chosen = -1
  /** Window number within a trial (0 .. 2 * PAIRS - 1), or -1 while running a choice. */
  private window = 0
  /** Samples taken in the current window (negative: warm-up requests left); requests left in a run. */
  private count = -WARMUP
  private readonly samples = new Float64Array(WINDOW)
  private readonly medians = new Float64Array(2 * PAIRS)
  private readonly sorted = new Float64Array(WINDOW)
  /** The last request was a single page on trial (its interval counts), and when it started. */
  private lastCounts = false
  private lastStartMs = 0
  /** Windows the next run lasts: RUN_WINDOWS after a change of way, doubling while trials confirm it. */
  private runWindows = RUN_WINDOWS
  /** Trials finished, and of those the ones that chose INLINE. */
  trials = 0
  trialsInline = 0

  /**
   * A single-page write request starts at `nowMs` (a monotonic clock): the interval since the last
   * request is the outcome of the way that one went. Returns true when this request goes inline.
   */
  inlineNext(nowMs: number): boolean {
    if (this.lastCounts && this.window >= 0) this.record(nowMs - this.lastStartMs)
    this.lastCounts = true
    this.lastStartMs = nowMs
    if (this.window < 0 && this.count-- === 0) this.startTrial()
    return this.way === INLINE
  }

  /** A larger write request starts: the interval after the last one is not a single page's. */
  otherRequest(): void {
    this.lastCounts = false
  }

  /** Forget everything measured (the worker count changed): a trial starts over. */
  restart(): void {
    this.startTrial()
    this.lastCounts = false
    this.runWindows = RUN_WINDOWS
    this.chosen = -1
  }

  private startTrial(): void {
    this.window = 0
    this.count = -WARMUP
    this.way = wayOfWindow(0)
  }

  private record(intervalMs: number): void {
    const n = this.count
    if (n < 0) {
      this.count = n + 1
      return
    }
    this.samples[n] = intervalMs
    if (n + 1 < WINDOW) {
      this.count = n + 1
      return
    }
    const w = this.window
    this.medians[w] = this.median()
    this.count = -WARMUP
    if (w + 1 < 2 * PAIRS) {
      this.window = w + 1
      this.way = wayOfWindow(w + 1)
      return
    }
    const way = chooseWay(this.medians)
    this.runWindows = way === this.chosen ? Math.min(MAX_RUN_WINDOWS, this.runWindows * 2) : RUN_WINDOWS
    this.chosen = this.way = way
    this.trials++
    if (way === INLINE) this.trialsInline++
    this.window = -1
    this.count = this.runWindows * (WARMUP + WINDOW)
  }

  private median(): number {
    const s = this.sorted
    s.set(this.samples)
    s.sort()
    return (s[(WINDOW >> 1) - 1] + s[WINDOW >> 1]) / 2
  }
}

/** The way of window w of a trial: pairs alternate which way goes first (RULE INLINE, INLINE RULE, ...). */
export function wayOfWindow(w: number): number {
  const first = (w >> 1) & 1 ? INLINE : RULE
  return w & 1 ? 1 - first : first
}

/**
 * INLINE when every pair found INLINE's window faster and the median over the pairs of (INLINE
 * window's median / RULE window's median) is below 1 - MARGIN; `medians` in window order. Staging is
 * what the user asked for by running workers, so it is left only on consistent evidence: with the
 * median alone, zstd 4k libaio QD32 (staged ~2x faster when steady) went inline in 2 of 10 and 6
 * of 15 trials (two probes), in stretches where the machine was slow for both ways (window
 * medians 60-110 us against 27).
 */
export function chooseWay(medians: Float64Array): number {
  const ratios = new Float64Array(PAIRS)
  for (let p = 0; p < PAIRS; p++) {
    const a = medians[2 * p]
    const b = medians[2 * p + 1]
    const inline = wayOfWindow(2 * p) === INLINE ? a : b
    const rule = wayOfWindow(2 * p) === INLINE ? b : a
    ratios[p] = rule > 0 ? inline / rule : 1
  }
  ratios.sort()
  const mid = PAIRS & 1 ? ratios[PAIRS >> 1] : (ratios[(PAIRS >> 1) - 1] + ratios[PAIRS >> 1]) / 2
  return ratios[PAIRS - 1] < 1 && mid < 1 - MARGIN ? INLINE : RULE
}
