#!/usr/bin/env node
import { commandUsage, parseCommandLine, type CommandName } from './command-line'
import { start } from './start'
import { stop, stopTheOnlyDaemon } from './stop'
import { statusOfHost, statusOfMount } from './status'
import { ReadyChannel, startInBackground } from './background'
import { pidFilePath } from './runtime-files'
import { watch } from './watch'

function fail(command: CommandName, msg: string): never {
  process.stderr.write(`zramfuse: ${msg}\n${commandUsage(command)}`)
  process.exit(2)
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
  const line = parseCommandLine(argv)
  if (line.kind === 'help' || line.kind === 'version') {
    process.stdout.write(line.text)
    return 0
  }
  if (line.kind === 'usage-error') {
    process.stderr.write(line.text)
    return 2
  }
  const v = line.values
  switch (line.command) {
    case 'start': {
      if (!v.mount) fail('start', '--mount DIR is required')
      if (v['log-file'] !== undefined && v.background !== true) fail('start', '--log-file goes with --background (in the foreground the log is stderr)')
      if (v.background === true) {
        const pidFile = v['pid-file'] ?? pidFilePath(v.mount)
        return startInBackground({
          argv: [process.argv[1] as string, 'start', ...withoutParentOptions(argv.slice(1))],
          logFile: v['log-file'] ?? pidFilePath(v.mount).replace(/\.pid$/, '.log'),
          pidFile,
        })
      }
      await start({ config: v.config, metrics: v.metrics, pidFile: v['pid-file'], ready: readyChannel, mount: v.mount, disksize: v.disksize, algorithm: v.algorithm,
        memLimit: v['mem-limit'], workers: v.workers, fifoSize: v['fifo-size'], kcompressdCpus: v['kcompressd-cpus'], logLevel: v['log-level'] ?? 'info',
        backingFile: v['backing-file'], writebackFormat: v['writeback-format'], shrinker: v.shrinker === true, poolLimit: v['pool-limit'],
        mlock: v['no-mlock'] === true ? false : undefined, transport: v.transport, fuseUring: v['fuse-uring'], fusePollUs: v['fuse-poll-us'] })
      return -1 // keep running until a signal
    }
    case 'stop':
      return v.mount === undefined ? stopTheOnlyDaemon(v.force === true) : stop(v.mount, v.force === true)
    case 'status': {
      if (v.watch !== undefined) {
        if (v.mount === undefined) fail('status', '--watch needs --mount DIR')
        const seconds = Number(v.watch)
        if (!(seconds > 0)) fail('status', '--watch takes a positive number of seconds')
        const count = v.count === undefined ? undefined : Number(v.count)
        if (count !== undefined && !(Number.isInteger(count) && count > 0)) fail('status', '--count takes a positive integer')
        return watch({ mount: v.mount, intervalSeconds: seconds, count })
      }
      if (v.count !== undefined) fail('status', '--count goes with --watch')
      const out = v.mount === undefined ? statusOfHost(v.bytes === true, v.json === true) : statusOfMount(v.mount, v.bytes === true, v.json === true)
      process.stdout.write(out.stdout)
      process.stderr.write(out.stderr)
      return out.code
    }
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
