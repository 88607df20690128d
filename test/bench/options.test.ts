import t from 'tap'
import { parseBenchArgs, realDirCandidates } from '../../bench/options'

t.test('defaults: full and quick', async (t) => {
  const full = parseBenchArgs([], '/out')
  t.equal(full.quick, false)
  t.equal(full.reps, 3)
  t.equal(full.runtimeS, 2)
  t.equal(full.regionBytes, 256 << 20)
  t.equal(full.disksize, 1 << 30)
  t.equal(full.outDir, '/out')
  t.equal(full.only, null)
  t.ok(full.perf && full.fidelity)
  const quick = parseBenchArgs(['--quick'], '/out')
  t.equal(quick.reps, 1)
  t.equal(quick.runtimeS, 0.5)
  t.equal(quick.regionBytes, 64 << 20)
  t.equal(quick.fidelityBytes, 32 << 20)
  t.equal(realDirCandidates(quick, '/repo')[0], '/usr/share/perl')
  t.same(realDirCandidates(parseBenchArgs(['--real-dir', '/x'], '/o'), '/repo'), ['/x'])
})

t.test('overrides and bad values', async (t) => {
  const o = parseBenchArgs(['--quick', '--reps', '5', '--runtime', '1.5', '--only', 'ceiling, zramfuse-lz4', '--no-fidelity', '--region', '128M'], '/o')
  t.equal(o.reps, 5)
  t.equal(o.runtimeS, 1.5)
  t.same(o.only, ['ceiling', 'zramfuse-lz4'])
  t.equal(o.fidelity, false)
  t.equal(o.regionBytes, 128 << 20)
  t.throws(() => parseBenchArgs(['--reps', '0'], '/o'), /--reps/)
  t.throws(() => parseBenchArgs(['--runtime', 'x'], '/o'), /--runtime/)
  t.throws(() => parseBenchArgs(['--region', '2G'], '/o'), /exceed/)
  t.throws(() => parseBenchArgs(['--region', '1000k'], '/o'), /MiB/)
  t.throws(() => parseBenchArgs(['--bogus'], '/o'))
  const j = parseBenchArgs(['--jobs', 'randwrite-4k-qd1,read-1m', '--no-real'], '/o')
  t.same(j.jobs, ['randwrite-4k-qd1', 'read-1m'])
  t.equal(j.real, false)
  t.equal(parseBenchArgs([], '/o').jobs, null)
  t.throws(() => parseBenchArgs(['--jobs', 'randwrite-4k-qd1,nope'], '/o'), /unknown job nope/)
})

t.test('--pin, --keep-daemons and --awake', async (t) => {
  const d = parseBenchArgs([], '/o')
  t.equal(d.pin, 'split', 'pinned by default')
  t.equal(d.keepDaemons, false, 'fresh daemons for every run by default')
  const o = parseBenchArgs(['--pin', 'none', '--keep-daemons'], '/o')
  t.equal(o.pin, 'none')
  t.equal(o.keepDaemons, true)
  t.equal(parseBenchArgs(['--pin', 'same'], '/o').pin, 'same')
  t.equal(d.awake, false, 'vCPUs may halt by default')
  t.equal(parseBenchArgs(['--awake'], '/o').awake, true, '--awake')
  t.throws(() => parseBenchArgs(['--pin', 'cpu0'], '/o'), /--pin must be split or same or none/)
})

t.test('--publish: a full run only', async (t) => {
  t.equal(parseBenchArgs([], '/o').publish, false)
  t.equal(parseBenchArgs(['--publish'], '/o').publish, true)
  t.equal(parseBenchArgs(['--publish', '--reps', '5', '--pin', 'none'], '/o').publish, true, 'more runs or another placement is still a full run')
  for (const subset of [['--quick'], ['--only', 'zramfuse-lz4'], ['--jobs', 'randread-4k-qd1'], ['--no-perf'], ['--no-fidelity'], ['--no-real'], ['--codecs']]) {
    t.throws(() => parseBenchArgs(['--publish', ...subset], '/o'), /--publish takes a full run only/, subset.join(' '))
  }
})
