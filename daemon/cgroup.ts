/**
 * Keep the daemon out of swap: if its own memory were swapped out to the device it serves,
 * a swap-in would wait for the daemon, and the daemon for the swap-in (deadlock).
 *
 * Every cgroup this touches is the one the daemon was started in (C) or below it. A cgroup
 * manager owns C's parent, and under systemd C itself (the unit's cgroup). Leaving C would take
 * the daemon out of the unit: systemd would lose track of its main process and its limits would
 * no longer apply.
 *
 * - cgroup v2 (unified hierarchy at /sys/fs/cgroup):
 *   1. memory.swap.max is already 0 in C or an ancestor (`MemorySwapMax=0` in the unit, as
 *      contrib/systemd/zramfuse@.service has it; `systemd-run --scope -p MemorySwapMax=0`; a
 *      container's limit): the limit is hierarchical, so this is the guard. The daemon stays in C
 *      and writes nothing.
 *   2. Under systemd, C is systemd's unless the unit is delegated (`Delegate=yes`: systemd marks
 *      C with the trusted.delegate or user.delegate xattr, as its cg_is_delegated() reads it).
 *      Not delegated: the daemon changes nothing and reports that the unit needs MemorySwapMax=0.
 *   3. Delegated, or no systemd: a leaf `C/zramfuse-<pid>` with memory.swap.max = 0. Its
 *      memory.swap.max exists only when memory is in C's cgroup.subtree_control. A cgroup with
 *      controllers in subtree_control may hold no processes (the no-internal-processes rule; the
 *      root is exempt). So the daemon moves into the leaf first, and enables memory in C only when
 *      it was C's one process: C is then the daemon's alone. Otherwise it reports that too.
 *      unpinNoSwap() disables memory in C again (when it enabled it), moves back and removes
 *      the leaf.
 * - cgroup v1 (memory controller mounted, e.g. /sys/fs/cgroup/memory): a cgroup `zramfuse-<pid>`
 *   created as a CHILD of the memory cgroup the daemon was started in (so every limit of the
 *   enclosing cgroup, e.g. a systemd unit or a container, still applies) with
 *   memory.swappiness = 0. Note: v1 charges already made before the move stay with the old
 *   cgroup (charge moving is gone from recent kernels), so pin as early as possible; and
 *   swappiness 0 stops limit reclaim from swapping the group, while global reclaim may still
 *   swap it when the machine is nearly out of file pages (the kernel's rule).
 * - otherwise: mode 'none' with the reason; the daemon must log it loudly.
 *
 * Synchronous and file-system only (cgroupfs reads and writes, one xattr read); no child processes.
 * The hierarchy, /proc/self/cgroup and whether systemd runs can be given (CgroupHost), so a test
 * can point all of it at a hierarchy it mounted.
 */
import { accessSync, constants, existsSync, mkdirSync, readdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { processAlive } from './procfs'

export type NoSwapMode = 'cgroup-v2' | 'cgroup-v1' | 'none'

/** A mounted cgroup hierarchy, and where this process's cgroups are listed. */
export interface CgroupHierarchy {
  version: 1 | 2
  /** where the hierarchy is mounted */
  mountPoint: string
  /** which cgroup of the hierarchy is mounted there (not '/' inside some containers) */
  root: string
  /** /proc/self/cgroup, or what a test gives instead */
  procCgroup: string
}

export interface NoSwapPin {
  mode: NoSwapMode
  /** the cgroup directory the process is in with the guard (null for 'none') */
  path: string | null
  /** human-readable: what was done, or why nothing could be done */
  detail: string
  /** the cgroup directory the process came from, where unpinNoSwap() moves it back */
  origin: string | null
  /** true when pinNoSwap() created `path` (and unpinNoSwap() should remove it) */
  created: boolean
  /** cgroup v2: the cgroup whose cgroup.subtree_control pinNoSwap() added memory to */
  memoryEnabledIn: string | null
  /** the hierarchy of `path` (null for 'none') */
  hierarchy: CgroupHierarchy | null
}

/** What pinNoSwap() looks at; every field defaults to this machine's. */
export interface CgroupHost {
  /** the hierarchy to use: a cgroup v2 mount, or a v1 mount with the memory controller */
  mountPoint?: string
  /** the file listing this process's cgroups (default /proc/self/cgroup) */
  procCgroup?: string
  /** does systemd manage the cgroup tree? (default: /run/systemd/system exists, as sd_booted(3)) */
  systemd?: boolean
}

const CGROUP_ROOT = '/sys/fs/cgroup'
const PROC_CGROUP = '/proc/self/cgroup'
const OUR_NAME = /^zramfuse-(\d+)$/

function read(path: string): string {
  return readFileSync(path, 'utf8').trim()
}

function readOr(path: string, fallback: string): string {
  try {
    return read(path)
  } catch {
    return fallback
  }
}

function errText(err: unknown): string {
  return err instanceof Error ? err.message : String(err)
}

interface MountEntry {
  mountPoint: string
  root: string
  fstype: string
  superOpts: string[]
}

function mountEntries(): MountEntry[] {
  let text = ''
  try {
    text = readFileSync('/proc/self/mountinfo', 'utf8')
  } catch {
    return []
  }
  const out: MountEntry[] = []
  for (const line of text.split('\n')) {
    const sep = line.indexOf(' - ')
    if (sep < 0) continue
    const pre = line.slice(0, sep).split(' ')
    const post = line.slice(sep + 3).split(' ')
    const root = pre[3]
    const mountPoint = pre[4]
    if (root === undefined || mountPoint === undefined) continue
    out.push({ mountPoint, root, fstype: post[0] ?? '', superOpts: (post[2] ?? '').split(',') })
  }
  return out
}

/** The hierarchy the guard works in: the one given, else v2 at /sys/fs/cgroup, else v1 memory. */
function findHierarchy(host: CgroupHost): CgroupHierarchy | null {
  const procCgroup = host.procCgroup ?? PROC_CGROUP
  const mounts = mountEntries()
  const rootOf = (mp: string): string => mounts.find((m) => m.mountPoint === mp)?.root ?? '/'
  if (host.mountPoint !== undefined) {
    const version = existsSync(join(host.mountPoint, 'cgroup.controllers')) ? 2 : 1
    return { version, mountPoint: host.mountPoint, root: rootOf(host.mountPoint), procCgroup }
  }
  // A pure cgroup v2 system has cgroup.controllers at the top of /sys/fs/cgroup.
  if (existsSync(join(CGROUP_ROOT, 'cgroup.controllers'))) return { version: 2, mountPoint: CGROUP_ROOT, root: rootOf(CGROUP_ROOT), procCgroup }
  const v1 = mounts.find((m) => m.fstype === 'cgroup' && m.superOpts.includes('memory'))
  if (v1 !== undefined) return { version: 1, mountPoint: v1.mountPoint, root: v1.root, procCgroup }
  const fallback = join(CGROUP_ROOT, 'memory')
  if (existsSync(fallback)) return { version: 1, mountPoint: fallback, root: '/', procCgroup }
  return null
}

/** This process's cgroup path in hierarchy `h` (from its /proc/self/cgroup). */
function ownCgroup(h: CgroupHierarchy): string | null {
  let text: string
  try {
    text = readFileSync(h.procCgroup, 'utf8')
  } catch {
    return null
  }
  for (const line of text.split('\n')) {
    const first = line.indexOf(':')
    const second = line.indexOf(':', first + 1)
    if (first < 0 || second < 0) continue
    const id = line.slice(0, first)
    const controllers = line.slice(first + 1, second).split(',')
    if (h.version === 2 ? id === '0' : controllers.includes('memory')) return line.slice(second + 1)
  }
  return null
}

/** The directory of cgroup `path` (as in /proc/self/cgroup) under the mount of its hierarchy. */
function cgroupDir(h: CgroupHierarchy, path: string): string {
  let rel = path
  if (h.root !== '/' && (rel === h.root || rel.startsWith(`${h.root}/`))) rel = rel.slice(h.root.length)
  return join(h.mountPoint, rel)
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
  return { mode: 'none', path: null, detail, origin: null, created: false, memoryEnabledIn: null, hierarchy: null }
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

/**
 * systemd's cg_is_delegated(): the trusted.delegate xattr, else user.delegate, is "1". A string
 * is why it could not be told (then it counts as not delegated).
 */
function delegated(dir: string): boolean | string {
  let getAttributeSync: (path: string, name: string) => Buffer | null
  try {
    // loaded here, not at the top: a platform without its prebuilt addon loses only this check
    ;({ getAttributeSync } = require('@napi-rs/xattr') as typeof import('@napi-rs/xattr'))
  } catch (err) {
    return `cannot read xattrs: ${errText(err)}`
  }
  for (const name of ['trusted.delegate', 'user.delegate']) {
    try {
      const v = getAttributeSync(dir, name)
      if (v !== null) return v.toString('utf8').trim() === '1'
    } catch {
      // not readable: look at the next one
    }
  }
  return false
}

/** The nearest of `dir` and its ancestors (within the mount) whose memory.swap.max is 0. */
function swapMaxZeroAt(dir: string, mountPoint: string): string | null {
  for (let d = dir; d === mountPoint || d.startsWith(`${mountPoint}/`); d = dirname(d)) {
    if (readOr(join(d, 'memory.swap.max'), '') === '0') return d
    if (d === mountPoint) break
  }
  return null
}

function words(path: string): string[] {
  return readOr(path, '').split(/\s+/).filter((w) => w !== '')
}

/** v2, step 3: a leaf of C with memory.swap.max = 0 (C delegated, or no systemd). */
function pinV2Leaf(h: CgroupHierarchy, start: string): NoSwapPin {
  const pid = process.pid
  // the real root has no cgroup.type (a cgroup namespace's root has one, and the rule applies)
  const isRoot = !existsSync(join(start, 'cgroup.type'))
  // every reason not to, at once, before anything is touched
  const problems: string[] = []
  const controllers = words(join(start, 'cgroup.controllers'))
  if (!controllers.includes('memory')) {
    problems.push(`the memory controller is not available in ${start} (cgroup.controllers: ${controllers.join(' ') || 'none'}), ` +
      'so no cgroup below it has memory.swap.max (enabling it is up to whoever manages the cgroups above)')
  }
  for (const path of [start, join(start, 'cgroup.procs'), join(start, 'cgroup.subtree_control')]) {
    try {
      accessSync(path, constants.W_OK)
    } catch {
      problems.push(`${start} is not delegated to uid ${process.getuid?.() ?? '?'}: ${path} is not writable`)
      break
    }
  }
  const mustEnable = !words(join(start, 'cgroup.subtree_control')).includes('memory')
  if (mustEnable && !isRoot) {
    const others = words(join(start, 'cgroup.procs')).filter((p) => p !== String(pid))
    if (others.length > 0) {
      problems.push(`${start} holds other processes (${others.slice(0, 5).join(' ')}${others.length > 5 ? ' ...' : ''}): ` +
        'memory can be enabled in its cgroup.subtree_control only once no process is left in it (no internal processes), ' +
        'and they are not the daemon\'s to move')
    }
  }
  if (problems.length > 0) {
    return none(`cgroup v2: no cgroup of its own below ${start}: ${problems.join('; ')}. ` +
      'Start it in a cgroup with memory.swap.max=0 (systemd: MemorySwapMax=0), or in a cgroup of its own with the memory controller')
  }
  removeStale(start)
  const dir = join(start, `zramfuse-${pid}`)
  let created = false
  let moved = false
  let enabled = false
  const undo = (): void => {
    if (enabled) {
      try {
        writeFileSync(join(start, 'cgroup.subtree_control'), '-memory\n')
      } catch {
        // best effort: a stale leaf is removed by the next start
      }
    }
    if (moved) {
      try {
        moveInto(start, pid)
      } catch {
        // best effort
      }
    }
    undoGroup(dir, created)
  }
  try {
    created = makeGroup(dir)
    // into the leaf first: C may take controllers only once it holds no process
    moveInto(dir, pid)
    moved = true
    if (mustEnable) {
      writeFileSync(join(start, 'cgroup.subtree_control'), '+memory\n')
      // the root is shared (other cgroups, other daemons may use memory there from now on):
      // only a cgroup that is the daemon's alone gets it taken out again
      enabled = !isRoot
    }
    const swapMax = join(dir, 'memory.swap.max')
    if (!existsSync(swapMax)) {
      undo()
      return none('cgroup v2: memory.swap.max is missing (kernel without swap accounting: CONFIG_MEMCG_SWAP / swapaccount=0)')
    }
    writeFileSync(swapMax, '0\n')
    const zswapMax = join(dir, 'memory.zswap.max')
    if (existsSync(zswapMax)) writeFileSync(zswapMax, '0\n')
    if (read(swapMax) !== '0') throw new Error(`memory.swap.max reads ${read(swapMax)} after writing 0`)
  } catch (err) {
    undo()
    return none(`cgroup v2: cannot pin into ${dir}: ${errText(err)}`)
  }
  return {
    mode: 'cgroup-v2', path: dir, origin: start, created, memoryEnabledIn: enabled ? start : null, hierarchy: h,
    detail: `moved pid ${pid} into ${dir}, below the cgroup it was started in, with memory.swap.max=0` +
      (mustEnable ? ` (memory enabled in ${start}/cgroup.subtree_control)` : ''),
  }
}

function pinV2(h: CgroupHierarchy, systemd: boolean): NoSwapPin {
  const own = ownCgroup(h)
  if (own === null) return none(`cgroup v2: ${h.procCgroup} has no 0:: line`)
  const start = cgroupDir(h, own)
  const zeroAt = swapMaxZeroAt(start, h.mountPoint)
  if (zeroAt !== null) {
    return {
      mode: 'cgroup-v2', path: start, origin: start, created: false, memoryEnabledIn: null, hierarchy: h,
      detail: `memory.swap.max is 0 in ${zeroAt}${zeroAt === start ? '' : ` (above ${start}; the limit is hierarchical)`}: ` +
        `pid ${process.pid} stays in ${start}`,
    }
  }
  const delegation = systemd ? delegated(start) : true
  if (delegation !== true) {
    const unknown = typeof delegation === 'string' ? `, as far as can be told: ${delegation}` : ''
    return none(`cgroup v2: ${start} is systemd's (not delegated${unknown}) and memory.swap.max is ${readOr(join(start, 'memory.swap.max'), 'missing')} there: ` +
      'the unit needs MemorySwapMax=0 (contrib/systemd/zramfuse@.service has it; by hand: ' +
      'systemd-run --scope -p MemorySwapMax=0 zramfuse start ...), or Delegate=yes for a cgroup of its own below it')
  }
  return pinV2Leaf(h, start)
}

function pinV1(h: CgroupHierarchy): NoSwapPin {
  const own = ownCgroup(h)
  if (own === null) return none('cgroup v1: the memory controller is mounted but /proc/self/cgroup has no memory line')
  const origin = cgroupDir(h, own)
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
  return {
    mode: 'cgroup-v1', path: dir, origin, created, memoryEnabledIn: null, hierarchy: h,
    detail: `moved pid ${process.pid} into ${dir} with memory.swappiness=0`,
  }
}

/**
 * Put this process where it cannot be swapped out, never outside the cgroup it was started in.
 * Never throws: on failure the result has mode 'none' and says why.
 */
export function pinNoSwap(host: CgroupHost = {}): NoSwapPin {
  const h = findHierarchy(host)
  if (h === null) return none('no cgroup v2 hierarchy at /sys/fs/cgroup and no cgroup v1 memory controller mounted')
  if (h.version === 2) return pinV2(h, host.systemd ?? existsSync('/run/systemd/system'))
  return pinV1(h)
}

/** Where the process is now, in the hierarchy `info` was made in (the cgroup directory). */
export function currentCgroupDir(info: NoSwapPin): string | null {
  if (info.hierarchy === null) return null
  const own = ownCgroup(info.hierarchy)
  return own === null ? null : cgroupDir(info.hierarchy, own)
}

/**
 * Undo pinNoSwap(): take memory out of the subtree_control it added it to, move the process back
 * to where it came from (or the parent of the pin cgroup) and remove the cgroup pinNoSwap()
 * created. Tolerates every error; `log` hears them.
 */
export function unpinNoSwap(info: NoSwapPin, log: (msg: string) => void = () => {}): void {
  if (info.mode === 'none' || info.path === null || info.path === info.origin) return
  if (info.memoryEnabledIn !== null) {
    // the origin holds no process while memory is in its subtree_control: take it out first
    try {
      writeFileSync(join(info.memoryEnabledIn, 'cgroup.subtree_control'), '-memory\n')
    } catch (err) {
      log(`unpinNoSwap: cannot disable memory in ${info.memoryEnabledIn}/cgroup.subtree_control: ${errText(err)}`)
    }
  }
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
