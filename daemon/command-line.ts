/**
 * The command line: the subcommands, their options and help texts, and the parse that turns argv
 * into one of: help or version (stdout, exit 0), a usage error (stderr, exit 2), or a command to
 * run. As util-linux tools do: `-h`/`--help` and `-V`/`--version` everywhere, an unknown option
 * or one the subcommand does not take is a usage error naming it.
 */
import { existsSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'

/** Every option of every subcommand, in node:util parseArgs form (one table keeps the values typed). */
const OPTIONS = {
  mount: { type: 'string' },
  disksize: { type: 'string' },
  algorithm: { type: 'string' },
  'mem-limit': { type: 'string' },
  workers: { type: 'string' },
  'fifo-size': { type: 'string' },
  'kcompressd-cpus': { type: 'string' },
  'backing-file': { type: 'string' },
  'writeback-format': { type: 'string' },
  shrinker: { type: 'boolean' },
  'pool-limit': { type: 'string' },
  'log-level': { type: 'string' },
  'no-mlock': { type: 'boolean' },
  transport: { type: 'string' },
  'fuse-uring': { type: 'string' },
  'fuse-poll-us': { type: 'string' },
  force: { type: 'boolean' },
  bytes: { type: 'boolean' },
  json: { type: 'boolean' },
  config: { type: 'string' },
  metrics: { type: 'string' },
  'pid-file': { type: 'string' },
  background: { type: 'boolean' },
  'log-file': { type: 'string' },
  watch: { type: 'string' },
  count: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean', short: 'V' },
} as const

type OptionName = keyof typeof OPTIONS
export type OptionValues = ReturnType<typeof parse>['values']

function parse(args: string[]) {
  return parseArgs({ args, options: OPTIONS, strict: true, allowPositionals: false, tokens: true })
}

export type CommandName = 'start' | 'stop' | 'status'

interface CommandSpec {
  synopsis: string[]
  summary: string
  /** option name, its value placeholder ('' for a flag), help */
  options: [OptionName, string, string][]
  footer?: string
}

const HELP_OPTIONS: [OptionName, string, string][] = [
  ['help', '', 'print this help and exit'],
  ['version', '', 'print the version and exit'],
]

const COMMANDS: Record<CommandName, CommandSpec> = {
  start: {
    synopsis: [
      'zramfuse start --mount DIR [--disksize SIZE] [--algorithm lz4|zstd] [--mem-limit SIZE] [--workers N] [--fifo-size PAGES]',
      '               [--kcompressd-cpus LIST] [--backing-file PATH [--writeback-format page|compressed|packed] [--shrinker] [--pool-limit SIZE]]',
      '               [--no-mlock] [--log-level LEVEL] [--transport native|fuse-native] [--fuse-uring auto|on|off] [--fuse-poll-us US]',
      'zramfuse start --mount DIR --config FILE     (a zram-generator.conf: devices, swap, mkfs + mount)',
      '               [--metrics [HOST:]PORT] [--pid-file FILE] [--background [--log-file FILE]]',
    ],
    summary: 'Mount zramfuse at DIR (DIR/dev/zram0, DIR/sys/block/zram0/...) and serve it in the foreground until\n' +
      'SIGINT, SIGTERM or `zramfuse stop`. A dead mount a killed daemon left at DIR is cleaned, with the\n' +
      'loop devices left on its block files; while one of them is still swap or mounted, start refuses\n' +
      '(exit 69) and prints the commands that undo it.',
    options: [
      ['mount', 'DIR', 'where to mount (created when missing)'],
      ['disksize', 'SIZE', "set up zram0 with this size (K, M, G suffixes), as writing zram0's disksize"],
      ['algorithm', 'ALGO', "zram0's comp_algorithm: lz4 or zstd (default lz4)"],
      ['mem-limit', 'SIZE', "zram0's mem_limit"],
      ['workers', 'N', 'kcompressd worker threads per device, 0 to compress inline (default: by algorithm)'],
      ['fifo-size', 'PAGES', 'kcompressd FIFO length (default 256)'],
      ['kcompressd-cpus', 'LIST', 'CPUs for the kcompressd threads, as taskset -c takes them (1-3, 0,2)'],
      ['backing-file', 'PATH', "zram0's backing_dev: the lower file for writeback (made 0600 when missing)"],
      ['writeback-format', 'FORMAT', 'page (default), compressed or packed; needs --backing-file'],
      ['shrinker', '', 'automatic writeback (the zswap-like shrinker); needs --backing-file'],
      ['pool-limit', 'SIZE', "the shrinker's pool limit (default: mem_limit)"],
      ['config', 'FILE', 'set up the devices of a zram-generator.conf, with their swap or file systems'],
      ['metrics', '[HOST:]PORT', 'serve Prometheus metrics (default host 127.0.0.1)'],
      ['pid-file', 'FILE', "also write the daemon's pid here"],
      ['background', '', "return once the device is ready (exit 0), or with the daemon's error"],
      ['log-file', 'FILE', 'with --background: the log (default: next to the pid file)'],
      ['no-mlock', '', 'do not lock memory or set IO_FLUSHER (then unsafe as swap under memory pressure)'],
      ['transport', 'NAME', 'native: our own FUSE session on /dev/fuse (default); fuse-native: libfuse 2.9 through fuse-native'],
      ['fuse-uring', 'MODE', 'native transport over io_uring: off (default), auto (where enable_uring is Y), on (required)'],
      ['fuse-poll-us', 'US', 'native transport: keep reading /dev/fuse this long after it runs dry before sleeping (default 50, 0 to 1000)'],
      ['log-level', 'LEVEL', 'trace, debug, info (default), warn, error, fatal'],
    ],
    footer: 'Exit status: 0 stopped cleanly, 1 failure, 2 usage, 69 a dead daemon\'s swap or mount is still\n' +
      'active on DIR, 78 a configuration error.',
  },
  stop: {
    synopsis: ['zramfuse stop [--mount DIR] [--force]'],
    summary: 'Stop the daemon serving DIR and wait for it to exit. Without --mount: the one daemon running on\n' +
      'this host (with several, refuses and lists them). Refuses while a block file is on a loop device\n' +
      '(swap, a mount) that the daemon\'s --config did not set up itself.',
    options: [
      ['mount', 'DIR', "the daemon's mount point"],
      ['force', '', 'first detach in the only safe order: swapoff, umount, losetup -d'],
    ],
    footer: 'Exit status: 0 stopped, 1 refused or failed, 2 usage (or several daemons and no --mount).',
  },
  status: {
    synopsis: [
      'zramfuse status [--mount DIR] [--bytes] [--json]',
      'zramfuse status --mount DIR --watch [SECONDS] [--count N]',
    ],
    summary: "zramctl's columns for the devices of DIR, or without --mount for every zramfuse daemon on this\n" +
      'host. A mount whose daemon died is listed as dead, with the loop devices, swap and mounts it left\n' +
      'and the commands that remove them.',
    options: [
      ['mount', 'DIR', 'only the daemon serving DIR'],
      ['bytes', '', 'sizes in bytes'],
      ['json', '', 'JSON with every mm_stat, io_stat and bd_stat field by name'],
      ['watch', '[SECONDS]', 'refresh a table of rates and ratios every SECONDS (default 2); needs --mount'],
      ['count', 'N', 'with --watch: stop after N tables'],
    ],
    footer: 'Exit status: 0, or 1 when DIR is not served (a dead daemon\'s leftovers are still shown).',
  },
}

function optionLines(options: [OptionName, string, string][]): string {
  const left = options.map(([name, value]) => {
    const short = 'short' in OPTIONS[name] ? `-${(OPTIONS[name] as { short: string }).short}, ` : '    '
    return `  ${short}--${name}${value === '' ? '' : ` ${value}`}`
  })
  const width = Math.max(...left.map((l) => l.length)) + 2
  return options.map(([, , help], i) => `${(left[i] as string).padEnd(width)}${help}`).join('\n')
}

/** `zramfuse <command> --help`. */
export function commandHelp(name: CommandName): string {
  const c = COMMANDS[name]
  return `usage: ${c.synopsis.join('\n       ')}\n\n${c.summary}\n\nOptions:\n${optionLines([...c.options, ...HELP_OPTIONS])}\n` +
    (c.footer === undefined ? '' : `\n${c.footer}\n`)
}

/** What a usage error prints after the reason: the synopsis and where the help is. */
export function commandUsage(name: CommandName): string {
  return `usage: ${COMMANDS[name].synopsis.join('\n       ')}\nTry 'zramfuse ${name} --help' for more information.\n`
}

/** `zramfuse --help`: every synopsis. */
export function toolHelp(): string {
  const lines = Object.values(COMMANDS).flatMap((c) => c.synopsis)
  return `usage:\n${lines.map((l) => `  ${l}`).join('\n')}\n  zramfuse COMMAND --help\n  zramfuse --version\n\n` +
    'zramfuse: the kernel\'s zram in user space (a FUSE mount with dev/zramN and sys/block/zramN).\n'
}

/** The version of package.json, next to daemon/ whether run from source or from dist/. */
export function packageVersion(): string {
  for (const p of [join(__dirname, '..', 'package.json'), join(__dirname, '..', '..', 'package.json')]) {
    if (!existsSync(p)) continue
    const pkg = JSON.parse(readFileSync(p, 'utf8')) as { name?: unknown; version?: unknown }
    if (pkg.name === 'zramfuse' && typeof pkg.version === 'string') return pkg.version
  }
  return 'unknown'
}

export type CommandLine =
  | { kind: 'help'; text: string }
  | { kind: 'version'; text: string }
  | { kind: 'usage-error'; text: string }
  | { kind: 'run'; command: CommandName; values: OptionValues }

function isCommand(s: string): s is CommandName {
  return Object.prototype.hasOwnProperty.call(COMMANDS, s)
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

function usageError(msg: string, help: string): CommandLine {
  return { kind: 'usage-error', text: `zramfuse: ${msg}\n${help}` }
}

/** argv without node and the script. */
export function parseCommandLine(argv: string[]): CommandLine {
  const [first, ...rest] = argv
  const version = { kind: 'version', text: `zramfuse ${packageVersion()}\n` } as const
  if (first === undefined || first === '-h' || first === '--help') return { kind: 'help', text: toolHelp() }
  if (first === '-V' || first === '--version') return version
  if (first === 'help') {
    const topic = rest[0]
    if (topic === undefined) return { kind: 'help', text: toolHelp() }
    return isCommand(topic) ? { kind: 'help', text: commandHelp(topic) } : usageError(`unknown command '${topic}'`, toolHelp())
  }
  if (!isCommand(first)) {
    return usageError(first.startsWith('-') ? `unknown option '${first}' (the command comes first)` : `unknown command '${first}'`, toolHelp())
  }
  const help = commandHelp(first)
  const usage = commandUsage(first)
  let parsed
  try {
    parsed = parse(normaliseWatch(rest))
  } catch (err) {
    return usageError((err as Error).message, usage)
  }
  const v = parsed.values
  if (v.help === true) return { kind: 'help', text: help }
  if (v.version === true) return version
  const allowed = new Set<string>(COMMANDS[first].options.map(([name]) => name))
  for (const tok of parsed.tokens) {
    if (tok.kind === 'option' && !allowed.has(tok.name)) return usageError(`${first} takes no option '${tok.rawName}'`, usage)
  }
  return { kind: 'run', command: first, values: v }
}
