/**
 * Set the devices up from a parsed zram-generator config, the way systemd-zram-setup@zramN does
 * to /sys/block/zramN (zram-generator src/setup.rs), but through our attribute table in-process,
 * before the mount exists: comp_algorithm, algorithm_params, recomp_algorithm (+ its params),
 * backing_dev, mem_limit, disksize, then recompress (the global recompression parameters: the
 * kernel takes them only on an initialised device). Every write is
 * the attribute's own store, so the values are checked exactly as a write to the file would be;
 * a refused one becomes a ConfigError naming the config line and the errno.
 *
 * Recompression (`compression-algorithm = lz4 zstd`) needs the `recomp_algorithm` attribute: it is
 * looked up in the table at run time, so it works as soon as the attribute exists.
 */
import { existsSync, rmSync, statSync } from 'node:fs'
import type { DeviceSet } from '../../src/device/device-set'
import type { ZramDevice } from '../../src/device/zram-device'
import { ErrnoError, errnoName } from '../../src/errno'
import type { EventLog } from '../../src/log'
import type { Attribute } from '../../src/sysfs/attribute'
import { deviceAttribute } from '../../src/sysfs/device-attributes'
import { type ConfigPlace, ConfigError } from './ini'
import type { DeviceConfig, ZramConfig } from './zram-generator'

function attribute(name: string): Attribute<ZramDevice> | undefined {
  const attr = deviceAttribute(name)
  return attr?.store === undefined ? undefined : attr
}

/** Is `which` (e.g. mkfs.ext4) on PATH or in an sbin directory? */
export function findProgram(name: string): string | null {
  const dirs = [...(process.env.PATH ?? '').split(':'), '/usr/local/sbin', '/usr/sbin', '/sbin', '/usr/bin', '/bin']
  for (const d of dirs) {
    if (d === '') continue
    const p = `${d}/${name}`
    try {
      if (statSync(p).isFile()) return p
    } catch {
      // keep looking
    }
  }
  return null
}

/**
 * Everything that can be known wrong before a device is touched: recompression without the
 * attribute, a file system without its mkfs, swap tools missing.
 */
export function checkConfig(cfg: ZramConfig): void {
  for (const d of cfg.devices.filter((x) => x.enabled)) {
    const algoAt = d.places['compression-algorithm'] ?? d.header
    if (d.algorithms.length > 1 && attribute('recomp_algorithm') === undefined) {
      throw ConfigError.at(algoAt, 'compression-algorithm',
        `[${d.name}] names recompression algorithms (${d.algorithms.slice(1).map((a) => a.name).join(', ')}), ` +
        'but this zramfuse has no recomp_algorithm attribute (recompression is not supported yet): list one algorithm')
    }
    if (d.recompressParams !== '' && attribute('recompress') === undefined) {
      throw ConfigError.at(algoAt, 'compression-algorithm',
        `[${d.name}] gives recompression parameters (${d.recompressParams}), but this zramfuse has no recompress attribute`)
    }
    const tools = d.fsType === 'swap' ? ['mkswap', 'swapon', 'losetup'] : [`mkfs.${d.fsType}`, 'losetup', ...(d.mountPoint ? ['mount'] : [])]
    for (const tool of tools) {
      if (findProgram(tool) === null) {
        const key = d.places['fs-type'] !== undefined ? 'fs-type' : d.places['mount-point'] !== undefined ? 'mount-point' : null
        throw ConfigError.at(key === null ? d.header : (d.places[key] as ConfigPlace), key,
          `[${d.name}] needs ${tool}, which is not installed`)
      }
    }
  }
}

interface Write {
  attr: string
  text: string
  key: string
}

/** The writes systemd-zram-setup makes for one device, in its order. */
export function deviceWrites(d: DeviceConfig): Write[] {
  const out: Write[] = []
  d.algorithms.forEach((a, prio) => {
    out.push(prio === 0
      ? { attr: 'comp_algorithm', text: a.name, key: 'compression-algorithm' }
      : { attr: 'recomp_algorithm', text: `algo=${a.name} priority=${prio}`, key: 'compression-algorithm' })
    if (a.params !== '') out.push({ attr: 'algorithm_params', text: `priority=${prio} ${a.params}`, key: 'compression-algorithm' })
  })
  if (d.writebackDevice !== null) out.push({ attr: 'backing_dev', text: d.writebackDevice, key: 'writeback-device' })
  out.push({ attr: 'mem_limit', text: String(d.memLimitBytes), key: 'zram-resident-limit' })
  out.push({ attr: 'disksize', text: String(d.disksizeBytes), key: 'zram-size' })
  // recompress_store refuses an uninitialised device (EINVAL): the parameters go last, after
  // disksize, where they are a valid (and, on an empty device, idle) recompression request.
  if (d.recompressParams !== '') out.push({ attr: 'recompress', text: d.recompressParams, key: 'compression-algorithm' })
  return out
}

/**
 * Create the configured devices (zram0 exists; others are hot-added, and the ids in between that
 * the config does not name are removed again) and write their attributes. On an error, backing
 * files this call created are removed again and the error is thrown (the caller has not mounted
 * anything yet, so nothing is left half set up).
 */
export async function applyConfig(devices: DeviceSet, cfg: ZramConfig, log: EventLog): Promise<ZramDevice[]> {
  checkConfig(cfg)
  const created: string[] = []
  try {
    const enabled = cfg.devices.filter((d) => d.enabled)
    for (const d of cfg.devices.filter((x) => !x.enabled)) {
      log.info({ event: 'config_device_skipped', device: d.name, reason: d.skipped })
    }
    const maxId = Math.max(0, ...enabled.map((d) => d.id))
    while (devices.ids().length === 0 || Math.max(...devices.ids()) < maxId) devices.add()
    const wanted = new Set([0, ...enabled.map((d) => d.id)])
    for (const id of devices.ids()) if (!wanted.has(id)) devices.remove(id)

    const out: ZramDevice[] = []
    for (const d of enabled) {
      const dev = devices.get(d.id) as ZramDevice
      for (const w of deviceWrites(d)) {
        const attr = attribute(w.attr)
        const at = d.places[w.key] ?? d.header
        if (attr?.store === undefined) throw ConfigError.at(at, w.key, `[${d.name}] this zramfuse has no ${w.attr} attribute`)
        if (w.attr === 'backing_dev' && !existsSync(w.text)) created.push(w.text)
        try {
          await attr.store(dev, w.text)
        } catch (err) {
          const errno = err instanceof ErrnoError ? ` (${errnoName(err.errno)})` : ''
          throw ConfigError.at(at, w.key,
            `[${d.name}] writing ${JSON.stringify(w.text)} to ${w.attr} failed: ${(err as Error).message}${errno}`)
        }
      }
      log.info({ event: 'config_device', device: d.name, disksize: d.disksizeBytes, memLimit: d.memLimitBytes,
        algorithms: d.algorithms.map((a) => (a.params ? `${a.name}(${a.params})` : a.name)), backingDev: d.writebackDevice,
        fsType: d.fsType, mountPoint: d.mountPoint, swapPriority: d.fsType === 'swap' ? d.swapPriority : undefined, options: d.options })
      out.push(dev)
    }
    return out
  } catch (err) {
    for (const id of devices.ids()) devices.get(id)?.lower.close()
    for (const path of created) {
      try {
        if (statSync(path).size === 0) rmSync(path)
      } catch {
        // already gone
      }
    }
    throw err
  }
}
