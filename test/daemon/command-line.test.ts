// The command line (daemon/command-line.ts): help and version on stdout with exit 0 for the tool
// and every subcommand, usage errors naming the option, the options each subcommand takes.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { commandHelp, parseCommandLine, toolHelp } from '../../daemon/command-line'
import { chooseDaemonToStop } from '../../daemon/stop'

const VERSION = (JSON.parse(readFileSync(join(__dirname, '..', '..', 'package.json'), 'utf8')) as { version: string }).version

t.test('the tool: -h, --help, help, nothing at all; -V, --version', async (t) => {
  for (const argv of [[], ['-h'], ['--help'], ['help']]) {
    const r = parseCommandLine(argv)
    t.equal(r.kind, 'help', `${JSON.stringify(argv)}: help`)
    t.equal(r.kind === 'help' ? r.text : '', toolHelp())
  }
  t.match(toolHelp(), /zramfuse start --mount DIR/)
  t.match(toolHelp(), /zramfuse stop \[--mount DIR\] \[--force\]/)
  t.match(toolHelp(), /zramfuse status \[--mount DIR\]/)
  for (const argv of [['-V'], ['--version']]) t.same(parseCommandLine(argv), { kind: 'version', text: `zramfuse ${VERSION}\n` })
})

t.test('every subcommand: -h, --help, help COMMAND, -V, --version, also after other options', async (t) => {
  for (const cmd of ['start', 'stop', 'status'] as const) {
    const help = commandHelp(cmd)
    t.match(help, new RegExp(`^usage: zramfuse ${cmd}`), `${cmd}: a usage line first`)
    t.match(help, /-h, --help/)
    t.match(help, /-V, --version/)
    for (const argv of [[cmd, '-h'], [cmd, '--help'], ['help', cmd], [cmd, '--mount', '/x', '--help']]) {
      t.same(parseCommandLine(argv), { kind: 'help', text: help }, JSON.stringify(argv))
    }
    for (const argv of [[cmd, '-V'], [cmd, '--version']]) t.same(parseCommandLine(argv), { kind: 'version', text: `zramfuse ${VERSION}\n` })
  }
  t.match(commandHelp('start'), /--backing-file PATH\s+zram0's backing_dev/, 'each option explained')
  t.match(commandHelp('start'), /69 a dead daemon's swap or mount is still/, 'exit codes')
  t.match(commandHelp('status'), /--watch \[SECONDS\]/)
})

t.test('usage errors: exit 2 material, naming what is wrong', async (t) => {
  const err = (argv: string[]): string => {
    const r = parseCommandLine(argv)
    t.equal(r.kind, 'usage-error', JSON.stringify(argv))
    return r.kind === 'usage-error' ? r.text : ''
  }
  t.match(err(['start', '--bogus']), /^zramfuse: Unknown option '--bogus'.*\nusage: zramfuse start .*\nTry 'zramfuse start --help' for more information\.\n$/s)
  t.match(err(['stop', '--disksize', '1G']), /^zramfuse: stop takes no option '--disksize'\nusage: zramfuse stop \[--mount DIR\] \[--force\]\n/)
  t.match(err(['status', '--force']), /status takes no option '--force'/)
  t.match(err(['status', '--mount']), /--mount <value>/, 'a missing value')
  t.match(err(['start', 'extra']), /Unexpected argument 'extra'/)
  t.match(err(['nope']), /^zramfuse: unknown command 'nope'\nusage:\n/)
  t.match(err(['help', 'nope']), /unknown command 'nope'/)
  t.match(err(['--mount', '/x']), /unknown option '--mount' \(the command comes first\)/)
})

t.test('what a command gets', async (t) => {
  const r = parseCommandLine(['status', '--mount', '/m', '--watch', '--count', '3'])
  t.same(r.kind === 'run' ? [r.command, r.values.mount, r.values.watch, r.values.count] : null, ['status', '/m', '2', '3'], '--watch alone: 2 s')
  const w = parseCommandLine(['status', '--mount', '/m', '--watch', '5'])
  t.equal(w.kind === 'run' ? w.values.watch : null, '5')
  const s = parseCommandLine(['stop'])
  t.same(s.kind === 'run' ? [s.command, s.values.mount, s.values.force] : null, ['stop', undefined, undefined], 'stop without --mount is a command, not an error')
  const st = parseCommandLine(['status'])
  t.same(st.kind === 'run' ? [st.command, st.values.mount] : null, ['status', undefined])
  const start = parseCommandLine(['start', '--mount', 'm', '--shrinker', '--backing-file', 'f', '--no-mlock'])
  t.same(start.kind === 'run' ? [start.values.shrinker, start.values['backing-file'], start.values['no-mlock']] : null, [true, 'f', true])
})

t.test('stop without --mount: only with exactly one daemon running', async (t) => {
  t.same(chooseDaemonToStop([{ mount: '/a', pid: 7, state: 'live' }]), { mount: '/a' })
  t.same(chooseDaemonToStop([]), { message: 'zramfuse: no zramfuse daemon is running\n', code: 1 })
  t.same(chooseDaemonToStop([{ mount: '/a', pid: 7, state: 'live' }, { mount: '/b c', pid: null, state: 'live' }]), {
    message: 'zramfuse: 2 zramfuse daemons are running; name one with --mount DIR:\n  /a (pid 7)\n  /b c\n', code: 2,
  })
})
