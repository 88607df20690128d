// daemon/cgroup.ts against this machine's cgroup v1 memory hierarchy. pinNoSwap() moves the
// calling process, so it runs in a child process; the test runner stays where it is. cgroup v2
// is tested in cgroup-v2.test.ts, on a hierarchy the test mounts.
import t from 'tap'
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs'
import { join } from 'node:path'
import { unpinNoSwap } from '../../daemon/cgroup'
import { processAlive } from '../../daemon/procfs'
import { runCgroupChild } from './cgroup-fixture'
import { cgroupLayout, memoryCgroupDirOf, readText } from './util'

const layout = cgroupLayout()
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0

if (!isRoot || layout.kind !== 'v1') {
  t.skip(`cgroup v1: ${isRoot ? 'no cgroup v1 memory controller on this machine' : 'needs root to create cgroups'}`, () => {})
} else {
  t.test('pinNoSwap puts a child process where it cannot swap, unpinNoSwap undoes it', async (t) => {
    const before = readFileSync('/proc/self/cgroup', 'utf8')
    // where the pin cgroup will be made: under our own memory cgroup
    const parent = memoryCgroupDirOf('self')
    t.not(parent, null, 'our own memory cgroup is known')
    if (parent === null) return

    // a stale pin cgroup of a daemon that died without unpinning: pinNoSwap() removes it
    const pidMax = Number(readText('/proc/sys/kernel/pid_max') ?? '32768')
    let deadPid = pidMax - 1
    while (processAlive(deadPid)) deadPid--
    const stale = join(parent, `zramfuse-${deadPid}`)
    mkdirSync(stale)
    t.teardown(() => {
      if (existsSync(stale)) rmdirSync(stale)
    })

    const report = runCgroupChild()
    t.comment(JSON.stringify(report.pin))
    const expectedPath = join(parent, `zramfuse-${report.pid}`)
    t.teardown(() => {
      // in case the child died between pin and unpin
      if (existsSync(expectedPath)) rmdirSync(expectedPath)
    })

    t.equal(report.pin.mode, 'cgroup-v1', `mode is ${report.pin.mode}`)
    t.equal(report.pin.path, expectedPath, 'the pin cgroup is zramfuse-<pid> in the expected place')
    t.equal(report.pin.created, true, 'pinNoSwap created it')
    t.equal(report.inside.current, expectedPath, 'the child was in it (/proc/self/cgroup)')
    t.match(report.inside.procCgroup ?? '', `zramfuse-${report.pid}`, '/proc/self/cgroup names it')
    t.ok((report.inside.procs ?? '').split('\n').includes(String(report.pid)), 'cgroup.procs lists the child')
    t.equal(report.inside.swappiness, '0', 'memory.swappiness = 0')

    t.equal(report.after.current, report.pin.origin, 'unpin moved the child back to where it came from')
    t.equal(report.after.pathExists, false, 'unpin removed the cgroup')
    t.same(report.after.logs, [], 'unpin had nothing to complain about')
    t.notOk(existsSync(stale), 'the stale cgroup of a dead daemon was removed')
    t.equal(readFileSync('/proc/self/cgroup', 'utf8'), before, 'the test runner itself did not move')
  })

  t.test('unpinNoSwap tolerates nothing to undo', async (t) => {
    const logs: string[] = []
    t.doesNotThrow(() => unpinNoSwap({ mode: 'none', path: null, detail: 'x', origin: null, created: false, memoryEnabledIn: null, hierarchy: null }, (m) => logs.push(m)))
    // a pin whose cgroup is already gone; "moving back" targets the cgroup we are in anyway
    const own = memoryCgroupDirOf('self')
    t.not(own, null, 'our own memory cgroup is known')
    if (own !== null) {
      const pin = { mode: 'cgroup-v1' as const, path: join(own, 'zramfuse-gone'), detail: 'x', origin: own, created: true, memoryEnabledIn: null, hierarchy: null }
      t.doesNotThrow(() => unpinNoSwap(pin, (m) => logs.push(m)))
    }
    t.same(logs, [], 'nothing to complain about')
  })
}
