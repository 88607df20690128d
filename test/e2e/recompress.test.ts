// Recompression through the mount, with the shell and fio:
// - recomp_algorithm / recompress / algorithm_params priority=N written with `echo`, read with
//   `cat`: the kernel's formats and errno as a shell sees them;
// - fio writes with crc32c verify headers, `idle all` + `recompress type=idle` while another fio
//   job writes and verifies the other half of the device, then fio --verify_only reads the
//   recompressed half back: single-page and 16-page units, kcompressd off and on.
import t from 'tap'
import { closeSync, openSync, readFileSync, writeSync } from 'node:fs'
import { attrNumber, canRunE2E, echoAttr, readAttr, startDaemon } from './daemon'
import { run } from './util'

const MiB = 1024 * 1024

if (canRunE2E(t)) {
  t.test('recomp_algorithm, algorithm_params priority=N and recompress through the shell', async (t) => {
    const d = await startDaemon({ disksize: null, test: t, extraArgs: ['--workers', '0'] })
    t.equal(readAttr(d, 'recomp_algorithm'), '', 'nothing configured')
    t.equal((await echoAttr(d, 'recomp_algorithm', 'algo=zstd')).code, 0)
    t.equal((await echoAttr(d, 'recomp_algorithm', 'algo=lz4 priority=2')).code, 0)
    t.equal(readAttr(d, 'recomp_algorithm'), '#1: lz4 [zstd] \n#2: [lz4] zstd \n')
    let r = await echoAttr(d, 'recomp_algorithm', 'algo=zstd priority=4')
    t.match(r.stderr, /Invalid argument/, 'priority 4: EINVAL')
    r = await echoAttr(d, 'recomp_algorithm', `algo=${'x'.repeat(130)}`)
    t.match(r.stderr, /Argument list too long/, 'a long name: E2BIG')
    t.equal((await echoAttr(d, 'algorithm_params', 'algo=zstd level=9')).code, 0, 'algorithm_params algo= finds priority 1')
    r = await echoAttr(d, 'recompress', 'type=idle')
    t.match(r.stderr, /Invalid argument/, 'recompress before disksize: EINVAL')
    t.equal((await echoAttr(d, 'disksize', '16M')).code, 0)
    r = await echoAttr(d, 'recomp_algorithm', 'algo=zstd')
    t.match(r.stderr, /Device or resource busy/, 'recomp_algorithm after init: EBUSY')
    r = await echoAttr(d, 'recompress', 'threshold=4000')
    t.match(r.stderr, /Invalid argument/, 'threshold >= huge_class_size: EINVAL')
    r = await echoAttr(d, 'recompress', 'max_pages=99999999999999999999')
    t.match(r.stderr, /Numerical result out of range/, 'max_pages overflow: ERANGE')
    r = await echoAttr(d, 'recompress', 'priority=3')
    t.match(r.stderr, /Invalid argument/, 'no algorithm at priority 3: EINVAL')
    // Some data, then a run through the shell.
    // 16 letters at random: lz4 (no entropy coding) keeps such pages raw, zstd halves them.
    const data = Buffer.alloc(4 * MiB)
    let x = 20261202
    for (let i = 0; i < data.length; i++) {
      x = (Math.imul(x, 1103515245) + 12345) >>> 0
      data[i] = 0x61 + (x >>> 28)
    }
    const fd = openSync(d.blockFile, 'r+')
    try {
      t.equal(writeSync(fd, data, 0, data.length, 0), data.length, '4 MiB written to the block file')
    } finally {
      closeSync(fd)
    }
    const before = d.mmStat()
    t.equal((await echoAttr(d, 'idle', 'all')).code, 0)
    t.equal((await echoAttr(d, 'recompress', 'type=idle')).code, 0, 'the write returns once the run is over')
    t.equal((await echoAttr(d, 'compact', '1')).code, 0)
    const after = d.mmStat()
    t.ok(attrNumber(d, 'zramfuse/recompressed_pages') > 0, `${attrNumber(d, 'zramfuse/recompressed_pages')} pages recompressed`)
    t.ok(after.comprDataSize < before.comprDataSize, `compr_data_size ${before.comprDataSize} -> ${after.comprDataSize}`)
    t.equal(after.origDataSize, before.origDataSize)
    const back = readFileSync(d.blockFile).subarray(0, data.length)
    t.ok(back.equals(data), 'the data reads back as written')
    await d.stop()
  })
}

const CONFIGS = [
  { unit: 1, workers: '0' },
  { unit: 16, workers: '0' },
  { unit: 1, workers: '1' },
  { unit: 16, workers: '1' },
]

if (canRunE2E(t, ['fio'])) {
  for (const cfg of CONFIGS) {
    t.test(`fio verify of recompressed data: recompress_unit_pages ${cfg.unit}, --workers ${cfg.workers}`, async (t) => {
      const d = await startDaemon({ disksize: null, test: t, extraArgs: ['--workers', cfg.workers] })
      t.equal((await echoAttr(d, 'recomp_algorithm', 'algo=zstd')).code, 0)
      t.equal((await echoAttr(d, 'disksize', '128M')).code, 0)
      t.equal((await echoAttr(d, 'zramfuse/recompress_unit_pages', String(cfg.unit))).code, 0)
      // One buffer for every block (no refill): blocks differ only in their verify header (offset,
      // crc), so neighbouring pages share most of their bytes, like a file's blocks do.
      const common = [
        `--filename=${d.blockFile}`, '--direct=1', '--ioengine=psync', '--verify=crc32c', '--verify_fatal=1',
        '--verify_state_save=0', '--buffer_compress_percentage=50', '--randseed=20261202', '--output-format=json',
      ]
      const cold = [...common, '--name=cold', '--rw=randwrite', '--bssplit=4k/50:64k/50', '--offset=0', '--size=64M']
      let r = await run('fio', [...cold, '--do_verify=0'], { timeoutMs: 300_000 })
      t.equal(r.code, 0, 'fio writes the cold half', { stderr: r.stderr.slice(-2000) })
      const before = d.mmStat()
      t.equal((await echoAttr(d, 'idle', 'all')).code, 0)
      // The hot half is written and verified while the cold half is recompressed.
      const hot = run('fio', [...common, '--name=hot', '--rw=randwrite', '--bs=4k', '--offset=64M', '--size=32M', '--do_verify=1'],
        { timeoutMs: 300_000 })
      const recompress = await echoAttr(d, 'recompress', 'type=idle')
      t.equal(recompress.code, 0, 'recompress type=idle', { stderr: recompress.stderr })
      r = await hot
      t.equal(r.code, 0, 'fio wrote and verified the hot half during the run', { stderr: r.stderr.slice(-2000) })
      t.equal((await echoAttr(d, 'compact', '1')).code, 0)
      r = await run('fio', [...cold, '--verify_only'], { timeoutMs: 300_000 })
      t.equal(r.code, 0, 'fio --verify_only: every recompressed block reads back', { stderr: r.stderr.slice(-2000) })
      const report = JSON.parse(r.stdout.slice(Math.max(0, r.stdout.indexOf('{')))) as { jobs: Array<{ error: number; read: { io_bytes: number } }> }
      t.same(report.jobs.map((j) => j.error), [0])
      t.ok(report.jobs[0].read.io_bytes >= 60 * MiB, `${(report.jobs[0].read.io_bytes / MiB).toFixed(1)} MiB verified`)
      const after = d.mmStat()
      const recompressed = attrNumber(d, 'zramfuse/recompressed_pages')
      t.comment(`mm_stat before ${JSON.stringify(before)}`)
      t.comment(`mm_stat after  ${JSON.stringify(after)}`)
      t.comment(`recompressed_pages ${recompressed} units ${attrNumber(d, 'zramfuse/units')} unit_bytes ${attrNumber(d, 'zramfuse/unit_bytes')} ` +
        `cache hits ${attrNumber(d, 'zramfuse/unit_cache_hits')} misses ${attrNumber(d, 'zramfuse/unit_cache_misses')} ` +
        `max slice ${(attrNumber(d, 'zramfuse/recompress_max_slice_ns') / 1e6).toFixed(2)} ms ` +
        `mean slice ${(attrNumber(d, 'zramfuse/recompress_main_ns') / Math.max(1, attrNumber(d, 'zramfuse/recompress_slices')) / 1e3).toFixed(1)} us`)
      t.ok(recompressed > 1000, 'pages were recompressed')
      if (cfg.unit > 1) t.ok(attrNumber(d, 'zramfuse/units') > 0, 'units were made')
      t.ok(after.memUsedTotal < before.memUsedTotal + 32 * MiB, 'memory: the cold half shrank, the hot half was added')
      const io = readAttr(d, 'io_stat').trim().split(/\s+/).map(Number)
      t.same([io[0], io[1]], [0, 0], 'no failed reads or writes')
      await d.stop()
    })
  }
}
