/** What is measured: targets, the ways they are reached (modes), and variants planned for later. Pure. */

/** file: fio on the FUSE block file directly; loop: on a loop device over it (--direct-io=on); dev: a kernel block device. */
export type Mode = 'file' | 'loop' | 'dev'

/** ceiling: the fuse-native RAM file (bench/ceiling.ts); ceiling-c: the C libfuse3 RAM file (bench/ceiling-c/ramfile.c) */
export type TargetKind = 'ceiling' | 'ceiling-c' | 'zramfuse' | 'kernel'

/** zramfuse's FUSE transport: absent = the daemon's default (native: our own session on /dev/fuse) */
export type Transport = 'fuse-native'

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
  /** an explicit --workers variant of a default target (compared with it, not shown beside it) */
  variant: boolean
  /** the A/A control: the id of the target this one duplicates setting for setting */
  twinOf?: string
  /** zramfuse only: `--transport` other than the default */
  transport?: Transport
  /** the C ceiling only: fuse_session_loop (single) or fuse_session_loop_mt (multi) */
  threads?: 'single' | 'multi'
}

export const CEILING: TargetSpec = { id: 'ceiling', title: 'ceiling (RAM file)', kind: 'ceiling', algorithm: null, workers: null, modes: ['file', 'loop'], variant: false }
/**
 * The FUSE protocol's own ceiling (issue 27): a C RAM file over libfuse3's low-level API, direct_io,
 * 128 KiB requests, one thread or multi-threaded. Every figure of the report is also given as a ratio
 * to the one-thread one. Built by scripts/build-ceiling.sh; missing (with the reason) when that fails.
 */
export const CEILING_C_SINGLE: TargetSpec = { id: 'ceiling-c-1t', title: 'C libfuse3, 1 thread', kind: 'ceiling-c', algorithm: null, workers: null, modes: ['file', 'loop'], variant: false, threads: 'single' }
export const CEILING_C_MULTI: TargetSpec = { id: 'ceiling-c-mt', title: 'C libfuse3, multi-threaded', kind: 'ceiling-c', algorithm: null, workers: null, modes: ['file', 'loop'], variant: false, threads: 'multi' }
export const ZRAMFUSE_LZ4: TargetSpec = { id: 'zramfuse-lz4', title: 'zramfuse lz4', kind: 'zramfuse', algorithm: 'lz4', workers: 'default', modes: ['file', 'loop'], variant: false }
export const ZRAMFUSE_ZSTD: TargetSpec = { id: 'zramfuse-zstd', title: 'zramfuse zstd', kind: 'zramfuse', algorithm: 'zstd', workers: 'default', modes: ['file', 'loop'], variant: false }
/** zramfuse lz4 over the old transport (`--transport fuse-native`, libfuse 2.9), next to the default one. */
export const ZRAMFUSE_LZ4_FUSE_NATIVE: TargetSpec = { id: 'zramfuse-lz4-fuse-native', title: 'zramfuse lz4 fuse-native', kind: 'zramfuse', algorithm: 'lz4', workers: 'default', modes: ['file', 'loop'], variant: false, transport: 'fuse-native' }
/*
 * The kcompressd variants run on the file only (the async / inline ratio is a file-mode figure;
 * the loop device adds the same cost to both), which keeps the full run under 15 minutes.
 * workers=0 is the inline path; when the daemon's default is already 0 workers (it is on 2 CPUs),
 * the variant measured instead is workers=1, so the ratio still compares async with inline.
 */
export const ZRAMFUSE_LZ4_INLINE: TargetSpec = { id: 'zramfuse-lz4-w0', title: 'zramfuse lz4 workers=0', kind: 'zramfuse', algorithm: 'lz4', workers: 0, modes: ['file'], variant: true }
export const ZRAMFUSE_ZSTD_INLINE: TargetSpec = { id: 'zramfuse-zstd-w0', title: 'zramfuse zstd workers=0', kind: 'zramfuse', algorithm: 'zstd', workers: 0, modes: ['file'], variant: true }
export const ZRAMFUSE_LZ4_W1: TargetSpec = { id: 'zramfuse-lz4-w1', title: 'zramfuse lz4 workers=1', kind: 'zramfuse', algorithm: 'lz4', workers: 1, modes: ['file'], variant: true }
export const ZRAMFUSE_ZSTD_W1: TargetSpec = { id: 'zramfuse-zstd-w1', title: 'zramfuse zstd workers=1', kind: 'zramfuse', algorithm: 'zstd', workers: 1, modes: ['file'], variant: true }
/**
 * The A/A control: a second zramfuse lz4 daemon with the default target's settings, measured in the
 * same interleaved order. Whatever separates it from zramfuse-lz4 is noise (bench/noise.ts).
 */
export const ZRAMFUSE_LZ4_AA: TargetSpec = { id: 'zramfuse-lz4-aa', title: 'zramfuse lz4 A/A twin', kind: 'zramfuse', algorithm: 'lz4', workers: 'default', modes: ['file', 'loop'], variant: true, twinOf: ZRAMFUSE_LZ4.id }
/** The kernel's zram is a block device already: a loop device over it would measure the loop driver. */
export const KERNEL_LZ4: TargetSpec = { id: 'kernel-lz4', title: 'kernel zram lz4', kind: 'kernel', algorithm: 'lz4', workers: null, modes: ['dev'], variant: false }

export interface Capabilities {
  /** the daemon accepts --workers (kcompressd exists) */
  workers: boolean
  /** /sys/block/zram0 exists and lz4 is one of its algorithms */
  kernelZram: boolean
  kernelZramReason: string
  /**
   * the C ceiling's binary was built (scripts/build-ceiling.sh). Absent: not asked, and its two
   * targets are left out of the plan altogether (neither run nor listed as skipped)
   */
  ceilingC?: boolean
  /** why not, when it was not */
  ceilingCReason?: string
  /** the daemon accepts --transport (so fuse-native can run next to the default); absent: as ceilingC */
  transports?: boolean
}

export interface Plan {
  targets: TargetSpec[]
  skipped: { target: TargetSpec; reason: string }[]
}

/** The targets of a run, in the order they run, and those skipped with the reason. */
export function planTargets(caps: Capabilities, only: readonly string[] | null = null): Plan {
  const noC = caps.ceilingC === true ? null : `the C ceiling is missing: ${caps.ceilingCReason ?? 'not built (bash scripts/build-ceiling.sh)'}`
  const all: { t: TargetSpec; skip: string | null; asked?: boolean }[] = [
    { t: CEILING, skip: null },
    { t: CEILING_C_SINGLE, skip: noC, asked: caps.ceilingC !== undefined },
    { t: CEILING_C_MULTI, skip: noC, asked: caps.ceilingC !== undefined },
    { t: ZRAMFUSE_LZ4, skip: null },
    { t: ZRAMFUSE_LZ4_AA, skip: null },
    { t: ZRAMFUSE_LZ4_INLINE, skip: caps.workers ? null : 'kcompressd does not exist yet (the daemon has no --workers): the inline variant and the async/inline ratio come with it' },
    { t: ZRAMFUSE_LZ4_FUSE_NATIVE, skip: caps.transports === true ? null : 'the daemon has no --transport (its --help does not list it)', asked: caps.transports !== undefined },
    { t: ZRAMFUSE_ZSTD, skip: null },
    { t: ZRAMFUSE_ZSTD_INLINE, skip: caps.workers ? null : 'kcompressd does not exist yet (the daemon has no --workers)' },
    { t: KERNEL_LZ4, skip: caps.kernelZram ? null : caps.kernelZramReason },
  ]
  const plan: Plan = { targets: [], skipped: [] }
  for (const { t, skip, asked } of all) {
    if (asked === false) continue
    // the twin goes wherever its base goes: every run that measures zramfuse-lz4 has its noise floor
    if (only && !only.includes(t.twinOf ?? t.id)) continue
    if (skip !== null) plan.skipped.push({ target: t, reason: skip })
    else plan.targets.push(t)
  }
  return plan
}

/**
 * The variant to run in place of a planned workers=0 variant, given how many workers the default
 * target of the same algorithm really used: workers=1 when the default already was inline.
 */
export function resolveVariant(planned: TargetSpec, defaultWorkers: number | null): TargetSpec {
  if (!planned.variant || planned.workers !== 0 || defaultWorkers !== 0) return planned
  return planned.algorithm === 'zstd' ? ZRAMFUSE_ZSTD_W1 : ZRAMFUSE_LZ4_W1
}

/** Extra daemon arguments of a target. */
export function daemonArgs(t: TargetSpec): string[] {
  const args: string[] = []
  if (t.algorithm) args.push('--algorithm', t.algorithm)
  if (typeof t.workers === 'number') args.push('--workers', String(t.workers))
  if (t.transport) args.push('--transport', t.transport)
  return args
}

/** The C ceiling's command line: `ramfile MOUNT SIZE_MB [-s]` (disksize is a whole number of MiB). */
export function ceilingCArgs(t: TargetSpec, mount: string, disksize: number): string[] {
  return [mount, String(Math.floor(disksize / (1024 * 1024))), ...(t.threads === 'single' ? ['-s'] : [])]
}
