import { createHash } from 'node:crypto'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

/** Where `stop` and `status` find the daemon serving a mount: one pid file per mount point. */
export function runtimeDir(): string {
  return process.env.ZRAMFUSE_RUNTIME_DIR ?? (process.getuid?.() === 0 ? '/run/zramfuse' : join(process.env.XDG_RUNTIME_DIR ?? '/tmp', 'zramfuse'))
}

export function pidFilePath(mount: string): string {
  const abs = resolve(mount)
  const tag = createHash('sha256').update(abs).digest('hex').slice(0, 16)
  return join(runtimeDir(), `${tag}.pid`)
}

export function writePidFile(mount: string): string {
  mkdirSync(runtimeDir(), { recursive: true })
  const file = pidFilePath(mount)
  writeFileSync(file, `${process.pid}\n${resolve(mount)}\n`)
  return file
}

export function readPidFile(mount: string): number | null {
  try {
    const pid = Number(readFileSync(pidFilePath(mount), 'utf8').split('\n')[0])
    return Number.isInteger(pid) && pid > 0 ? pid : null
  } catch {
    return null
  }
}

export function removePidFile(mount: string): void {
  rmSync(pidFilePath(mount), { force: true })
}
