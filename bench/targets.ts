/** What is measured: targets, the ways they are reached (modes), and variants planned for later. Pure. */

/** file: fio on the FUSE block file directly; loop: on a loop device over it (--direct-io=on); dev: a kernel block device. */
export type Mode = 'file' | 'loop' | 'dev'

export type TargetKind = 'ceiling' | 'zramfuse' | 'kernel'

export interface TargetSpec {
  id: string
  title: string
  kind: TargetKind
  algorithm: 'lz4' | 'zstd' | null
  /**
   * kcompressd workers: 'default' (the daemon's own choice), a number passed as `--workers N`, or
   * null where it has no meaning (ceiling, kernel). workers=0 is the inline (synchronous) path.
   */
  workers: 'default' | number | null
  modes: readonly Mode[]
}

export const CEILING: TargetSpec = { id: 'ceiling', title: 'ceiling (RAM file)', kind: 'ceiling', algorithm: null, workers: null, modes: ['file', 'loop'] }
export const ZRAMFUSE_LZ4: TargetSpec = { id: 'zramfuse-lz4', title: 'zramfuse lz4', kind: 'zramfuse', algorithm: 'lz4', workers: 'default', modes: ['file', 'loop'] }
export const ZRAMFUSE_ZSTD: TargetSpec = { id: 'zramfuse-zstd', title: 'zramfuse zstd', kind: 'zramfuse', algorithm: 'zstd', workers: 'default', modes: ['file', 'loop'] }
export const ZRAMFUSE_LZ4_INLINE: TargetSpec = { id: 'zramfuse-lz4-w0', title: 'zramfuse lz4 workers=0', kind: 'zramfuse', algorithm: 'lz4', workers: 0, modes: ['file', 'loop'] }
export const ZRAMFUSE_ZSTD_INLINE: TargetSpec = { id: 'zramfuse-zstd-w0', title: 'zramfuse zstd workers=0', kind: 'zramfuse', algorithm: 'zstd', workers: 0, modes: ['file', 'loop'] }
/** The kernel's zram is a block device already: a loop device over it would measure the loop driver. */
export const KERNEL_LZ4: TargetSpec = { id: 'kernel-lz4', title: 'kernel zram lz4', kind: 'kernel', algorithm: 'lz4', workers: null, modes: ['dev'] }

export interface Capabilities {
  /** the daemon accepts --workers (kcompressd exists) */
  workers: boolean
  /** /sys/block/zram0 exists and lz4 is one of its algorithms */
  kernelZram: boolean
  kernelZramReason: string
}

export interface Plan {
  targets: TargetSpec[]
  skipped: { target: TargetSpec; reason: string }[]
}

/** The targets of a run, in the order they run, and those skipped with the reason. */
export function planTargets(caps: Capabilities, only: readonly string[] | null = null): Plan {
  const all: { t: TargetSpec; skip: string | null }[] = [
    { t: CEILING, skip: null },
    { t: ZRAMFUSE_LZ4, skip: null },
    { t: ZRAMFUSE_LZ4_INLINE, skip: caps.workers ? null : 'kcompressd does not exist yet (the daemon has no --workers): the inline variant and the async/inline ratio come with it' },
    { t: ZRAMFUSE_ZSTD, skip: null },
    { t: ZRAMFUSE_ZSTD_INLINE, skip: caps.workers ? null : 'kcompressd does not exist yet (the daemon has no --workers)' },
    { t: KERNEL_LZ4, skip: caps.kernelZram ? null : caps.kernelZramReason },
  ]
  const plan: Plan = { targets: [], skipped: [] }
  for (const { t, skip } of all) {
    if (only && !only.includes(t.id)) continue
    if (skip !== null) plan.skipped.push({ target: t, reason: skip })
    else plan.targets.push(t)
  }
  return plan
}

/** The inline (workers=0) twin of an async target, for the async / inline ratio. */
export function inlineTwin(t: TargetSpec): TargetSpec | null {
  if (t.kind !== 'zramfuse' || t.workers !== 'default') return null
  return t.algorithm === 'lz4' ? ZRAMFUSE_LZ4_INLINE : ZRAMFUSE_ZSTD_INLINE
}

/** Extra daemon arguments of a target. */
export function daemonArgs(t: TargetSpec): string[] {
  const args: string[] = []
  if (t.algorithm) args.push('--algorithm', t.algorithm)
  if (typeof t.workers === 'number') args.push('--workers', String(t.workers))
  return args
}
