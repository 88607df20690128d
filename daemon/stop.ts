import { readdirSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { detachSafely, findAttachments } from './attachments'
import { daemonAt, runningDaemons, type DaemonEntry } from './daemons'
import { fuseDaemonAlive, processAlive } from './procfs'
import { readPidFile, runtimeDir } from './runtime-files'
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
  if (pid === null || !fuseDaemonAlive(pid)) {
    const d = daemonAt(mount)
    const why = d?.state === 'dead' ? `: its daemon died (zramfuse status --mount ${mount} shows what it left)`
      : d?.state === 'live' ? ` with a pid file in ${runtimeDir()} (started with another ZRAMFUSE_RUNTIME_DIR?)` : ''
    process.stderr.write(`zramfuse: no daemon is serving ${mount}${why}\n`)
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

/** Which daemon `stop` without --mount stops: the only one running, else why none (exit code). */
export function chooseDaemonToStop(running: readonly DaemonEntry[]): { mount: string } | { message: string; code: number } {
  if (running.length === 1) return { mount: (running[0] as DaemonEntry).mount }
  if (running.length === 0) return { message: 'zramfuse: no zramfuse daemon is running\n', code: 1 }
  return {
    message: `zramfuse: ${running.length} zramfuse daemons are running; name one with --mount DIR:\n` +
      running.map((d) => `  ${d.mount}${d.pid === null ? '' : ` (pid ${d.pid})`}\n`).join(''),
    code: 2,
  }
}

/**
 * `stop` without --mount: the one daemon that runs on this host. With none, or several (listed),
 * nothing is stopped: which one is for the command line to say (exit 2).
 */
export async function stopTheOnlyDaemon(force: boolean): Promise<number> {
  const choice = chooseDaemonToStop(runningDaemons())
  if ('mount' in choice) return stop(choice.mount, force)
  process.stderr.write(choice.message)
  return choice.code
}
