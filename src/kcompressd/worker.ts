/**
 * A kcompressd worker: a long-lived thread that sleeps on the submission queue (Atomics.wait),
 * claims whatever is queued, compresses each page from its staging slot with the device's codec
 * parameters, writes the result into a pool object the main thread reserved for its size class
 * (or, with none reserved, into the slot's result area), and publishes the slot on its completion
 * ring. It owns no state: the main thread commits (or drops) every result. See protocol.ts.
 */
import { readlinkSync } from 'node:fs'
import { parentPort, receiveMessageOnPort, workerData } from 'node:worker_threads'
import { performance } from 'node:perf_hooks'
import type { CodecContext } from '../codec/codec'
import { findCodec } from '../codec/registry'
import {
  C_CONFIG_GEN, C_MAIN_ARMED, C_MAIN_SEQ, C_POLL_US, C_POOL_EPOCH, C_SLEEPERS, C_SQ_HEAD, C_SQ_TAIL, type ChunkMessage, CLAIMED_BASE,
  type ConfigMessage, type DropMessage, E_EPOCH, E_HANDLE, E_LEN0, E_OFF0, E_OFF1, E_SERIAL0, E_SERIAL1, MAIN_WAKE_SLEEP, metaLayout, QUEUED, queueWrap,
  R_HEAD, R_TAIL, RESULT_FAILED, RESULT_SKIPPED, resvBase, resvEntry, RESV_ENTRY, W_CQ_TAIL, W_INFLIGHT, W_INFLIGHT_EPOCH, W_MAIL, W_POPULATED, W_READY, W_RUN,
  W_RUNS, workerBase, type WorkerData, WRITING,
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
const resultHandle = meta.subarray(layout.slotResultHandle, layout.slotResultHandle + n)
const resultEpoch = meta.subarray(layout.slotResultEpoch, layout.slotResultEpoch + n)
const resv = new Int32Array(data.resv)
/** The entry taken off a reservation ring (copied: the main thread may reuse its place at once). */
const taken = new Int32Array(RESV_ENTRY)
/** Shared pool chunks by serial, as the main thread sent them. */
const chunks = new Map<number, Uint8Array>()
/** Configuration messages read while looking for chunks, in order. */
const pendingConfigs: ConfigMessage[] = []
/** A result this long or longer is stored raw (the page itself), as the device does (KcompressdHost.hugeLimit). */
const HUGE_LIMIT = data.hugeLimit
/** Per result length, the size class whose reservation ring to take from (ReservationPool.sizeClassOf). */
const sizeClass = data.sizeClass
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
 * single pages (4k requests) too, so that a writer of single pages pays almost no wake-ups
 * (docs/benchmarks.md). The single pages that cost less to compress than a handoff (lz4), the
 * writer keeps inline (policy.ts cheaperInline).
 */
let tookPages = false
/** While asleep, the worker looks at its mail this often (one timer wake per second at most). */
const MAIL_CHECK_MS = 1000

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
    let next = pendingConfigs.shift()
    if (next === undefined) {
      const m = receiveMessageOnPort(parentPort as never)
      if (m === undefined) throw new Error(`kcompressd worker: configuration ${gen} announced but not sent`)
      next = take(m.message as ConfigMessage | ChunkMessage | DropMessage)
      if (next === undefined) continue
    }
    config = next
  }
  ctx = contextFor(config)
}

/** Apply a chunk or drop message; return a configuration message to the caller. */
function take(m: ConfigMessage | ChunkMessage | DropMessage): ConfigMessage | undefined {
  if ('chunk' in m) {
    chunks.set(m.chunk, new Uint8Array(m.buf))
    if (m.populate === true) populate(m.buf)
  } else if ('drop' in m) {
    chunks.delete(m.drop)
  } else {
    return m
  }
  return undefined
}

/**
 * Fault in every page of a new pool chunk (the main thread may be allocating from it already). A
 * compare-exchange of 0 with 0 writes nothing a thread can see, whatever the word holds, but the
 * locked instruction takes a write fault like a store does.
 */
function populate(buf: SharedArrayBuffer): void {
  const words = new Int32Array(buf)
  for (let i = 0; i < words.length; i += PAGE_SIZE / 4) Atomics.compareExchange(words, i, 0, 0)
  Atomics.add(meta, base + W_POPULATED, 1)
}

/** Messages the main thread announced on W_MAIL and we have not read yet: read them. */
let mailSeen = 0
function readMail(): void {
  const mail = Atomics.load(meta, base + W_MAIL)
  if (mail === mailSeen) return
  mailSeen = mail
  pump()
}

/** Read every message waiting (chunks and drops applied, configurations kept for refreshConfig). */
function pump(): void {
  for (let m = receiveMessageOnPort(parentPort as never); m !== undefined; m = receiveMessageOnPort(parentPort as never)) {
    const c = take(m.message as ConfigMessage | ChunkMessage | DropMessage)
    if (c !== undefined) pendingConfigs.push(c)
  }
}

function chunk(serial: number): Uint8Array {
  let u8 = chunks.get(serial)
  if (u8 === undefined) {
    // Sent before the reservation was published: it is waiting on the port.
    pump()
    u8 = chunks.get(serial)
    if (u8 === undefined) throw new Error(`kcompressd worker: pool chunk ${serial} reserved but not sent`)
  }
  return u8
}

/**
 * Take a reservation of size class c off our ring into `taken` (W_INFLIGHT set first); false when
 * none of the pool's current epoch is there (older ones are skipped: their pool was reset).
 */
function takeReservation(c: number): boolean {
  const b = resvBase(c)
  let head = resv[b + R_HEAD]
  const tail = Atomics.load(resv, b + R_TAIL)
  const epoch = Atomics.load(meta, C_POOL_EPOCH)
  let found = false
  while (head !== tail) {
    const e = resvEntry(c, head)
    if (resv[e + E_EPOCH] === epoch) {
      for (let w = 0; w < RESV_ENTRY; w++) taken[w] = resv[e + w]
      meta[base + W_INFLIGHT_EPOCH] = epoch
      Atomics.store(meta, base + W_INFLIGHT, taken[E_HANDLE])
      found = true
    }
    head = (head + 1) | 0
    if (found) break
  }
  Atomics.store(resv, b + R_HEAD, head)
  return found
}

/** Copy a result into the reserved object in `taken` (one or two pieces, see ZsPool.payloadPieces). */
function writeTaken(src: Uint8Array, len: number): void {
  const first = len < taken[E_LEN0] ? len : taken[E_LEN0]
  chunk(taken[E_SERIAL0]).set(src.subarray(0, first), taken[E_OFF0])
  if (len > first) chunk(taken[E_SERIAL1]).set(src.subarray(first, len), taken[E_OFF1])
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
    if (was === QUEUED) {
      resultHandle[slot] = 0 // nothing reserved is written for this slot yet
      return slot
    }
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
  let handle = 0
  let epoch = 0
  if (r > 0) {
    // The device stores a result at or over the huge limit as the page itself.
    const huge = r >= HUGE_LIMIT
    const len = huge ? PAGE_SIZE : r
    if (takeReservation(sizeClass[len])) {
      writeTaken(huge ? pageViews[slot] : resultViews[slot], len)
      handle = taken[E_HANDLE]
      epoch = meta[base + W_INFLIGHT_EPOCH]
    }
  }
  result[slot] = r
  resultTicket[slot] = t
  resultNs[slot] = ns
  resultHandle[slot] = handle
  resultEpoch[slot] = epoch
  // Recorded in the slot now: a death from here on is covered by the claimed slot's words.
  if (handle !== 0) Atomics.store(meta, base + W_INFLIGHT, 0)
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
  pump() // let go of dropped chunks before a long sleep
  Atomics.add(meta, C_SLEEPERS, 1)
  for (;;) {
    // A chunk mailed just before we counted ourselves asleep found no sleeper to wake: look once
    // more now, and after each MAIL_CHECK_MS asleep (a wake-up sent between this look and the wait
    // below is lost, as it changes no word we wait on).
    readMail()
    const tail = Atomics.load(meta, C_SQ_TAIL)
    // Announced first, checked second: a page queued in between is seen here or notified.
    if (Atomics.load(meta, C_SQ_HEAD) !== tail || Atomics.load(meta, base + W_RUN) !== 1) break
    wakeMainIfArmed(true)
    if (Atomics.wait(meta, C_SQ_TAIL, tail, MAIL_CHECK_MS) !== 'timed-out') break
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
    wakeMainIfArmed(false)
    readMail()
    const left = pollUs() / 1000 - (performance.now() - start)
    if (left <= 0) return false
    Atomics.wait(meta, C_SQ_TAIL, tail, Math.min(POLL_STEP_MS, left))
  }
}

/**
 * Everything we took is published: wake the main thread once if it asked to be woken now, that is
 * when it drains (MAIN_WAKE_IDLE), or when we are going to sleep (`sleeping`: requests stopped for
 * poll_us) and it has results or reservations out (MAIN_WAKE_SLEEP).
 */
function wakeMainIfArmed(sleeping: boolean): void {
  const armed = Atomics.load(meta, C_MAIN_ARMED)
  if (armed === 0 || (armed === MAIN_WAKE_SLEEP && !sleeping)) return
  if (Atomics.compareExchange(meta, C_MAIN_ARMED, armed, 0) === armed) {
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
  readMail()
}
