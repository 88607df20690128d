/**
 * The automatic writeback policy (our extension, off unless enabled): zswap's shrinker with the
 * proactive start proposed in seed 000. Background writeback starts when the pool passes
 * accept_threshold_percent + 1% of its limit and writes back cold pages (the device's CLOCK hand:
 * a page referenced since the hand last passed gets a second chance) until the pool is back under
 * the threshold. It pauses for pauseMs whenever a foreground read or write had to touch the lower
 * file, so background writes do not queue in front of a reader that is waiting for the disk.
 */
export interface ShrinkerHost {
  /** Pool memory in use, in 4 KiB pages (mem_used_total / 4096). */
  poolPages(): number
  /** The pool's limit in pages (zramfuse/pool_limit, else mem_limit); 0 = none. */
  poolLimitPages(): number
  /** Up to max cold pages, chosen by the CLOCK hand. */
  coldPages(max: number): number[]
  /** Write those pages back; resolves with how many went. */
  writeBack(indexes: number[]): Promise<number>
  /** Give emptied zspages back (zs_compact), so written-back pages lower mem_used_total. */
  compact(): void
}

export interface ShrinkerStats {
  runs: number
  paused: number
  poolLimitHit: number
}

/** Pages per background writeback round (then the pool is compacted and the limit re-checked). */
const ROUND_PAGES = 256

export class Shrinker {
  enabled = false
  acceptThresholdPercent = 90
  pauseMs = 500
  runs = 0
  paused = 0
  poolLimitHit = 0
  private running: Promise<void> | null = null
  private pausedUntilMs = 0
  private readonly host: ShrinkerHost
  private readonly clockMs: () => number

  constructor(host: ShrinkerHost, clockMs: () => number = Date.now) {
    this.host = host
    this.clockMs = clockMs
  }

  /** The pool is at its limit: a store must go straight to the lower file. */
  atLimit(): boolean {
    const limit = this.host.poolLimitPages()
    return this.enabled && limit !== 0 && this.host.poolPages() >= limit
  }

  /** Call after stores: starts background writeback once the pool passes threshold + 1%. */
  poke(): void {
    if (!this.enabled || this.running !== null || this.clockMs() < this.pausedUntilMs) return
    const limit = this.host.poolLimitPages()
    if (limit === 0 || this.host.poolPages() * 100 <= limit * (this.acceptThresholdPercent + 1)) return
    this.runs++
    this.running = this.run(limit).finally(() => {
      this.running = null
    })
  }

  /** A foreground request touched the lower file. */
  pause(): void {
    this.pausedUntilMs = this.clockMs() + this.pauseMs
  }

  /** Resolves when no background writeback is running (tests, shutdown). */
  idle(): Promise<void> {
    return this.running ?? Promise.resolve()
  }

  stats(): ShrinkerStats {
    return { runs: this.runs, paused: this.paused, poolLimitHit: this.poolLimitHit }
  }

  private async run(limit: number): Promise<void> {
    const target = Math.floor(limit * this.acceptThresholdPercent / 100)
    while (this.enabled && this.host.poolPages() > target) {
      const wait = this.pausedUntilMs - this.clockMs()
      if (wait > 0) {
        this.paused++
        await new Promise((resolve) => setTimeout(resolve, wait))
        continue
      }
      const victims = this.host.coldPages(ROUND_PAGES)
      if (victims.length === 0) break
      let written: number
      try {
        written = await this.host.writeBack(victims)
      } catch {
        // The tier counted and logged it (lower_errors); back off before a store pokes again.
        this.pausedUntilMs = this.clockMs() + this.pauseMs
        break
      }
      this.host.compact()
      if (written === 0) break
    }
  }
}
