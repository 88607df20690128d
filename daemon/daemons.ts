/**
 * Every zramfuse daemon of this host, for `status` and `stop` without --mount: the mounts of our
 * FUSE subtype in the mount table (whoever started them, whatever their runtime directory), and the
 * pid files of the runtime directory (a daemon whose mount was lazily unmounted from under it, or a
 * stale file). A pid only counts as the daemon's while that process holds /dev/fuse open: after a
 * crash the kernel may give the pid to another process.
 */
import { resolve } from 'node:path'
import { MOUNT_OPTIONS } from '../src/fuse/mount'
import { fuseDaemonAlive, readMountinfo, type MountEntry } from './procfs'
import { mountState } from './leftovers'
import { listPidFiles, readPidFile } from './runtime-files'

/** `fuse.zramfuse`: the file system type the kernel lists for our mounts (FUSE's `subtype=`). */
export const FS_TYPE = `fuse.${(MOUNT_OPTIONS.find((o) => o.startsWith('subtype=')) ?? 'subtype=zramfuse').slice('subtype='.length)}`

/**
 * - live: mounted and answering (pid null when no pid file here names a live daemon: started with
 *   another runtime directory);
 * - dead: mounted, but the FUSE connection is gone (stat answers ENOTCONN): its daemon died;
 * - unmounted: the pid file's daemon runs, its mount is not in the mount table;
 * - gone: a stale pid file, nothing mounted (what the daemon left may still be attached).
 */
export type DaemonState = 'live' | 'dead' | 'unmounted' | 'gone'

export interface DaemonEntry {
  mount: string
  /** the pid file's pid (a dead daemon's too); null without a pid file */
  pid: number | null
  state: DaemonState
}

/** Our mount points in the mount table, once each, in table order. */
export function zramfuseMounts(mounts: readonly MountEntry[]): string[] {
  return [...new Set(mounts.filter((m) => m.fsType === FS_TYPE).map((m) => m.mountPoint))]
}

function entryFor(mount: string, pid: number | null, mounted: boolean, allMountPoints: readonly string[]): DaemonEntry {
  const alive = pid !== null && fuseDaemonAlive(pid)
  if (!mounted) return { mount, pid, state: alive ? 'unmounted' : 'gone' }
  // A live daemon's mount is not stat'ed: a busy one must not slow a listing down.
  if (alive) return { mount, pid, state: 'live' }
  return { mount, pid, state: mountState(mount, allMountPoints) === 'dead' ? 'dead' : 'live' }
}

/** What serves `mountArg` (resolved), or null when nothing is mounted there and no pid file names it. */
export function daemonAt(mountArg: string): DaemonEntry | null {
  const mount = resolve(mountArg)
  const mounts = readMountinfo()
  const mounted = zramfuseMounts(mounts).includes(mount)
  const pid = readPidFile(mount)
  if (!mounted && pid === null) return null
  return entryFor(mount, pid, mounted, mounts.map((m) => m.mountPoint))
}

/** Every daemon of the host, sorted by mount point. */
export function listDaemons(): DaemonEntry[] {
  const mounts = readMountinfo()
  const all = mounts.map((m) => m.mountPoint)
  const ours = zramfuseMounts(mounts)
  const pids = new Map(listPidFiles().map((p) => [p.mount, p.pid]))
  const out = ours.map((m) => entryFor(m, pids.get(m) ?? null, true, all))
  for (const [mount, pid] of pids) if (!ours.includes(mount)) out.push(entryFor(mount, pid, false, all))
  return out.sort((a, b) => a.mount.localeCompare(b.mount))
}

/** Daemons that are running (a dead or stale one is not). */
export function runningDaemons(list: readonly DaemonEntry[] = listDaemons()): DaemonEntry[] {
  return list.filter((d) => d.state === 'live' || d.state === 'unmounted')
}
