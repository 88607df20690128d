import { execFileSync } from 'node:child_process'
import { mkdirSync, readFileSync, statSync } from 'node:fs'
import { resolve } from 'node:path'

/** Is `dir` a mount point listed in /proc/self/mounts (octal escapes decoded)? */
export function isMounted(dir: string): boolean {
  const abs = resolve(dir)
  const mounts = readFileSync('/proc/self/mounts', 'utf8')
  return mounts.split('\n').some((line) => {
    const field = line.split(' ')[1]
    return field !== undefined && field.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8))) === abs
  })
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
