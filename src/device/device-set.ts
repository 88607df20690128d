import { Errno, ErrnoError } from '../errno'
import { ZramDevice, type ZramDeviceOptions } from './zram-device'

/** The zram-control class: devices by id, hot_add takes the lowest free id (the kernel's idr). */
export class DeviceSet {
  private readonly devices = new Map<number, ZramDevice>()
  private readonly opts: ZramDeviceOptions

  /** opts apply to every device, hot_add included (workers: kcompressd threads per device). */
  constructor(opts: ZramDeviceOptions = {}) {
    this.opts = opts
  }

  get(id: number): ZramDevice | undefined {
    return this.devices.get(id)
  }

  ids(): number[] {
    return [...this.devices.keys()].sort((a, b) => a - b)
  }

  all(): ZramDevice[] {
    return this.ids().map((id) => this.devices.get(id) as ZramDevice)
  }

  add(): ZramDevice {
    let id = 0
    while (this.devices.has(id)) id++
    const dev = new ZramDevice(id, this.opts)
    this.devices.set(id, dev)
    return dev
  }

  /** hot_remove: ENODEV if absent, EBUSY while its block file is open. */
  remove(id: number): void {
    const dev = this.devices.get(id)
    if (!dev) throw new ErrnoError(Errno.ENODEV, `no zram${id}`)
    if (dev.isOpen) throw new ErrnoError(Errno.EBUSY, `zram${id} is open`)
    dev.reset()
    this.devices.delete(id)
    void dev.close()
  }

  /** Shutdown: stop every device's kcompressd workers. */
  async close(): Promise<void> {
    await Promise.all(this.all().map((dev) => dev.close()))
  }
}
