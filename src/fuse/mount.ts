import Fuse, { type Operations } from 'fuse-native'

/** Largest request the kernel sends us; libfuse 2.9's channel buffer holds 128 KiB of data. */
export const MAX_IO_BYTES = 128 * 1024

/**
 * Mount options fuse-native cannot express (it passes only truthy values, so a zero timeout is
 * lost, and it knows no big_writes/max_write/direct_io):
 * - direct_io: no page cache, so attribute files are never read stale and block I/O reaches us
 *   with the caller's sizes (a loop device's direct I/O passes straight through);
 * - big_writes + max_write: writes of up to 128 KiB per request instead of 4 KiB;
 * - attr/entry/negative timeouts 0: disksize changes the file size at once, and a hot_add'ed
 *   device is visible at once;
 * - default_permissions: the kernel enforces the modes we report (0600 block file, 0444/0200 attributes).
 * Only the mounting user can reach the mount: allow_other is never set.
 */
export const MOUNT_OPTIONS = [
  'fsname=zramfuse',
  'subtype=zramfuse',
  'default_permissions',
  'direct_io',
  'big_writes',
  `max_write=${MAX_IO_BYTES}`,
  `max_read=${MAX_IO_BYTES}`,
  'attr_timeout=0',
  'entry_timeout=0',
  'negative_timeout=0',
]

class ZramFuse extends Fuse {
  protected override _fuseOptions(): string {
    return '-o' + MOUNT_OPTIONS.join(',')
  }
}

export interface Mounted {
  readonly mountPoint: string
  unmount(): Promise<void>
}

/** Mount `ops` at mountPoint (which must exist). Timeouts are off: a busy daemon is not a dead one. */
export function mountFs(mountPoint: string, ops: Operations): Promise<Mounted> {
  const fuse = new ZramFuse(mountPoint, ops, { timeout: false, mkdir: false, force: false })
  return new Promise((resolve, reject) => {
    fuse.mount((err) => {
      if (err) return reject(err)
      resolve({
        mountPoint,
        unmount: () => new Promise<void>((res, rej) => fuse.unmount((e) => (e ? rej(e) : res()))),
      })
    })
  })
}
