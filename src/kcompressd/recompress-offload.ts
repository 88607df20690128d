/**
 * Recompression's compression, off the JavaScript thread. A recompression run (src/device/
 * recompressor.ts) copies the pages it selected (decompressed) into a batch's shared input,
 * compress() hands the batch to one worker thread (recompress-worker.ts) that compresses every
 * item with the run's algorithm, and the run commits the results it still wants. The main thread
 * keeps only the cheap steps (decompressing the old object, about 2 us a page with lz4, and the
 * commit); the compression (zstd at a high level: 30-100 us a page, about 1 ms a 16-page unit) no
 * longer holds up requests.
 *
 * Not the staging ring of the write path: its slots are single pages compressed with the primary
 * algorithm, and its workers are tuned to the request stream. A run is a batch job with its own
 * algorithm, units of up to 16 pages, and one message each way per batch.
 */
import { join } from 'node:path'
import { Worker } from 'node:worker_threads'
import type { CodecParams } from '../codec/codec'
import { PAGE_SIZE } from '../page'

/** The codec and parameters of the run's priority (comp_algs[prio], params[prio]). */
export interface RecompressConfig extends CodecParams {
  algorithm: string
}

/** One batch: items[k] are pages [first[k], first[k] + pages[k]) of input. */
export interface RecompressJob {
  id: number
  items: number
  first: Int32Array
  pages: Int32Array
  input: SharedArrayBuffer
  output: SharedArrayBuffer
}

export interface RecompressReply {
  id: number
  /** Compressed length of each item (0: the result did not fit), or null when the batch failed. */
  lens: Int32Array | null
  error: string | null
}

export type RecompressWorkerMessage = { config: RecompressConfig } | RecompressJob

const WORKER_FILE = join(__dirname, __filename.endsWith('.ts') ? 'recompress-worker.ts' : 'recompress-worker.js')

/** Pages a batch holds (256 KiB of input): a few units, or 64 single pages. */
export const BATCH_PAGES = 64

/** A batch's memory and its items, filled by the run, compressed by the worker. */
export class RecompressBatch {
  readonly input = new SharedArrayBuffer(BATCH_PAGES * PAGE_SIZE)
  /** Twice the input: item k's result starts at twice its input offset, with twice its room. */
  readonly output = new SharedArrayBuffer(2 * BATCH_PAGES * PAGE_SIZE)
  readonly inputBytes = Buffer.from(this.input)
  readonly outputBytes = Buffer.from(this.output)
  readonly first = new Int32Array(BATCH_PAGES)
  readonly pages = new Int32Array(BATCH_PAGES)
  /** The page-table index of each item's first page. */
  readonly index = new Int32Array(BATCH_PAGES)
  items = 0
  used = 0

  clear(): void {
    this.items = 0
    this.used = 0
  }

  /** Room for an item of n pages. */
  fits(n: number): boolean {
    return this.used + n <= BATCH_PAGES
  }

  /** Append an item of n pages at page-table index `index`; returns where its pages go in inputBytes. */
  add(index: number, n: number): number {
    const k = this.items++
    this.first[k] = this.used
    this.pages[k] = n
    this.index[k] = index
    this.used += n
    return this.first[k] * PAGE_SIZE
  }

  /** Item k's result bytes (len of them). */
  result(k: number, len: number): Buffer {
    const at = 2 * this.first[k] * PAGE_SIZE
    return this.outputBytes.subarray(at, at + len)
  }
}

/** One worker thread for one run: started with the run's parameters, ended with the run. */
export class RecompressOffload {
  private readonly thread: Worker
  private nextId = 1
  private readonly waiting = new Map<number, { resolve: (lens: Int32Array) => void; reject: (err: Error) => void }>()
  private failure: Error | null = null

  constructor(config: RecompressConfig) {
    this.thread = new Worker(WORKER_FILE)
    // A run waits on its batches, which keeps the process alive; the thread itself must not.
    this.thread.unref()
    this.thread.on('message', (r: RecompressReply) => {
      const w = this.waiting.get(r.id)
      if (w === undefined) return
      this.waiting.delete(r.id)
      if (r.lens === null) w.reject(new Error(`recompression worker: ${r.error ?? 'failed'}`))
      else w.resolve(r.lens)
    })
    const fail = (err: Error): void => {
      this.failure ??= err
      for (const w of this.waiting.values()) w.reject(err)
      this.waiting.clear()
    }
    this.thread.on('error', fail)
    this.thread.on('exit', (code) => fail(new Error(`recompression worker exited (${code})`)))
    this.thread.postMessage({ config } satisfies RecompressWorkerMessage)
  }

  /** Compress every item of the batch; resolves with their lengths (0: did not fit). */
  compress(batch: RecompressBatch): Promise<Int32Array> {
    if (this.failure !== null) return Promise.reject(this.failure)
    const id = this.nextId++
    const done = new Promise<Int32Array>((resolve, reject) => this.waiting.set(id, { resolve, reject }))
    const job: RecompressJob = {
      id, items: batch.items, first: batch.first.slice(0, batch.items), pages: batch.pages.slice(0, batch.items),
      input: batch.input, output: batch.output,
    }
    this.thread.postMessage(job satisfies RecompressWorkerMessage)
    return done
  }

  /** End the thread (the run is over). */
  close(): Promise<number> {
    return this.thread.terminate()
  }
}
