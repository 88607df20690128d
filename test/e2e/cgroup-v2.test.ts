// daemon/cgroup.ts on a cgroup v2 hierarchy this test mounts (mount -t cgroup2): the guard never
// leaves the cgroup the daemon was started in. With no systemd, or a cgroup systemd delegated
// (trusted.delegate), it makes a leaf below it; under systemd without delegation it changes nothing
// and says the unit needs MemorySwapMax=0; another process in the start cgroup is left alone.
// Where the memory controller is not in the mounted hierarchy (on a machine whose memory
// controller is on cgroup v1) no cgroup can have memory.swap.max; then each case checks that the
// process stayed where it was, that nothing was created, and that the report says why.
// Every cgroup made here is under one directory at the top of the mount; the teardown moves any
// process left in it back to the test runner's own cgroup, removes it bottom-up, and unmounts.
import t, { type Test } from 'tap'
import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmdirSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setAttributeSync } from '@napi-rs/xattr'
import { runCgroupChild, type ChildReport } from './cgroup-fixture'
import { readText } from './util'

const isRoot = typeof process.getuid === 'function' && process.getuid() === 0

function words(path: string): string[] {
  return (readText(path) ?? '').split(/\s+/).filter((w) => w !== '')
}

/** Remove cgroup `dir` and everything below it, moving processes still in it to `refuge`. */
function removeCgroupTree(dir: string, refuge: string): void {
  if (!existsSync(dir)) return
  for (const name of readdirSync(dir)) {
    const sub = join(dir, name)
    if (statSync(sub).isDirectory()) removeCgroupTree(sub, refuge)
  }
  for (const pid of words(join(dir, 'cgroup.procs'))) {
    try {
      writeFileSync(join(refuge, 'cgroup.procs'), `${pid}\n`)
    } catch {
      // gone meanwhile
    }
  }
  rmdirSync(dir)
}

function mountCgroup2(): { mount: string | null; why: string } {
  const mount = mkdtempSync('/tmp/zramfuse-cgroup2-')
  const r = spawnSync('mount', ['-t', 'cgroup2', 'none', mount], { encoding: 'utf8' })
  if (r.status === 0) return { mount, why: '' }
  rmdirSync(mount)
  return { mount: null, why: `mount -t cgroup2 failed: ${(r.stderr || r.error?.message || '').trim()}` }
}

const mounted = isRoot ? mountCgroup2() : { mount: null, why: 'needs root to mount cgroup2' }
if (mounted.mount === null) {
  t.skip(`cgroup v2: ${mounted.why}`, () => {})
} else {
  const M = mounted.mount
  const ownPath = (readText('/proc/self/cgroup') ?? '').split('\n').find((l) => l.startsWith('0::'))?.slice(3) ?? '/'
  const refuge = join(M, ownPath)
  const T = join(M, `zramfuse-test-${process.pid}`)
  const sleepers: ChildProcess[] = []
  t.teardown(async () => {
    for (const s of sleepers) {
      if (s.exitCode === null && s.signalCode === null) {
        const gone = new Promise((resolve) => s.once('exit', resolve))
        s.kill('SIGKILL')
        await gone
      }
    }
    try {
      removeCgroupTree(T, refuge)
    } finally {
      spawnSync('umount', [M])
      rmdirSync(M)
    }
  })
  mkdirSync(T)
  // memory in T's children needs memory in the root's subtree_control (never changed here)
  // and in T's, which holds no process
  const memory = words(join(M, 'cgroup.subtree_control')).includes('memory')
  if (memory) writeFileSync(join(T, 'cgroup.subtree_control'), '+memory\n')
  t.comment(`cgroup2 mounted at ${M}; root controllers: ${words(join(M, 'cgroup.controllers')).join(' ') || 'none'}; ` +
    `memory ${memory ? 'available: the guard can be set' : 'not available: the guard must say so'}`)

  const rel = (dir: string): string => dir.slice(M.length) || '/'
  const startIn = (name: string): string => {
    const dir = join(T, name)
    mkdirSync(dir)
    return dir
  }

  /** What holds in every case: the process never left `start`, nothing went to the root. */
  const staysInside = (t: Test, r: ChildReport, start: string): void => {
    t.equal(r.joined, rel(start), `the child started in ${rel(start)}`)
    t.ok(r.inside.unified === rel(start) || (r.inside.unified ?? '').startsWith(`${rel(start)}/`), `pinned, it is at or below it: ${String(r.inside.unified)}`)
    t.equal(r.after.unified, rel(start), 'unpinned, it is back in it')
    t.notOk(existsSync(join(M, `zramfuse-${r.pid}`)), 'nothing was made at the root')
    t.notOk(readdirSync(start).some((n) => n.startsWith('zramfuse-')), 'and nothing is left below the start cgroup')
  }

  /** The outcome where a leaf may be made: made where memory exists, else an honest no. */
  const leafOrReport = (t: Test, r: ChildReport, start: string): void => {
    if (memory) {
      const leaf = join(start, `zramfuse-${r.pid}`)
      t.equal(r.pin.mode, 'cgroup-v2', r.pin.detail)
      t.equal(r.pin.path, leaf, 'a leaf of the start cgroup')
      t.equal(r.inside.unified, rel(leaf), 'the child was in it')
      t.equal(r.inside.swapMax, '0', 'memory.swap.max = 0')
      t.equal(r.pin.memoryEnabledIn, start)
      t.ok((r.inside.originSubtree ?? '').split(' ').includes('memory'), 'memory enabled in the start cgroup, now an inner node')
      t.notOk((r.after.originSubtree ?? '').split(' ').includes('memory'), 'and disabled again by unpin')
      t.equal(r.after.pathExists, false, 'the leaf is gone')
    } else {
      t.equal(r.pin.mode, 'none')
      t.match(r.pin.detail, `the memory controller is not available in ${start}`, r.pin.detail)
      t.equal(r.inside.unified, rel(start), 'the child stayed where it was')
      t.equal(r.inside.originSubtree, null, 'no origin recorded: nothing to undo')
      t.equal(words(join(start, 'cgroup.subtree_control')).length, 0, 'the start cgroup\'s subtree_control is untouched')
    }
    t.same(r.after.logs, [], 'unpin had nothing to complain about')
  }

  t.test('no systemd: a leaf below the start cgroup, never at the root', async (t) => {
    const start = startIn('own')
    const r = runCgroupChild({ join: start, host: { mountPoint: M, systemd: false } })
    t.comment(r.pin.detail)
    leafOrReport(t, r, start)
    staysInside(t, r, start)
  })

  t.test('systemd, not delegated: nothing changed; the unit needs MemorySwapMax=0', async (t) => {
    const start = startIn('plain.service')
    const r = runCgroupChild({ join: start, host: { mountPoint: M, systemd: true } })
    t.comment(r.pin.detail)
    t.equal(r.pin.mode, 'none')
    t.match(r.pin.detail, `${start} is systemd's (not delegated)`)
    t.match(r.pin.detail, /the unit needs MemorySwapMax=0/)
    t.equal(r.inside.unified, rel(start), 'the child stayed where it was')
    t.equal(words(join(start, 'cgroup.subtree_control')).length, 0, 'subtree_control untouched')
    staysInside(t, r, start)
  })

  t.test('systemd, delegated (trusted.delegate=1): a leaf below it, as without systemd', async (t) => {
    const start = startIn('delegated.service')
    setAttributeSync(start, 'trusted.delegate', '1')
    const r = runCgroupChild({ join: start, host: { mountPoint: M, systemd: true } })
    t.comment(r.pin.detail)
    t.notMatch(r.pin.detail, /systemd's/, 'the delegation is honoured')
    leafOrReport(t, r, start)
    staysInside(t, r, start)
  })

  t.test('another process in the start cgroup: left alone, and the report says so', async (t) => {
    const start = startIn('shared')
    const other = spawn('sleep', ['600'], { stdio: 'ignore' })
    sleepers.push(other)
    if (other.pid === undefined) throw new Error('sleep did not start')
    writeFileSync(join(start, 'cgroup.procs'), `${other.pid}\n`)
    const r = runCgroupChild({ join: start, host: { mountPoint: M, systemd: false } })
    t.comment(r.pin.detail)
    t.equal(r.pin.mode, 'none')
    t.match(r.pin.detail, `${start} holds other processes (${other.pid})`)
    t.equal(r.inside.unified, rel(start), 'the child stayed where it was')
    t.same(words(join(start, 'cgroup.procs')), [String(other.pid)], 'the other process is still there, alone now the child is gone')
    t.equal(words(join(start, 'cgroup.subtree_control')).length, 0, 'subtree_control untouched')
    staysInside(t, r, start)
  })

  t.test('the test runner itself never moved', async (t) => {
    t.equal((readFileSync('/proc/self/cgroup', 'utf8').split('\n').find((l) => l.startsWith('0::')) ?? '').slice(3), ownPath)
  })
}
