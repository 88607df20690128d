import { PAGE_SIZE } from './page-table'

/**
 * Walks a byte range page by page: for each page, its index, the offset inside it and the bytes
 * of the range that fall in it. One per request (not per page), shared by the read and write loops.
 */
export class PageSpan {
  index = 0
  inPage = 0
  /** Bytes of the range in this page. */
  n = 0
  /** Bytes of the range before this page. */
  done = 0
  private readonly pos: number
  private readonly len: number

  constructor(pos: number, len: number) {
    this.pos = pos
    this.len = len
  }

  /** Advance to the next page; false when the range is exhausted. */
  next(): boolean {
    this.done += this.n
    if (this.done >= this.len) return false
    const at = this.pos + this.done
    this.index = Math.floor(at / PAGE_SIZE)
    this.inPage = at - this.index * PAGE_SIZE
    this.n = Math.min(PAGE_SIZE - this.inPage, this.len - this.done)
    return true
  }

  /** The range covers this whole page (no read-modify-write needed). */
  get whole(): boolean {
    return this.n === PAGE_SIZE
  }
}
