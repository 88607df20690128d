/** The shape of a run's raw JSON (bench/results/<date>.json): everything the report is made from. */
import type { MmStat } from './mmstat'
import type { PageKind } from './mix'
import type { Mode } from './targets'
import type { RecompressLatencyRow } from './recompress-latency'

export const RESULTS_VERSION = 1

/** One timed run of one job. */
export interface PerfRun {
  iops: number
  bwBytes: number
  latMeanNs: number
  clatP99Ns: number | null
  /** fio's own CPU, percent of one CPU; null for runs that are not fio (dd) */
  fioCpuPct: number | null
  /** the FUSE daemon's CPU during the run, percent of one CPU; null for the kernel */
  daemonCpuPct: number | null
  wallS: number
}

/** All runs of one job on one target reached one way. */
export interface PerfCell {
  target: string
  mode: Mode
  /** 'mix': fio's generated data; 'real': the real directory-tree image */
  data: 'mix' | 'real'
  job: string
  runs: PerfRun[]
  /** set when the job failed; runs holds what succeeded before */
  error?: string
}

export interface TargetInfo {
  id: string
  title: string
  kind: string
  modes: Mode[]
  algorithm: string | null
  /** kcompressd workers the daemon reported in its ready line; null for the ceiling and the kernel */
  workers: number | null
  /** an explicit --workers variant, compared with its default target in its own table */
  variant: boolean
  /** the A/A control: the id of the target it duplicates (absent in results of older runs) */
  twinOf?: string
  /** zramfuse: a --transport other than the daemon's default (absent: the default) */
  transport?: string
  /** the C ceiling: 'single' (fuse_session_loop) or 'multi' (fuse_session_loop_mt) */
  threads?: string
}

export interface DatasetInfo {
  id: string
  title: string
  bytes: number
  /** page kinds of the generated mix; null for the real image */
  counts: Record<PageKind, number> | null
  source: string
}

/** mm_stat after the same data went to each device. */
export interface FidelityEntry {
  dataset: string
  /** the kernel's zram (lz4); null when skipped */
  kernel: MmStat | null
  /** zramfuse by target id */
  zramfuse: Record<string, MmStat>
}

export interface MemoryEntry {
  target: string
  dataset: string
  disksize: number
  /** page_table_bytes of zramfuse; null for the kernel (not exported) */
  pageTableBytes: number | null
  /** daemon VmRSS just after mounting, and after the data was written; null for the kernel */
  rssIdleBytes: number | null
  rssAfterBytes: number | null
  /** after writing the dataset */
  written: MmStat
  /** after zero-filling every third page (fragmentation), before compact */
  churned: MmStat
  /** after `echo 1 > compact` */
  compacted: MmStat
}

export interface MachineInfo {
  kernel: string
  cpus: number
  memTotalBytes: number
  fioVersion: string
  nodeVersion: string
  /**
   * The cpuidle driver (/sys/devices/system/cpu/cpuidle/current_driver), "none", or null without
   * cpuidle: whether idle vCPUs can poll (haltpoll) or always halt changes every QD1 ratio here.
   * Absent in results written before 2026-12-02.
   */
  cpuidleDriver?: string | null
  loadAvgStart: string
  loadAvgEnd: string
  /** processes other than ours that used CPU when the run started / ended */
  busyStart: string[]
  busyEnd: string[]
}

export interface BenchConfig {
  quick: boolean
  reps: number
  runtimeS: number
  regionBytes: number
  disksize: number
  seed: number
  mix: string
  fidelityMix: string
  realSource: string
  command: string
  /** the source that was measured: git commit read from .git, and when dist/ was built */
  source: string
  /** where daemons and fio ran (--pin); absent in results of older runs */
  placement?: string
  /** fresh daemons per run or one set for all (--keep-daemons); absent in results of older runs */
  daemons?: string
}

/** What else used the CPU while a phase ran (see sys.backgroundBetween). */
export interface BackgroundEntry {
  phase: string
  wallS: number
  othersPct: number
  top: string[]
}

export interface BenchResults {
  version: number
  startedAt: string
  finishedAt: string
  durationS: number
  machine: MachineInfo
  config: BenchConfig
  targets: TargetInfo[]
  datasets: DatasetInfo[]
  /** skips and anything odd seen while running, in the order it happened */
  notes: string[]
  perf: PerfCell[]
  fidelity: FidelityEntry[]
  memory: MemoryEntry[]
  background: BackgroundEntry[]
  /** recompression to zstd with reads going on (bench/recompress-latency.ts); absent in older results */
  recompression?: RecompressLatencyRow[]
}
