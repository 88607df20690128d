/**
 * What a daemon that died (SIGKILL, a crash) leaves on its mount point: loop devices still
 * attached to its block files, and the swap areas and file systems on them. Its data is gone (it
 * was in the dead process), so every read of those devices fails from now on.
 *
 * What the kernel shows (measured on Linux 6.18): while the dead FUSE mount is still mounted, stat
 * of the mount point fails with ENOTCONN and /sys/block/loopN/loop/backing_file still shows
 * `<mount>/dev/zramN`; after a lazy unmount it shows `/dev/zramN`, the path relative to the lost
 * mount, which no longer names this mount point (nor any other: the kernel's own zram block device
 * has that path too). So leftovers are looked for while the dead mount is still there, and a
 * --config daemon's record of its attachments (setup-devices.ts) finds its own after a lazy unmount.
 *
 * - attached only: `losetup -d` takes it away at once (measured: the loop device goes in
 *   milliseconds, whatever the dead connection). `zramfuse start` does it.
 * - active swap: never touched. Every process with pages there gets SIGBUS when it touches one; the
 *   admin decides when to swapoff (it completes: measured at once for an empty area) and losetup -d.
 *   (losetup -d on a swap device only sets autoclear: it goes with the swapoff.)
 * - mounted: never unmounted for the admin. Cached pages of its files may still be readable (the
 *   only copy of that data), and processes may have files open there; a lazy unmount would hide the
 *   dead file system under whatever is mounted next. umount (the dead file system gives way at once,
 *   with I/O errors in the kernel log) and losetup -d are the admin's.
 * - held (device-mapper or md on it): the same; those are removed first.
 *
 * Everything here reads /sys and /proc only, never a file of the dead mount.
 */
import { statSync } from 'node:fs'
import { usersOf, type SystemView } from './attachments'
import type { ManagedAttachment } from './setup-devices'

export interface Leftover {
  /** `/dev/loopN` */
  loop: string
  /** its backing file as the kernel shows it */
  blockFile: string
  /** the loop device or its partitions, when active swap */
  swaps: string[]
  /** mount points of file systems on it */
  mounts: string[]
  /** device-mapper or md devices stacked on it (`dm-0`) */
  holders: string[]
  /** found through a --config daemon's record only (its mount was lazily unmounted since) */
  fromRecord: boolean
}

export type LeftoverKind = 'swap' | 'mounted' | 'held' | 'attached'

/** The one that matters most: swap, then a mount, then a holder; else only attached. */
export function leftoverKind(l: Leftover): LeftoverKind {
  if (l.swaps.length > 0) return 'swap'
  if (l.mounts.length > 0) return 'mounted'
  if (l.holders.length > 0) return 'held'
  return 'attached'
}

function isBlockFileOf(mount: string, path: string): boolean {
  const prefix = `${mount}/dev/`
  return path.startsWith(prefix) && /^zram\d+$/.test(path.slice(prefix.length))
}

/**
 * Loop devices on the block files of `mount` (`<mount>/dev/zramN`), and on the block files a
 * --config daemon recorded for it when they are still swap or mounted (a record's loop device
 * whose block file now shows as `/dev/zramN` could be someone else's since, when it is merely
 * attached: it is left out).
 */
export function leftoversOn(mount: string, view: SystemView, records: readonly ManagedAttachment[] = []): Leftover[] {
  const out: Leftover[] = []
  for (const loop of view.loops) {
    if (!isBlockFileOf(mount, loop.backingFile)) continue
    const u = usersOf([loop], view)
    out.push({ loop: loop.dev, blockFile: loop.backingFile, swaps: u.swaps, mounts: u.mounts, holders: u.holders, fromRecord: false })
  }
  for (const a of records) {
    if (out.some((l) => l.loop === a.loop)) continue
    const loop = view.loops.find((l) => l.dev === a.loop)
    if (loop === undefined || (loop.backingFile !== a.blockFile && loop.backingFile !== `/dev/${a.device}`)) continue
    const u = usersOf([loop], view)
    const mounts = u.mounts.filter((m) => m === a.mountPoint)
    if (u.swaps.length === 0 && mounts.length === 0) continue
    out.push({ loop: loop.dev, blockFile: loop.backingFile, swaps: u.swaps, mounts, holders: u.holders, fromRecord: true })
  }
  return out
}

/** A word for a POSIX shell: as is when it is safe, else in single quotes. */
export function shellWord(s: string): string {
  return /^[A-Za-z0-9_/.,:+=@%-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`
}

/** The commands that take a leftover away, in the only safe order. */
export function undoCommands(l: Leftover): string[] {
  const out: string[] = []
  for (const s of l.swaps) out.push(`swapoff ${shellWord(s)}`)
  for (const m of [...l.mounts].sort((a, b) => b.length - a.length)) out.push(`umount ${shellWord(m)}`)
  for (const h of l.holders) out.push(h.startsWith('md') ? `mdadm --stop /dev/${h}` : `dmsetup remove /dev/${h}`)
  out.push(`losetup -d ${shellWord(l.loop)}`)
  return out
}

/** A leftover as the log and `status --json` show it. */
export function leftoverFields(l: Leftover): Record<string, unknown> {
  return { loop: l.loop, blockFile: l.blockFile, kind: leftoverKind(l), swaps: l.swaps, mounts: l.mounts, holders: l.holders, commands: undoCommands(l) }
}

/** One line: the loop device, its block file and what still uses it. */
export function describeLeftover(l: Leftover): string {
  const what: string[] = []
  if (l.swaps.length > 0) what.push(`active swap (${l.swaps.join(', ')})`)
  if (l.mounts.length > 0) what.push(`mounted at ${l.mounts.join(', ')}`)
  if (l.holders.length > 0) what.push(`held by ${l.holders.join(', ')}`)
  return `${l.loop} on ${l.blockFile}: ${what.length > 0 ? what.join(', ') : 'attached'}`
}

/** What `start` does with the leftovers of the daemon before it on the same mount point. */
export interface LeftoverPlan {
  /** still swap, mounted or held: the start refuses (exit 69) and prints their undoCommands */
  refuse: Leftover[]
  /** attached only, on a mount the kernel says is dead: losetup -d now */
  detach: Leftover[]
  /** attached only, but the mount point is not a dead mount here (another mount namespace?): left alone */
  leave: Leftover[]
}

export function planLeftovers(leftovers: readonly Leftover[], state: MountState): LeftoverPlan {
  const plan: LeftoverPlan = { refuse: [], detach: [], leave: [] }
  for (const l of leftovers) {
    if (leftoverKind(l) !== 'attached') plan.refuse.push(l)
    else if (state === 'dead' && !l.fromRecord) plan.detach.push(l)
    else plan.leave.push(l)
  }
  return plan
}

/** The refusal of `start`: what is left, and the exact commands, one per line. */
export function refusalMessage(mount: string, refuse: readonly Leftover[]): string {
  const cmds = refuse.flatMap(undoCommands)
  const notes: string[] = []
  if (refuse.some((l) => l.swaps.length > 0)) notes.push('processes that had pages in that swap have lost them (SIGBUS when they touch one).')
  if (refuse.some((l) => l.mounts.length > 0)) notes.push('a mounted file system may still show file data from the page cache: copy out what you need before umount.')
  return `an earlier daemon on ${mount} died and left these active; the data of its devices is gone:\n` +
    refuse.map((l) => `  ${describeLeftover(l)}\n`).join('') + notes.map((n) => `${n}\n`).join('') +
    `undo them, then start again:\n${cmds.map((c) => `  ${c}`).join('\n')}`
}

/**
 * The state of a mount point by the kernel's answer to stat(2): `dead` when the FUSE connection is
 * gone (ENOTCONN, ECONNABORTED), `live` when something mounted answers, else `absent`. The stat
 * goes to whatever serves the mount point: a stopped daemon would hold it, as any stat of it.
 */
export type MountState = 'live' | 'dead' | 'absent'

export function mountState(dir: string, mountPoints: readonly string[]): MountState {
  try {
    statSync(dir)
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    return code === 'ENOTCONN' || code === 'ECONNABORTED' ? 'dead' : 'absent'
  }
  return mountPoints.includes(dir) ? 'live' : 'absent'
}
