/**
 * Exit codes a supervisor can act on, and the check that keeps a restarted daemon from starting
 * over the swap of the one before it.
 *
 * If a daemon dies while its swap is on (SIGKILL, a crash), the kernel still has that swap area,
 * backed by a loop device whose file lived on the dead mount: the pages in it are gone, and a new,
 * empty daemon under the same mount would not bring them back; it would only add a second swap
 * area. So `start` refuses (EXIT_STALE_ATTACHMENTS) while the attachments a previous daemon
 * recorded for this mount, or loop devices on the dead mount still there, are active; the unit
 * file lists that code in RestartPreventExitStatus=, so systemd does not restart into it.
 */
import { statSync } from 'node:fs'
import { join } from 'node:path'
import { activeSwaps, findAttachments, mountDeviceOf } from './attachments'
import { readManagedAttachments } from './setup-devices'

/** sysexits EX_UNAVAILABLE: an earlier daemon's swap or mount on this mount point is still active. */
export const EXIT_STALE_ATTACHMENTS = 69
/** sysexits EX_CONFIG: the configuration (file or options) is wrong; restarting will not help. */
export const EXIT_CONFIG = 78

/** An error that tells the CLI which exit code to use. */
export class StartError extends Error {
  constructor(message: string, readonly exitCode: number) {
    super(message)
    this.name = 'StartError'
  }
}

function deadMount(dir: string): boolean {
  try {
    statSync(dir)
    return false
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return code === 'ENOTCONN' || code === 'ECONNABORTED'
  }
}

/** Swap areas and mounts a previous daemon on `mount` left active; empty when it is safe to start. */
export function staleAttachments(mount: string): string[] {
  const found: string[] = []
  const swaps = new Set(activeSwaps())
  const mounts = new Set<string>()
  for (const a of readManagedAttachments(mount)) {
    if (swaps.has(a.loop)) found.push(`${a.loop} (swap of ${a.device})`)
    if (a.mountPoint !== null) mounts.add(a.mountPoint)
  }
  if (mounts.size > 0) {
    for (const a of readManagedAttachments(mount)) {
      const att = findAttachments(a.blockFile)
      for (const mp of att.mounts) if (mounts.has(mp)) found.push(`${a.loop} (mounted at ${mp})`)
    }
  }
  const dev = deadMount(mount) ? mountDeviceOf(mount) : null
  if (dev !== null) {
    const att = findAttachments(join(mount, 'dev', 'zram0'), { mountDevice: dev })
    for (const s of att.swaps) found.push(`${s} (swap on the dead mount)`)
    for (const mp of att.mounts) found.push(`${mp} (mounted from the dead mount)`)
  }
  return [...new Set(found)]
}
