/** Command-line options of `npm run bench` and the defaults of a full and a quick run. Pure. */
import { parseArgs } from 'node:util'
import { JOBS } from './jobs'
import { PIN_MODES, type PinMode } from './placement'
import { parseSize } from './size'

export interface BenchOptions {
  quick: boolean
  /** runs per figure (median, min, max) */
  reps: number
  /** seconds per timed fio run */
  runtimeS: number
  /** bytes from offset 0 the fio jobs cover */
  regionBytes: number
  disksize: number
  seed: number
  /** target ids to run (null: all) */
  only: string[] | null
  /** fio job ids of the matrix to run (null: all) */
  jobs: string[] | null
  /** the real-data pass and the real-data fidelity image */
  real: boolean
  outDir: string
  /** make this run the committed report: bench/results/ then holds this run's files only (bench/publish.ts) */
  publish: boolean
  /** directory packed into the real-data image; null: the first of the defaults that exists */
  realDir: string | null
  /** bytes of the generated fidelity mix */
  fidelityBytes: number
  perf: boolean
  fidelity: boolean
  /** only the codec microbenchmark (bench/codecs.ts) */
  codecs: boolean
  /** bytes of real data it compresses */
  codecCorpusBytes: number
  /** seconds of repeated passes per figure */
  codecSeconds: number
  /** CPU placement of daemons and fio (bench/placement.ts) */
  pin: PinMode
  /** one set of daemons for every run instead of fresh daemons per run */
  keepDaemons: boolean
  /** no CPU halts when idle during the run (a 0 us PM QoS request: bench/sys.ts holdNoHalt) */
  awake: boolean
  help: boolean
}

export const USAGE = `usage: npm run bench [-- OPTIONS]   (node dist/bench/run.js [OPTIONS])
  --quick              a short pass (about 3.5 minutes): 1 run of 0.5 s per figure, smaller data
  --reps N             runs per figure (default 3; quick 1)
  --runtime SECONDS    seconds per timed fio run (default 2; quick 0.5)
  --region SIZE        bytes the jobs cover (default 256M; quick 64M)
  --disksize SIZE      device size (default 1G)
  --seed N             fio randseed and the mix generator's seed (default 20240611)
  --only IDS           comma-separated targets: ceiling,ceiling-c-1t,ceiling-c-mt,zramfuse-lz4,
                       zramfuse-lz4-fuse-native,zramfuse-zstd,kernel-lz4 (ceiling-c-*: the C libfuse3 ceiling,
                       built by scripts/build-ceiling.sh, missing with the reason when that fails)
  --jobs IDS           comma-separated fio jobs of the matrix (default all: ${JOBS.map((j) => j.id).join(',')})
  --no-real            skip the real-data pass and the real-data fidelity image
  --out DIR            where the report goes (default bench/out, not in git)
  --publish            also make this run the committed report: bench/results/ is emptied and gets this
                       run's report (markdown, JSON, charts); a full run only (no --quick, --only, --jobs)
  --real-dir DIR       directory packed into the real-data ext4 image (default /usr/share/doc; quick /usr/share/perl)
  --fidelity-size SIZE bytes of the generated fidelity mix (default 128M; quick 32M)
  --no-perf            skip the fio matrix
  --no-fidelity        skip the fidelity and memory sections
  --codecs             only the codec microbenchmark (no root): our per-page cost next to lz4 -b1 / zstd -b3
  --codec-corpus SIZE  bytes of real data it compresses (default 32M; quick 8M)
  --codec-seconds S    seconds of repeated passes per figure (default 2; quick 0.5)
  --pin split|same|none  split (default): daemons on CPU 0, fio and dd on the others; same: all on one
                       CPU (no cross-CPU wakeups, no parallelism); none: unpinned
  --keep-daemons       start the daemons once for all runs (default: fresh daemons for every run)
  --awake              no CPU halts when idle during the run (0 us PM QoS request on /dev/cpu_dma_latency):
                       on a VM a halted vCPU is slow to come back, a cost every target pays per request;
                       refused without a cpuidle driver (current_driver "none"), where idle CPUs halt regardless
`

export function parseBenchArgs(argv: string[], defaultOut: string): BenchOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean', default: false },
      reps: { type: 'string' },
      runtime: { type: 'string' },
      region: { type: 'string' },
      disksize: { type: 'string' },
      seed: { type: 'string' },
      only: { type: 'string' },
      jobs: { type: 'string' },
      'no-real': { type: 'boolean', default: false },
      out: { type: 'string' },
      publish: { type: 'boolean', default: false },
      'real-dir': { type: 'string' },
      'fidelity-size': { type: 'string' },
      'no-perf': { type: 'boolean', default: false },
      'no-fidelity': { type: 'boolean', default: false },
      codecs: { type: 'boolean', default: false },
      'codec-corpus': { type: 'string' },
      'codec-seconds': { type: 'string' },
      pin: { type: 'string', default: 'split' },
      'keep-daemons': { type: 'boolean', default: false },
      awake: { type: 'boolean', default: false },
      help: { type: 'boolean', short: 'h', default: false },
    },
    strict: true,
  })
  const quick = values.quick ?? false
  const int = (name: string, v: string | undefined, dflt: number, min: number): number => {
    if (v === undefined) return dflt
    const n = Number(v)
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} must be an integer >= ${min}, got ${v}`)
    return n
  }
  const runtimeS = values.runtime === undefined ? (quick ? 0.5 : 2) : Number(values.runtime)
  if (!(runtimeS >= 0.1 && runtimeS <= 600)) throw new Error(`--runtime must be 0.1..600 seconds, got ${String(values.runtime)}`)
  const opts: BenchOptions = {
    quick,
    reps: int('reps', values.reps, quick ? 1 : 3, 1),
    runtimeS,
    regionBytes: parseSize(values.region ?? (quick ? '64M' : '256M')),
    disksize: parseSize(values.disksize ?? '1G'),
    seed: int('seed', values.seed, 20240611, 0),
    only: values.only === undefined ? null : values.only.split(',').map((s) => s.trim()).filter((s) => s !== ''),
    jobs: values.jobs === undefined ? null : values.jobs.split(',').map((s) => s.trim()).filter((s) => s !== ''),
    real: !(values['no-real'] ?? false),
    outDir: values.out ?? defaultOut,
    publish: values.publish ?? false,
    realDir: values['real-dir'] ?? null,
    fidelityBytes: parseSize(values['fidelity-size'] ?? (quick ? '32M' : '128M')),
    perf: !(values['no-perf'] ?? false),
    fidelity: !(values['no-fidelity'] ?? false),
    codecs: values.codecs ?? false,
    codecCorpusBytes: parseSize(values['codec-corpus'] ?? (quick ? '8M' : '32M')),
    codecSeconds: values['codec-seconds'] === undefined ? (quick ? 0.5 : 2) : Number(values['codec-seconds']),
    pin: (values.pin ?? 'split') as PinMode,
    keepDaemons: values['keep-daemons'] ?? false,
    awake: values.awake ?? false,
    help: values.help ?? false,
  }
  if (opts.publish && (opts.quick || opts.only !== null || opts.jobs !== null || !opts.perf || !opts.fidelity || !opts.real || opts.codecs)) {
    throw new Error('--publish takes a full run only: no --quick, --only, --jobs, --no-perf, --no-fidelity, --no-real or --codecs')
  }
  if (!PIN_MODES.includes(opts.pin)) throw new Error(`--pin must be ${PIN_MODES.join(' or ')}, got ${String(values.pin)}`)
  for (const id of opts.jobs ?? []) {
    if (!JOBS.some((j) => j.id === id)) throw new Error(`--jobs: unknown job ${id}`)
  }
  const MiB = 1024 * 1024
  if (opts.regionBytes % MiB !== 0 || opts.regionBytes === 0) throw new Error('--region must be a whole number of MiB')
  if (opts.fidelityBytes % MiB !== 0 || opts.fidelityBytes === 0) throw new Error('--fidelity-size must be a whole number of MiB')
  if (opts.disksize % MiB !== 0) throw new Error('--disksize must be a whole number of MiB')
  if (opts.codecCorpusBytes % 4096 !== 0 || opts.codecCorpusBytes === 0) throw new Error('--codec-corpus must be a whole number of 4 KiB pages')
  if (!(opts.codecSeconds > 0 && opts.codecSeconds <= 600)) throw new Error(`--codec-seconds must be in (0, 600], got ${String(values['codec-seconds'])}`)
  if (opts.regionBytes > opts.disksize) throw new Error('--region must not exceed --disksize')
  if (opts.fidelityBytes > opts.disksize) throw new Error('--fidelity-size must not exceed --disksize')
  return opts
}

/** Candidate directories for the real-data image, in order of preference. */
export function realDirCandidates(opts: BenchOptions, repoRoot: string): string[] {
  if (opts.realDir !== null) return [opts.realDir]
  return opts.quick
    ? ['/usr/share/perl', '/usr/share/i18n', `${repoRoot}/node_modules/typescript`]
    : ['/usr/share/doc', '/usr/share/man', `${repoRoot}/node_modules`]
}
