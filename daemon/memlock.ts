/**
 * The native/memlock addon (native/memlock/memlock.c, built by scripts/build-memlock.sh): prctl's
 * IO_FLUSHER, mlockall and sched_setaffinity, which Node does not expose. Calls answer 0 or an errno number.
 */
import { existsSync } from 'node:fs'
import { constants } from 'node:os'
import { join } from 'node:path'

export interface MemlockAddon {
  /** prctl(PR_SET_IO_FLUSHER, on): 0 or errno */
  setIoFlusher(on: boolean): number
  /** prctl(PR_GET_IO_FLUSHER) of the calling thread: 0 or 1, or -errno */
  getIoFlusher(): number
  /** mlockall(flags): 0 or errno */
  mlockall(flags: number): number
  /** munlockall(): 0 or errno */
  munlockall(): number
  /** 0 when this kernel can drop a locked page (MADV_DONTNEED_LOCKED, Linux 5.18), else errno */
  probeDontneedLocked(): number
  /**
   * execve(2): replaces the process (same pid); returns errno only when it fails. keepFds: open
   * descriptors beyond stdio the new image keeps (e.g. `start --background`'s readiness pipe).
   */
  execve(file: string, argv: readonly string[], env: readonly string[], keepFds?: readonly number[]): number
  /** sched_setaffinity(tid, cpus): 0 or errno (tid 0: the calling thread) */
  setAffinity(tid: number, cpus: readonly number[]): number
  readonly MCL_CURRENT: number
  readonly MCL_FUTURE: number
  readonly MCL_ONFAULT: number
}

const BUILD = join('native', 'memlock', 'build', 'Release')

/** A file of the addon's build: next to daemon/ in the repository, whether run from source or from dist/. */
function builtFile(name: string): string {
  const candidates = [join(__dirname, '..', BUILD, name), join(__dirname, '..', '..', BUILD, name)]
  return candidates.find((p) => existsSync(p)) ?? candidates[candidates.length - 1]!
}

export function memlockAddonPath(): string {
  return builtFile('memlock.node')
}

/** The LD_PRELOAD shim that lets V8 run under mlockall (native/memlock/madvise-locked.c). */
export function madviseShimPath(): string {
  return builtFile('madvise-locked.so')
}

function isAddon(m: unknown): m is MemlockAddon {
  if (typeof m !== 'object' || m === null) return false
  const o = m as Record<string, unknown>
  return ['setIoFlusher', 'getIoFlusher', 'mlockall', 'munlockall', 'probeDontneedLocked', 'execve', 'setAffinity'].every((f) => typeof o[f] === 'function') &&
    ['MCL_CURRENT', 'MCL_FUTURE', 'MCL_ONFAULT'].every((c) => Number.isInteger(o[c]))
}

/** Load the addon; throws with what to do when it is missing or not ours. */
export function loadMemlock(path = memlockAddonPath()): MemlockAddon {
  if (!existsSync(path)) throw new Error(`${path} is missing: build it with bash scripts/build-memlock.sh (npm ci does)`)
  const m: unknown = require(path)
  if (!isAddon(m)) throw new Error(`${path} does not export the memlock functions: rebuild with bash scripts/build-memlock.sh --force`)
  return m
}

/** "EPERM" for 1, ...; "errno N" for an unknown number. */
export function errnoName(errno: number): string {
  const n = Math.abs(errno)
  for (const [name, value] of Object.entries(constants.errno)) if (value === n) return name
  return `errno ${n}`
}
