// The zramfuse command as a user types it: -h/--help and --version for the tool and every
// subcommand (stdout, exit 0), usage errors (stderr, exit 2); `status` without --mount lists every
// daemon of the host like zramctl without a device; `stop` without --mount stops the only one and
// refuses, listing them, when there are several.
// Other daemons may run on this machine: the listings are checked for ours only, and the pid files
// are in a runtime directory of this test, so `stop` can never signal a daemon it did not start.
import t from 'tap'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { join } from 'node:path'
import { runningDaemons, listDaemons } from '../../daemon/daemons'
import { processAlive } from '../../daemon/procfs'
import { canRunE2E, cli, startDaemon } from './daemon'
import { isMountPoint, REPO } from './util'

const runtime = mkdtempSync('/tmp/zramfuse-cli-run-')
process.env.ZRAMFUSE_RUNTIME_DIR = runtime
t.teardown(() => rmSync(runtime, { recursive: true, force: true }))

const VERSION = (JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { version: string }).version

if (canRunE2E(t)) {
  t.test('help and version: stdout, exit 0; usage errors: stderr, exit 2', async (t) => {
    for (const args of [['-h'], ['--help'], ['help'], []]) {
      const r = await cli(args)
      t.equal(r.code, 0, `zramfuse ${args.join(' ')}: exit 0`)
      t.match(r.stdout, /^usage:\n {2}zramfuse start --mount DIR/)
      t.equal(r.stderr, '')
    }
    for (const args of [['--version'], ['-V'], ['start', '--version'], ['status', '-V']]) {
      const r = await cli(args)
      t.same([r.code, r.stdout, r.stderr], [0, `zramfuse ${VERSION}\n`, ''], `zramfuse ${args.join(' ')}`)
    }
    for (const cmd of ['start', 'stop', 'status']) {
      for (const flag of ['-h', '--help']) {
        const r = await cli([cmd, flag])
        t.equal(r.code, 0, `${cmd} ${flag}: exit 0`)
        t.match(r.stdout, new RegExp(`^usage: zramfuse ${cmd} `))
        t.match(r.stdout, /\n {2}-h, --help +print this help and exit\n/)
        t.equal(r.stderr, '')
      }
    }
    const bad = await cli(['start', '--bogus'])
    t.equal(bad.code, 2, 'an unknown option: exit 2')
    t.equal(bad.stdout, '')
    t.match(bad.stderr, /^zramfuse: Unknown option '--bogus'.*\nusage: zramfuse start --mount DIR/s)
    const wrong = await cli(['stop', '--bytes'])
    t.equal(wrong.code, 2, "an option of another command: exit 2")
    t.match(wrong.stderr, /^zramfuse: stop takes no option '--bytes'\n/)
    const noMount = await cli(['start', '--disksize', '1G'])
    t.equal(noMount.code, 2)
    t.match(noMount.stderr, /^zramfuse: --mount DIR is required\nusage: zramfuse start/)
  })

  t.test('status and stop without --mount: every daemon of the host', async (t) => {
    const a = await startDaemon({ disksize: '16M', test: t })
    const b = await startDaemon({ disksize: '32M', test: t })

    const table = await cli(['status', '--bytes'])
    t.equal(table.code, 0, 'status: exit 0', { stderr: table.stderr })
    t.match(table.stdout, /^NAME +ALGORITHM +DISKSIZE +DATA +COMPR +TOTAL +STREAMS/, "zramctl's header")
    t.match(table.stdout, new RegExp(`\\n${a.blockFile} +lz4 +16777216 `), 'a row for the first daemon')
    t.match(table.stdout, new RegExp(`\\n${b.blockFile} +lz4 +33554432 `), 'and one for the second')
    const json = JSON.parse((await cli(['status', '--json'])).stdout) as { daemons: { mount: string; pid: number; state: string; devices: { blockFile: string; disksize: number }[] }[] }
    for (const d of [a, b]) {
      t.match(json.daemons.find((x) => x.mount === d.mount), { pid: d.pid, state: 'live', devices: [{ blockFile: d.blockFile }] }, `${d.mount} in JSON`)
    }
    const one = await cli(['status', '--mount', a.mount, '--json'])
    t.match(JSON.parse(one.stdout), [{ blockFile: a.blockFile, disksize: 16777216 }], 'status --mount --json: the array of its devices, as before')

    const refused = await cli(['stop'])
    t.equal(refused.code, 2, 'stop without --mount, several daemons: exit 2')
    t.match(refused.stderr, /^zramfuse: \d+ zramfuse daemons are running; name one with --mount DIR:\n/)
    t.match(refused.stderr, `\n  ${a.mount} (pid ${a.pid})\n`)
    t.match(refused.stderr, `\n  ${b.mount} (pid ${b.pid})\n`)
    t.ok(processAlive(a.pid) && processAlive(b.pid), 'both still run')

    const stopB = await cli(['stop', '--mount', b.mount])
    t.equal(stopB.code, 0)
    t.same(await b.exited, { code: 0, signal: null })

    const others = runningDaemons(listDaemons()).filter((d) => d.mount !== a.mount)
    if (others.length === 0) {
      const stopA = await cli(['stop'])
      t.equal(stopA.code, 0, 'stop without --mount, one daemon: stops it', { stderr: stopA.stderr })
      t.same(await a.exited, { code: 0, signal: null })
      t.notOk(isMountPoint(a.mount), 'unmounted')
      const none = await cli(['stop'])
      t.same([none.code, none.stderr], [1, 'zramfuse: no zramfuse daemon is running\n'], 'none left: exit 1')
    } else {
      // Another daemon of this machine (not ours) runs: stop must still refuse and signal nobody.
      t.comment(`other zramfuse daemons on this host: ${others.map((d) => d.mount).join(', ')}: the one-daemon case is not checked`)
      const stillTwo = await cli(['stop'])
      t.equal(stillTwo.code, 2, 'stop without --mount refuses')
      t.ok(processAlive(a.pid), 'and ours runs on')
    }
    await a.stop()
    await b.stop()
  })
}
