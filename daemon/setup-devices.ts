/**
 * What systemd does with a zram-generator device once it exists (systemd-zram-setup@zramN,
 * systemd-makefs, the generated .swap / .mount units), done by the daemon after its mount is up:
 * - fs-type=swap: a direct-I/O loop device on <mount>/dev/zramN, mkswap, swapon with the priority
 *   and the options (`discard` by default);
 * - a file system: the loop device, mkfs.<fs-type>, and mount at mount-point with the options.
 * The loop device is set up as scripts/zram-swap.sh and zram-mkfs.sh do (losetup --direct-io=on,
 * its requests capped at what the transport takes in one: capLoopRequests).
 *
 * Every command runs asynchronously: mkswap, mkfs and swapoff do I/O through the loop device into
 * this very process, whose event loop must keep serving it. For the same reason attachments are
 * looked up by path only (never FindOptions.mountDevice: that runs `losetup --list` synchronously,
 * and its LOOP_GET_STATUS64 stats every backing file, ours included: a deadlock of the daemon on
 * its own mount, and of every other losetup on the machine behind it). A step that fails undoes the steps of
 * all devices before it (detachSafelyAsync: swapoff, umount, losetup -d) before the error is thrown.
 *
 * The attachments made are recorded in the runtime directory (<tag>.attachments.json) so that
 * `zramfuse stop` knows which ones it may undo without --force.
 */
import { execFile } from 'node:child_process'
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { writeFile } from 'node:fs/promises'
import { basename, join } from 'node:path'
import { MAX_IO_BYTES } from '../src/fuse/mount'
import type { EventLog } from '../src/log'
import { detachSafelyAsync } from './attachments'
import type { DeviceConfig, ZramConfig } from './config/zram-generator'
import { pidFilePath, runtimeDir } from './runtime-files'

export interface ManagedAttachment {
  device: string
  blockFile: string
  /** `/dev/loopN` */
  loop: string
  fsType: string
  /** null for swap, and for a file system the config does not mount */
  mountPoint: string | null
}

const COMMAND_TIMEOUT_MS = 600_000

function run(file: string, args: string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { timeout: COMMAND_TIMEOUT_MS, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) reject(new Error(`${file} ${args.join(' ')} failed: ${stderr.trim() || err.message}`))
      else resolve(stdout)
    })
  })
}

export function attachmentsFilePath(mount: string): string {
  return pidFilePath(mount).replace(/\.pid$/, '.attachments.json')
}

export function readManagedAttachments(mount: string): ManagedAttachment[] {
  try {
    const parsed: unknown = JSON.parse(readFileSync(attachmentsFilePath(mount), 'utf8'))
    return Array.isArray(parsed) ? (parsed as ManagedAttachment[]) : []
  } catch {
    return []
  }
}

function writeManagedAttachments(mount: string, list: ManagedAttachment[]): void {
  mkdirSync(runtimeDir(), { recursive: true })
  writeFileSync(attachmentsFilePath(mount), `${JSON.stringify(list, null, 2)}\n`)
}

export function removeManagedAttachments(mount: string): void {
  rmSync(attachmentsFilePath(mount), { force: true })
}

/**
 * swapon arguments: the priority, and the options as fstab options (systemd's swap units pass -o).
 * `--options=LIST` in one word: util-linux 2.38 takes `--options LIST` as no options and LIST as
 * the device.
 */
export function swaponArgs(d: DeviceConfig, loop: string): string[] {
  return ['--priority', String(d.swapPriority), ...(d.options !== '' ? [`--options=${d.options}`] : []), loop]
}

/** mkfs arguments: quiet for the ext family (as zram-mkfs.sh). */
export function mkfsArgs(d: DeviceConfig, loop: string): string[] {
  return [...(/^ext[234]$/.test(d.fsType) ? ['-q'] : []), loop]
}

/**
 * No request of the loop device larger than one FUSE request (queue/max_sectors_kb): FUSE splits
 * a larger one, and a loop device takes a write whose later part failed (the pool at its limit)
 * for done, so swap would read back pages that were never stored. Written asynchronously, as
 * everything here (the daemon serves its own mount meanwhile).
 */
export async function capLoopRequests(loop: string, maxIoBytes = MAX_IO_BYTES): Promise<void> {
  await writeFile(`/sys/block/${basename(loop)}/queue/max_sectors_kb`, `${Math.floor(maxIoBytes / 1024)}\n`)
}

async function setUpOne(d: DeviceConfig, blockFile: string, log: EventLog, maxIoBytes: number): Promise<ManagedAttachment | null> {
  const loop = (await run('losetup', ['--direct-io=on', '--find', '--show', blockFile])).trim()
  try {
    await capLoopRequests(loop, maxIoBytes)
  } catch (err) {
    await run('losetup', ['-d', loop])
    throw new Error(`cannot cap ${loop}'s requests at ${maxIoBytes / 1024} KiB: ${(err as Error).message}`)
  }
  const att: ManagedAttachment = { device: d.name, blockFile, loop, fsType: d.fsType, mountPoint: null }
  if (d.fsType === 'swap') {
    await run('mkswap', ['-q', loop])
    await run('swapon', swaponArgs(d, loop))
    log.info({ event: 'swap_on', device: d.name, loop, priority: d.swapPriority, options: d.options })
    return att
  }
  await run(`mkfs.${d.fsType}`, mkfsArgs(d, loop))
  if (d.mountPoint !== null) {
    // mkdir -p, not mkdirSync(recursive): Node 20 loops forever on a parent that refuses mkdir
    // with ENOENT (e.g. under /proc), and this must not block the event loop anyway.
    await run('mkdir', ['-p', '--', d.mountPoint])
    await run('mount', ['-t', d.fsType, ...(d.options !== '' ? ['-o', d.options] : []), loop, d.mountPoint])
    att.mountPoint = d.mountPoint
  } else {
    // Formatted but not used (zram-generator without mount-point): nothing stays attached.
    await run('losetup', ['-d', loop])
  }
  log.info({ event: 'fs_ready', device: d.name, loop, fsType: d.fsType, mountPoint: d.mountPoint, options: d.options })
  return att.mountPoint === null ? null : att
}

/**
 * Swap / mkfs / mount for every enabled device of the config, in device order. Throws after
 * undoing everything it did when a step fails.
 */
export async function setUpDevices(mount: string, cfg: ZramConfig, log: EventLog, maxIoBytes = MAX_IO_BYTES): Promise<ManagedAttachment[]> {
  const done: ManagedAttachment[] = []
  const blockFiles: string[] = []
  try {
    for (const d of cfg.devices.filter((x) => x.enabled)) {
      const blockFile = join(mount, 'dev', d.name)
      blockFiles.push(blockFile)
      const att = await setUpOne(d, blockFile, log, maxIoBytes)
      if (att !== null) done.push(att)
      writeManagedAttachments(mount, done)
    }
    return done
  } catch (err) {
    log.error({ event: 'config_setup_failed', err: (err as Error).message }, 'undoing the devices set up so far')
    for (const file of blockFiles.reverse()) {
      try {
        await detachSafelyAsync(file, (m) => log.info({ event: 'undo', step: m }))
      } catch (undoErr) {
        log.error({ event: 'undo_failed', blockFile: file, err: (undoErr as Error).message })
      }
    }
    removeManagedAttachments(mount)
    throw err
  }
}

/** swapoff / umount / losetup -d of what setUpDevices made, newest first (safe inside the daemon). */
export async function tearDownDevices(mount: string, list: readonly ManagedAttachment[], log: EventLog): Promise<void> {
  for (const a of [...list].reverse()) {
    await detachSafelyAsync(a.blockFile, (m) => log.info({ event: 'teardown', device: a.device, step: m }))
  }
  removeManagedAttachments(mount)
}
