#!/usr/bin/env node
import { parseArgs } from 'node:util'
import { start } from './start'
import { stop } from './stop'
import { formatTable, readStatus } from './status'

const USAGE = `usage:
  zramfuse start --mount DIR [--disksize SIZE] [--algorithm lz4|zstd] [--mem-limit SIZE] [--workers N] [--fifo-size PAGES]
                 [--backing-file PATH [--writeback-format page|compressed|packed] [--shrinker] [--pool-limit SIZE]]
                 [--no-mlock] [--log-level LEVEL]
  zramfuse stop --mount DIR [--force]
  zramfuse status --mount DIR [--bytes] [--json]
`

function fail(msg: string): never {
  process.stderr.write(`zramfuse: ${msg}\n${USAGE}`)
  process.exit(2)
}

async function main(argv: string[]): Promise<number> {
  const [command, ...rest] = argv
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
        'backing-file': { type: 'string' },
        'writeback-format': { type: 'string' },
        shrinker: { type: 'boolean', default: false },
        'pool-limit': { type: 'string' },
        'log-level': { type: 'string', default: 'info' },
        'no-mlock': { type: 'boolean', default: false },
        force: { type: 'boolean', default: false },
        bytes: { type: 'boolean', default: false },
        json: { type: 'boolean', default: false },
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
      await start({ mount: v.mount, disksize: v.disksize, algorithm: v.algorithm,
        memLimit: v['mem-limit'], workers: v.workers, fifoSize: v['fifo-size'], logLevel: v['log-level'] ?? 'info',
        backingFile: v['backing-file'], writebackFormat: v['writeback-format'], shrinker: v.shrinker, poolLimit: v['pool-limit'],
        mlock: v['no-mlock'] === true ? false : undefined })
      return -1 // keep running until a signal
    case 'stop':
      return stop(v.mount, v.force ?? false)
    case 'status': {
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
  process.stderr.write(`zramfuse: ${err instanceof Error ? err.message : String(err)}\n`)
  process.exit(1)
})
