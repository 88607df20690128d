#!/usr/bin/env node
/**
 * The device's write path alone, in-process (no FUSE): what a page written costs the main thread,
 * compressed inline against handed to one kcompressd worker, for lz4 and zstd, 4 KiB and 128 KiB
 * requests. It isolates what kcompressd can save the thread that answers FUSE: the device layer's
 * CPU per page, without the round trip (bench/kcompressd.ts measures the whole daemon through a
 * loop device).
 *
 *   node dist/bench/write-path.js [--runs 3] [--seconds 3] [--algorithms lz4,zstd] [--sizes 4k,128k]
 *
 * Arms: inline (workers 0); w1 (one worker, inline_when_cheaper: the default); w1-always (one
 * worker, inline_when_cheaper 0: every page staged); compress_ns and wake_ns are the last run's
 * estimates. Requests go back to back over a 256 MiB device (16 per event-loop turn at 128k, one at
 * 4k, so results are taken between them), from a
 * 64 MiB buffer of pages half random and half zero (about 2:1, like fio's
 * buffer_compress_percentage=50). Main-thread CPU comes from /proc/self/task/PID/stat (the
 * JavaScript thread alone, 10 ms ticks: runs of seconds). The arms take turns run by run.
 */
import { randomBytes } from 'node:crypto'
import { parseArgs } from 'node:util'
import { ZramDevice } from '../src/device/zram-device'
import { PAGE_SIZE } from '../src/page'
import { summarize, type Summary } from './stats'
import { clkTck, cpuTicks } from './sys'

interface Arm { id: string; workers: number; inlineWhenCheaper: boolean }
const ARMS: Arm[] = [
  { id: 'inline', workers: 0, inlineWhenCheaper: true },
  { id: 'w1', workers: 1, inlineWhenCheaper: true },
  { id: 'w1-always', workers: 1, inlineWhenCheaper: false },
]
const DEVICE_BYTES = 256 << 20
const DATA_BYTES = 64 << 20

interface Sample { mbps: number; mainUsPerPage: number; staged: number; compressNs: number; wakeNs: number }

/** CPU time of this process's main thread (the JavaScript thread alone), ms. */
function mainThreadCpuMs(): number {
  return ((cpuTicks(process.pid, process.pid) ?? 0) * 1000) / clkTck()
}

function makeData(): Buffer {
  const data = Buffer.alloc(DATA_BYTES)
  for (let off = 0; off < DATA_BYTES; off += PAGE_SIZE) randomBytes(PAGE_SIZE / 2).copy(data, off)
  return data
}

async function runArm(arm: Arm, algorithm: string, req: number, seconds: number, data: Buffer): Promise<Sample> {
  const dev = new ZramDevice(0, { workers: arm.workers, kcompressd: { inlineWhenCheaper: arm.inlineWhenCheaper } })
  try {
    dev.setAlgorithm(algorithm)
    dev.initialise(DEVICE_BYTES)
    if (arm.workers > 0) await dev.workersReady()
    const perTurn = req === PAGE_SIZE ? 1 : 16
    let pos = 0
    let off = 0
    let pages = 0
    const cpu0 = mainThreadCpuMs()
    const t0 = performance.now()
    while (performance.now() - t0 < seconds * 1000) {
      for (let i = 0; i < perTurn; i++) {
        const pending = dev.write(data.subarray(off, off + req), pos)
        if (pending !== undefined) await pending
        pages += req / PAGE_SIZE
        pos = (pos + req) % DEVICE_BYTES
        off = (off + req) % DATA_BYTES
      }
      await new Promise((resolve) => setImmediate(resolve))
    }
    await dev.drain()
    const ms = performance.now() - t0
    const cpu = mainThreadCpuMs() - cpu0
    const k = dev.kcompressdStats()
    return {
      mbps: (pages * PAGE_SIZE) / 1e6 / (ms / 1000),
      mainUsPerPage: (cpu * 1000) / pages,
      staged: k.queued / pages,
      compressNs: k.compressNs,
      wakeNs: k.wakeNs,
    }
  } finally {
    await dev.close()
  }
}

function fmt(s: Summary | null, digits: number): string {
  return s === null ? '-' : `${s.median.toFixed(digits)} (${s.min.toFixed(digits)}–${s.max.toFixed(digits)})`
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      runs: { type: 'string', default: '3' },
      seconds: { type: 'string', default: '3' },
      algorithms: { type: 'string', default: 'lz4,zstd' },
      sizes: { type: 'string', default: '4k,128k' },
    },
  })
  const runs = Number(values.runs)
  const seconds = Number(values.seconds)
  const sizes = String(values.sizes).split(',').map((s) => ({ id: s, bytes: Number.parseInt(s, 10) * 1024 }))
  const data = makeData()
  const rows: string[] = []
  for (const algorithm of String(values.algorithms).split(',')) {
    for (const size of sizes) {
      const samples = new Map<string, Sample[]>(ARMS.map((a) => [a.id, []]))
      for (let r = 0; r < runs; r++) {
        // The order rotates each run, so a change of load hits every arm.
        for (let i = 0; i < ARMS.length; i++) {
          const arm = ARMS[(i + r) % ARMS.length]!
          samples.get(arm.id)!.push(await runArm(arm, algorithm, size.bytes, seconds, data))
        }
      }
      const inline = summarize(samples.get('inline')!.map((s) => s.mbps))
      for (const arm of ARMS) {
        const xs = samples.get(arm.id)!
        const mbps = summarize(xs.map((s) => s.mbps))
        const last = xs[xs.length - 1]!
        const ratio = inline === null || mbps === null ? '-' : `${(mbps.median / inline.median).toFixed(2)}x`
        rows.push(`| ${algorithm} | ${size.id} | ${arm.id} | ${fmt(mbps, 0)} | ${ratio} | ${fmt(summarize(xs.map((s) => s.mainUsPerPage)), 2)} | ` +
          `${Math.round(100 * (summarize(xs.map((s) => s.staged))?.median ?? 0))}% | ${arm.workers > 0 ? last.compressNs : '-'} | ${arm.workers > 0 ? last.wakeNs : '-'} |`)
      }
    }
  }
  console.log(`${runs} runs of ${seconds} s per arm, in-process device, requests back to back, pages half random and half zero`)
  console.log('')
  console.log('| algorithm | request | arm | MB/s median (min–max) | / inline | main thread us/page | staged | compress_ns | wake_ns |')
  console.log('|---|---|---|---|---|---|---|---|---|')
  for (const row of rows) console.log(row)
}

main().catch((err: unknown) => {
  console.error(err)
  process.exit(1)
})
