/**
 * Exit codes a supervisor can act on, and the check that keeps a restarted daemon from starting
 * over the swap of the one before it.
 *
 * If a daemon dies while its swap is on (SIGKILL, a crash), the kernel still has that swap area,
 * backed by a loop device whose file lived on the dead mount: the pages in it are gone, and a new,
 * empty daemon under the same mount would not bring them back; it would only add a second swap
 * area. So `start` refuses (EXIT_STALE_ATTACHMENTS) while the attachments a previous daemon
 * recorded for this mount, or loop devices on the dead mount still there, are swap or mounted; the
 * unit file lists that code in RestartPreventExitStatus=, so systemd does not restart into it.
 * Loop devices that are merely attached are detached (leftovers.ts says why that alone is safe).
 */
import { execFileSync } from 'node:child_process'
import type { EventLog } from '../src/log'
import { listLoopDevices, readSystemView } from './attachments'
import { leftoverFields, leftoversOn, mountState, planLeftovers, refusalMessage } from './leftovers'
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
 * Before a start on `mount` whose previous daemon is gone: refuse (EXIT_STALE_ATTACHMENTS, with
 * the commands) while its loop devices are swap, mounted or held; detach the ones that are merely
 * attached, when the kernel says the mount is dead (see leftovers.ts). Logs what it did. Runs
 * before this daemon mounts anything: the synchronous losetup cannot wait on itself.
 */
export function clearLeftovers(mount: string, log: EventLog): void {
  const view = readSystemView()
  const top = view.mounts.filter((m) => m.mountPoint === mount).pop()
  const state = mountState(mount, view.mounts.map((m) => m.mountPoint))
  if (state === 'live') return // someone serves it: prepareMountPoint refuses a live mount
  // Detach only under a dead zramfuse mount: anything else at that path is not ours to judge.
  const plan = planLeftovers(leftoversOn(mount, view, readManagedAttachments(mount)), top?.fsType === 'fuse.zramfuse' ? state : 'absent')
  if (plan.refuse.length > 0) {
    log.error({ event: 'stale_attachments', mount, leftovers: plan.refuse.map(leftoverFields) },
      'refusing to start: a dead daemon\'s swap or mounts on this mount point are still active')
    throw new StartError(refusalMessage(mount, plan.refuse), EXIT_STALE_ATTACHMENTS)
  }
  for (const l of plan.detach) {
    try {
      execFileSync('losetup', ['-d', l.loop], { stdio: ['ignore', 'pipe', 'pipe'], timeout: 30_000 })
    } catch (err) {
      const stderr = String((err as { stderr?: unknown }).stderr ?? '').trim()
      log.error({ event: 'stale_loop_detach_failed', mount, loop: l.loop, blockFile: l.blockFile, err: stderr || (err as Error).message },
        `could not detach a loop device left by a killed daemon: losetup -d ${l.loop}`)
      continue
    }
    // Someone holding it open (udev, a reader) defers the detach to the last close (autoclear).
    const still = listLoopDevices().some((x) => x.dev === l.loop && x.backingFile === l.blockFile)
    log.warn({ event: still ? 'stale_loop_detach_deferred' : 'stale_loop_detached', mount, loop: l.loop, blockFile: l.blockFile },
      still ? 'a loop device left by a killed daemon is still open: it detaches at its last close'
        : 'detached a loop device left on the block file of a killed daemon')
  }
  if (plan.leave.length > 0) {
    log.warn({ event: 'stale_loops_left', mount, leftovers: plan.leave.map(leftoverFields) },
      'loop devices name block files under this mount point, which is not a dead zramfuse mount here: left alone')
  }
}
