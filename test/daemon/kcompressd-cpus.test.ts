// --kcompressd-cpus: the CPU list parser, the addon's sched_setaffinity on a worker thread, and
// every kcompressd worker placed as it starts (read back from /proc/self/task/TID/status).
import t from 'tap'
import { readFileSync } from 'node:fs'
import { cpus } from 'node:os'
import type { Logger } from 'pino'
import { ZramDevice } from '../../src/device/zram-device'
import { onWorkerThread } from '../../src/kcompressd/workers'
import { parseCpuList, placeKcompressdWorkers } from '../../daemon/kcompressd-cpus'
import { loadMemlock, type MemlockAddon } from '../../daemon/memlock'

const CPUS = cpus().length

function allowedList(tid: number): string {
  const m = /^Cpus_allowed_list:\s*(\S+)$/m.exec(readFileSync(`/proc/self/task/${tid}/status`, 'utf8'))
  return m?.[1] ?? ''
}

function recordingLog(lines: object[]): Logger {
  const rec = (o: object): void => void lines.push(o)
  return { info: rec, error: rec, warn: rec, debug: rec } as unknown as Logger
}

t.test('parseCpuList: taskset -c lists, checked against the machine', async (t) => {
  t.same(parseCpuList('1', 4), [1])
  t.same(parseCpuList('0,2', 4), [0, 2])
  t.same(parseCpuList('1-3', 4), [1, 2, 3])
  t.same(parseCpuList('3,0-1,1', 4), [0, 1, 3], 'sorted, without repeats')
  t.throws(() => parseCpuList('4', 4), /CPU 4 does not exist \(this machine has CPUs 0-3\)/)
  t.throws(() => parseCpuList('2-1', 4), /runs backwards/)
  for (const bad of ['', 'a', '1-', '-1', '1,,2', '1.5']) t.throws(() => parseCpuList(bad, 4), /not a CPU number or range/, JSON.stringify(bad))
})

t.test('setAffinity moves one thread, by its id, and answers errno', async (t) => {
  const m = loadMemlock()
  t.throws(() => m.setAffinity(0, []), /at least one CPU/)
  t.throws(() => m.setAffinity(0, [-1]), /CPU numbers/)
  // A thread id that no thread has (pid_max is at most 2^22): ESRCH.
  t.equal(m.setAffinity(0x7ffffff0, [0]), 3, 'ESRCH for a thread that does not exist')
})

t.test('every kcompressd worker is placed on the listed CPUs as it starts', { skip: CPUS < 2 ? 'needs 2 CPUs' : false }, async (t) => {
  t.teardown(() => onWorkerThread(null))
  const lines: object[] = []
  const target = CPUS - 1
  t.same(placeKcompressdWorkers(String(target), recordingLog(lines)), [target])
  const dev = new ZramDevice(0, { workers: 2 })
  t.teardown(() => dev.close())
  dev.initialise(64 * 4096)
  await dev.workersReady()
  // The thread id arrives in a message after the worker is up: wait for both log lines.
  for (let i = 0; i < 2000 && lines.length < 3; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  const all = lines as { event: string; tid: number; cpus: number[]; err?: string }[]
  t.equal(all.length, 3, 'one line for the codec helper, one per worker')
  t.equal(all[0]?.event, 'codec_helper_cpus', 'the codec helper first, at once')
  t.equal(all.filter((l) => l.event === 'kcompressd_cpus').length, 2)
  for (const l of all) {
    t.equal(l.err, undefined, 'placed')
    t.ok(l.tid > 0 && l.tid !== process.pid, 'a thread of its own')
    t.equal(allowedList(l.tid), String(target), `${l.event} thread ${l.tid} may run only on CPU ${target}`)
  }
  t.not(allowedList(process.pid), String(target), 'the main thread keeps its CPUs')
})

t.test('a worker that cannot be placed runs where it is: one error line with the errno', async (t) => {
  t.teardown(() => onWorkerThread(null))
  const lines: object[] = []
  const refusing = { setAffinity: () => 22 } as unknown as MemlockAddon
  placeKcompressdWorkers('0', recordingLog(lines), refusing, 2)
  const dev = new ZramDevice(0, { workers: 1 })
  t.teardown(() => dev.close())
  dev.initialise(64 * 4096)
  await dev.workersReady()
  for (let i = 0; i < 2000 && lines.length < 2; i++) await new Promise((resolve) => setTimeout(resolve, 5))
  t.match(lines, [{ event: 'codec_helper_cpus', err: 'EINVAL' }, { event: 'kcompressd_cpus', err: 'EINVAL' }])
  const none: object[] = []
  placeKcompressdWorkers('0', recordingLog(none), refusing, 2, () => 0)
  t.match(none, [{ event: 'codec_helper_cpus', err: 'not started' }], 'a helper that could not start is said so')
  const page = Buffer.alloc(4096, 7)
  await dev.write(page, 0)
  await dev.drain()
  const out = Buffer.alloc(4096)
  await dev.read(out, 0)
  t.same(out, page, 'the device works all the same')
})
