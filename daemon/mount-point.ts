import { execFileSync } from 'node:child_process'
import { mkdirSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { mountPoints } from './procfs'

/** Is `dir` a mount point listed in /proc/self/mounts (octal escapes decoded)? */
export function isMounted(dir: string): boolean {
  return mountPoints().includes(resolve(dir))
}

/**
 * Make `dir` ready to mount on: create it, and lazily unmount a dead FUSE mount left by a killed
 * daemon (stat fails with ENOTCONN). A live mount is never touched: that is another daemon's.
 */
export function prepareMountPoint(dir: string): { cleanedStale: boolean } {
  let cleanedStale = false
  try {
    statSync(dir)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOTCONN' || code === 'ECONNABORTED') {
      execFileSync('fusermount', ['-uz', dir], { stdio: 'ignore' })
      cleanedStale = true
    } else if (code !== 'ENOENT') {
      throw err
    }
  }
  if (isMounted(dir)) throw new Error(`${dir} is already a live mount point (another daemon serves it?)`)
  mkdirSync(dir, { recursive: true })
  return { cleanedStale }
}
