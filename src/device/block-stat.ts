/**
 * The block layer's per-device counters behind /sys/block/zramN/stat. A FUSE request is one I/O;
 * times are wall-clock milliseconds measured around each request (the kernel measures from bio
 * submission to completion, which over FUSE we cannot see).
 */
export class BlockStatCounters {
  readIos = 0
  readSectors = 0
  readTicksMs = 0
  writeIos = 0
  writeSectors = 0
  writeTicksMs = 0
  discardIos = 0
  discardSectors = 0
  discardTicksMs = 0
  flushIos = 0
  flushTicksMs = 0
  inFlight = 0
  ioTicksMs = 0
  timeInQueueMs = 0
  private busySinceMs = 0

  /** Call when a request starts; returns its start time for `end`. */
  begin(): number {
    const now = performance.now()
    if (this.inFlight === 0) this.busySinceMs = now
    this.inFlight++
    return now
  }

  /** Call when a request ends; returns its duration in ms. */
  end(startMs: number): number {
    const now = performance.now()
    this.inFlight--
    if (this.inFlight === 0) this.ioTicksMs += now - this.busySinceMs
    const took = now - startMs
    this.timeInQueueMs += took
    return took
  }

  reset(): void {
    this.readIos = this.readSectors = this.readTicksMs = 0
    this.writeIos = this.writeSectors = this.writeTicksMs = 0
    this.discardIos = this.discardSectors = this.discardTicksMs = 0
    this.flushIos = this.flushTicksMs = 0
    this.ioTicksMs = this.timeInQueueMs = 0
  }
}
