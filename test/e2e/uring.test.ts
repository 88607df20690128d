// FUSE over io_uring (--fuse-uring), end to end, where this kernel has it and root can switch it
// on: /sys/module/fuse/parameters/enable_uring is set to Y only while each daemon mounts (a
// connection keeps the ring once INIT granted it) and put back at once, so the rest of the machine
// never runs with it longer than a mount takes. Skips with the reason where it cannot be set.
import t from 'tap'
import { mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs'
import { abortConnection, cli, canRunE2E, startDaemon, URING_PARAM as PARAM, uringSkipReason } from './daemon'
import { dirname, join } from 'node:path'
import { must, run, runFio } from './util'

const EXIT_CONNECTION_LOST = 74

/** Completions the daemon's ring has seen (its io_uring fd's CqHead in /proc): each is a request. */
function ringCompletions(pid: number): number | null {
  for (const fd of readdirSync(`/proc/${pid}/fd`)) {
    let target = ''
    try {
      target = readlinkSync(`/proc/${pid}/fd/${fd}`)
    } catch {
      continue
    }
    if (!target.includes('io_uring')) continue
    const m = /^CqHead:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))
    if (m !== null) return Number(m[1])
  }
  return null
}

function writeIos(sys: string): number {
  return Number(readFileSync(`${sys}/stat`, 'utf8').trim().split(/\s+/)[4])
}

const why = uringSkipReason()
if (why !== null) {
  t.skip(`FUSE over io_uring: ${why}`, () => {})
} else if (canRunE2E(t, ['fio', 'dd', 'cmp'])) {
  t.test('requests come through the ring: fio write+verify, 1 MiB requests whole', async (t) => {
    const d = await startDaemon({ disksize: '64M', test: t, uring: true })
    t.match(d.log(), /"event":"fuse_init".*"uring":true/, 'INIT granted FUSE_OVER_IO_URING')
    t.match(d.log(), /"event":"fuse_uring","queues":\d+,"entries":\d+/)
    const before = ringCompletions(d.pid)
    t.not(before, null, 'the daemon holds an io_uring')
    const r = await runFio(['--name=v', `--filename=${d.blockFile}`, '--direct=1', '--ioengine=psync', '--rw=randwrite',
      '--bssplit=4k/40:64k/30:1M/30', '--verify=crc32c', '--do_verify=1', '--verify_fatal=1', '--verify_state_save=0',
      '--randseed=27', '--numjobs=2', '--offset_increment=24M', '--size=24M', '--output-format=terse'], { timeoutMs: 120_000 })
    t.equal(r.code, 0, 'fio verify passes over the ring', { stderr: r.stderr.slice(-2000) })
    const after = ringCompletions(d.pid)!
    t.ok(after - before! > 1000, `the ring carried the requests (${after - before!} completions)`)
    const ios = writeIos(d.sys)
    const data = join(mkdtempSync('/tmp/zramfuse-e2e-uring-data-'), 'data')
    t.teardown(() => rmSync(dirname(data), { recursive: true, force: true }))
    await must('dd', ['if=/dev/urandom', `of=${data}`, 'bs=1M', 'count=8', 'status=none'])
    await must('dd', [`if=${data}`, `of=${d.blockFile}`, 'bs=1M', 'oflag=direct', 'status=none'])
    t.equal(writeIos(d.sys) - ios, 8, '8 writes of 1 MiB are 8 requests')
    const cmp = await run('cmp', ['-n', String(8 << 20), data, d.blockFile])
    t.equal(cmp.code, 0, 'read back over the ring, byte for byte')
    const st = await cli(['status', '--mount', d.mount])
    t.equal(st.code, 0, st.stderr)
  })

  t.test(`the connection aborted under a ring ends the daemon with status ${EXIT_CONNECTION_LOST}`, async (t) => {
    const d = await startDaemon({ disksize: '16M', test: t, uring: true })
    await must('dd', ['if=/dev/zero', `of=${d.blockFile}`, 'bs=64k', 'count=4', 'oflag=direct', 'status=none'])
    if (!(await abortConnection(t, d.mount))) return
    const { code } = await d.exited
    t.equal(code, EXIT_CONNECTION_LOST)
    t.match(d.log(), /"event":"fuse_connection_lost"/)
  })

  t.test('--fuse-uring on refuses to start while enable_uring is N; auto then serves on /dev/fuse', async (t) => {
    const was = readFileSync(PARAM, 'utf8').trim()
    writeFileSync(PARAM, 'N')
    t.teardown(() => writeFileSync(PARAM, was))
    const dir = mkdtempSync('/tmp/zramfuse-e2e-uring-')
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const r = await cli(['start', '--mount', dir, '--disksize', '16M', '--fuse-uring', 'on'], 60_000)
    t.not(r.code, 0, 'start fails')
    t.match(r.stderr, /FUSE over io_uring is off in this kernel: as root, echo Y > \/sys\/module\/fuse\/parameters\/enable_uring/)
    const d = await startDaemon({ disksize: '16M', test: t, transport: 'native', extraArgs: ['--fuse-uring', 'auto'] })
    t.match(d.log(), /"event":"fuse_init".*"uring":false/, 'auto: not asked for, as the kernel does not offer it')
    t.equal(ringCompletions(d.pid), null, 'no ring')
    await must('dd', ['if=/dev/zero', `of=${d.blockFile}`, 'bs=4k', 'count=16', 'oflag=direct', 'status=none'])
  })
}
