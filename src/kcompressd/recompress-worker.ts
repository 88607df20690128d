/**
 * The thread a recompression run compresses on (recompress-offload.ts): it gets the run's codec
 * parameters once, then batches of pages the main thread copied into shared memory, compresses
 * each item (one page, or a run of pages as one unit) into the batch's output and answers with the
 * lengths. It owns no state: the main thread decides what to keep and stores it.
 */
import { setPriority } from 'node:os'
import { parentPort } from 'node:worker_threads'
import type { CodecContext } from '../codec/codec'
import { findCodec } from '../codec/registry'
import type { RecompressJob, RecompressReply, RecompressWorkerMessage } from './recompress-offload'
import { PAGE_SIZE } from '../page'

const port = parentPort
if (port === null) throw new Error('recompress worker: not started as a worker thread')

let ctx: CodecContext | null = null

// Background work: the nice value is per thread on Linux (setpriority(PRIO_PROCESS, 0) is this
// thread), so at 19 this thread takes a CPU only when requests leave one free.
try {
  setPriority(0, 19)
} catch {
  // not permitted: it runs at the daemon's priority
}

port.on('message', (m: RecompressWorkerMessage) => {
  if ('config' in m) {
    const codec = findCodec(m.config.algorithm)
    if (!codec) throw new Error(`recompress worker: unknown algorithm ${JSON.stringify(m.config.algorithm)}`)
    ctx = codec.createContext(m.config)
    return
  }
  port.postMessage(compressBatch(m))
})

/** Item k: pages [first[k], first[k] + pages[k]) of the input, compressed into 2 x pages[k] pages of output from the same offset. */
function compressBatch(job: RecompressJob): RecompressReply {
  if (ctx === null) return { id: job.id, lens: null, error: 'no configuration before the first batch' }
  const input = new Uint8Array(job.input)
  const output = new Uint8Array(job.output)
  const lens = new Int32Array(job.items)
  try {
    for (let k = 0; k < job.items; k++) {
      const at = job.first[k] * PAGE_SIZE
      const len = job.pages[k] * PAGE_SIZE
      // 0: the result did not fit twice the input (the caller treats it as no gain).
      lens[k] = ctx.compress(input.subarray(at, at + len), output.subarray(2 * at, 2 * (at + len)))
    }
  } catch (err) {
    return { id: job.id, lens: null, error: String(err) }
  }
  return { id: job.id, lens, error: null }
}
