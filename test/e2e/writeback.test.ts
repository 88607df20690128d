// The writeback tier through the mounted device and real tools:
// - fio write + verify (crc32c) through a direct-I/O loop device on a device whose pool limit is
//   a fraction of the data, the shrinker on, in each lower-file format, kcompressd on and off;
// - a lower file on a small tmpfs that fills up, then frees space, then is deleted: writeback
//   reports ENOSPC, nothing acknowledged is lost, the daemon keeps serving and resumes.
import t from 'tap'
import { existsSync, mkdtempSync, readFileSync, rmSync, unlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { attrNumber, canRunE2E, echoAttr, readAttr, startDaemon } from './daemon'
import { must, run } from './util'

const MiB = 1024 * 1024

function tempDir(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return dir
}

const FIO_CONFIGS = [
  { format: 'packed', workers: '0' },
  { format: 'packed', workers: '1' },
  { format: 'compressed', workers: '0' },
  { format: 'page', workers: '0' },
]

if (canRunE2E(t, ['fio'])) {
  for (const cfg of FIO_CONFIGS) {
    t.test(`fio verify through a loop device, pool limit 16M under 128M of data, shrinker on: ${cfg.format}, --workers ${cfg.workers}`, async (t) => {
      const dir = tempDir('zf-e2e-wb-')
      const lower = join(dir, 'lower')
      const d = await startDaemon({
        disksize: '256M', test: t,
        extraArgs: ['--workers', cfg.workers, '--backing-file', lower, '--writeback-format', cfg.format, '--shrinker', '--pool-limit', '16M'],
      })
      t.equal(readAttr(d, 'backing_dev'), `${lower}\n`)
      t.equal(readAttr(d, 'zramfuse/writeback_format'), `${cfg.format}\n`)
      const loop = (await must('losetup', ['--direct-io=on', '--find', '--show', d.blockFile])).trim()
      const args = [
        '--output-format=json', `--filename=${loop}`, '--direct=1', '--ioengine=psync',
        '--bssplit=4k/25:16k/25:64k/25:128k/25', '--verify=crc32c', '--do_verify=1', '--verify_fatal=1',
        '--verify_state_save=0', '--buffer_compress_percentage=50', '--refill_buffers',
        '--size=64M', '--offset_increment=64M', '--numjobs=1',
        '--name=seq', '--rw=write', '--offset=0',
        '--name=rand', '--rw=randwrite', '--offset=64M', '--randseed=20261201',
      ]
      t.comment(`fio ${args.join(' ')}`)
      const r = await run('fio', args, { timeoutMs: 300_000 })
      t.equal(r.code, 0, 'fio write + verify exits 0', { stderr: r.stderr.slice(-4000) })
      const report = JSON.parse(r.stdout.slice(Math.max(0, r.stdout.indexOf('{')))) as { jobs: Array<{ error: number; read: { io_bytes: number } }> }
      t.same(report.jobs.map((j) => j.error), [0, 0], 'no fio job reports an error')
      t.ok(report.jobs.reduce((n, j) => n + j.read.io_bytes, 0) >= 128 * MiB * 0.99, 'all 128 MiB verified')
      const mm = d.mmStat()
      const [bdCount, bdReads, bdWrites] = readAttr(d, 'bd_stat').trim().split(/\s+/).map(Number)
      t.comment(`mm_stat ${readAttr(d, 'mm_stat').trim()} | bd_stat ${bdCount} ${bdReads} ${bdWrites} | written_back_pages ${attrNumber(d, 'zramfuse/written_back_pages')} ` +
        `pool_limit_hit ${attrNumber(d, 'zramfuse/pool_limit_hit')} shrinker_runs ${attrNumber(d, 'zramfuse/shrinker_runs')} shrinker_paused ${attrNumber(d, 'zramfuse/shrinker_paused')} ` +
        `segments_cleaned ${attrNumber(d, 'zramfuse/segments_cleaned')} lower_allocated_bytes ${attrNumber(d, 'zramfuse/lower_allocated_bytes')}`)
      t.ok(attrNumber(d, 'zramfuse/written_back_pages') > 0, 'pages went to the lower file')
      t.ok(bdCount > 0 && bdReads > 0 && bdWrites > 0, 'bd_stat counts blocks in use, reads and writes')
      t.ok(mm.memUsedTotal <= 16 * MiB + 2 * MiB, `the pool stays near its 16 MiB limit (${mm.memUsedTotal})`)
      t.equal(attrNumber(d, 'zramfuse/checksum_errors'), 0)
      t.equal(attrNumber(d, 'zramfuse/lower_errors'), 0)
      t.equal(Number(readAttr(d, 'io_stat').trim().split(/\s+/)[1]), 0, 'no failed writes')
      await d.stop()
    })
  }

  t.test('a lower file that fills up, frees space, and is deleted: nothing acknowledged is lost', async (t) => {
    const dir = tempDir('zf-e2e-wbfull-')
    const small = join(dir, 'tmpfs')
    await must('mkdir', ['-p', small])
    await must('mount', ['-t', 'tmpfs', '-o', 'size=8M', 'tmpfs', small])
    let tmpfsMounted = true
    const lower = join(small, 'lower')
    const d = await startDaemon({ disksize: '64M', test: t, extraArgs: ['--workers', '0', '--backing-file', lower, '--writeback-format', 'packed'] })
    t.teardown(async () => {
      await d.stop()
      if (tmpfsMounted) await run('umount', [small])
    })
    // 16 MiB of incompressible data: twice what the 8 MiB tmpfs holds.
    const model = Buffer.alloc(32 * MiB)
    // A fixed xorshift stream: incompressible and repeatable.
    let x = 0x12345678
    for (let i = 0; i < 16 * MiB; i += 4) {
      x ^= x << 13; x ^= x >>> 17; x ^= x << 5
      model.writeInt32LE(x | 0, i)
    }
    const modelFile = join(dir, 'model')
    const writeModel = async (from: number, len: number): Promise<void> => {
      writeFileSync(modelFile, model.subarray(from, from + len))
      await must('dd', [`if=${modelFile}`, `of=${d.blockFile}`, 'bs=1M', `seek=${from / MiB}`, 'oflag=direct', 'conv=notrunc', 'status=none'])
    }
    const verify = async (what: string): Promise<void> => {
      const out = join(dir, 'readback')
      await must('dd', [`if=${d.blockFile}`, `of=${out}`, 'bs=1M', 'count=32', 'iflag=direct', 'status=none'])
      t.ok(readFileSync(out).equals(model), `${what}: the device reads back exactly what was written`)
    }
    await writeModel(0, 16 * MiB)
    t.equal((await echoAttr(d, 'idle', 'all')).code, 0)
    const full = await echoAttr(d, 'writeback', 'idle')
    t.not(full.code, 0, 'writeback fails once the tmpfs is full')
    t.match(full.stderr, /No space left on device/, 'with ENOSPC')
    t.ok(attrNumber(d, 'zramfuse/written_back_pages') > 0, `some pages fit (${attrNumber(d, 'zramfuse/written_back_pages')})`)
    t.ok(attrNumber(d, 'zramfuse/lower_errors') > 0, 'the error is counted')
    t.equal(d.log().split('\n').filter((l) => l.includes('"lower_file_error"')).length, 1, 'and logged once for the episode')
    await verify('tmpfs full')
    t.equal(Number(readAttr(d, 'io_stat').trim().split(/\s+/)[0]), 0, 'no failed reads')

    // Free space: discard the first 8 MiB (written-back pages among them), then write new data.
    const before = attrNumber(d, 'zramfuse/lower_allocated_bytes')
    await must('fallocate', ['--punch-hole', '--keep-size', '--offset', '0', '--length', String(8 * MiB), d.blockFile])
    model.fill(0, 0, 8 * MiB)
    for (let tries = 0; tries < 50 && attrNumber(d, 'zramfuse/lower_allocated_bytes') >= before; tries++) await new Promise((r) => setTimeout(r, 100))
    t.ok(attrNumber(d, 'zramfuse/lower_allocated_bytes') < before, `space returned to the tmpfs (${before} -> ${attrNumber(d, 'zramfuse/lower_allocated_bytes')} bytes)`)
    for (let i = 16 * MiB; i < 20 * MiB; i++) model[i] = (i * 7) & 0xff
    await writeModel(16 * MiB, 4 * MiB)
    await echoAttr(d, 'idle', 'all')
    const wb0 = attrNumber(d, 'zramfuse/written_back_pages')
    const again = await echoAttr(d, 'writeback', 'page_indexes=4096-5119')
    t.equal(again.code, 0, 'writeback resumes once there is space', { stderr: again.stderr })
    t.ok(attrNumber(d, 'zramfuse/written_back_pages') > wb0, 'more pages written back')
    await verify('after freeing space')

    // The lower file is deleted while in use: the open file keeps working.
    unlinkSync(lower)
    t.notOk(existsSync(lower))
    for (let i = 20 * MiB; i < 21 * MiB; i++) model[i] = (i * 13) & 0xff
    await writeModel(20 * MiB, 1 * MiB)
    await echoAttr(d, 'idle', 'all')
    const after = await echoAttr(d, 'writeback', 'page_indexes=5120-5375')
    t.equal(after.code, 0, 'writeback still works on the deleted file', { stderr: after.stderr })
    await verify('after the lower file was deleted')
    await d.stop()
    await must('umount', [small])
    tmpfsMounted = false
  })
}
