// Running as a service: the unit file passes `systemd-analyze verify`; READY=1 reaches
// $NOTIFY_SOCKET (a path socket, and an abstract one) only once the attribute files exist, and
// STOPPING=1 on shutdown; `start --background` returns when the mount is ready (attributes readable
// the moment it exits, no polling) or with the daemon's error, and `stop` works on it.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { detachSafely } from '../../daemon/attachments'
import { processAlive } from '../../daemon/procfs'
import { CLI, canRunE2E, cli, startDaemon } from './daemon'
import { isMountPoint, REPO, run, sleep, which } from './util'

const runtime = mkdtempSync('/tmp/zramfuse-service-run-')
process.env.ZRAMFUSE_RUNTIME_DIR = runtime
t.teardown(() => rmSync(runtime, { recursive: true, force: true }))

t.test('contrib/systemd/zramfuse@.service passes systemd-analyze verify', { skip: which('systemd-analyze') === null ? 'no systemd-analyze' : false }, async (t) => {
  const dir = mkdtempSync('/tmp/zramfuse-unit-')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const unit = readFileSync(join(REPO, 'contrib/systemd/zramfuse@.service'), 'utf8')
  t.match(unit, /^Type=notify$/m)
  t.match(unit, /^SendSIGKILL=no$/m, 'never SIGKILLed with its swap on')
  t.match(unit, /^RestartPreventExitStatus=69 78$/m)
  t.match(unit, /^MemorySwapMax=0$/m, "cgroup v2: the daemon's no-swap guard is the unit's own swap limit")
  // verify checks that ExecStart exists: point it at this build
  writeFileSync(join(dir, 'zramfuse@.service'), unit.split('/usr/local/bin/zramfuse').join(CLI))
  const r = await run('systemd-analyze', ['verify', join(dir, 'zramfuse@demo.service')])
  t.equal(r.code, 0, 'exit 0')
  t.equal(`${r.stdout}${r.stderr}`.trim(), '', 'no warnings')
})

/**
 * A python3 receiver bound to `address`; prints one JSON line per datagram. When READY=1 arrives
 * it checks, before anything else, that zram0's disksize attribute exists under the mount named
 * in STATUS= ("serving <mount>: ...") and reads it.
 */
function notifyReceiver(address: string): { lines: () => Record<string, unknown>[]; bound: Promise<void>; done: Promise<void>; kill: () => void } {
  const script = `
import json, os, re, socket, sys
addr = sys.argv[1]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind('\\0' + addr[1:] if addr.startswith('@') else addr)
print(json.dumps({'bound': True}), flush=True)
s.settimeout(90)
while True:
    msg = s.recv(4096).decode()
    info = {'msg': msg}
    m = re.search(r'^STATUS=serving (\\S+):', msg, re.M)
    if 'READY=1' in msg and m:
        attr = os.path.join(m.group(1), 'sys/block/zram0/disksize')
        info['attr_exists'] = os.path.exists(attr)
        if info['attr_exists']:
            with open(attr) as f:
                info['disksize'] = f.read()
    print(json.dumps(info), flush=True)
    if 'STOPPING=1' in msg:
        break
`
  const child = spawn('python3', ['-c', script, address], { stdio: ['ignore', 'pipe', 'inherit'] })
  let out = ''
  let boundResolve: () => void = () => {}
  const bound = new Promise<void>((r) => { boundResolve = r })
  child.stdout.setEncoding('utf8')
  child.stdout.on('data', (c: string) => {
    out += c
    if (out.includes('"bound"')) boundResolve()
  })
  const done = new Promise<void>((r) => child.on('exit', () => r()))
  return {
    lines: () => out.split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>).filter((o) => !('bound' in o)),
    bound, done, kill: () => child.kill(),
  }
}

async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!cond()) {
    if (Date.now() > deadline) return false
    await sleep(50)
  }
  return true
}

if (canRunE2E(t) && which('python3') !== null) {
  for (const kind of ['path', 'abstract'] as const) {
    const skip = kind === 'abstract' && which('systemd-notify') === null ? 'no systemd-notify' : false
    t.test(`sd_notify over a${kind === 'abstract' ? 'n' : ''} ${kind} socket: READY=1 after the attributes exist, STOPPING=1 at stop`, { skip }, async (t) => {
      const dir = mkdtempSync('/tmp/zramfuse-notify-')
      t.teardown(() => rmSync(dir, { recursive: true, force: true }))
      const address = kind === 'path' ? join(dir, 'notify.sock') : `@zramfuse-test-${process.pid}`
      const rx = notifyReceiver(address)
      t.teardown(() => rx.kill())
      await rx.bound
      const prev = process.env.NOTIFY_SOCKET
      process.env.NOTIFY_SOCKET = address
      let d
      try {
        d = await startDaemon({ disksize: '64M', test: t })
      } finally {
        if (prev === undefined) delete process.env.NOTIFY_SOCKET
        else process.env.NOTIFY_SOCKET = prev
      }
      t.ok(await waitFor(() => rx.lines().some((l) => String(l.msg).includes('READY=1')), 20_000), 'READY=1 arrived')
      const ready = rx.lines().find((l) => String(l.msg).includes('READY=1')) ?? {}
      t.match(ready.msg, new RegExp(`^STATUS=serving ${d.mount}: zram0$`, 'm'))
      t.match(ready.msg, new RegExp(`^MAINPID=${d.pid}$`, 'm'))
      t.equal(ready.attr_exists, true, 'the attribute files existed when READY=1 arrived')
      t.equal(ready.disksize, '67108864\n', 'and zram0 was already set up')
      t.match(rx.lines()[0]?.msg, /^READY=1$/m, 'READY=1 is the first message')
      await d.stop()
      t.ok(await waitFor(() => rx.lines().some((l) => String(l.msg).includes('STOPPING=1')), 20_000), 'STOPPING=1 arrived at shutdown')
      await rx.done
    })
  }

  t.test('start --background: returns once ready, stop works on it; errors come back', async (t) => {
    const base = mkdtempSync('/tmp/zramfuse-bg-')
    const mount = join(base, 'mnt')
    const pidFile = join(base, 'zramfuse.pid')
    // whatever happens: detach, SIGTERM the daemon, unmount, remove
    t.teardown(async () => {
      const pid = existsSync(pidFile) ? Number(readFileSync(pidFile, 'utf8')) : null
      if (pid !== null) {
        detachSafely(join(mount, 'dev', 'zram0'), () => {})
        try {
          process.kill(pid, 'SIGTERM')
        } catch {
          // gone
        }
        await waitFor(() => !processAlive(pid), 20_000)
      }
      if (isMountPoint(mount)) await run('fusermount', ['-uz', mount])
      rmSync(base, { recursive: true, force: true })
    })
    const r = await cli(['start', '--background', '--mount', mount, '--disksize', '64M', '--pid-file', pidFile, '--log-file', join(base, 'daemon.log')])
    t.equal(r.code, 0, 'exit 0', { stderr: r.stderr })
    // no sleep, no polling: it is ready now
    t.equal(readFileSync(join(mount, 'sys/block/zram0/disksize'), 'utf8'), '67108864\n', 'attributes readable as soon as it returns')
    const pid = Number(readFileSync(pidFile, 'utf8'))
    t.match(r.stdout, new RegExp(`daemon ${pid} is ready \\(pid file ${pidFile}, log ${base}/daemon.log\\)`))
    t.ok(processAlive(pid), 'the daemon runs on')
    t.match(readFileSync(join(base, 'daemon.log'), 'utf8'), /"event":"ready"/, 'its log went to the log file')
    const s = await cli(['stop', '--mount', mount])
    t.equal(s.code, 0, 'stop exits 0', { stderr: s.stderr })
    // A zombie counts as gone (daemon/procfs.ts): the detached daemon's reaper is not ours.
    t.notOk(processAlive(pid), 'the daemon is gone')
    t.notOk(existsSync(pidFile), 'its pid file is removed')
    t.notOk(isMountPoint(mount), 'unmounted')

    const bad = await cli(['start', '--background', '--mount', mount, '--algorithm', 'nope', '--log-file', join(base, 'bad.log')])
    t.equal(bad.code, 1, 'a failing start: non-zero')
    t.match(bad.stderr, /zramfuse: unknown --algorithm nope/, 'with the reason')
    t.notOk(isMountPoint(mount))

    const cfg = await cli(['start', '--background', '--mount', mount, '--config', join(REPO, 'test/e2e/fixtures/zram-generator/broken-size.conf'), '--log-file', join(base, 'cfg.log')])
    t.equal(cfg.code, 78, 'a config error: EX_CONFIG')
    t.match(cfg.stderr, /broken-size\.conf:3: zram-size: /)
    t.notOk(isMountPoint(mount))
  })
}
