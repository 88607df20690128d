/** The attribute files of one device, driven as a shell would, for the device-layer tests. */
import type { ZramDevice } from '../../src/device/zram-device'
import { ErrnoError } from '../../src/errno'
import type { Attribute } from '../../src/sysfs/attribute'
import { zramAttributes } from '../../src/sysfs/zram-attributes'
import { extensionAttributes } from '../../src/sysfs/zramfuse-attributes'

/** A zram attribute, or a zramfuse/ extension by its bare name. */
export function attr(name: string): Attribute<ZramDevice> {
  const a = zramAttributes.find((x) => x.name === name) ?? extensionAttributes.find((x) => x.name === name)
  if (!a) throw new Error(`no attribute ${name}`)
  return a
}

export function show(dev: ZramDevice, name: string): string {
  const s = attr(name).show
  if (!s) throw new Error(`${name} is not readable`)
  return s(dev)
}

/** Store text; resolves 0 on success or the errno the writer would see. */
export async function store(dev: ZramDevice, name: string, text: string): Promise<number> {
  const s = attr(name).store
  if (!s) throw new Error(`${name} is not writable`)
  try {
    await s(dev, text)
    return 0
  } catch (err) {
    if (err instanceof ErrnoError) return err.errno
    throw err
  }
}

/** mm_stat's nine fields. */
export function mm(dev: ZramDevice): number[] {
  return show(dev, 'mm_stat').trim().split(/\s+/).map(Number)
}
