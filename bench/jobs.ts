/** The fio jobs of the matrix and the exact command lines they run. Pure. */

export type Rw = 'randwrite' | 'randread' | 'write' | 'read'

export interface JobSpec {
  id: string
  /** what the report prints */
  title: string
  rw: Rw
  bs: number
  ioengine: 'psync' | 'libaio'
  iodepth: number
  numjobs: number
  /** which figure matters: IOPS for small blocks, throughput for large */
  metric: 'iops' | 'bw'
}

export function jobDirection(job: JobSpec): 'read' | 'write' {
  return job.rw === 'randread' || job.rw === 'read' ? 'read' : 'write'
}

const KiB = 1024
const MiB = 1024 * 1024

/** The list: 4k random at QD1 and with 4 jobs, 4k libaio QD32, 128k and 1M sequential. */
export const JOBS: readonly JobSpec[] = [
  { id: 'randwrite-4k-qd1', title: '4k randwrite QD1', rw: 'randwrite', bs: 4 * KiB, ioengine: 'psync', iodepth: 1, numjobs: 1, metric: 'iops' },
  { id: 'randread-4k-qd1', title: '4k randread QD1', rw: 'randread', bs: 4 * KiB, ioengine: 'psync', iodepth: 1, numjobs: 1, metric: 'iops' },
  { id: 'randwrite-4k-4j', title: '4k randwrite 4 jobs', rw: 'randwrite', bs: 4 * KiB, ioengine: 'psync', iodepth: 1, numjobs: 4, metric: 'iops' },
  { id: 'randread-4k-4j', title: '4k randread 4 jobs', rw: 'randread', bs: 4 * KiB, ioengine: 'psync', iodepth: 1, numjobs: 4, metric: 'iops' },
  { id: 'randwrite-4k-qd32', title: '4k randwrite libaio QD32', rw: 'randwrite', bs: 4 * KiB, ioengine: 'libaio', iodepth: 32, numjobs: 1, metric: 'iops' },
  { id: 'write-128k', title: '128k seq write', rw: 'write', bs: 128 * KiB, ioengine: 'psync', iodepth: 1, numjobs: 1, metric: 'bw' },
  { id: 'read-128k', title: '128k seq read', rw: 'read', bs: 128 * KiB, ioengine: 'psync', iodepth: 1, numjobs: 1, metric: 'bw' },
  { id: 'write-1m', title: '1M seq write', rw: 'write', bs: MiB, ioengine: 'psync', iodepth: 1, numjobs: 1, metric: 'bw' },
  { id: 'read-1m', title: '1M seq read', rw: 'read', bs: MiB, ioengine: 'psync', iodepth: 1, numjobs: 1, metric: 'bw' },
]

/** The real-data pass: the image is written with dd (fio cannot take buffer contents from a file), read with fio. */
export const REAL_WRITE_JOB: JobSpec = {
  id: 'real-write-1m', title: 'real data: 1M seq write (dd)', rw: 'write', bs: MiB, ioengine: 'psync', iodepth: 1, numjobs: 1, metric: 'bw',
}
export const REAL_READ_JOBS: readonly JobSpec[] = [
  { id: 'real-randread-4k-qd1', title: 'real data: 4k randread QD1', rw: 'randread', bs: 4 * KiB, ioengine: 'psync', iodepth: 1, numjobs: 1, metric: 'iops' },
  { id: 'real-read-1m', title: 'real data: 1M seq read', rw: 'read', bs: MiB, ioengine: 'psync', iodepth: 1, numjobs: 1, metric: 'bw' },
]

export const ALL_JOBS: readonly JobSpec[] = [...JOBS, REAL_WRITE_JOB, ...REAL_READ_JOBS]

export function findJob(id: string): JobSpec | undefined {
  return ALL_JOBS.find((j) => j.id === id)
}

/** How the written data compresses: fio's buffer_compress_percentage over 4 KiB chunks. */
export interface DataMix {
  /** percent of each chunk fio makes compressible (the rest is random bytes) */
  compressPercentage: number
  chunkBytes: number
}

export const DEFAULT_MIX: DataMix = { compressPercentage: 50, chunkBytes: 4096 }

export function describeMix(mix: DataMix): string {
  return `fio buffer_compress_percentage=${mix.compressPercentage} buffer_compress_chunk=${mix.chunkBytes}: ` +
    `each ${mix.chunkBytes}-byte chunk is ${100 - mix.compressPercentage}% random bytes and ${mix.compressPercentage}% ` +
    `compressible filler (about ${(100 / Math.max(1, 100 - mix.compressPercentage)).toFixed(1)}:1 ideal), ` +
    'buffers scrambled per I/O (fio default), not refilled'
}

export interface RunParams {
  filename: string
  /** bytes of the device the job covers, from offset 0 */
  sizeBytes: number
  runtimeS: number
  seed: number
  mix: DataMix | null
}

const common = (p: { filename: string; sizeBytes: number; seed: number }): string[] => [
  '--output-format=json',
  `--filename=${p.filename}`,
  `--size=${p.sizeBytes}`,
  '--direct=1',
  `--randseed=${p.seed}`,
  '--randrepeat=1',
  '--fallocate=none',
  '--group_reporting',
]

function mixArgs(mix: DataMix | null): string[] {
  if (!mix) return []
  return [`--buffer_compress_percentage=${mix.compressPercentage}`, `--buffer_compress_chunk=${mix.chunkBytes}`]
}

/** fio arguments of one timed run of `job`. Reads of the real-data pass run with --readonly. */
export function fioArgs(job: JobSpec, p: RunParams): string[] {
  const dir = jobDirection(job)
  const args = [
    `--name=${job.id}`,
    ...common(p),
    `--rw=${job.rw}`,
    `--bs=${job.bs}`,
    `--ioengine=${job.ioengine}`,
    `--iodepth=${job.iodepth}`,
    `--numjobs=${job.numjobs}`,
    '--time_based',
    `--runtime=${Math.round(p.runtimeS * 1000)}ms`,
  ]
  if (dir === 'write') args.push(...mixArgs(p.mix))
  else args.push('--readonly')
  return args
}

/** Fill the region once, sequentially, with the data mix, so that reads read stored data. */
export function prefillArgs(p: Omit<RunParams, 'runtimeS'>): string[] {
  return ['--name=prefill', ...common(p), '--rw=write', '--bs=1M', '--ioengine=psync', '--iodepth=1', ...mixArgs(p.mix)]
}

/**
 * Churn for the compaction measurement: overwrite every third 4 KiB page of the region with zeros
 * (`rw=write:8k` = write 4k, skip 8k). Zero pages become same-filled pages, so their pool objects
 * are freed and the pool is left fragmented, which `compact` then repairs.
 */
export function churnArgs(p: { filename: string; sizeBytes: number; seed: number }): string[] {
  return ['--name=churn', ...common(p), '--rw=write:8k', '--bs=4k', '--ioengine=psync', '--iodepth=1', '--zero_buffers']
}

/** A job's figure in its own unit: k IOPS or MB/s (10^6 bytes, as fio's "MB/s"). */
export function jobValue(job: JobSpec, iops: number, bwBytes: number): number {
  return job.metric === 'iops' ? iops / 1000 : bwBytes / 1e6
}

export function jobUnit(job: JobSpec): string {
  return job.metric === 'iops' ? 'k IOPS' : 'MB/s'
}
