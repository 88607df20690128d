/**
 * Keep the daemon out of swap: if its own memory were swapped out to the device it serves,
 * a swap-in would wait for the daemon, and the daemon for the swap-in (deadlock).
 *
 * - cgroup v2 (unified hierarchy at /sys/fs/cgroup): a cgroup `zramfuse-<pid>` at the root of
 *   the hierarchy with memory.swap.max = 0 (no swap at all for the daemon's pages).
 * - cgroup v1 (memory controller mounted, e.g. /sys/fs/cgroup/memory): a cgroup `zramfuse-<pid>`
 *   created as a CHILD of the memory cgroup the daemon was started in (so every limit of the
 *   enclosing cgroup, e.g. a systemd unit or a container, still applies) with
 *   memory.swappiness = 0. Note: v1 charges already made before the move stay with the old
 *   cgroup (charge moving is gone from recent kernels), so pin as early as possible; and
 *   swappiness 0 stops limit reclaim from swapping the group, while global reclaim may still
 *   swap it when the machine is nearly out of file pages (the kernel's rule).
 * - otherwise: mode 'none' with the reason; the daemon must log it loudly.
 *
 * Synchronous and file-system only (writes to cgroupfs); no child processes.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { processAlive } from './procfs'

export type NoSwapMode = 'cgroup-v2' | 'cgroup-v1' | 'none'

export interface NoSwapPin {
  mode: NoSwapMode
  /** the cgroup directory the process was moved into (null for 'none') */
  path: string | null
  /** human-readable: what was done, or why nothing could be done */
  detail: string
  /** the cgroup directory the process came from, where unpinNoSwap() moves it back */
  origin: string | null
  /** true when pinNoSwap() created `path` (and unpinNoSwap() should remove it) */
  created: boolean
}

const CGROUP_ROOT = '/sys/fs/cgroup'
const OUR_NAME = /^zramfuse-(\d+)$/

interface CgroupMount {
  /** where the hierarchy is mounted */
  mountPoint: string
  /** which cgroup of the hierarchy is mounted there (not '/' inside some containers) */
  root: string
}

function read(path: string): string {
  return readFileSync(path, 'utf8').trim()
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

/** cgroup mounts from /proc/self/mountinfo: the v2 one and the v1 one carrying `memory`. */
function cgroupMounts(): { v2: CgroupMount | null; v1memory: CgroupMount | null } {
  let v2: CgroupMount | null = null
  let v1memory: CgroupMount | null = null
  let text = ''
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8')
  } catch {
    return { v2, v1memory }
  }
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ')
    if (sep < 0) continue
    const pre = line.slice(0, sep).split(' ')
    const post = line.slice(sep + 3).split(' ')
    const root = pre[3]
    const mountPoint = pre[4]
    const fstype = post[0]
    const superOpts = (post[2] ?? '').split(',')
    if (root === undefined || mountPoint === undefined) continue
    if (fstype === 'cgroup2' && v2 === null) v2 = { mountPoint, root }
    if (fstype === 'cgroup' && superOpts.includes('memory') && v1memory === null) v1memory = { mountPoint, root }
  }
  return { v2, v1memory }
}

/** This process's cgroup path in the hierarchy selected by `match` (from /proc/self/cgroup). */
function ownCgroup(match: (controllers: string[], hierarchyId: string) => boolean): string | null {
  let text: string
  try {
    text = readFileSync('/proc/self/cgroup', 'utf8')
  } catch {
    return null
  }
  for (const line of text.split('\n')) {
    const first = line.indexOf(':')
    const second = line.indexOf(':', first + 1)
    if (first < 0 || second < 0) continue
    const id = line.slice(0, first)
    const controllers = line.slice(first + 1, second).split(',')
    if (match(controllers, id)) return line.slice(second + 1)
  }
  return null
}

/** The directory of cgroup `path` (as in /proc/self/cgroup) under a mount of its hierarchy. */
function cgroupDir(mount: CgroupMount, path: string): string {
  let rel = path
  if (mount.root !== '/' && (rel === mount.root || rel.startsWith(`${mount.root}/`))) rel = rel.slice(mount.root.length)
  return join(mount.mountPoint, rel)
}

/** Remove empty `zramfuse-<pid>` cgroups left in `parent` by daemons that died without unpinning. */
function removeStale(parent: string): void {
  let names: string[]
  try {
    names = readdirSync(parent)
  } catch {
    return
  }
  for (const name of names) {
    const m = OUR_NAME.exec(name)
    if (m === null) continue
    const pid = Number(m[1])
    if (pid === process.pid || processAlive(pid)) continue
    try {
      if (read(join(parent, name, 'cgroup.procs')) === '') rmdirSync(join(parent, name))
    } catch {
      // still in use or already gone: leave it
    }
  }
}

function moveInto(dir: string, pid: number): void {
  writeFileSync(join(dir, 'cgroup.procs'), `${pid}\n`)
}

function none(detail: string): NoSwapPin {
  return { mode: 'none', path: null, detail, origin: null, created: false }
}

function makeGroup(dir: string): boolean {
  if (existsSync(dir)) return false
  mkdirSync(dir)
  return true
}

function undoGroup(dir: string, created: boolean): void {
  if (!created) return
  try {
    rmdirSync(dir)
  } catch {
    // best effort
  }
}

function pinV2(mount: CgroupMount): NoSwapPin {
  const own = ownCgroup((_c, id) => id === '0')
  const origin = own === null ? mount.mountPoint : cgroupDir(mount, own)
  const top = mount.mountPoint
  try {
    const subtree = read(join(top, 'cgroup.subtree_control')).split(/\s+/)
    if (!subtree.includes('memory')) writeFileSync(join(top, 'cgroup.subtree_control'), '+memory\n')
  } catch (err) {
    return none(`cgroup v2: cannot enable the memory controller in ${top}/cgroup.subtree_control: ${errText(err)}`)
  }
  removeStale(top)
  const dir = join(top, `zramfuse-${process.pid}`)
  let created = false
  try {
    created = makeGroup(dir)
    const swapMax = join(dir, 'memory.swap.max')
    if (!existsSync(swapMax)) {
      undoGroup(dir, created)
      return none('cgroup v2: memory.swap.max is missing (kernel without swap accounting: CONFIG_MEMCG_SWAP / swapaccount=0)')
    }
    writeFileSync(swapMax, '0\n')
    const zswapMax = join(dir, 'memory.zswap.max')
    if (existsSync(zswapMax)) writeFileSync(zswapMax, '0\n')
    if (read(swapMax) !== '0') throw new Error(`memory.swap.max reads ${read(swapMax)} after writing 0`)
    moveInto(dir, process.pid)
  } catch (err) {
    undoGroup(dir, created)
    return none(`cgroup v2: cannot pin into ${dir}: ${errText(err)}`)
  }
  return { mode: 'cgroup-v2', path: dir, detail: `moved pid ${process.pid} into ${dir} with memory.swap.max=0`, origin, created }
}

function pinV1(mount: CgroupMount): NoSwapPin {
  const own = ownCgroup((c) => c.includes('memory'))
  if (own === null) return none('cgroup v1: the memory controller is mounted but /proc/self/cgroup has no memory line')
  const origin = cgroupDir(mount, own)
  removeStale(origin)
  const dir = join(origin, `zramfuse-${process.pid}`)
  let created = false
  try {
    created = makeGroup(dir)
    const swappiness = join(dir, 'memory.swappiness')
    writeFileSync(swappiness, '0\n')
    if (read(swappiness) !== '0') throw new Error(`memory.swappiness reads ${read(swappiness)} after writing 0`)
    moveInto(dir, process.pid)
  } catch (err) {
    undoGroup(dir, created)
    return none(`cgroup v1: cannot pin into ${dir}: ${errText(err)}`)
  }
  return { mode: 'cgroup-v1', path: dir, detail: `moved pid ${process.pid} into ${dir} with memory.swappiness=0`, origin, created }
}

/**
 * Move this process into a memory cgroup of its own where it cannot be swapped out.
 * Never throws: on failure the result has mode 'none' and says why.
 */
export function pinNoSwap(): NoSwapPin {
  const { v2, v1memory } = cgroupMounts()
  // A pure cgroup v2 system has cgroup.controllers at the top of /sys/fs/cgroup.
  if (existsSync(join(CGROUP_ROOT, 'cgroup.controllers'))) {
    return pinV2(v2 !== null && v2.mountPoint === CGROUP_ROOT ? v2 : { mountPoint: CGROUP_ROOT, root: '/' })
  }
  if (v1memory !== null) return pinV1(v1memory)
  if (existsSync(join(CGROUP_ROOT, 'memory'))) return pinV1({ mountPoint: join(CGROUP_ROOT, 'memory'), root: '/' })
  return none('no cgroup v2 hierarchy at /sys/fs/cgroup and no cgroup v1 memory controller mounted')
}

/** Where the process is now, in the hierarchy `info` was made in (the cgroup directory). */
export function currentCgroupDir(info: NoSwapPin): string | null {
  const { v2, v1memory } = cgroupMounts()
  if (info.mode === 'cgroup-v2') {
    const own = ownCgroup((_c, id) => id === '0')
    return own === null ? null : cgroupDir(v2 ?? { mountPoint: CGROUP_ROOT, root: '/' }, own)
  }
  if (info.mode === 'cgroup-v1') {
    const own = ownCgroup((c) => c.includes('memory'))
    return own === null ? null : cgroupDir(v1memory ?? { mountPoint: join(CGROUP_ROOT, 'memory'), root: '/' }, own)
  }
  return null
}

/**
 * Undo pinNoSwap(): move the process back to where it came from (or the parent of the pin
 * cgroup) and remove the cgroup pinNoSwap() created. Tolerates every error; `log` hears them.
 */
export function unpinNoSwap(info: NoSwapPin, log: (msg: string) => void = () => {}): void {
  if (info.mode === 'none' || info.path === null) return
  const targets = [info.origin, dirname(info.path)].filter((d): d is string => d !== null)
  let moved = false
  for (const target of targets) {
    try {
      moveInto(target, process.pid)
      moved = true
      break
    } catch (err) {
      log(`unpinNoSwap: cannot move pid ${process.pid} back to ${target}: ${errText(err)}`)
    }
  }
  if (!moved || !info.created) return
  // Children the process started while pinned may still be exiting: retry for up to ~1 s.
  for (let i = 0; i < 20; i++) {
    try {
      rmdirSync(info.path)
      return
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return
      if (code !== 'EBUSY' || i === 19) {
        log(`unpinNoSwap: cannot remove ${info.path}: ${errText(err)}`)
        return
      }
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 50)
    }
  }
}
