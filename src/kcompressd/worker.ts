/**
 * The kcompressd worker (a piscina task handler): compresses a batch of staged pages straight from
 * the shared staging ring with the device's codec and parameters, and returns the compressed bytes
 * in one transferable buffer. It only reads the ring; the main thread never rewrites a slot while a
 * batch that names it is in flight. One codec context per thread, kept while the parameters stay.
 */
import { move } from 'piscina'
import type { CodecContext } from '../codec/codec'
import { findCodec } from '../codec/registry'
import { type CompressTask, ENTRY_WORDS, FAULT_EXIT, FAULT_THROW, PAGE_SIZE, RESULT_WORDS } from './protocol'

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}

interface ThreadContext {
  algorithm: string
  level: number | null
  dict: Uint8Array | null
  ctx: CodecContext
}

let current: ThreadContext | null = null
/** Compressed pages of one batch back to back; a page takes at most 2 pages while compressing. */
let scratch = new Uint8Array(0)

/**
 * Each task brings a new view of the device's shared dictionary (structured clone), so the bytes
 * are compared: a memcmp per batch (microseconds for 100 KiB), never a new context per batch.
 */
function sameDict(a: Uint8Array | null, b: Uint8Array | null): boolean {
  if (a === null || b === null) return a === b
  return Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length))
}

/** The thread's context for the task's parameters (made again only when they change). */
function contextFor(task: CompressTask): CodecContext {
  const c = current
  if (c !== null && c.algorithm === task.algorithm && c.level === task.level && sameDict(c.dict, task.dict)) return c.ctx
  const codec = findCodec(task.algorithm)
  if (!codec) throw new Error(`kcompressd worker: unknown algorithm ${JSON.stringify(task.algorithm)}`)
  const ctx = codec.createContext({ level: task.level, dict: task.dict })
  current = { algorithm: task.algorithm, level: task.level, dict: task.dict, ctx }
  return ctx
}

export default async function compressBatch(task: CompressTask): Promise<unknown> {
  if (task.delayMs > 0) await sleep(task.delayMs)
  if (task.fault === FAULT_THROW) throw new Error('injected fault: worker threw mid-batch')
  if (task.fault === FAULT_EXIT) process.exit(1)
  const ctx = contextFor(task)
  const entries = task.entries
  const n = entries.length / ENTRY_WORDS
  // Pages below hugeLimit advance the offset; the last one compresses into up to 2 pages.
  const need = n * task.hugeLimit + 2 * PAGE_SIZE
  if (scratch.length < need) scratch = new Uint8Array(need)
  const lengths = new Uint32Array(n)
  let bytes = 0
  for (let i = 0; i < n; i++) {
    const page = new Uint8Array(task.ring, entries[i * ENTRY_WORDS] * PAGE_SIZE, PAGE_SIZE)
    const len = ctx.compress(page, scratch.subarray(bytes, bytes + 2 * PAGE_SIZE)) || PAGE_SIZE
    lengths[i] = len
    if (len < task.hugeLimit) bytes += len
  }
  const headerBytes = (1 + n * RESULT_WORDS) * 4
  const ab = new ArrayBuffer(headerBytes + bytes)
  const header = new Uint32Array(ab, 0, 1 + n * RESULT_WORDS)
  header[0] = n
  for (let i = 0; i < n; i++) {
    const h = 1 + i * RESULT_WORDS
    header[h] = entries[i * ENTRY_WORDS]
    header[h + 1] = entries[i * ENTRY_WORDS + 1]
    header[h + 2] = entries[i * ENTRY_WORDS + 2]
    header[h + 3] = lengths[i]
  }
  new Uint8Array(ab, headerBytes).set(scratch.subarray(0, bytes))
  return move(ab)
}
