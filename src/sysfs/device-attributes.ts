/**
 * The one way in to a device's settings: the attribute at a path under /sys/block/zramN/ (a kernel
 * name, or zramfuse/NAME for ours) and its store. The FUSE layer, a zram-generator config and the
 * daemon's command-line options all set a device through these, so every value is checked the same
 * way, with the same errno.
 */
import type { ZramDevice } from '../device/zram-device'
import type { Attribute } from './attribute'
import { zramAttributes } from './zram-attributes'
import { extensionAttributes } from './zramfuse-attributes'

const EXTENSION = 'zramfuse/'

/** The attribute at `path` (e.g. "disksize", "zramfuse/pool_limit"), or undefined. */
export function deviceAttribute(path: string): Attribute<ZramDevice> | undefined {
  if (path.startsWith(EXTENSION)) return extensionAttributes.find((a) => a.name === path.slice(EXTENSION.length))
  return zramAttributes.find((a) => a.name === path)
}

/**
 * Write `text` to the attribute at `path` as a write(2) of the file would: its store parses and
 * checks it and throws ErrnoError (the kernel's errno) when it refuses. A path without a store is
 * EACCES-like misuse by the caller: a RangeError.
 */
export async function storeAttribute(dev: ZramDevice, path: string, text: string): Promise<void> {
  const attr = deviceAttribute(path)
  if (attr?.store === undefined) throw new RangeError(`no writable attribute ${path}`)
  await attr.store(dev, text)
}
