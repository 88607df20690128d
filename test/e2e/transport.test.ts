// The native transport as the kernel and the host see it: its /dev/fuse descriptor is close-on-exec
// (children of the daemon never hold the mount), requests of 1 MiB arrive whole, and a connection
// that ends under it (aborted in /sys/fs/fuse/connections, or `umount -l`) ends the daemon with a
// log line and exit status 74 instead of a hang.
import t from 'tap'
import { chmodSync, chownSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { abortConnection, CLI, canRunE2E, daemonEnv, startDaemon } from './daemon'
import { mountsUnder, must, run } from './util'

const O_CLOEXEC = 0o2000000
const O_NONBLOCK = 0o4000
const EXIT_CONNECTION_LOST = 74

function fuseFds(pid: number): number[] {
  return readdirSync(`/proc/${pid}/fd`).map(Number).filter((fd) => {
    try {
      return readlinkSync(`/proc/${pid}/fd/${fd}`) === '/dev/fuse'
    } catch {
      return false
    }
  })
}

function fdFlags(pid: number, fd: number): number {
  const m = /^flags:\s+([0-7]+)$/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))
  if (m === null) throw new Error(`no flags in /proc/${pid}/fdinfo/${fd}`)
  return parseInt(m[1]!, 8)
}

function writeIos(sys: string): number {
  return Number(readFileSync(`${sys}/stat`, 'utf8').trim().split(/\s+/)[4])
}

if (canRunE2E(t, ['dd'])) {
  t.test('the /dev/fuse descriptor is close-on-exec and non-blocking; fuse-native\'s is inherited', async (t) => {
    const d = await startDaemon({ disksize: '16M', test: t })
    const fds = fuseFds(d.pid)
    t.equal(fds.length, 1, 'one /dev/fuse descriptor')
    const flags = fdFlags(d.pid, fds[0]!)
    t.ok(flags & O_CLOEXEC, `O_CLOEXEC (flags ${flags.toString(8)})`)
    t.ok(flags & O_NONBLOCK, 'O_NONBLOCK: polled on the JavaScript thread')
    const old = await startDaemon({ disksize: '16M', transport: 'fuse-native', test: t })
    const oldFds = fuseFds(old.pid)
    t.ok(oldFds.length >= 1)
    t.notOk(fdFlags(old.pid, oldFds[0]!) & O_CLOEXEC, 'the fallback transport still leaks it (libfuse 2.9 opens it without O_CLOEXEC)')
  })

  t.test('a 1 MiB write is one request', async (t) => {
    const d = await startDaemon({ disksize: '16M', test: t })
    t.equal(readFileSync(`${d.sys}/queue/max_hw_sectors_kb`, 'utf8').trim(), '1024')
    const before = writeIos(d.sys)
    await must('dd', ['if=/dev/urandom', `of=${d.blockFile}`, 'bs=1M', 'count=8', 'oflag=direct', 'status=none'])
    t.equal(writeIos(d.sys) - before, 8, '8 writes of 1 MiB reached the device as 8 requests')
  })

  t.test('--fuse-poll-us: the loop reads on instead of sleeping between QD1 requests; 0 sleeps; out of range is refused', async (t) => {
    // Sleeping between requests is a voluntary context switch of the JavaScript thread (epoll_wait);
    // reading on (sched_yield between tries) is not. dd's 4k QD1 writes come back within 1 ms.
    const switches = (pid: number): number => Number(/^voluntary_ctxt_switches:\s+(\d+)$/m.exec(readFileSync(`/proc/${pid}/task/${pid}/status`, 'utf8'))?.[1])
    const counts: Record<string, number> = {}
    for (const us of ['0', '1000']) {
      const d = await startDaemon({ disksize: '16M', test: t, extraArgs: ['--fuse-poll-us', us] })
      t.match(d.log(), new RegExp(`"event":"ready".*"fusePollUs":${us}`), `the ready line says ${us}`)
      const before = switches(d.pid)
      await must('dd', ['if=/dev/urandom', `of=${d.blockFile}`, 'bs=4k', 'count=2000', 'oflag=direct', 'status=none'])
      counts[us] = switches(d.pid) - before
      await must('dd', [`if=${d.blockFile}`, 'of=/dev/null', 'bs=4k', 'count=2000', 'iflag=direct', 'status=none'])
    }
    t.comment(`voluntary switches of the JavaScript thread over 2000 writes: ${JSON.stringify(counts)}`)
    t.ok(counts['0']! >= 1000, `--fuse-poll-us 0 sleeps between requests (${counts['0']} switches)`)
    t.ok(counts['1000']! * 4 < counts['0']!, `--fuse-poll-us 1000 mostly does not (${counts['1000']})`)
    const dir = mkdtempSync('/tmp/zramfuse-e2e-poll-')
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const r = await run(process.execPath, [CLI, 'start', '--mount', dir, '--disksize', '16M', '--fuse-poll-us', '1001'], { env: daemonEnv() })
    t.not(r.code, 0, 'start refuses 1001')
    t.match(r.stderr, /--fuse-poll-us must be an integer 0\.\.1000/)
  })

  for (const how of ['abort', 'umount -l'] as const) {
    t.test(`the connection ending under the daemon (${how}) ends it with status ${EXIT_CONNECTION_LOST}`, async (t) => {
      const d = await startDaemon({ disksize: '16M', test: t })
      if (how === 'abort') {
        if (!(await abortConnection(t, d.mount))) return
      } else {
        const r = await run('umount', ['-l', d.mount])
        t.equal(r.code, 0, r.stderr)
      }
      const { code } = await d.exited
      t.equal(code, EXIT_CONNECTION_LOST)
      t.match(d.log(), /"event":"fuse_connection_lost"/)
    })
  }
}

// Not root: fusermount mounts and hands the descriptor back (SCM_RIGHTS). This machine's /dev/fuse
// is 0600, so the test opens it to others for its own run and puts the mode back.
if (canRunE2E(t, ['su', 'dd'])) {
  t.test('a user who is not root mounts through fusermount', async (t) => {
    const probe = await run('su', ['nobody', '-s', '/bin/sh', '-c', `test -r "${CLI}" && command -v fusermount3 || command -v fusermount`])
    if (probe.code !== 0) {
      t.comment(`skipped: nobody cannot run ${CLI} or there is no fusermount here`)
      return
    }
    const mode = statSync('/dev/fuse').mode & 0o777
    chmodSync('/dev/fuse', 0o666)
    t.teardown(() => chmodSync('/dev/fuse', mode))
    const base = mkdtempSync('/tmp/zramfuse-e2e-user-')
    chownSync(base, 65534, 65534)
    const mnt = join(base, 'mnt')
    // Whatever happens, nothing of the test stays mounted (a daemon left running loses its mount).
    t.teardown(async () => {
      if (mountsUnder(base).length > 0) await run('umount', ['-l', mnt])
      rmSync(base, { recursive: true, force: true })
    })
    const script = [
      `mkdir -p "${mnt}"`,
      `node "${CLI}" start --mount "${mnt}" --disksize 16M > "${base}/daemon.log" 2>&1 &`,
      `for i in $(seq 100); do [ -e "${mnt}/dev/zram0" ] && break; sleep 0.1; done`,
      `dd if=/dev/urandom of="${base}/data" bs=1M count=2 status=none`,
      `dd if="${base}/data" of="${mnt}/dev/zram0" bs=1M oflag=direct status=none`,
      `cmp "${base}/data" "${mnt}/dev/zram0" -n 2097152 && echo same`,
      `grep " ${mnt} " /proc/mounts`,
      `node "${CLI}" stop --mount "${mnt}"`,
    ].join('\n')
    const r = await run('su', ['nobody', '-s', '/bin/sh', '-c', script], { timeoutMs: 60_000, env: daemonEnv() })
    t.equal(r.code, 0, r.stderr)
    t.match(r.stdout, /^same$/m, 'what was written reads back')
    t.match(r.stdout, /fuse\.zramfuse .*user_id=65534/, 'mounted by the user, through fusermount')
  })
}
