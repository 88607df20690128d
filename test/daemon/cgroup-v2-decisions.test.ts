// daemon/cgroup.ts's cgroup v2 decisions that need a memory controller this machine's v2
// hierarchy lacks (memory.swap.max already 0 from the unit's MemorySwapMax=0 or above it), on a
// plain directory tree laid out as cgroupfs is, with its own /proc/self/cgroup. No cgroup is
// moved here: the point is that in these cases the guard writes nothing and stays, and that it
// says what it found. The moves themselves are tested on a real hierarchy (e2e/cgroup-v2.test.ts).
import t, { type Test } from 'tap'
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { currentCgroupDir, pinNoSwap, unpinNoSwap } from '../../daemon/cgroup'

/** Every file under `dir` with its content, to show nothing was written. */
function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (d: string): void => {
    for (const name of readdirSync(d)) {
      const p = join(d, name)
      if (statSync(p).isDirectory()) {
        out[`${p}/`] = ''
        walk(p)
      } else {
        out[p] = readFileSync(p, 'utf8')
      }
    }
  }
  walk(dir)
  return out
}

/** A cgroupfs-shaped tree: the root, /system.slice, /system.slice/zramfuse@swap.service. */
function hierarchy(t: Test, swapMax: { slice: string; unit: string }): { root: string; unit: string; procCgroup: string } {
  const base = mkdtempSync(join(tmpdir(), 'zramfuse-cgtree-'))
  t.teardown(() => rmSync(base, { recursive: true, force: true }))
  const root = join(base, 'cgroup')
  const unit = join(root, 'system.slice', 'zramfuse@swap.service')
  const files: Record<string, string> = {
    [join(root, 'cgroup.controllers')]: 'cpu io memory pids\n',
    [join(root, 'cgroup.subtree_control')]: 'cpu io memory pids\n',
    [join(root, 'cgroup.procs')]: '1\n',
    [join(root, 'system.slice', 'cgroup.type')]: 'domain\n',
    [join(root, 'system.slice', 'cgroup.controllers')]: 'cpu io memory pids\n',
    [join(root, 'system.slice', 'cgroup.subtree_control')]: 'memory pids\n',
    [join(root, 'system.slice', 'cgroup.procs')]: '',
    [join(root, 'system.slice', 'memory.swap.max')]: `${swapMax.slice}\n`,
    [join(unit, 'cgroup.type')]: 'domain\n',
    [join(unit, 'cgroup.controllers')]: 'memory pids\n',
    [join(unit, 'cgroup.subtree_control')]: '',
    [join(unit, 'cgroup.procs')]: `${process.pid}\n`,
    [join(unit, 'memory.swap.max')]: `${swapMax.unit}\n`,
  }
  for (const [p, text] of Object.entries(files)) {
    mkdirSync(dirname(p), { recursive: true })
    writeFileSync(p, text)
  }
  const procCgroup = join(base, 'proc-self-cgroup')
  writeFileSync(procCgroup, '0::/system.slice/zramfuse@swap.service\n')
  return { root, unit, procCgroup }
}

t.test("MemorySwapMax=0 on the unit: the daemon stays in it and writes nothing", async (t) => {
  const h = hierarchy(t, { slice: 'max', unit: '0' })
  const before = snapshot(h.root)
  const pin = pinNoSwap({ mountPoint: h.root, procCgroup: h.procCgroup, systemd: true })
  t.equal(pin.mode, 'cgroup-v2', pin.detail)
  t.equal(pin.path, h.unit, 'the unit cgroup itself')
  t.equal(pin.origin, h.unit)
  t.equal(pin.created, false)
  t.equal(pin.memoryEnabledIn, null)
  t.equal(pin.detail, `memory.swap.max is 0 in ${h.unit}: pid ${process.pid} stays in ${h.unit}`)
  t.equal(currentCgroupDir(pin), h.unit, 'currentCgroupDir reads the same /proc/self/cgroup')
  const logs: string[] = []
  unpinNoSwap(pin, (m) => logs.push(m))
  t.same(logs, [], 'nothing to undo')
  t.same(snapshot(h.root), before, 'no file written, no cgroup made')
})

t.test('memory.swap.max=0 further up (the slice): hierarchical, so the same', async (t) => {
  const h = hierarchy(t, { slice: '0', unit: 'max' })
  const before = snapshot(h.root)
  const pin = pinNoSwap({ mountPoint: h.root, procCgroup: h.procCgroup, systemd: true })
  t.equal(pin.mode, 'cgroup-v2', pin.detail)
  t.equal(pin.path, h.unit)
  t.match(pin.detail, `memory.swap.max is 0 in ${join(h.root, 'system.slice')} (above ${h.unit}; the limit is hierarchical)`)
  t.same(snapshot(h.root), before)
})

t.test('a unit without MemorySwapMax=0, not delegated: nothing written, and it says what to add', async (t) => {
  const h = hierarchy(t, { slice: 'max', unit: 'max' })
  const before = snapshot(h.root)
  const pin = pinNoSwap({ mountPoint: h.root, procCgroup: h.procCgroup, systemd: true })
  t.equal(pin.mode, 'none')
  t.match(pin.detail, `${h.unit} is systemd's (not delegated) and memory.swap.max is max there: the unit needs MemorySwapMax=0`)
  t.same(snapshot(h.root), before)
})

t.test('no 0:: line: none, naming the file', async (t) => {
  const h = hierarchy(t, { slice: 'max', unit: '0' })
  writeFileSync(h.procCgroup, '4:memory:/x\n')
  const pin = pinNoSwap({ mountPoint: h.root, procCgroup: h.procCgroup, systemd: true })
  t.equal(pin.mode, 'none')
  t.equal(pin.detail, `cgroup v2: ${h.procCgroup} has no 0:: line`)
})
