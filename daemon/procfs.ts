/**
 * What the daemon, its CLI and the bench read from /proc about other processes and mounts.
 * One definition each, so every caller agrees on what "alive" and "this mount point" mean.
 */
import { readFileSync } from 'node:fs'

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
