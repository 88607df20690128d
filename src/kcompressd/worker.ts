/**
 * A kcompressd worker: a long-lived thread that sleeps on the submission queue (Atomics.wait),
 * claims whatever is queued, compresses each page from its staging slot into the slot's result
 * area with the device's codec parameters, and publishes the slot on its completion ring. It
 * owns no state: the main thread commits (or drops) every result. See protocol.ts for the layout.
 */
import { readlinkSync } from 'node:fs'
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads'
import { performance } from 'node:perf_hooks'
import type { CodecContext } from '../codec/codec'
import { findCodec } from '../codec/registry'
import {
  C_CONFIG_GEN, C_MAIN_ARMED, C_MAIN_SEQ, C_POLL_US, C_SLEEPERS, C_SQ_HEAD, C_SQ_TAIL, CLAIMED_BASE, type ConfigMessage, metaLayout,
  QUEUED, queueWrap, RESULT_FAILED, RESULT_SKIPPED, W_CQ_TAIL, W_READY, W_RUN, W_RUNS, workerBase, type WorkerData, WRITING,
} from './protocol'
import { PAGE_SIZE } from '../page'

const data = workerData as WorkerData
const n = data.fifoSize
const wrap = queueWrap(n)
const layout = metaLayout(n)
const meta = new Int32Array(data.meta)
const sq = meta.subarray(layout.sq, layout.sq + n)
const state = meta.subarray(layout.slotState, layout.slotState + n)
const ticket = meta.subarray(layout.slotTicket, layout.slotTicket + n)
const result = meta.subarray(layout.slotResult, layout.slotResult + n)
const resultTicket = meta.subarray(layout.slotResultTicket, layout.slotResultTicket + n)
const resultNs = meta.subarray(layout.slotResultNs, layout.slotResultNs + n)
const cq = new Int32Array(data.cq)
const base = workerBase(data.id)
const claimed = CLAIMED_BASE + data.id
const pageViews: Uint8Array[] = []
const resultViews: Uint8Array[] = []
for (let s = 0; s < n; s++) {
  pageViews.push(new Uint8Array(data.pages, s * PAGE_SIZE, PAGE_SIZE))
  resultViews.push(new Uint8Array(data.results, s * PAGE_SIZE, PAGE_SIZE))
}

/** One timed wait while polling (the kernel adds its timer slack, 50 us for a normal thread). */
const POLL_STEP_MS = 0.05
/**
 * The worker took a page since it last slept until woken; then it polls before sleeping, after
 * single pages (4k requests) too. Measured (bench/kcompressd.ts, zstd 4k QD1, 5 runs): polling
 * after single pages took the writer's wake-ups from 553 to 1.2 per 1000 pages, 0.89x -> 1.04x of
 * inline. It used to poll only after 4 pages, when every single lz4 page was staged and polling
 * between them cost the writer more (0.77-0.79x of inline); now the writer keeps such requests
 * inline (kcompressd.ts, inlineIsCheaper: less compression than a wake-up or 12 us).
 */
let tookPages = false

let config: ConfigMessage = data.config
let ctx: CodecContext = contextFor(config)
let cqTail = 0
let claimedPages = 0
let idleSince = true

function contextFor(c: ConfigMessage): CodecContext {
  const codec = findCodec(c.algorithm)
  if (!codec) throw new Error(`kcompressd worker: unknown algorithm ${JSON.stringify(c.algorithm)}`)
  return codec.createContext({ level: c.level, dict: c.dict })
}

/** The main thread posts the parameters before it moves C_CONFIG_GEN: read up to that one. */
function refreshConfig(gen: number): void {
  while (config.gen !== gen) {
    const m = receiveMessageOnPort(parentPort as never)
    if (m === undefined) throw new Error(`kcompressd worker: configuration ${gen} announced but not sent`)
    config = m.message as ConfigMessage
  }
  ctx = contextFor(config)
}

/** Take the next queued slot, or -1 when the queue is empty. */
function claim(): number {
  for (;;) {
    const head = Atomics.load(meta, C_SQ_HEAD)
    if (head === Atomics.load(meta, C_SQ_TAIL)) return -1
    const slot = sq[head % n]
    if (Atomics.compareExchange(meta, C_SQ_HEAD, head, head + 1 === wrap ? 0 : head + 1) !== head) continue
    // The entry is ours; the slot may still be WRITING (the main thread rewriting it in place).
    let was: number
    while ((was = Atomics.compareExchange(state, slot, QUEUED, claimed)) === WRITING) { /* a 4 KiB copy */ }
    // Every queued slot is in the queue once and only the main thread takes one back: never seen.
    if (was === QUEUED) return slot
  }
}

function sleepMs(ms: number): void {
  // On the worker's own run word: stopping the worker (W_RUN = 0 + notify) cuts the delay short.
  Atomics.wait(meta, base + W_RUN, 1, ms)
}

function compressSlot(slot: number): void {
  const t = Atomics.load(ticket, slot)
  let r: number
  let ns = 0
  if (t === 0) {
    r = RESULT_SKIPPED // superseded before we got to it
  } else {
    claimedPages++
    if (data.faults.delayMs > 0) sleepMs(data.faults.delayMs)
    try {
      if (data.faults.every > 0 && claimedPages % data.faults.every === 0) {
        if (data.faults.kind === 'exit') process.exit(1)
        throw new Error('injected fault: the worker threw while compressing')
      }
      const t0 = performance.now()
      // A result that does not fit in 4 KiB is at or over huge_class_size anyway: stored raw.
      r = ctx.compress(pageViews[slot], resultViews[slot]) || PAGE_SIZE
      ns = Math.min(0x7fffffff, Math.round((performance.now() - t0) * 1e6))
    } catch {
      r = RESULT_FAILED
    }
  }
  result[slot] = r
  resultTicket[slot] = t
  resultNs[slot] = ns
  // Publishing the tail (a sequentially consistent store) makes the words above visible with it.
  cq[cqTail % n] = slot
  cqTail = cqTail + 1 === wrap ? 0 : cqTail + 1
  Atomics.store(meta, base + W_CQ_TAIL, cqTail)
}

/** Nothing queued: poll for a while, then sleep until the main thread queues something (or stops us); false when stopped. */
function idle(): boolean {
  if (tookPages && pollUs() > 0 && poll()) {
    idleSince = true
    return Atomics.load(meta, base + W_RUN) === 1
  }
  tookPages = false
  Atomics.add(meta, C_SLEEPERS, 1)
  const tail = Atomics.load(meta, C_SQ_TAIL)
  // Announced first, checked second: a page queued in between is seen here or notified.
  if (Atomics.load(meta, C_SQ_HEAD) === tail && Atomics.load(meta, base + W_RUN) === 1) {
    wakeMainIfArmed()
    Atomics.wait(meta, C_SQ_TAIL, tail)
  }
  Atomics.sub(meta, C_SLEEPERS, 1)
  idleSince = true
  return Atomics.load(meta, base + W_RUN) === 1
}

function pollUs(): number {
  return Atomics.load(meta, C_POLL_US)
}

/**
 * The queue ran empty: wait for the next page in short timed waits for C_POLL_US microseconds
 * before sleeping for good. A poller is not in C_SLEEPERS, so the writer never pays a wake-up for
 * it: an Atomics.notify that wakes a thread whose vCPU halted costs the writer 10-20 us on this VM,
 * several times the cost of staging a page, and at 4k QD1 the gap between requests (~120 us) is
 * shorter than the window, so a busy device never wakes its worker. The timer wakes cost the
 * worker's CPU a few microseconds each, and stop when the window ends. True: a page is queued, or
 * the worker is being stopped; false: the window ended empty.
 */
function poll(): boolean {
  const start = performance.now()
  for (;;) {
    const tail = Atomics.load(meta, C_SQ_TAIL)
    if (Atomics.load(meta, C_SQ_HEAD) !== tail || Atomics.load(meta, base + W_RUN) !== 1) return true
    // Every round: drain() may have armed the flag after the previous one.
    wakeMainIfArmed()
    const left = pollUs() / 1000 - (performance.now() - start)
    if (left <= 0) return false
    Atomics.wait(meta, C_SQ_TAIL, tail, Math.min(POLL_STEP_MS, left))
  }
}

/** The main thread waits for results (drain): everything we took is published, wake it once. */
function wakeMainIfArmed(): void {
  if (Atomics.load(meta, C_MAIN_ARMED) === 1 && Atomics.exchange(meta, C_MAIN_ARMED, 0) === 1) {
    Atomics.add(meta, C_MAIN_SEQ, 1)
    Atomics.notify(meta, C_MAIN_SEQ)
  }
}

/** This thread's kernel id (the main thread may place it on CPUs: onWorkerThread), or 0 without /proc. */
function threadId(): number {
  try {
    // "/proc/thread-self" -> "PID/task/TID" (Linux 3.17)
    return Number(readlinkSync('/proc/thread-self').split('/').pop()) || 0
  } catch {
    return 0
  }
}

// The one message a worker sends: its thread id, for the CPU placement (none: it runs where it is).
const tid = threadId()
if (tid > 0) parentPort?.postMessage({ tid })
Atomics.store(meta, base + W_READY, 1)
for (;;) {
  if (Atomics.load(meta, base + W_RUN) !== 1) break
  const slot = claim()
  if (slot < 0) {
    if (!idle()) break
    continue
  }
  if (idleSince) {
    idleSince = false
    Atomics.add(meta, base + W_RUNS, 1)
  }
  const gen = Atomics.load(meta, C_CONFIG_GEN)
  if (gen !== config.gen) refreshConfig(gen)
  tookPages = true
  compressSlot(slot)
}
