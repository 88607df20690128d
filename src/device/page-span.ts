import { PAGE_SIZE } from '../page'

/**
 * Walks a byte range page by page: for each page, its index, the offset inside it and the bytes
 * of the range that fall in it. One per loop, restarted by every request (not allocated per request).
 */
export class PageSpan {
  index = 0
  inPage = 0
  /** Bytes of the range in this page. */
  n = 0
  /** Bytes of the range before this page. */
  done = 0
  private pos = 0
  private len = 0

  /** Walk [pos, pos + len) from its first page. */
  start(pos: number, len: number): this {
    this.pos = pos
    this.len = len
    this.index = this.inPage = this.n = this.done = 0
    return this
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
