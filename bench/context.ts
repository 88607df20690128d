/** What every phase of `npm run bench` shares: paths, the run's context, progress and notes. */
import { join, resolve } from 'node:path'
import { type DataMix, type JobSpec } from './jobs'
import { type BenchOptions } from './options'
import { type Placement } from './placement'
import { type BenchResults, type DatasetInfo } from './results'
import { Cleanup } from './sys'

export const REPO = resolve(__dirname, '..', '..')
export const CLI = join(REPO, 'dist', 'daemon', 'cli.js')
export const CEILING = join(REPO, 'dist', 'bench', 'ceiling.js')
/** The C ceiling (bench/ceiling-c/ramfile.c), built by scripts/build-ceiling.sh */
export const CEILING_C = join(REPO, 'bench', 'ceiling-c', 'build', 'ramfile')
export const BUILD_CEILING_C = join(REPO, 'scripts', 'build-ceiling.sh')

export function err(msg: string): void {
  process.stderr.write(msg + '\n')
}

export class Progress {
  private k = 0
  private readonly t0 = Date.now()
  constructor(public total: number) {}
  step(label: string): void {
    this.k++
    this.line(label)
  }
  line(label: string): void {
    const s = Math.round((Date.now() - this.t0) / 1000)
    const el = `${Math.floor(s / 60)}m${String(s % 60).padStart(2, '0')}s`
    err(`[bench ${String(this.k).padStart(String(this.total).length)}/${this.total} ${el}] ${label}`)
  }
}

export interface Dataset extends DatasetInfo {
  path: string
}

export interface Ctx {
  opts: BenchOptions
  /** the fio jobs of the matrix this run does */
  jobs: readonly JobSpec[]
  cleanup: Cleanup
  progress: Progress
  results: BenchResults
  work: string
  shm: string
  pidsFile: string
  placement: Placement
  mix: DataMix
  real: Dataset | null
  kernelOk: boolean
}

export function note(ctx: Ctx, msg: string): void {
  ctx.results.notes.push(msg)
  err(`bench: note: ${msg}`)
}
