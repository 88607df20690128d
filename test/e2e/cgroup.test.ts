// daemon/cgroup.ts against the real cgroup file system. pinNoSwap() moves the calling process,
// so it runs in a child process; the test runner stays where it is.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmdirSync } from 'node:fs'
import { join } from 'node:path'
import { unpinNoSwap, type NoSwapPin } from '../../daemon/cgroup'
import { processAlive } from '../../daemon/procfs'
import { cgroupLayout, memoryCgroupDirOf, readText, REPO } from './util'

interface ChildReport {
  pid: number
  pin: NoSwapPin
  inside: { procCgroup: string | null; current: string | null; swappiness: string | null; swapMax: string | null; procs: string | null }
  after: { current: string | null; pathExists: boolean; logs: string[] }
}

/** Run the fixture with the same TypeScript loader tap gave us (or the built JS without one). */
function runChild(): ChildReport {
  const loader = process.execArgv.filter((a) => a.includes('@tapjs/typescript'))
  let args: string[]
  if (loader.length > 0) {
    args = [...loader, join(__dirname, 'fixtures', 'cgroup-child.ts')]
  } else {
    const built = join(REPO, 'dist', 'daemon', 'cgroup.js')
    args = [
      '-e',
      `const c = require(${JSON.stringify(built)}); const fs = require('fs');
       const pin = c.pinNoSwap(); const r = (p) => { try { return fs.readFileSync(p, 'utf8').trim() } catch { return null } };
       const inside = { procCgroup: r('/proc/self/cgroup'), current: c.currentCgroupDir(pin),
         swappiness: pin.path && r(pin.path + '/memory.swappiness'), swapMax: pin.path && r(pin.path + '/memory.swap.max'),
         procs: pin.path && r(pin.path + '/cgroup.procs') };
       const logs = []; c.unpinNoSwap(pin, (m) => logs.push(m));
       console.log(JSON.stringify({ pid: process.pid, pin, inside, after: { current: c.currentCgroupDir(pin), pathExists: pin.path ? fs.existsSync(pin.path) : false, logs } }))`,
    ]
  }
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 60_000 })
  if (r.status !== 0) throw new Error(`cgroup child failed (${String(r.status)}): ${r.stderr}`)
  const line = r.stdout.trim().split('\n').pop() ?? ''
  return JSON.parse(line) as ChildReport
}

const layout = cgroupLayout()
const isRoot = typeof process.getuid === 'function' && process.getuid() === 0

if (!isRoot || layout.kind === 'none') {
  t.skip(`cgroup: ${isRoot ? 'no memory cgroup controller on this machine' : 'needs root to create cgroups'}`, () => {})
} else {
  t.test('pinNoSwap puts a child process where it cannot swap, unpinNoSwap undoes it', async (t) => {
    const before = readFileSync('/proc/self/cgroup', 'utf8')
    // where the pin cgroup will be made: v1 under our own memory cgroup, v2 at the top
    const parent = layout.kind === 'v1' ? memoryCgroupDirOf('self') : layout.root
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

    const report = runChild()
    t.comment(JSON.stringify(report.pin))
    const expectedPath = join(parent, `zramfuse-${report.pid}`)
    t.teardown(() => {
      // in case the child died between pin and unpin
      if (existsSync(expectedPath)) rmdirSync(expectedPath)
    })

    t.equal(report.pin.mode, layout.kind === 'v1' ? 'cgroup-v1' : 'cgroup-v2', `mode is ${report.pin.mode}`)
    t.equal(report.pin.path, expectedPath, 'the pin cgroup is zramfuse-<pid> in the expected place')
    t.equal(report.pin.created, true, 'pinNoSwap created it')
    t.equal(report.inside.current, expectedPath, 'the child was in it (/proc/self/cgroup)')
    t.match(report.inside.procCgroup ?? '', `zramfuse-${report.pid}`, '/proc/self/cgroup names it')
    t.ok((report.inside.procs ?? '').split('\n').includes(String(report.pid)), 'cgroup.procs lists the child')
    if (layout.kind === 'v1') t.equal(report.inside.swappiness, '0', 'memory.swappiness = 0')
    else t.equal(report.inside.swapMax, '0', 'memory.swap.max = 0')

    t.equal(report.after.current, report.pin.origin, 'unpin moved the child back to where it came from')
    t.equal(report.after.pathExists, false, 'unpin removed the cgroup')
    t.same(report.after.logs, [], 'unpin had nothing to complain about')
    t.notOk(existsSync(stale), 'the stale cgroup of a dead daemon was removed')
    t.equal(readFileSync('/proc/self/cgroup', 'utf8'), before, 'the test runner itself did not move')
  })

  t.test('unpinNoSwap tolerates nothing to undo', async (t) => {
    const logs: string[] = []
    t.doesNotThrow(() => unpinNoSwap({ mode: 'none', path: null, detail: 'x', origin: null, created: false }, (m) => logs.push(m)))
    // a pin whose cgroup is already gone; "moving back" targets the cgroup we are in anyway
    const own = layout.kind === 'v1' ? memoryCgroupDirOf('self') : null
    if (own !== null) {
      const mode = 'cgroup-v1'
      t.doesNotThrow(() => unpinNoSwap({ mode, path: join(own, 'zramfuse-gone'), detail: 'x', origin: own, created: true }, (m) => logs.push(m)))
    }
    t.same(logs, [], 'nothing to complain about')
  })
}
