// fio write + verify (crc32c) straight on the block file, O_DIRECT: 256 MiB in total, block
// sizes 4k..128k, sequential and random, two jobs of each kind on their own regions.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { canRunE2E, startDaemon } from './daemon'
import { runFio } from './util'

interface FioJob {
  jobname: string
  error: number
  write: { io_bytes: number }
  read: { io_bytes: number }
}

const MiB = 1024 * 1024
const REGION_MIB = 64 // per job; 2 kinds x 2 jobs x 64 MiB = 256 MiB

// workers=0: compression inline on the request path; workers=1: kcompressd (issue 4).
const WORKER_CONFIGS: { label: string; args: string[] }[] = [
  { label: '--workers 0 (inline)', args: ['--workers', '0'] },
  // Explicit: both paths, whatever defaultWorkers picks on this machine.
  { label: '--workers 1 (kcompressd)', args: ['--workers', '1'] },
  // The fallback transport (libfuse 2.9 through fuse-native, 128 KiB requests).
  { label: '--workers 1 --transport fuse-native', args: ['--workers', '1', '--transport', 'fuse-native'] },
]

if (canRunE2E(t, ['fio'])) for (const cfg of WORKER_CONFIGS) {
  t.test(`fio write+verify on the block file, ${cfg.label}`, async (t) => {
    const d = await startDaemon({ disksize: '512M', test: t, extraArgs: cfg.args })
    const args = [
      '--output-format=json',
      `--filename=${d.blockFile}`,
      '--direct=1',
      '--ioengine=psync',
      '--bssplit=4k/25:16k/25:64k/25:128k/25',
      '--verify=crc32c',
      '--do_verify=1',
      '--verify_fatal=1',
      '--verify_state_save=0',
      `--size=${REGION_MIB}M`,
      `--offset_increment=${REGION_MIB}M`,
      '--numjobs=2',
      // sequential writers: [0, 128M)
      '--name=seq',
      '--rw=write',
      '--offset=0',
      // random writers: [128M, 256M)
      '--name=rand',
      '--rw=randwrite',
      `--offset=${2 * REGION_MIB}M`,
      '--randseed=20260502',
    ]
    t.comment(`fio ${args.join(' ')}`)
    const r = await runFio(args, { timeoutMs: 240_000 })
    t.equal(r.code, 0, 'fio exits 0', { stderr: r.stderr.slice(-4000) })
    const jsonStart = r.stdout.indexOf('{')
    const report = JSON.parse(jsonStart >= 0 ? r.stdout.slice(jsonStart) : '{}') as { jobs?: FioJob[] }
    const jobs = report.jobs ?? []
    t.equal(jobs.length, 4, 'four fio jobs ran (2 sequential, 2 random)')
    t.same(jobs.map((j) => j.error), [0, 0, 0, 0], 'no fio job reports an error')
    const written = jobs.reduce((s, j) => s + j.write.io_bytes, 0)
    const read = jobs.reduce((s, j) => s + j.read.io_bytes, 0)
    t.comment(`fio wrote ${(written / MiB).toFixed(1)} MiB, read back ${(read / MiB).toFixed(1)} MiB to verify`)
    t.ok(written >= 4 * REGION_MIB * MiB * 0.99, `at least 256 MiB written (${written} bytes)`)
    t.ok(read >= written * 0.99, 'everything written was read back and verified')
    const mm = d.mmStat()
    t.comment(`mm_stat after fio: ${JSON.stringify(mm)}`)
    t.ok(mm.origDataSize > 0, 'mm_stat orig_data_size > 0')
    const kc = (name: string): number => Number(readFileSync(join(d.sys, 'zramfuse', name), 'utf8'))
    const workers = kc('workers')
    t.comment(`kcompressd: workers ${workers} queued ${kc('queued')} completed ${kc('completed')} stale ${kc('stale')} ` +
      `inline_fallbacks ${kc('inline_fallbacks')} fifo_full_events ${kc('fifo_full_events')} batches ${kc('batches')} ` +
      `max_fifo_depth ${kc('max_fifo_depth')} main_ns_per_page ${kc('main_ns_per_page')}`)
    if (cfg.args[1] !== '0') {
      t.ok(workers >= 1, 'kcompressd workers are on')
      t.ok(kc('queued') > 0, 'pages went through kcompressd')
      t.ok(kc('batches') > 0, 'batches were dispatched')
      t.equal(kc('worker_errors'), 0, 'no worker errors')
    } else {
      t.equal(workers, 0)
      t.equal(kc('queued'), 0, 'nothing staged with --workers 0')
    }
    await d.stop()
  })
}
