#!/usr/bin/env node
import { parseArgs } from 'node:util'
import { start } from './start'
import { stop } from './stop'
import { formatTable, readStatus } from './status'
import { ReadyChannel, startInBackground } from './background'
import { pidFilePath } from './runtime-files'
import { watch } from './watch'

const USAGE = `usage:
  zramfuse start --mount DIR [--disksize SIZE] [--algorithm lz4|zstd] [--mem-limit SIZE] [--workers N] [--fifo-size PAGES]
                 [--kcompressd-cpus LIST]
                 [--backing-file PATH [--writeback-format page|compressed|packed] [--shrinker] [--pool-limit SIZE]]
                 [--no-mlock] [--log-level LEVEL]
  zramfuse start --mount DIR --config FILE     (a zram-generator.conf: devices, swap, mkfs + mount)
                 [--metrics [HOST:]PORT] [--pid-file FILE] [--background [--log-file FILE]]
  zramfuse stop --mount DIR [--force]
  zramfuse status --mount DIR [--bytes] [--json]
  zramfuse status --mount DIR --watch [SECONDS] [--count N]
`

function fail(msg: string): never {
  process.stderr.write(`zramfuse: ${msg}\n${USAGE}`)
  process.exit(2)
}

/** `--watch` takes an optional value: `--watch 5`, `--watch=5`, or `--watch` alone (2 s). */
function normaliseWatch(args: string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string
    if (a !== '--watch') { out.push(a); continue }
    const next = args[i + 1]
    if (next !== undefined && /^\d+(\.\d+)?$/.test(next)) { out.push(`--watch=${next}`); i++ } else out.push('--watch=2')
  }
  return out
}

/** The daemon's arguments: the command line less what only the waiting parent uses. */
function withoutParentOptions(args: string[]): string[] {
  const out: string[] = []
  for (let i = 0; i < args.length; i++) {
    const a = args[i] as string
    if (a === '--background' || a.startsWith('--log-file=')) continue
    if (a === '--log-file') { i++; continue }
    out.push(a)
  }
  return out
}

const readyChannel = new ReadyChannel()

async function main(argv: string[]): Promise<number> {
  const [command, ...rawRest] = argv
  const rest = normaliseWatch(rawRest)
  let parsed
  try {
    parsed = parseArgs({
      args: rest,
      options: {
        mount: { type: 'string' },
        disksize: { type: 'string' },
        algorithm: { type: 'string' },
        'mem-limit': { type: 'string' },
        workers: { type: 'string' },
        'fifo-size': { type: 'string' },
        'kcompressd-cpus': { type: 'string' },
        'backing-file': { type: 'string' },
        'writeback-format': { type: 'string' },
        shrinker: { type: 'boolean', default: false },
        'pool-limit': { type: 'string' },
        'log-level': { type: 'string', default: 'info' },
        'no-mlock': { type: 'boolean', default: false },
        force: { type: 'boolean', default: false },
        bytes: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
        config: { type: 'string' },
        metrics: { type: 'string' },
        'pid-file': { type: 'string' },
        background: { type: 'boolean', default: false },
        'log-file': { type: 'string' },
        watch: { type: 'string' },
        count: { type: 'string' },
      },
      strict: true,
    })
  } catch (err) {
    fail((err as Error).message)
  }
  const v = parsed.values
  if (command === undefined || command === '--help' || command === 'help') {
    process.stdout.write(USAGE)
    return 0
  }
  if (!v.mount) fail('--mount DIR is required')
  switch (command) {
    case 'start':
      if (v['log-file'] !== undefined && v.background !== true) fail('--log-file goes with --background (in the foreground the log is stderr)')
      if (v.background === true) {
        const pidFile = v['pid-file'] ?? pidFilePath(v.mount)
        return startInBackground({
          argv: [process.argv[1] as string, 'start', ...withoutParentOptions(rawRest)],
          logFile: v['log-file'] ?? pidFilePath(v.mount).replace(/\.pid$/, '.log'),
          pidFile,
        })
      }
      await start({ config: v.config, metrics: v.metrics, pidFile: v['pid-file'], ready: readyChannel, mount: v.mount, disksize: v.disksize, algorithm: v.algorithm,
        memLimit: v['mem-limit'], workers: v.workers, fifoSize: v['fifo-size'], kcompressdCpus: v['kcompressd-cpus'], logLevel: v['log-level'] ?? 'info',
        backingFile: v['backing-file'], writebackFormat: v['writeback-format'], shrinker: v.shrinker, poolLimit: v['pool-limit'],
        mlock: v['no-mlock'] === true ? false : undefined })
      return -1 // keep running until a signal
    case 'stop':
      return stop(v.mount, v.force ?? false)
    case 'status': {
      if (v.watch !== undefined) {
        const seconds = Number(v.watch)
        if (!(seconds > 0)) fail('--watch takes a positive number of seconds')
        const count = v.count === undefined ? undefined : Number(v.count)
        if (count !== undefined && !(Number.isInteger(count) && count > 0)) fail('--count takes a positive integer')
        return watch({ mount: v.mount, intervalSeconds: seconds, count })
      }
      const devs = readStatus(v.mount)
      process.stdout.write(v.json ? JSON.stringify(devs, null, 2) + '\n' : formatTable(devs, v.bytes ?? false))
      return 0
    }
    default:
      fail(`unknown command ${command}`)
  }
}

main(process.argv.slice(2)).then((code) => {
  if (code >= 0) process.exit(code)
}, (err: unknown) => {
  const msg = err instanceof Error ? err.message : String(err)
  process.stderr.write(`zramfuse: ${msg}\n`)
  readyChannel.failed(msg)
  const code = (err as { exitCode?: unknown }).exitCode
  process.exit(typeof code === 'number' ? code : 1)
})
