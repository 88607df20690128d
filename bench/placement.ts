/**
 * Where the bench's processes run (--pin). Unpinned, the scheduler sometimes puts fio and a daemon on
 * one CPU and sometimes not, and on this VM that alone moves a 4k QD1 figure by 2x (docs/benchmarks.md,
 * "What makes identical daemons differ"). 'split': every FUSE daemon (all of its threads) on CPU 0, fio and dd on the
 * other CPUs: every daemon gets the same placement, each request crosses CPUs the same way.
 * 'same': daemons, fio and dd all on the last CPU: no cross-CPU wakeups at all, but no parallelism
 * either (kcompressd workers, 4-job and QD32 jobs share the one CPU). 'none': the scheduler decides.
 * The kernel's side of each request (FUSE queueing, a loop device's worker) is not pinned. Pure.
 */

export type PinMode = 'split' | 'same' | 'none'
export const PIN_MODES: readonly PinMode[] = ['split', 'same', 'none']

export interface Placement {
  mode: PinMode
  /** taskset CPU list for the daemons, null: unpinned */
  daemonCpus: string | null
  /** taskset CPU list for fio and dd, null: unpinned */
  loadCpus: string | null
  /** why the asked-for mode was not applied; null when it was */
  note: string | null
}

export function planPlacement(mode: PinMode, cpus: number): Placement {
  if (mode === 'none') return { mode, daemonCpus: null, loadCpus: null, note: null }
  if (mode === 'same') return { mode, daemonCpus: String(cpus - 1), loadCpus: String(cpus - 1), note: null }
  if (cpus < 2) return { mode: 'none', daemonCpus: null, loadCpus: null, note: `--pin ${mode} needs 2 CPUs, this machine has ${cpus}: not pinned` }
  return { mode, daemonCpus: '0', loadCpus: cpus === 2 ? '1' : `1-${cpus - 1}`, note: null }
}

/** The command line that runs `file args` on the load CPUs (taskset), or unchanged. */
export function loadCommand(p: Placement, file: string, args: readonly string[]): [string, string[]] {
  return p.loadCpus === null ? [file, [...args]] : ['taskset', ['-c', p.loadCpus, file, ...args]]
}

/**
 * The zramfuse daemon's own placement options: in split mode its kcompressd workers run on the load
 * CPUs (fio there mostly waits for the device), apart from the main thread that answers requests,
 * as the kernel's kcompressd runs apart from the writer. Same and none: where the daemon runs.
 */
export function kcompressdArgs(p: Placement): string[] {
  return p.mode === 'split' && p.loadCpus !== null ? ['--kcompressd-cpus', p.loadCpus] : []
}

/** Repetition `rep` (1-based) runs the targets in this order: as listed on odd ones, reversed on even ones. */
export function orderFor<T>(members: readonly T[], rep: number): T[] {
  return rep % 2 === 1 ? [...members] : [...members].reverse()
}
