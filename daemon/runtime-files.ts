import { createHash } from 'node:crypto'
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join, resolve } from 'node:path'

/** Where `stop` and `status` find the daemon serving a mount: one pid file per mount point. */
export function runtimeDir(): string {
  return process.env.ZRAMFUSE_RUNTIME_DIR ?? (process.getuid?.() === 0 ? '/run/zramfuse' : join(process.env.XDG_RUNTIME_DIR ?? '/tmp', 'zramfuse'))
}

/** `<hash of the absolute mount path>.pid` */
function pidFileName(mount: string): string {
  return `${createHash('sha256').update(resolve(mount)).digest('hex').slice(0, 16)}.pid`
}

export function pidFilePath(mount: string): string {
  return join(runtimeDir(), pidFileName(mount))
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

/** A pid file of the runtime directory: the daemon's pid and the mount it serves. */
export interface PidFile {
  file: string
  pid: number
  mount: string
}

/** Every readable pid file of the runtime directory (any daemon's, alive or not). */
export function listPidFiles(dir = runtimeDir()): PidFile[] {
  let names: string[]
  try {
    names = readdirSync(dir).filter((n) => /^[0-9a-f]{16}\.pid$/.test(n)).sort()
  } catch {
    return []
  }
  const out: PidFile[] = []
  for (const n of names) {
    const file = join(dir, n)
    try {
      const [pidText, mount] = readFileSync(file, 'utf8').split('\n')
      const pid = Number(pidText)
      // the name is the hash of the mount: a file that does not match it is not ours
      if (Number.isInteger(pid) && pid > 0 && mount !== undefined && mount !== '' && pidFileName(mount) === n) out.push({ file, pid, mount })
    } catch {
      // removed meanwhile
    }
  }
  return out
}
