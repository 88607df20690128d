import { Errno, ErrnoError } from '../errno'
import { type LayoutOptions, type LowerLayout, ReadEpochs } from './layout'
import type { LowerFile } from './lower-file'

const BLOCK = 4096

/**
 * One 4 KiB block per page, found first-fit in a bitmap (zram_reserve_bdev_block): the kernel's
 * on-disk format. The block holds the decompressed page, or with compressed_writeback the
 * compressed bytes at its start (that saves CPU, not disk space). No checksum: the kernel has none.
 */
export class BlockLayout implements LowerLayout {
  readonly kind = 'block'
  bdCount = 0
  bdReads = 0
  bdWrites = 0
  readonly checksumErrors = 0
  private readonly file: LowerFile
  private readonly bitmap: Uint32Array
  private readonly blocks: number
  /** The lowest word that may have a zero bit (first-fit starts there). */
  private hint = 0
  private inFlight = 0
  private waiters: Array<() => void> = []
  private readonly epochs = new ReadEpochs()

  constructor(opts: LayoutOptions) {
    this.file = opts.file
    this.blocks = Math.min(opts.devicePages, Math.floor(opts.file.capacityBytes / BLOCK))
    this.bitmap = new Uint32Array(Math.ceil(this.blocks / 32))
  }

  append(_index: number, payload: Uint8Array, _algorithm: number, _huge: boolean): Promise<number> {
    const block = this.reserve()
    if (block < 0) throw new ErrnoError(Errno.ENOSPC, `no free block on the backing device (${this.blocks} blocks)`)
    const buf = Buffer.alloc(BLOCK)
    buf.set(payload)
    this.inFlight++
    return this.file.pwrite(buf, 0, BLOCK, block * BLOCK).then(
      () => {
        this.bdWrites++
        this.done()
        return block
      },
      (err: unknown) => {
        this.release(block)
        this.done()
        throw err
      },
    )
  }

  backpressure(maxInFlight: number): Promise<void> | null {
    if (this.inFlight < maxInFlight) return null
    return new Promise((resolve) => this.waiters.push(resolve))
  }

  flush(): Promise<void> {
    if (this.inFlight === 0) return Promise.resolve()
    return new Promise((resolve) => {
      const check = (): void => {
        if (this.inFlight === 0) resolve()
        else this.waiters.push(check)
      }
      check()
    })
  }

  async read(location: number, _index: number, payloadLen: number, out: Uint8Array): Promise<Uint8Array> {
    const e = this.epochs.beginRead()
    try {
      // A raw page goes straight into out; compressed bytes need a buffer of their own.
      const dst = payloadLen === BLOCK ? out : new Uint8Array(payloadLen)
      const n = await this.file.pread(dst, 0, payloadLen, location * BLOCK)
      if (n !== payloadLen) throw new ErrnoError(Errno.EIO, `short read of block ${location}: ${n} of ${payloadLen} bytes`)
      this.bdReads++
      return dst
    } finally {
      this.epochs.endRead(e)
    }
  }

  free(location: number, _payloadLen: number): void {
    this.epochs.defer(() => this.release(location))
  }

  private done(): void {
    this.inFlight--
    const w = this.waiters
    this.waiters = []
    for (const f of w) f()
  }

  private reserve(): number {
    const words = this.bitmap.length
    for (let w = this.hint; w < words; w++) {
      const v = this.bitmap[w]
      if (v === 0xffffffff) continue
      const bit = 31 - Math.clz32(~v & (v + 1))
      const block = w * 32 + bit
      if (block >= this.blocks) break
      this.bitmap[w] = v | (1 << bit)
      this.hint = w
      this.bdCount++
      return block
    }
    return -1
  }

  private release(block: number): void {
    const w = block >>> 5
    const m = 1 << (block & 31)
    if ((this.bitmap[w] & m) === 0) throw new Error(`backing block ${block} freed twice`)
    this.bitmap[w] &= ~m
    if (w < this.hint) this.hint = w
    this.bdCount--
  }
}
