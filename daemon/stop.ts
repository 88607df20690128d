import { readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { detachSafely, findAttachments } from './attachments'
import { processAlive } from './procfs'
import { readPidFile } from './runtime-files'
import { readManagedAttachments } from './setup-devices'

function blockFiles(mount: string): string[] {
  try {
    return readdirSync(join(mount, 'dev')).filter((n) => n.startsWith('zram')).map((n) => join(mount, 'dev', n))
  } catch {
    return []
  }
}

/**
 * Ask the daemon serving `mount` to stop, and wait for it. Refuses while a block file is attached
 * to a loop device (swap on it would SIGBUS every process with pages there once the daemon is
 * gone); with force, detaches in the only safe order first: swapoff, umount, losetup -d. What the
 * daemon's --config set up itself (recorded in the runtime directory) is detached that way
 * without --force.
 */
export async function stop(mountArg: string, force: boolean): Promise<number> {
  const mount = resolve(mountArg)
  const pid = readPidFile(mount)
  if (pid === null || !processAlive(pid)) {
    process.stderr.write(`zramfuse: no daemon is serving ${mount}\n`)
    return 1
  }
  // What the daemon's --config set up (swap, mounts) is ours to undo; anything else needs --force.
  const managed = readManagedAttachments(mount)
  const ownLoops = new Set(managed.map((a) => a.loop))
  const ownMounts = new Set(managed.flatMap((a) => (a.mountPoint === null ? [] : [a.mountPoint])))
  for (const file of blockFiles(mount)) {
    const att = findAttachments(file)
    if (att.loops.length === 0) continue
    const onlyOurs = att.loops.every((l) => ownLoops.has(l)) && att.mounts.every((m) => ownMounts.has(m))
    if (!force && !onlyOurs) {
      process.stderr.write(
        `zramfuse: refusing to stop: ${file} is attached to ${att.loops.join(', ')}` +
        (att.swaps.length ? ` (active swap: ${att.swaps.join(', ')})` : '') +
        (att.mounts.length ? ` (mounted: ${att.mounts.join(', ')})` : '') +
        `\n  detach first (scripts/zram-swap.sh off ${file}, or scripts/zram-mkfs.sh umount MOUNTPOINT), or use --force to do that now\n`)
      return 1
    }
    detachSafely(file, (msg) => process.stderr.write(`zramfuse: ${msg}\n`))
  }
  process.kill(pid, 'SIGTERM')
  const deadline = Date.now() + 30_000
  while (processAlive(pid)) {
    if (Date.now() > deadline) {
      process.stderr.write(`zramfuse: daemon ${pid} did not exit within 30 s\n`)
      return 1
    }
    await new Promise((r) => setTimeout(r, 50))
  }
  return 0
}
