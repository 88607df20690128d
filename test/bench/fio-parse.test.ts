import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { extractJson, parseFioOutput, runFigures } from '../../bench/fio-parse'

// Recorded on the project's 2-CPU machine with fio 3.33 against a zramfuse mount.
const fixture = (name: string): string => readFileSync(join(__dirname, 'fixtures', name), 'utf8')

t.test('4k randwrite QD1: write figures, read side empty', async (t) => {
  const out = parseFioOutput(fixture('randwrite-4k-qd1.json'))
  t.equal(out.fioVersion, 'fio-3.33')
  t.equal(out.jobs.length, 1)
  const j = out.jobs[0]!
  t.equal(j.name, 'randwrite-4k-qd1')
  t.equal(j.error, 0)
  t.equal(j.options['rw'], 'randwrite')
  t.equal(j.options['buffer_compress_percentage'], '50')
  t.ok(j.write.iops > 1000, `write iops ${j.write.iops}`)
  t.equal(j.write.bytes, j.write.ios * 4096, 'every I/O is 4 KiB')
  t.ok(Math.abs(j.write.bwBytes - j.write.iops * 4096) / j.write.bwBytes < 0.01, 'bw = iops x 4 KiB')
  t.ok(j.write.clatP99Ns !== null && j.write.clatP50Ns !== null && j.write.clatP99Ns >= j.write.clatP50Ns)
  t.ok(j.write.latMeanNs > 0)
  t.equal(j.read.ios, 0)
  t.equal(j.read.iops, 0)
  t.equal(j.read.clatP99Ns, null, 'no percentiles for a direction without I/O')
  const fig = runFigures(out, 'write')
  t.equal(fig.iops, j.write.iops)
  t.equal(fig.fioCpuPct, j.usrCpu + j.sysCpu)
  t.equal(runFigures(out, 'read').ios, 0)
})

t.test('4 jobs with group_reporting: one entry', async (t) => {
  const out = parseFioOutput(fixture('randread-4k-4j.json'))
  t.equal(out.jobs.length, 1)
  t.equal(out.jobs[0]!.options['numjobs'], '4')
  const fig = runFigures(out, 'read')
  t.ok(fig.iops > 1000)
  t.equal(fig.clatP99Ns, out.jobs[0]!.read.clatP99Ns)
})

t.test('without group_reporting: jobs are summed, latency weighted by I/Os, p99 is the max', async (t) => {
  const out = parseFioOutput(fixture('randread-4k-2j-nogroup.json'))
  t.equal(out.jobs.length, 2)
  const [a, b] = [out.jobs[0]!.read, out.jobs[1]!.read]
  const fig = runFigures(out, 'read')
  t.equal(fig.ios, a.ios + b.ios)
  t.ok(Math.abs(fig.iops - (a.iops + b.iops)) < 1e-6)
  t.ok(Math.abs(fig.bwBytes - (a.bwBytes + b.bwBytes)) < 1e-6)
  t.ok(Math.abs(fig.latMeanNs - (a.latMeanNs * a.ios + b.latMeanNs * b.ios) / (a.ios + b.ios)) < 1e-6)
  t.equal(fig.clatP99Ns, Math.max(a.clatP99Ns ?? 0, b.clatP99Ns ?? 0))
})

t.test('libaio QD32 and 1M reads', async (t) => {
  const qd32 = parseFioOutput(fixture('randwrite-4k-qd32.json'))
  t.equal(qd32.jobs[0]!.options['iodepth'], '32')
  t.ok(runFigures(qd32, 'write').iops > 1000)
  const r1m = parseFioOutput(fixture('read-1m.json'))
  const fig = runFigures(r1m, 'read')
  t.ok(fig.bwBytes > 50e6, `1M read ${fig.bwBytes} B/s`)
  t.equal(r1m.jobs[0]!.read.bytes, r1m.jobs[0]!.read.ios * 1048576)
})

t.test('warnings printed before the JSON are skipped', async (t) => {
  const text = 'fio: this platform does not support process shared mutexes, forcing use of threads\nnote: both iodepth >= 1 and synchronous I/O engine are selected\n' + fixture('read-1m.json')
  t.equal(parseFioOutput(text).jobs[0]!.name, 'read-1m')
  t.equal(extractJson('noise\n{\n "a": 1\n}\ntrailing'), '{\n "a": 1\n}')
})

t.test('bad input is refused with a reason', async (t) => {
  t.throws(() => parseFioOutput(''), /no JSON object/)
  t.throws(() => parseFioOutput('{ "jobs": [] }'), /no jobs/)
  t.throws(() => parseFioOutput('{ "jobs": [ { "jobname": "x" } ] }'), /jobs\[0\]\.error is not a number/)
  t.throws(() => parseFioOutput('{ "jobs": [ 1 ] }'), /jobs\[0\] is not an object/)
  t.throws(() => parseFioOutput('{\n "jobs": [ {"error": 0, '), /fio json/)
  const broken = JSON.parse(fixture('read-1m.json')) as { jobs: { read: Record<string, unknown> }[] }
  delete broken.jobs[0]!.read['iops']
  t.throws(() => parseFioOutput(JSON.stringify(broken)), /jobs\[0\]\.read\.iops is not a number/)
})
