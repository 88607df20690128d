// The zcodec helper thread (native/zcodec.c): its id, and batches that stay right and finish when the
// caller and the helper are held to one CPU (taskset, a cpuset), before and after the addon notices.
// A file of its own: it changes this process's CPU affinity.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { findCodec } from '../../src/codec/registry'
import { zcodec } from '../../src/codec/native'
import { loadMemlock } from '../../daemon/memlock'
import { makePage, prng, seedFromEnv } from '../helpers/pages'

const seed = seedFromEnv(20261207)
t.comment(`seed ${seed} (replay with ZRAMFUSE_SEED=${seed})`)
const PAGE = 4096

function allowedList(tid: number): string {
  const m = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync(`/proc/self/task/${tid}/status`, 'utf8'))
  return m?.[1] ?? ''
}

t.test('helperThread: a thread of this process, the same one every time', async (t) => {
  const tid = zcodec.helperThread()
  t.ok(tid > 0 && tid !== process.pid, `thread ${tid}`)
  t.ok(allowedList(tid).length > 0, 'listed in /proc/self/task')
  t.equal(zcodec.helperThread(), tid)
})

t.test('batches on one CPU: right every time, and they finish', { skip: cpus().length < 2 ? 'needs 2 CPUs' : false }, async (t) => {
  const memlock = loadMemlock()
  const all = cpus().map((_, i) => i)
  const helper = zcodec.helperThread()
  t.teardown(() => {
    memlock.setAffinity(process.pid, all)
    memlock.setAffinity(helper, all)
  })
  const ctx = findCodec('zstd')!.createContext({ level: null, dict: null })
  const rand = prng(seed)
  const pages = 64
  const src = Buffer.concat(Array.from({ length: pages }, (_, i) => makePage(i % 2 ? 'text' : 'binary', rand)))
  const want = new Int32Array(pages)
  for (let i = 0; i < pages; i++) want[i] = ctx.compress(src.subarray(i * PAGE, (i + 1) * PAGE), Buffer.alloc(2 * PAGE))
  const dst = Buffer.alloc(pages * 2 * PAGE)
  const sizes = new Int32Array(pages)
  const round = (what: string, n: number): void => {
    let wrong = 0
    for (let k = 0; k < n; k++) {
      if (ctx.compressBatch(src, 0, pages, dst, 2 * PAGE, sizes) !== -1) wrong++
      for (let i = 0; i < pages; i++) if (sizes[i] !== want[i]) wrong++
    }
    t.equal(wrong, 0, `${what}: ${n} batches, every page right`)
  }
  round('both CPUs', 20)
  // Pinned right after a batch: for up to 100 ms the addon still shares pages with the helper, which
  // now takes turns with us on CPU 0 (the waits yield); after that it runs the batches alone.
  t.equal(memlock.setAffinity(process.pid, [0]), 0)
  t.equal(memlock.setAffinity(helper, [0]), 0)
  round('one CPU, at once', 20)
  await new Promise((resolve) => setTimeout(resolve, 150))
  round('one CPU, noticed', 20)
  t.equal(memlock.setAffinity(helper, [1]), 0)
  await new Promise((resolve) => setTimeout(resolve, 150))
  round('the helper on CPU 1, the caller on CPU 0', 20)
})
