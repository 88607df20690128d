import type { LowerFile } from './lower-file'

/**
 * How pages are laid out on the lower file. Two implementations behind one small interface (the
 * piscina task-queue habit): BlockLayout, one 4 KiB block per page (the kernel's way, raw pages or
 * compressed_writeback's compressed bytes), and PackedLayout, checksummed records packed densely
 * into large segments (seed 004's "tail packing").
 *
 * A location is a number the page table keeps in its value words (block index, or record byte
 * offset). Counters are in 4 KiB units, as bd_stat prints them.
 */
export interface LowerLayout {
  readonly kind: 'block' | 'packed'
  /**
   * Copy a page's payload (raw page or compressed bytes) towards the lower file. Resolves with its
   * location once it is written; rejects when the write failed (the page must stay in memory).
   * Throws ErrnoError ENOSPC synchronously when no space can be reserved.
   */
  append(index: number, payload: Uint8Array, algorithm: number, huge: boolean): Promise<number>
  /** Resolves once fewer than maxInFlight writes are outstanding; null when there is room now. */
  backpressure(maxInFlight: number): Promise<void> | null
  /** Write whatever append() still holds in memory. */
  flush(): Promise<void>
  /** Read a page's payload back; rejects with ErrnoError EIO when it cannot be trusted. */
  read(location: number, index: number, payloadLen: number, out: Uint8Array): Promise<Uint8Array>
  /** The page at location is gone (overwritten, discarded, reset): its space can be reused. */
  free(location: number, payloadLen: number): void
  readonly bdCount: number
  readonly bdReads: number
  readonly bdWrites: number
  readonly checksumErrors: number
}

export interface LayoutOptions {
  file: LowerFile
  /** Pages the device holds: the most blocks a regular file needs. */
  devicePages: number
}

/**
 * Space freed while reads may still be looking at it waits here (tagged with the read epoch) until
 * every read that started before the free has finished, so a reused block is never read as if it
 * still held the old page.
 */
export class ReadEpochs {
  private epoch = 0
  private readonly active = new Map<number, number>()
  private limbo: Array<{ epoch: number; release: () => void }> = []

  beginRead(): number {
    const e = this.epoch
    this.active.set(e, (this.active.get(e) ?? 0) + 1)
    return e
  }

  endRead(e: number): void {
    const n = (this.active.get(e) ?? 1) - 1
    if (n === 0) this.active.delete(e)
    else this.active.set(e, n)
    this.releaseReady()
  }

  /** Run release now if no read is in flight, else once the reads that could see it are done. */
  defer(release: () => void): void {
    if (this.active.size === 0) {
      release()
      return
    }
    this.limbo.push({ epoch: this.epoch, release })
    this.epoch++
  }

  private releaseReady(): void {
    if (this.limbo.length === 0) return
    let oldest = Infinity
    for (const e of this.active.keys()) if (e < oldest) oldest = e
    const keep: Array<{ epoch: number; release: () => void }> = []
    const ready: Array<{ epoch: number; release: () => void }> = []
    for (const item of this.limbo) (item.epoch < oldest ? ready : keep).push(item)
    if (ready.length === 0) return
    this.limbo = keep
    for (const item of ready) item.release()
  }
}

/** 4 KiB blocks touched by the byte range [pos, pos+len): what bd_reads/bd_writes count. */
export function blocksTouched(pos: number, len: number): number {
  if (len <= 0) return 0
  return Math.floor((pos + len - 1) / 4096) - Math.floor(pos / 4096) + 1
}
