/**
 * What the daemon, its CLI and the bench read from /proc about other processes and mounts.
 * One definition each, so every caller agrees on what "alive" and "this mount point" mean.
 */
import { readdirSync, readFileSync, readlinkSync } from 'node:fs'

/**
 * Is `pid` a live process? A zombie (exited, not yet reaped) counts as gone: it holds no memory,
 * mounts or cgroup membership any more. Another user's process is alive (kill answers EPERM),
 * also when /proc hides it (hidepid).
 */
export function processAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false
  try {
    process.kill(pid, 0)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EPERM') return false
  }
  let stat: string
  try {
    stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
  } catch {
    return true // exists (kill said so) but /proc does not show it to us
  }
  // the state follows the command name in parentheses, which may itself contain ") "
  const close = stat.lastIndexOf(')')
  const state = stat.slice(close + 2, close + 3)
  return state !== 'Z' && state !== 'X'
}

/** /proc/mounts, /proc/swaps and mountinfo escape space, tab, newline and backslash as \ooo. */
export function unescapeOctal(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, oct: string) => String.fromCharCode(parseInt(oct, 8)))
}

/** Mount points of /proc/self/mounts, decoded; empty when it cannot be read. */
export function mountPoints(): string[] {
  let text: string
  try {
    text = readFileSync('/proc/self/mounts', 'utf8')
  } catch {
    return []
  }
  const out: string[] = []
  for (const line of text.split('\n')) {
    const field = line.split(' ')[1]
    if (field !== undefined && field !== '') out.push(unescapeOctal(field))
  }
  return out
}

/** One line of /proc/<pid>/mountinfo, decoded. */
export interface MountEntry {
  /** `major:minor` of the mounted file system */
  devNumber: string
  mountPoint: string
  /** e.g. `ext4`, `fuse.zramfuse` (FUSE's subtype after the dot) */
  fsType: string
  /** the mount source: a device path, or a FUSE fsname such as `zramfuse` */
  source: string
}

/** Lines of mountinfo, in the kernel's order (a mount stacked on the same point comes later). */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = []
  for (const line of text.split('\n')) {
    if (line === '') continue
    const sep = line.indexOf(' - ')
    if (sep < 0) continue
    const pre = line.slice(0, sep).split(' ')
    const post = line.slice(sep + 3).split(' ')
    const devNumber = pre[2]
    const mountPoint = pre[4]
    if (devNumber === undefined || mountPoint === undefined) continue
    out.push({ devNumber, mountPoint: unescapeOctal(mountPoint), fsType: unescapeOctal(post[0] ?? ''), source: unescapeOctal(post[1] ?? '') })
  }
  return out
}

/** This process's mount table; empty when it cannot be read. */
export function readMountinfo(): MountEntry[] {
  try {
    return parseMountinfo(readFileSync('/proc/self/mountinfo', 'utf8'))
  } catch {
    return []
  }
}

/**
 * Is `pid` a live process that holds /dev/fuse open, as a serving daemon does? A pid file whose
 * daemon died may name a pid the kernel has since given to another process. When its descriptors
 * cannot be read (another user's process), only "alive" can be told.
 */
export function fuseDaemonAlive(pid: number): boolean {
  if (!processAlive(pid)) return false
  let fds: string[]
  try {
    fds = readdirSync(`/proc/${pid}/fd`)
  } catch {
    return true
  }
  for (const fd of fds) {
    try {
      if (readlinkSync(`/proc/${pid}/fd/${fd}`) === '/dev/fuse') return true
    } catch {
      // closed meanwhile
    }
  }
  return false
}
