/**
 * Who is using a block file: loop devices backed by it, which of them are active swap,
 * which are mounted, and the only safe way to let go of them (swapoff, umount, losetup -d).
 *
 * Everything here reads /sys and /proc only and never touches the block file or anything
 * else inside a zramfuse mount: the daemon serving that mount may call findAttachments()
 * from its own event loop, and a synchronous stat() on its own mount would deadlock it.
 *
 * detachSafely() runs swapoff / umount / losetup synchronously. swapoff reads every swapped
 * page back through the loop device, i.e. through the daemon. NEVER call it from inside the
 * daemon process that serves the block file (its event loop would be blocked while the
 * kernel waits for it: deadlock). Call it from another process (the `stop --force` CLI, a
 * test), or use detachSafelyAsync() inside the daemon.
 */
import { execFile, execFileSync } from 'node:child_process'
import { readdirSync, readFileSync } from 'node:fs'
import { resolve } from 'node:path'
import { readMountinfo, unescapeOctal, type MountEntry } from './procfs'

export interface Attachments {
  /** loop devices whose backing file is the block file, e.g. `/dev/loop3` */
  loops: string[]
  /** devices (loop devices or their partitions) that are active swap, as listed in /proc/swaps */
  swaps: string[]
  /** mount points of file systems mounted from those devices (in /proc/self/mounts order) */
  mounts: string[]
  /** kernel holders stacked on those devices (device-mapper, md), e.g. `dm-0`: not detachable here */
  holders: string[]
}

/** An attached loop device, as /sys shows it. */
export interface LoopDevice {
  /** `/dev/loopN` */
  dev: string
  /**
   * The backing file as /sys/block/loopN/loop/backing_file shows it, without the " (deleted)" the
   * kernel appends: absolute, or relative to a mount that was lazily unmounted since.
   */
  backingFile: string
  /** the loop device and its partitions: `loopN`, `loopNp1`, ... */
  names: string[]
  /** `major:minor` of the loop device and its partitions */
  devNumbers: string[]
  /** kernel holders of the device and its partitions (device-mapper, md) */
  holders: string[]
}

/** What uses loop devices, read from /sys and /proc only (never the backing files). */
export interface SystemView {
  loops: LoopDevice[]
  /** active swap areas, the first column of /proc/swaps */
  swaps: string[]
  mounts: MountEntry[]
}

const SYS_BLOCK = '/sys/block'
const DELETED = ' (deleted)'

function readText(path: string): string | null {
  try {
    return readFileSync(path, 'utf8')
  } catch {
    return null
  }
}

/** The path a loop device's backing_file names, without the " (deleted)" the kernel appends. */
function stripDeleted(p: string): string {
  return p.endsWith(DELETED) ? p.slice(0, -DELETED.length) : p
}

/**
 * `major:minor` of the file system each attached loop device's backing file lives on, from
 * losetup (LOOP_GET_STATUS64 on /dev/loopN, which stats the backing file in the kernel: it waits
 * for a FUSE daemon that serves one, so never call this from such a daemon).
 */
function loopBackingDevices(): Map<string, string> {
  const out = new Map<string, string>()
  let text: string
  try {
    text = execFileSync('losetup', ['--list', '--noheadings', '--output', 'NAME,BACK-MAJ:MIN'], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'ignore'],
      timeout: 10_000,
    })
  } catch {
    return out
  }
  for (const line of text.split('\n')) {
    const [name, dev] = line.trim().split(/\s+/)
    if (name !== undefined && dev !== undefined && name.startsWith('/dev/loop')) out.set(name.slice(5), dev)
  }
  return out
}

/** Every attached loop device, in numeric order. */
export function listLoopDevices(): LoopDevice[] {
  let entries: string[]
  try {
    entries = readdirSync(SYS_BLOCK)
  } catch {
    return []
  }
  const out: LoopDevice[] = []
  for (const name of entries) {
    if (!/^loop\d+$/.test(name)) continue
    const raw = readText(`${SYS_BLOCK}/${name}/loop/backing_file`)
    if (raw === null) continue // not attached
    const names = [name]
    try {
      for (const sub of readdirSync(`${SYS_BLOCK}/${name}`)) {
        if (sub.startsWith(`${name}p`) && /^\d+$/.test(sub.slice(name.length + 1))) names.push(sub)
      }
    } catch {
      // the device went away while we looked: keep what we have
    }
    const devNumbers: string[] = []
    const holders: string[] = []
    for (const n of names) {
      const dir = n === name ? `${SYS_BLOCK}/${name}` : `${SYS_BLOCK}/${name}/${n}`
      const d = readText(`${dir}/dev`)
      if (d !== null) devNumbers.push(d.trim())
      try {
        holders.push(...readdirSync(`${dir}/holders`))
      } catch {
        // no holders directory: nothing stacked
      }
    }
    out.push({ dev: `/dev/${name}`, backingFile: stripDeleted(raw.replace(/\n$/, '')), names, devNumbers, holders })
  }
  out.sort((a, b) => a.dev.localeCompare(b.dev, 'en', { numeric: true }))
  return out
}

/** The swap areas of a /proc/swaps text: its first column, decoded. */
export function parseProcSwaps(text: string): string[] {
  return text
    .split('\n')
    .slice(1)
    .map((l) => l.trim())
    .filter((l) => l !== '')
    .map((l) => stripDeleted(unescapeOctal(l.split(/\s+/)[0] ?? '')))
}

/** Active swap areas: the first column of /proc/swaps. */
export function activeSwaps(): string[] {
  const text = readText('/proc/swaps')
  return text === null ? [] : parseProcSwaps(text)
}

export function readSystemView(): SystemView {
  return { loops: listLoopDevices(), swaps: activeSwaps(), mounts: readMountinfo() }
}

/** What uses `loops`: their swap areas, the file systems mounted from them, their holders. */
export function usersOf(loops: readonly LoopDevice[], view: SystemView): Attachments {
  const swapSet = new Set(view.swaps)
  const swaps: string[] = []
  const mounts: string[] = []
  const holders: string[] = []
  for (const loop of loops) {
    for (const n of loop.names) {
      if (swapSet.has(`/dev/${n}`)) swaps.push(`/dev/${n}`)
    }
    const devs = new Set(loop.devNumbers)
    const sources = new Set(loop.names.map((n) => `/dev/${n}`))
    for (const m of view.mounts) {
      if (devs.has(m.devNumber) || sources.has(m.source)) mounts.push(m.mountPoint)
    }
    holders.push(...loop.holders)
  }
  return { loops: loops.map((l) => l.dev), swaps, mounts: [...new Set(mounts)], holders }
}

export interface FindOptions {
  /**
   * `major:minor` of the zramfuse mount (see mountDeviceOf()). NEVER from the daemon serving
   * that mount: this runs `losetup --list` synchronously, and LOOP_GET_STATUS64 stats each
   * backing file (the kernel's loop_get_status calls vfs_getattr), so a block file of our own
   * mount deadlocks the daemon, and every losetup on the machine waits behind it.
   * Loop devices whose backing file
   * lives on that file system count too, whatever their path: this finds them even after the
   * mount was lazily detached, when the kernel shows their path relative to the lost mount
   * (e.g. `/dev/zram0`). It matches every file of that mount, not only `blockFile`.
   */
  mountDevice?: string
}

/** `major:minor` of the file system mounted exactly at `dir` (from /proc/self/mountinfo), or null. */
export function mountDeviceOf(dir: string): string | null {
  const want = resolve(dir)
  let found: string | null = null
  for (const m of readMountinfo()) if (m.mountPoint === want) found = m.devNumber // the last one is on top
  return found
}

/**
 * Loop devices attached to `blockFile`, and what is using them. The path is compared as the
 * kernel reports it in /sys/block/loopN/loop/backing_file (absolute, symlinks resolved at
 * attach time), so pass the path the loop device was set up with (normally the absolute one).
 */
export function findAttachments(blockFile: string, opts: FindOptions = {}): Attachments {
  const target = stripDeleted(resolve(blockFile))
  const byDevice = opts.mountDevice === undefined ? null : loopBackingDevices()
  const view = readSystemView()
  const loops = view.loops.filter((l) => resolve(l.backingFile) === target ||
    (byDevice !== null && byDevice.get(l.dev.slice(5)) === opts.mountDevice))
  return usersOf(loops, view)
}

/** True when nothing (loop device, swap, mount) uses the block file any more. */
export function isDetached(a: Attachments): boolean {
  return a.loops.length === 0 && a.swaps.length === 0 && a.mounts.length === 0
}

function describeError(err: unknown): string {
  if (err instanceof Error) {
    const withStderr = err as Error & { stderr?: Buffer | string }
    const stderr = withStderr.stderr === undefined ? '' : String(withStderr.stderr).trim()
    return stderr !== '' ? `${err.message.split('\n')[0]}: ${stderr}` : err.message
  }
  return String(err)
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms)
}

/** Deepest mount points first, so nested mounts go before the ones under them. */
function unmountOrder(mounts: string[]): string[] {
  return [...mounts].sort((a, b) => b.length - a.length)
}

/** What the detach procedure asks its driver to do: run a command, or wait. */
type Action = { kind: 'run'; what: string; file: string; args: string[] } | { kind: 'sleep'; ms: number }

/**
 * The detach procedure, written once as a generator so the synchronous and the asynchronous
 * drivers below share it. A failed `run` is thrown back into the generator.
 */
function* detachSteps(blockFile: string, opts: FindOptions): Generator<Action, void, void> {
  const find = (): Attachments => findAttachments(blockFile, opts)
  const first = find()
  if (first.loops.length === 0) return
  // 1. swapoff: every swapped page is read back into memory before the device goes away
  for (const dev of first.swaps) yield { kind: 'run', what: 'swapoff', file: 'swapoff', args: [dev] }
  // 2. umount every file system on the loop devices (a few rounds for mounts that appear meanwhile)
  for (let round = 0; round < 3; round++) {
    const now = find()
    if (now.swaps.length > 0) {
      throw new Error(`detaching ${blockFile}: ${now.swaps.join(', ')} still active as swap after swapoff`)
    }
    if (now.mounts.length === 0) break
    for (const mp of unmountOrder(now.mounts)) yield { kind: 'run', what: 'umount', file: 'umount', args: [mp] }
  }
  const beforeDetach = find()
  if (beforeDetach.swaps.length > 0) {
    throw new Error(`detaching ${blockFile}: ${beforeDetach.swaps.join(', ')} still active as swap after swapoff`)
  }
  if (beforeDetach.mounts.length > 0) {
    throw new Error(`detaching ${blockFile}: still mounted at ${beforeDetach.mounts.join(', ')} after umount`)
  }
  if (beforeDetach.holders.length > 0) {
    throw new Error(
      `detaching ${blockFile}: ${beforeDetach.loops.join(', ')} is held by ${beforeDetach.holders.join(', ')} ` +
        '(device-mapper/md stacked on it); remove those first (e.g. cryptsetup close, dmsetup remove)',
    )
  }
  // 3. losetup -d
  for (const dev of beforeDetach.loops) yield { kind: 'run', what: 'losetup -d', file: 'losetup', args: ['-d', dev] }
  // The kernel clears a loop device on its last close: give short-lived openers (udev) time.
  for (let i = 0; i < 100; i++) {
    if (find().loops.length === 0) return
    yield { kind: 'sleep', ms: 100 }
  }
  const left = find()
  if (left.loops.length > 0) {
    throw new Error(
      `detaching ${blockFile}: ${left.loops.join(', ')} still attached 10 s after losetup -d ` +
        '(autoclear is set: something still holds the loop device open)',
    )
  }
}

function stepError(blockFile: string, a: Action & { kind: 'run' }, err: unknown): Error {
  return new Error(`detaching ${blockFile}: ${a.what} failed (${a.file} ${a.args.join(' ')}): ${describeError(err)}`)
}

const COMMAND_TIMEOUT_MS = 600_000

/**
 * swapoff, umount, losetup -d (in that order) for everything attached to `blockFile`.
 * Synchronous: never call it from the daemon that serves `blockFile` (see the top of this file).
 * Throws an Error naming the step that failed; nothing after a failed step is attempted.
 */
export function detachSafely(blockFile: string, log: (msg: string) => void, opts: FindOptions = {}): void {
  const steps = detachSteps(blockFile, opts)
  let next = steps.next()
  while (next.done !== true) {
    const a = next.value
    if (a.kind === 'sleep') {
      sleepSync(a.ms)
      next = steps.next()
      continue
    }
    log(`${a.what}: ${a.file} ${a.args.join(' ')}`)
    try {
      execFileSync(a.file, a.args, { stdio: ['ignore', 'pipe', 'pipe'], timeout: COMMAND_TIMEOUT_MS })
    } catch (err) {
      steps.return()
      throw stepError(blockFile, a, err)
    }
    next = steps.next()
  }
}

/**
 * The same as detachSafely() without blocking the event loop: safe to call inside the daemon
 * that serves `blockFile` (swapoff needs the daemon to answer reads while it runs).
 */
export async function detachSafelyAsync(blockFile: string, log: (msg: string) => void, opts: FindOptions = {}): Promise<void> {
  const steps = detachSteps(blockFile, opts)
  let next = steps.next()
  while (next.done !== true) {
    const a = next.value
    if (a.kind === 'sleep') {
      await new Promise<void>((r) => setTimeout(r, a.ms))
      next = steps.next()
      continue
    }
    log(`${a.what}: ${a.file} ${a.args.join(' ')}`)
    try {
      await new Promise<void>((resolvePromise, reject) => {
        execFile(a.file, a.args, { timeout: COMMAND_TIMEOUT_MS }, (err) => (err ? reject(err) : resolvePromise()))
      })
    } catch (err) {
      steps.return()
      throw stepError(blockFile, a, err)
    }
    next = steps.next()
  }
}
