import { readdirSync, rmdirSync } from 'node:fs'
import { basename, dirname, join } from 'node:path'
import { processAlive } from './procfs'

/**
 * A daemon killed with SIGKILL cannot remove its `zramfuse-<pid>` cgroup. At start, remove the
 * siblings of ours whose daemon is gone (rmdir only succeeds on an empty cgroup, so nothing
 * alive is ever affected). Only next to a `zramfuse-<our pid>` of ours: a daemon that stayed in
 * the cgroup it was started in (cgroup.ts) has no business with that cgroup's siblings.
 * Returns the paths removed.
 */
export function sweepStaleCgroups(ourPath: string): string[] {
  const removed: string[] = []
  if (basename(ourPath) !== `zramfuse-${process.pid}`) return removed
  const parent = dirname(ourPath)
  let names: string[]
  try {
    names = readdirSync(parent)
  } catch {
    return removed
  }
  for (const name of names) {
    const m = /^zramfuse-(\d+)$/.exec(name)
    if (!m || Number(m[1]) === process.pid || processAlive(Number(m[1]))) continue
    try {
      rmdirSync(join(parent, name))
      removed.push(join(parent, name))
    } catch {
      // still has tasks, or not ours to remove
    }
  }
  return removed
}
