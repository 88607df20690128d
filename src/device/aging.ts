/**
 * How old pages are: the device's clock (seconds since disksize, as zram's ac_time), `idle`
 * marking, and the CLOCK hand that picks the shrinker's cold pages with a second chance.
 */
import { Errno, ErrnoError } from '../errno'
import { SLOT_ALLOCATED, SLOT_DIRECT, SLOT_PP, SLOT_REF, SLOT_SAME, SLOT_STAGED, SLOT_UNIT, SLOT_WB } from './page-table'
import type { SlotStore } from './slot-store'

export class Aging {
  private readonly slots: SlotStore
  /** Wall clock in ms (access times, `idle <age>`); tests pass a controllable one. */
  readonly clockMs: () => number
  private initEpochSeconds = 0
  /** The CLOCK hand of the shrinker's second-chance scan. */
  private hand = 0

  constructor(slots: SlotStore, clockMs: () => number) {
    this.slots = slots
    this.clockMs = clockMs
  }

  /** disksize_store: access times count from now. */
  start(): void {
    this.initEpochSeconds = Math.floor(this.clockMs() / 1000)
  }

  /** Seconds since the device was initialised: the access time a touched page gets. */
  nowSeconds(): number {
    return Math.floor(this.clockMs() / 1000) - this.initEpochSeconds
  }

  /**
   * idle_store: mark every page with data in memory IDLE ('all'), or only those not accessed for
   * ageSeconds (clearing IDLE on the others); same-filled and written-back pages are skipped.
   */
  markIdle(age: 'all' | number): void {
    const table = this.slots.table
    if (table === null) throw new ErrnoError(Errno.EINVAL, 'idle on an uninitialised device')
    const cutoff = age === 'all' ? Infinity : this.nowSeconds() - age
    for (let index = 0; index < table.pages; index++) {
      const meta = table.meta[index]
      if ((meta & SLOT_ALLOCATED) === 0 || (meta & (SLOT_WB | SLOT_SAME)) !== 0) continue
      this.slots.setIdle(index, table.atime[index] < cutoff)
    }
  }

  /**
   * The shrinker's victims: a CLOCK sweep over the page table. A page referenced since the hand
   * last passed loses its reference bit and stays (second chance); one that was not is taken.
   */
  coldPages(max: number): number[] {
    const table = this.slots.table
    const out: number[] = []
    if (table === null) return out
    const pages = table.pages
    for (let scanned = 0; scanned < 2 * pages && out.length < max; scanned++) {
      const index = this.hand
      this.hand = index + 1 === pages ? 0 : index + 1
      const meta = table.meta[index]
      // Unit members are not written back (see lower-tier.ts eligible()): the CLOCK passes them by.
      if ((meta & SLOT_ALLOCATED) === 0 || (meta & (SLOT_SAME | SLOT_STAGED | SLOT_WB | SLOT_PP | SLOT_UNIT | SLOT_DIRECT)) !== 0) continue
      if (meta & SLOT_REF) this.slots.clearReferenced(index)
      else out.push(index)
    }
    return out
  }

  reset(): void {
    this.hand = 0
  }
}
