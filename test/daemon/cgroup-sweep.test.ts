// sweepStaleCgroups: removes empty `zramfuse-<pid>` cgroups of dead daemons next to ours, and
// only next to a `zramfuse-<our pid>` of ours (a daemon that stayed in the cgroup it was started
// in, e.g. a unit with MemorySwapMax=0, leaves that cgroup's siblings alone). Plain directories
// stand in for cgroups: rmdir is all it does.
import t from 'tap'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { sweepStaleCgroups } from '../../daemon/cgroup-sweep'
import { processAlive } from '../../daemon/procfs'

function deadPid(): number {
  let pid = Number(readFileSync('/proc/sys/kernel/pid_max', 'utf8').trim()) - 1
  while (processAlive(pid)) pid--
  return pid
}

t.test('next to our own pin cgroup: a dead daemon\'s is removed', async (t) => {
  const parent = mkdtempSync(join(tmpdir(), 'zramfuse-sweep-'))
  t.teardown(() => rmSync(parent, { recursive: true, force: true }))
  const stale = join(parent, `zramfuse-${deadPid()}`)
  const ours = join(parent, `zramfuse-${process.pid}`)
  mkdirSync(stale)
  mkdirSync(ours)
  t.same(sweepStaleCgroups(ours), [stale])
  t.notOk(existsSync(stale))
  t.ok(existsSync(ours), 'ours stays')
})

t.test('a daemon that stayed in its start cgroup sweeps nothing beside it', async (t) => {
  const slice = mkdtempSync(join(tmpdir(), 'zramfuse-sweep-'))
  t.teardown(() => rmSync(slice, { recursive: true, force: true }))
  const unit = join(slice, 'zramfuse@swap.service')
  const other = join(slice, `zramfuse-${deadPid()}`)
  mkdirSync(unit)
  mkdirSync(other)
  t.same(sweepStaleCgroups(unit), [])
  t.ok(existsSync(other), 'a sibling of the unit cgroup is not ours to remove')
})
