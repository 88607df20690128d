/**
 * The pool's limits and its high-water mark: mem_limit, zramfuse/pool_limit, mem_used_max, and the
 * room a write may still take. A limit holds: a page with nowhere to go is refused (EIO) rather
 * than stored over it, logged once per episode of refusals.
 */
import { ZS_MAX_PAGES_PER_ZSPAGE } from '../pool/size-class'
import type { ZsPool } from '../pool/zs-pool'
import { Errno, ErrnoError } from '../errno'
import type { EventLog } from '../log'
import { PAGE_SIZE } from '../page'


export class PoolLimits {
  /** mem_limit in pages; 0 = none. */
  memLimitPages = 0
  /** zramfuse/pool_limit in pages; 0 = the shrinker uses mem_limit. */
  ownPages = 0
  /** mem_used_max in pages. */
  usedMaxPages = 0
  /** Writes are being refused at the limit (logged once per episode). */
  private episode = false

  /** stagedPages: pages staged and not yet committed (each may still need a zspage). */
  constructor(
    private readonly pool: ZsPool,
    private readonly stagedPages: () => number,
    private readonly log: EventLog,
    private readonly device: string,
  ) {}

  /** The pool's limit in pages: the smaller of zramfuse/pool_limit and mem_limit, of those set; 0 = none. */
  limitPages(): number {
    const own = this.ownPages
    const mem = this.memLimitPages
    return own === 0 ? mem : mem === 0 ? own : Math.min(own, mem)
  }

  /**
   * Pages the pool may still grow by under its limit, every staged page counted at its worst (its
   * commit opens a new zspage of ZS_MAX_PAGES_PER_ZSPAGE pages): a staged write was answered and
   * cannot fail later, so its room is held from the moment it is staged. Infinity without a limit.
   */
  headroomPages(): number {
    const limit = this.limitPages()
    if (limit === 0) return Infinity
    return limit - this.pool.totalPages - this.stagedPages() * ZS_MAX_PAGES_PER_ZSPAGE
  }

  /** Room for one more page's worst case. */
  hasRoom(): boolean {
    return this.headroomPages() >= ZS_MAX_PAGES_PER_ZSPAGE
  }

  /** mem_used_max follows the pool's high-water mark. */
  noteUsed(): void {
    const used = this.pool.totalPages
    if (used > this.usedMaxPages) this.usedMaxPages = used
  }

  /** mem_used_max_store: the peak restarts from the current use. */
  resetUsedMax(): void {
    this.usedMaxPages = this.pool.totalPages
  }

  /** A write refused at the limit at byte `pos`: logged once per episode, answered EIO. */
  refuse(pos: number, lower: string): ErrnoError {
    const limit = this.limitPages() * PAGE_SIZE
    if (!this.episode) {
      this.episode = true
      this.log.error({
        event: 'pool_limit_refused', device: this.device, limit, memUsedTotal: this.pool.totalPages * PAGE_SIZE, pos, lower,
      })
    }
    // Logged here once per episode; the FUSE layer need not log every refused request of it.
    return new ErrnoError(Errno.EIO, `the pool is at its limit of ${limit} bytes and the page has nowhere else to go`, true)
  }

  /** A write went through: an episode of refusals, if one was going on, is over. */
  accepted(): void {
    if (!this.episode) return
    this.episode = false
    this.log.info({ event: 'pool_limit_recovered', device: this.device, memUsedTotal: this.pool.totalPages * PAGE_SIZE })
  }

  /** reset_store: mem_limit and the peak go; zramfuse/pool_limit is the daemon's and stays. */
  reset(): void {
    this.memLimitPages = 0
    this.usedMaxPages = 0
  }
}
