/**
 * What a `writeback` write asks for, once parsed: a list of scans over the page table, each a
 * mode (which pages qualify) and a range of page indexes [lo, hi). zram's writeback_store scans
 * once per parameter, in order, and then writes back every page the scans selected.
 */
export const WB_PAGE = 0
export const WB_HUGE = 1 << 0
export const WB_IDLE = 1 << 1
export const WB_INCOMPRESSIBLE = 1 << 2

export interface WritebackScan {
  /** WB_* bits a page must all have; 0 = any page with data (page_index, page_indexes). */
  mode: number
  lo: number
  hi: number
}

export interface WritebackRequest {
  scans: WritebackScan[]
}

export const MODE_NAMES: Readonly<Record<string, number>> = {
  idle: WB_IDLE,
  huge: WB_HUGE,
  huge_idle: WB_IDLE | WB_HUGE,
  incompressible: WB_INCOMPRESSIBLE,
}
