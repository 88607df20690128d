import { resolve as resolvePath } from 'node:path'
import { BlockLayout } from '../backing/block-layout'
import type { LowerLayout } from '../backing/layout'
import { errnoOf, LowerFile } from '../backing/lower-file'
import { PackedLayout } from '../backing/packed-layout'
import { Errno, ErrnoError } from '../errno'
import type { EventLog } from '../log'
import { WB_HUGE, WB_IDLE, WB_INCOMPRESSIBLE, type WritebackRequest } from '../writeback/writeback-request'
import {
  SLOT_ALLOCATED, SLOT_DIRECT, SLOT_HUGE, SLOT_IDLE, SLOT_INCOMPRESSIBLE, SLOT_PP, SLOT_SAME, SLOT_STAGED, SLOT_UNIT,
  SLOT_WB,
} from './page-table'
import { PAGE_SIZE } from '../page'
import type { PageTableView, SlotStore } from './slot-store'

/** What the lower tier needs from its device (the device stays the only owner of its pool). */
export interface LowerTierHost {
  readonly pageTable: PageTableView | null
  /** Selection (SLOT_PP) and relocation go through the slot store, the table's one writer. */
  readonly slots: SlotStore
  /** Copy the page's pool object (compressed bytes, or the raw page when huge) into out; its size. */
  copyPoolObject(index: number, out: Buffer): number
  /** Decompress the page from the pool into out (4096 bytes). */
  decompressPage(index: number, out: Buffer): void
  /** Free the page's pool object and point the slot at the lower file. */
  movedToLower(index: number, location: number, size: number, huge: boolean): void
  /** Decompress a payload read back from the lower file with the algorithm of priority prio. */
  decompressPayload(src: Uint8Array, out: Buffer, prio: number): void | Promise<void>
  /** The primary codec's index in the registry, stored in packed records of direct stores. */
  readonly algorithmId: number
  /** The registry index of the codec that compressed this page (recompressed pages have their own). */
  algorithmIdOf(index: number): number
}

export interface LowerTierStats {
  bdCount: number
  bdReads: number
  bdWrites: number
  writtenBackPages: number
  checksumErrors: number
  lowerErrors: number
  segmentsCleaned: number
  /** Bytes of live records on the lower file (packed), or of blocks in use (page, compressed). */
  liveBytes: number
}

/**
 * The writeback tier of one device (zram's CONFIG_ZRAM_WRITEBACK): the backing file, its on-disk
 * layout, writeback_limit accounting, and the writeback of selected pages. One writeback runs at a
 * time per device (explicit requests and the shrinker queue behind each other); reads of written-
 * back pages run concurrently with it.
 */
export class LowerTier {
  // Configuration: backing_dev and compressed_writeback before init; the rest any time. All but
  // backing_dev survive a reset, as in zram_reset_device.
  backingPath: string | null = null
  compressed = false
  /** zramfuse/writeback_packed: pack compressed records into segments (when compressed). */
  packed = true
  limitEnable = false
  /** writeback_limit, in 4 KiB units; consumed only while limitEnable. */
  limit = 0
  batchSize = 32
  private file: LowerFile | null = null
  private layout: LowerLayout | null = null
  private queue: Promise<unknown> = Promise.resolve()
  private writtenBackPages = 0
  private lowerErrors = 0
  private inErrorEpisode = false
  private lastError: unknown = null
  private readonly scratch = Buffer.alloc(PAGE_SIZE)
  private readonly log: EventLog
  private readonly host: LowerTierHost

  constructor(host: LowerTierHost, log: EventLog) {
    this.host = host
    this.log = log
  }

  get hasBackingDev(): boolean {
    return this.file !== null
  }

  /** The format in use: page (kernel default), compressed (compressed_writeback), packed (ours). */
  get format(): 'page' | 'compressed' | 'packed' {
    return !this.compressed ? 'page' : this.packed ? 'packed' : 'compressed'
  }

  /** backing_dev_store (the caller checks EBUSY): open, or create 0600, the file. */
  setBackingDev(path: string): void {
    const file = LowerFile.open(path)
    this.file?.close()
    this.file = file
    this.backingPath = resolvePath(path)
    this.log.info({ event: 'backing_dev', path: this.backingPath, blockDevice: file.isBlockDevice })
  }

  /** disksize_store: the layout is fixed for the device's life (compressed_writeback is init-time). */
  initialise(pages: number): void {
    if (this.file === null) return
    this.layout = this.format === 'packed'
      ? new PackedLayout({ file: this.file, devicePages: pages })
      : new BlockLayout({ file: this.file, devicePages: pages })
  }

  /**
   * reset: drop the backing device (reset_bdev). compressed_writeback, writeback_batch_size,
   * writeback_limit and writeback_limit_enable stay: they live in struct zram, not in the stats
   * zram_reset_device clears (mainline; zram.rst says the limit resets, the code does not).
   */
  reset(): void {
    this.layout = null
    this.file?.close()
    this.file = null
    this.backingPath = null
    this.queue = Promise.resolve()
    this.writtenBackPages = this.lowerErrors = 0
    this.inErrorEpisode = false
  }

  close(): void {
    this.layout = null
    this.file?.close()
    this.file = null
  }

  stats(): LowerTierStats {
    const l = this.layout
    return {
      bdCount: l?.bdCount ?? 0,
      bdReads: l?.bdReads ?? 0,
      bdWrites: l?.bdWrites ?? 0,
      writtenBackPages: this.writtenBackPages,
      checksumErrors: l?.checksumErrors ?? 0,
      lowerErrors: this.lowerErrors,
      segmentsCleaned: l instanceof PackedLayout ? l.segmentsCleaned : 0,
      liveBytes: l instanceof PackedLayout ? l.liveBytes : (l?.bdCount ?? 0) * PAGE_SIZE,
    }
  }

  /** Resolves once the packed layout has no hole punch pending (for tests and the bench). */
  punchesSettled(): Promise<void> {
    return this.layout instanceof PackedLayout ? this.layout.punchesSettled() : Promise.resolve()
  }

  /** Bytes the lower file occupies on its file system (for tests and the bench). */
  allocatedBytes(): number {
    return this.file?.allocatedBytes() ?? 0
  }

  /**
   * writeback_store after parsing: select the pages (scan_slots_for_writeback), largest first as
   * the kernel's post-processing buckets take them, and write them back. Rejects with the
   * kernel's errno: EIO when writeback_limit runs out, ENOSPC when the lower file is full, the
   * lower file's own errno when a write failed; the pages written before that stay written.
   */
  writeback(req: WritebackRequest): Promise<number> {
    const run = this.queue.then(() => this.writebackPages(this.select(req)))
    this.queue = run.catch(() => undefined)
    return run
  }

  /** Queue a writeback of pages chosen elsewhere (the shrinker); same rules, same queue. */
  writebackChosen(indexes: number[]): Promise<number> {
    const table = this.host.pageTable
    const chosen: number[] = []
    if (table !== null) {
      for (const index of indexes) {
        // SLOT_PP: a recompression or another writeback holds the page.
        if (!eligible(table.meta[index]) || (table.meta[index] & SLOT_PP) !== 0) continue
        this.host.slots.select(index)
        chosen.push(index)
      }
    }
    const run = this.queue.then(() => this.writebackPages(chosen))
    this.queue = run.catch(() => undefined)
    return run
  }

  private select(req: WritebackRequest): number[] {
    const table = this.host.pageTable
    const chosen: number[] = []
    // A reset between the request and its turn in the queue: nothing to write back.
    if (table === null) return chosen
    for (const scan of req.scans) {
      for (let index = scan.lo; index < scan.hi; index++) {
        const meta = table.meta[index]
        if (!eligible(meta) || (meta & SLOT_PP) !== 0) continue
        if ((scan.mode & WB_IDLE) !== 0 && (meta & SLOT_IDLE) === 0) continue
        if ((scan.mode & WB_HUGE) !== 0 && (meta & SLOT_HUGE) === 0) continue
        if ((scan.mode & WB_INCOMPRESSIBLE) !== 0 && (meta & SLOT_INCOMPRESSIBLE) === 0) continue
        this.host.slots.select(index)
        chosen.push(index)
      }
    }
    // Largest objects first (zram's pp buckets); huge pages have size 4096.
    return chosen.sort((a, b) => table.size(b) - table.size(a) || a - b)
  }

  private async writebackPages(indexes: number[]): Promise<number> {
    const table = this.host.pageTable
    const layout = this.layout
    if (table === null || layout === null) return 0
    let failure: ErrnoError | null = null
    let written = 0
    const inFlight: Array<Promise<void>> = []
    let i = 0
    for (; i < indexes.length; i++) {
      if (this.host.pageTable !== table || this.layout !== layout) break
      const index = indexes[i]
      const wait = layout.backpressure(this.batchSize)
      if (wait !== null) await wait
      if ((table.meta[index] & SLOT_PP) === 0 || (table.meta[index] & SLOT_ALLOCATED) === 0) continue
      if (this.limitEnable && this.limit === 0) {
        failure = new ErrnoError(Errno.EIO, 'writeback_limit exhausted')
        break
      }
      const huge = (table.meta[index] & SLOT_HUGE) !== 0
      let size: number
      if (this.compressed) {
        size = this.host.copyPoolObject(index, this.scratch)
      } else {
        this.host.decompressPage(index, this.scratch)
        size = PAGE_SIZE
      }
      let pending: Promise<number>
      try {
        pending = layout.append(index, this.scratch.subarray(0, size), this.compressed ? this.host.algorithmIdOf(index) : this.host.algorithmId, huge)
      } catch (err) {
        failure = err instanceof ErrnoError ? err : new ErrnoError(Errno.EIO, String(err))
        break
      }
      // Counted at submission, given back if the write fails (zram_account_writeback_*).
      if (this.limitEnable && this.limit > 0) this.limit--
      inFlight.push(pending.then(
        (location) => {
          this.endErrorEpisode()
          if (this.commit(table, layout, index, location, size, huge)) written++
        },
        (err: unknown) => {
          if (this.limitEnable) this.limit++
          failure = this.lowerError(err)
        },
      ))
    }
    try {
      await layout.flush()
    } catch (err) {
      failure = this.lowerError(err)
    }
    await Promise.all(inFlight)
    // release_pp_slot: pages selected but not written back lose the mark.
    for (const index of indexes) this.host.slots.deselect(index)
    if (layout instanceof PackedLayout && this.layout === layout) await this.cleanSegments(table, layout)
    if (failure !== null) throw failure
    return written
  }

  /** zram_writeback_complete: the page changed meanwhile (lost PP) -> the copy is dropped. */
  private commit(table: PageTableView, layout: LowerLayout, index: number, location: number, size: number, huge: boolean): boolean {
    if (this.host.pageTable !== table || this.layout !== layout || (table.meta[index] & SLOT_PP) === 0) {
      layout.free(location, size)
      return false
    }
    this.host.movedToLower(index, location, this.compressed ? size : PAGE_SIZE, this.compressed && huge)
    this.writtenBackPages++
    return true
  }

  private async cleanSegments(table: PageTableView, layout: PackedLayout): Promise<void> {
    try {
      await layout.clean({
        isAt: (index, location) => this.host.pageTable === table && (table.meta[index] & SLOT_WB) !== 0 &&
          table.location(index) === location,
        relocate: (index, from, to) => {
          if (this.host.pageTable !== table || (table.meta[index] & SLOT_WB) === 0 || table.location(index) !== from) return false
          const size = table.size(index)
          this.host.slots.relocate(index, to)
          layout.free(from, size)
          return true
        },
      })
    } catch (err) {
      this.lowerError(err)
    }
  }

  /**
   * Store pages straight on the lower file (the pool is at its limit): append them all, write them
   * with as few writes as the layout allows, and resolve with each one's location. Rejects when
   * the lower file cannot take them (full, failing, writeback_limit spent).
   */
  async storeDirect(indexes: number[], payloads: Uint8Array[], huge: boolean[]): Promise<number[]> {
    const layout = this.layout
    if (layout === null) throw new ErrnoError(Errno.ENODEV, 'no backing device')
    // Pages written to the lower file spend writeback_limit as writeback does (one per page,
    // given back if the write fails); a budget that cannot take the whole request takes none of it.
    const budget = this.limitEnable ? indexes.length : 0
    if (budget > this.limit) throw new ErrnoError(Errno.EIO, 'writeback_limit exhausted')
    this.limit -= budget
    const pending: Array<Promise<number>> = []
    let failure: unknown = null
    try {
      for (let i = 0; i < indexes.length; i++) {
        pending.push(layout.append(indexes[i], payloads[i], this.host.algorithmId, huge[i]))
      }
    } catch (err) {
      failure = err
    }
    // Watched from now on: a write that fails while flush() waits must not reject unhandled.
    const settled = Promise.allSettled(pending)
    // Always flush: appends taken before a failure sit in the open chunk until it is written.
    await layout.flush()
    const results = await settled
    for (const r of results) if (failure === null && r.status === 'rejected') failure = r.reason
    if (failure === null) {
      this.endErrorEpisode()
      this.writtenBackPages += results.length
      return results.map((r) => (r as PromiseFulfilledResult<number>).value)
    }
    // Whatever did get written is given back, and the budget with it; the caller decides where the pages go.
    this.limit += budget
    results.forEach((r, i) => {
      if (r.status === 'fulfilled') layout.free(r.value, payloads[i].length)
    })
    throw this.lowerError(failure)
  }

  /** Give back a location that was written but not taken (the page changed meanwhile). */
  drop(location: number, size: number): void {
    this.layout?.free(location, size)
  }

  /** A written-back page is gone (overwrite, discard): its place on the lower file is free. */
  release(table: PageTableView, index: number): void {
    this.layout?.free(table.location(index), table.size(index))
  }

  /**
   * Read a written-back page into out (4096 bytes): the raw block, or the compressed payload
   * decompressed. Rejects with EIO when the data cannot be trusted (checksum) or read.
   */
  async load(table: PageTableView, index: number, out: Buffer): Promise<void> {
    const layout = this.layout
    if (layout === null) throw new ErrnoError(Errno.EIO, `page ${index} is written back but the device has no lower file`)
    const size = table.size(index)
    const huge = (table.meta[index] & SLOT_HUGE) !== 0
    let payload: Uint8Array
    try {
      payload = await layout.read(table.location(index), index, size, out)
    } catch (err) {
      if (err instanceof ErrnoError) throw err
      throw this.lowerError(err)
    }
    if (size === PAGE_SIZE || huge) {
      if (payload !== out) out.set(payload.subarray(0, PAGE_SIZE))
      return
    }
    await this.host.decompressPayload(payload, out, table.priority(index))
  }

  /** Count and log a lower-file failure once per episode; the errno the caller should see. */
  private lowerError(err: unknown): ErrnoError {
    // One failed write carries many pages (a packed chunk): count the I/O once.
    if (err !== this.lastError) this.lowerErrors++
    this.lastError = err
    const errno = errnoOf(err, Errno.EIO)
    if (!this.inErrorEpisode) {
      this.inErrorEpisode = true
      this.log.error({ event: 'lower_file_error', path: this.backingPath, errno, err: String(err) })
    }
    return err instanceof ErrnoError ? err : new ErrnoError(errno, `lower file: ${String(err)}`)
  }

  private endErrorEpisode(): void {
    if (!this.inErrorEpisode) return
    this.inErrorEpisode = false
    this.log.info({ event: 'lower_file_recovered', path: this.backingPath })
  }
}

/**
 * A page writeback can take: data in the pool (not same-filled, staged or already written back,
 * and no newer contents on their way to the lower file: SLOT_DIRECT; its old object is stale),
 * and not a member of a multi-page unit (our extension): its bytes are not its own, and units hold
 * data that is already cold and dense; writing one member back would only decode the unit for it.
 */
function eligible(meta: number): boolean {
  return (meta & SLOT_ALLOCATED) !== 0 && (meta & (SLOT_SAME | SLOT_STAGED | SLOT_WB | SLOT_UNIT | SLOT_DIRECT)) === 0
}
