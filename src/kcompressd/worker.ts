/**
 * The kcompressd worker (a piscina task handler): compresses a batch of staged pages straight from
 * the shared staging ring with the device's codec and level, and returns the compressed bytes in
 * one transferable buffer. It only reads the ring; the main thread never rewrites a slot while a
 * batch that names it is in flight.
 */
import { move } from 'piscina'
import { isPromise } from '../codec/codec'
import { findCodec } from '../codec/registry'
import { type CompressTask, ENTRY_WORDS, FAULT_EXIT, FAULT_THROW, PAGE_SIZE, RESULT_WORDS } from './protocol'

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

export default async function compressBatch(task: CompressTask): Promise<unknown> {
  if (task.delayMs > 0) await sleep(task.delayMs)
  if (task.fault === FAULT_THROW) throw new Error('injected fault: worker threw mid-batch')
  if (task.fault === FAULT_EXIT) process.exit(1)
  const codec = findCodec(task.algorithm)
  if (!codec) throw new Error(`kcompressd worker: unknown algorithm ${JSON.stringify(task.algorithm)}`)
  const entries = task.entries
  const n = entries.length / ENTRY_WORDS
  const outs: Buffer[] = new Array<Buffer>(n)
  const pending: Promise<void>[] = []
  for (let i = 0; i < n; i++) {
    const page = Buffer.from(task.ring, entries[i * ENTRY_WORDS] * PAGE_SIZE, PAGE_SIZE)
    const r = codec.compress(page, task.level)
    if (isPromise(r)) pending.push(r.then((c) => { outs[i] = c }))
    else outs[i] = r
  }
  // An asynchronous codec (zstd) runs the batch's pages concurrently on libuv's pool.
  if (pending.length > 0) await Promise.all(pending)
  let bytes = 0
  for (let i = 0; i < n; i++) if (outs[i].length < task.hugeLimit) bytes += outs[i].length
  const headerBytes = (1 + n * RESULT_WORDS) * 4
  const ab = new ArrayBuffer(headerBytes + bytes)
  const header = new Uint32Array(ab, 0, 1 + n * RESULT_WORDS)
  const body = new Uint8Array(ab)
  header[0] = n
  let off = headerBytes
  for (let i = 0; i < n; i++) {
    const h = 1 + i * RESULT_WORDS
    const c = outs[i]
    header[h] = entries[i * ENTRY_WORDS]
    header[h + 1] = entries[i * ENTRY_WORDS + 1]
    header[h + 2] = entries[i * ENTRY_WORDS + 2]
    header[h + 3] = c.length
    if (c.length < task.hugeLimit) {
      body.set(c, off)
      off += c.length
    }
  }
  return move(ab)
}
