import type { DeviceSet } from '../device/device-set'
import type { ZramDevice } from '../device/zram-device'
import type { Attribute } from '../sysfs/attribute'
import { controlAttributes, zramAttributes } from '../sysfs/zram-attributes'
import { extensionAttributes } from '../sysfs/zramfuse-attributes'
import { formatInt } from '../sysfs/format'
import { MODE_RO } from '../sysfs/attribute'

/** What a path of the mount names. Attribute nodes carry their target so open/read/write need no lookup. */
export type Node =
  | { kind: 'dir'; names: () => string[]; dev: ZramDevice | null }
  | { kind: 'block'; dev: ZramDevice }
  | { kind: 'attr'; attr: Attribute<ZramDevice>; target: ZramDevice }
  | { kind: 'control'; attr: Attribute<DeviceSet>; target: DeviceSet }

const DEVICE_NAME = /^zram(0|[1-9][0-9]{0,8})$/

function dir(names: () => string[], dev: ZramDevice | null = null): Node {
  return { kind: 'dir', names, dev }
}

/** The device a node belongs to (its metadata goes with the device), or null for the mount's own. */
export function nodeDevice(node: Node): ZramDevice | null {
  switch (node.kind) {
    case 'dir':
    case 'block':
      return node.dev
    case 'attr':
      return node.target
    default:
      return null
  }
}

/**
 * Resolves paths of the mount:
 *   /dev/zramN, /sys/block/zramN/<attr>, /sys/block/zramN/zramfuse/<attr>,
 *   /sys/class/zram-control/{hot_add,hot_remove}
 */
export class PathTree {
  private readonly devices: DeviceSet
  /**
   * queue/max_hw_sectors_kb, as every block device has: the largest request the transport takes.
   * A loop device must not send larger ones (scripts/lib-loop.sh caps its max_sectors_kb to it):
   * FUSE would split them, and a loop device takes a write whose later part failed for done.
   */
  private readonly maxHwSectorsKb: Attribute<DeviceSet>

  constructor(devices: DeviceSet, maxIoBytes: number) {
    this.devices = devices
    const kb = Math.floor(maxIoBytes / 1024)
    this.maxHwSectorsKb = { name: 'max_hw_sectors_kb', mode: MODE_RO, show: () => formatInt(kb) }
  }

  resolve(path: string): Node | undefined {
    const parts = path === '/' ? [] : path.split('/').slice(1)
    switch (parts.length) {
      case 0:
        return dir(() => ['dev', 'sys'])
      case 1:
        if (parts[0] === 'dev') return dir(() => this.deviceNames())
        if (parts[0] === 'sys') return dir(() => ['block', 'class'])
        return undefined
      case 2:
        if (parts[0] === 'dev') {
          const dev = this.device(parts[1])
          return dev && { kind: 'block', dev }
        }
        if (parts[0] !== 'sys') return undefined
        if (parts[1] === 'block') return dir(() => this.deviceNames())
        if (parts[1] === 'class') return dir(() => ['zram-control'])
        return undefined
      case 3:
        if (parts[0] !== 'sys') return undefined
        if (parts[1] === 'block') {
          const dev = this.device(parts[2])
          return dev && dir(() => [...zramAttributes.map((a) => a.name), 'queue', 'zramfuse'], dev)
        }
        if (parts[1] === 'class' && parts[2] === 'zram-control') return dir(() => controlAttributes.map((a) => a.name))
        return undefined
      case 4: {
        if (parts[0] !== 'sys') return undefined
        if (parts[1] === 'class' && parts[2] === 'zram-control') {
          const attr = controlAttributes.find((a) => a.name === parts[3])
          return attr && { kind: 'control', attr, target: this.devices }
        }
        if (parts[1] !== 'block') return undefined
        const dev = this.device(parts[2])
        if (!dev) return undefined
        if (parts[3] === 'zramfuse') return dir(() => extensionAttributes.map((a) => a.name), dev)
        if (parts[3] === 'queue') return dir(() => [this.maxHwSectorsKb.name], dev)
        const attr = zramAttributes.find((a) => a.name === parts[3])
        return attr && { kind: 'attr', attr, target: dev }
      }
      case 5: {
        if (parts[0] !== 'sys' || parts[1] !== 'block') return undefined
        if (parts[3] === 'queue') {
          return this.device(parts[2]) && parts[4] === this.maxHwSectorsKb.name ? { kind: 'control', attr: this.maxHwSectorsKb, target: this.devices } : undefined
        }
        if (parts[3] !== 'zramfuse') return undefined
        const dev = this.device(parts[2])
        const attr = extensionAttributes.find((a) => a.name === parts[4])
        return dev && attr && { kind: 'attr', attr, target: dev }
      }
      default:
        return undefined
    }
  }

  private deviceNames(): string[] {
    return this.devices.ids().map((id) => `zram${id}`)
  }

  private device(name: string): ZramDevice | undefined {
    const m = DEVICE_NAME.exec(name)
    return m ? this.devices.get(Number(m[1])) : undefined
  }
}
