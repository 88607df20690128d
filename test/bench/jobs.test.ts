import t from 'tap'
import { DEFAULT_MIX, JOBS, REAL_READ_JOBS, churnArgs, fioArgs, findJob, jobDirection, jobValue, prefillArgs } from '../../bench/jobs'
import { type Capabilities, daemonArgs, planTargets, resolveVariant, ZRAMFUSE_LZ4, ZRAMFUSE_LZ4_AA, ZRAMFUSE_LZ4_INLINE, ZRAMFUSE_ZSTD_INLINE } from '../../bench/targets'

t.test('the issue\'s job list', async (t) => {
  t.same(JOBS.map((j) => j.id), [
    'randwrite-4k-qd1', 'randread-4k-qd1', 'randwrite-4k-4j', 'randread-4k-4j', 'randwrite-4k-qd32',
    'write-128k', 'read-128k', 'write-1m', 'read-1m',
  ])
  t.equal(findJob('randwrite-4k-qd32')?.ioengine, 'libaio')
  t.equal(findJob('randwrite-4k-qd32')?.iodepth, 32)
  t.equal(findJob('randread-4k-4j')?.numjobs, 4)
  t.equal(findJob('nope'), undefined)
})

t.test('fio command lines: direct, seeded, json, mix only on writes', async (t) => {
  const job = findJob('randwrite-4k-qd1')!
  const args = fioArgs(job, { filename: '/m/dev/zram0', sizeBytes: 256 << 20, runtimeS: 2, seed: 42, mix: DEFAULT_MIX })
  for (const a of ['--output-format=json', '--filename=/m/dev/zram0', '--size=268435456', '--direct=1', '--randseed=42',
    '--rw=randwrite', '--bs=4096', '--ioengine=psync', '--iodepth=1', '--numjobs=1', '--time_based', '--runtime=2000ms',
    '--buffer_compress_percentage=50', '--buffer_compress_chunk=4096', '--group_reporting', '--fallocate=none']) {
    t.ok(args.includes(a), a)
  }
  t.notOk(args.includes('--readonly'))
  const read = fioArgs(findJob('read-1m')!, { filename: '/dev/loop3', sizeBytes: 1 << 26, runtimeS: 0.5, seed: 1, mix: DEFAULT_MIX })
  t.ok(read.includes('--readonly'), 'reads cannot write')
  t.ok(read.includes('--runtime=500ms'))
  t.notOk(read.some((a) => a.startsWith('--buffer_compress')), 'no buffer options on reads')
  t.equal(jobDirection(findJob('read-1m')!), 'read')
  t.equal(jobDirection(findJob('write-128k')!), 'write')
  for (const j of REAL_READ_JOBS) t.equal(jobDirection(j), 'read')
})

t.test('prefill and churn', async (t) => {
  const pre = prefillArgs({ filename: 'f', sizeBytes: 1 << 20, seed: 1, mix: DEFAULT_MIX })
  t.ok(pre.includes('--rw=write') && pre.includes('--bs=1M') && !pre.includes('--time_based'))
  const churn = churnArgs({ filename: 'f', sizeBytes: 1 << 20, seed: 1 })
  t.ok(churn.includes('--rw=write:8k'), 'every third page')
  t.ok(churn.includes('--zero_buffers'))
})

t.test('units', async (t) => {
  t.equal(jobValue(findJob('randread-4k-qd1')!, 15000, 15000 * 4096), 15)
  t.equal(jobValue(findJob('read-1m')!, 300, 300 * 1048576), 300 * 1048576 / 1e6)
})

t.test('targets: workers=0 variants wait for kcompressd; the kernel is skipped with its reason', async (t) => {
  const caps: Capabilities = { workers: false, kernelZram: true, kernelZramReason: '' }
  const p = planTargets(caps)
  t.same(p.targets.map((x) => x.id), ['ceiling', 'zramfuse-lz4', 'zramfuse-lz4-aa', 'zramfuse-zstd', 'kernel-lz4'])
  t.same(p.skipped.map((s) => s.target.id), ['zramfuse-lz4-w0', 'zramfuse-zstd-w0'])
  t.match(p.skipped[0]!.reason, /kcompressd/)
  const withWorkers = planTargets({ workers: true, kernelZram: false, kernelZramReason: 'no zram here' })
  t.same(withWorkers.targets.map((x) => x.id), ['ceiling', 'zramfuse-lz4', 'zramfuse-lz4-aa', 'zramfuse-lz4-w0', 'zramfuse-zstd', 'zramfuse-zstd-w0'])
  t.same(withWorkers.skipped.map((s) => [s.target.id, s.reason]), [['kernel-lz4', 'no zram here']])
  t.same(planTargets(caps, ['ceiling', 'kernel-lz4']).targets.map((x) => x.id), ['ceiling', 'kernel-lz4'])
  t.same(planTargets(caps, ['zramfuse-lz4']).targets.map((x) => x.id), ['zramfuse-lz4', 'zramfuse-lz4-aa'], 'the A/A twin goes with its base')
  t.same(planTargets(caps, ['zramfuse-zstd']).targets.map((x) => x.id), ['zramfuse-zstd'], 'and only with it')
  t.same(daemonArgs(ZRAMFUSE_LZ4_AA), daemonArgs(ZRAMFUSE_LZ4), 'the twin runs with exactly its base\'s arguments')
  t.same([ZRAMFUSE_LZ4_AA.modes, ZRAMFUSE_LZ4_AA.twinOf, ZRAMFUSE_LZ4_AA.variant], [ZRAMFUSE_LZ4.modes, 'zramfuse-lz4', true])
  t.equal(resolveVariant(ZRAMFUSE_LZ4_AA, 0), ZRAMFUSE_LZ4_AA, 'the twin is never replaced')
  t.same(daemonArgs(ZRAMFUSE_LZ4), ['--algorithm', 'lz4'])
  t.same(daemonArgs(ZRAMFUSE_LZ4_INLINE), ['--algorithm', 'lz4', '--workers', '0'])
  t.same(ZRAMFUSE_LZ4_INLINE.modes, ['file'], 'variants on the file only')
  t.ok(ZRAMFUSE_LZ4_INLINE.variant && !ZRAMFUSE_LZ4.variant)
  // the default has workers: workers=0 is the inline twin
  t.equal(resolveVariant(ZRAMFUSE_LZ4_INLINE, 3), ZRAMFUSE_LZ4_INLINE)
  t.equal(resolveVariant(ZRAMFUSE_LZ4_INLINE, null), ZRAMFUSE_LZ4_INLINE, 'unknown default: as planned')
  // the default is already inline (2 CPUs): measure workers=1 instead
  const w1 = resolveVariant(ZRAMFUSE_LZ4_INLINE, 0)
  t.equal(w1.id, 'zramfuse-lz4-w1')
  t.same(daemonArgs(w1), ['--algorithm', 'lz4', '--workers', '1'])
  t.equal(resolveVariant(ZRAMFUSE_ZSTD_INLINE, 0).id, 'zramfuse-zstd-w1')
  t.equal(resolveVariant(ZRAMFUSE_LZ4, 0), ZRAMFUSE_LZ4, 'defaults are never replaced')
})
