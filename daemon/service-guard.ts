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
import { readdirSync, readFileSync } from 'node:fs'
import { activeSwaps, findAttachments } from './attachments'
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

/**
 * Block files under `mount` that loop devices are attached to, from /sys only (never losetup:
 * it would stat the files, and a dead FUSE connection still held open can hang that forever).
 */
function attachedBlockFiles(mount: string): string[] {
  const prefix = `${mount}/dev/`
  const out = new Set<string>()
  let names: string[] = []
  try {
    names = readdirSync('/sys/block').filter((n) => /^loop\d+$/.test(n))
  } catch {
    return []
  }
  for (const n of names) {
    try {
      const f = readFileSync(`/sys/block/${n}/loop/backing_file`, 'utf8').trim().replace(/ \(deleted\)$/, '')
      if (f.startsWith(prefix)) out.add(f)
    } catch {
      // not attached
    }
  }
  return [...out]
}

/** Swap areas and mounts a previous daemon on `mount` left active; empty when it is safe to start. */
export function staleAttachments(mount: string): string[] {
  const found: string[] = []
  const swaps = new Set(activeSwaps())
  const mounts = new Set<string>()
  for (const a of readManagedAttachments(mount)) {
    // the record's loop device, if it is still on that block file (the path relative to the lost
    // mount once the dead mount was lazily unmounted); a reused loop number is someone else's
    let backing = ''
    try {
      backing = readFileSync(`/sys/block/${a.loop.slice(5)}/loop/backing_file`, 'utf8').trim().replace(/ \(deleted\)$/, '')
    } catch {
      continue // detached
    }
    if (backing !== a.blockFile && !backing.endsWith(`/dev/${a.device}`)) continue
    if (swaps.has(a.loop)) found.push(`${a.loop} (swap of ${a.device})`)
    if (a.mountPoint !== null) mounts.add(a.mountPoint)
  }
  if (mounts.size > 0) {
    for (const a of readManagedAttachments(mount)) {
      const att = findAttachments(a.blockFile)
      for (const mp of att.mounts) if (mounts.has(mp)) found.push(`${a.loop} (mounted at ${mp})`)
    }
  }
  // loop devices still on the block files of a dead mount at this path (not yet lazily unmounted)
  for (const file of attachedBlockFiles(mount)) {
    const att = findAttachments(file)
    for (const sw of att.swaps) found.push(`${sw} (swap on ${file})`)
    for (const mp of att.mounts) found.push(`${mp} (mounted from ${file})`)
  }
  return [...new Set(found)]
}
