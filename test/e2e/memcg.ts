// Memory cgroups for the swap tests: a child of the cgroup the test runs in (v1) or of the root
// (v2), with a hard limit and unlimited swap, removed at teardown.
import type { ChildProcess } from 'node:child_process'
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { cgroupLayout, memoryCgroupDirOf, readText, sleep } from './util'

export interface MemCgroup {
  dir: string
  /** bytes of this cgroup's memory currently in swap, if the kernel tells */
  swapBytes(): number | null
  /** a new hard limit */
  setLimit(mib: number): void
}

/** A fresh memory cgroup with a hard limit of `limitMiB` and unlimited swap. */
export function makeMemCgroup(name: string, limitMiB: number): MemCgroup {
  const layout = cgroupLayout()
  if (layout.kind === 'v2') {
    const sub = join(layout.root, 'cgroup.subtree_control')
    if (!readFileSync(sub, 'utf8').split(/\s+/).includes('memory')) writeFileSync(sub, '+memory\n')
    const dir = join(layout.root, name)
    mkdirSync(dir)
    writeFileSync(join(dir, 'memory.max'), `${limitMiB * 1024 * 1024}\n`)
    if (existsSync(join(dir, 'memory.swap.max'))) writeFileSync(join(dir, 'memory.swap.max'), 'max\n')
    return {
      dir,
      setLimit: (mib) => writeFileSync(join(dir, 'memory.max'), `${mib * 1024 * 1024}\n`),
      swapBytes: () => {
        const v = readText(join(dir, 'memory.swap.current'))
        return v === null ? null : Number(v.trim())
      },
    }
  }
  if (layout.kind === 'v1') {
    // a child of the cgroup this test runs in, so the limits around us still apply
    const parent = memoryCgroupDirOf('self') ?? layout.memoryRoot
    const dir = join(parent, name)
    mkdirSync(dir)
    writeFileSync(join(dir, 'memory.limit_in_bytes'), `${limitMiB * 1024 * 1024}\n`)
    try {
      writeFileSync(join(dir, 'memory.swappiness'), '100\n')
    } catch {
      // some kernels refuse per-cgroup swappiness: the default works too
    }
    return {
      dir,
      setLimit: (mib) => writeFileSync(join(dir, 'memory.limit_in_bytes'), `${mib * 1024 * 1024}\n`),
      swapBytes: () => {
        const memsw = readText(join(dir, 'memory.memsw.usage_in_bytes'))
        const mem = readText(join(dir, 'memory.usage_in_bytes'))
        return memsw === null || mem === null ? null : Math.max(0, Number(memsw) - Number(mem))
      },
    }
  }
  throw new Error('no memory cgroup controller (neither cgroup v2 nor a v1 memory hierarchy)')
}

/** rmdir a cgroup once its last process is gone (the kernel takes a moment after an exit). */
export async function removeCgroup(dir: string): Promise<void> {
  for (let i = 0; ; i++) {
    try {
      rmdirSync(dir)
      return
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code
      if (code === 'ENOENT') return
      if (i >= 100) throw new Error(`rmdir ${dir}: ${(err as Error).message}`)
      await sleep(100)
    }
  }
}

export function exitOf(child: ChildProcess): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve({ code: child.exitCode, signal: child.signalCode })
  return new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
}
