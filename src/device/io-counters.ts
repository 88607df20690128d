/** The request-level counters of zram_stats (the slot-level ones are the slot store's). */
export class IoCounters {
  failedReads = 0
  failedWrites = 0
  /**
   * Requests refused for lying past the end. The kernel's zram counted them as io_stat's invalid_io
   * until 6.4; since then the block layer refuses them before zram sees them and io_stat prints a
   * literal 0 there. We count them (not as failed_writes) and show them in zramfuse/invalid_io.
   */
  invalidIo = 0
  notifyFree = 0

  reset(): void {
    this.failedReads = this.failedWrites = this.invalidIo = this.notifyFree = 0
  }
}
