// Running as a swap device safely:
// - the daemon sits in a memory cgroup where it cannot be swapped out (v1 memory.swappiness=0 in
//   a child of the cgroup it was started in; v2 memory.swap.max=0 there or above, never outside);
// - `zramfuse stop` refuses while the block file is on a loop device (or swap), succeeds once it
//   is detached, and `--force` detaches in the safe order (swapoff, losetup -d) and stops.
import tap from 'tap'
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { findAttachments } from '../../daemon/attachments'
import { processAlive } from '../../daemon/procfs'
import { canRunE2E, cli, startDaemon } from './daemon'
import { cgroupLayout, isMountPoint, memoryCgroupDirOf, must, readText, REPO, run, swapUsedKiB } from './util'

const SWAP_SCRIPT = join(REPO, 'scripts', 'zram-swap.sh')

if (canRunE2E(tap, ['mkswap', 'swapon', 'swapoff'])) {
  tap.test('the daemon cannot be swapped out', async (t) => {
    const d = await startDaemon({ disksize: '64M', test: t })
    const layout = cgroupLayout()
    const dir = memoryCgroupDirOf(d.pid)
    t.comment(`daemon pid ${d.pid}: memory cgroup ${String(dir)}`)
    const ownDir = memoryCgroupDirOf('self')
    if (layout.kind === 'none') {
      t.match(d.log(), /"mode":"none"/, 'without a memory cgroup the daemon says so')
    } else {
      t.not(dir, null, 'the daemon has a memory cgroup')
      const below = dir !== null && ownDir !== null && dir.startsWith(`${ownDir}/`)
      if (layout.kind === 'v1') t.ok(below, 'cgroup v1: in a child of the cgroup it was started in')
      else t.ok(below || dir === ownDir, 'cgroup v2: in the cgroup it was started in or below it, never outside')
      if (dir !== null && layout.kind === 'v1') {
        t.equal(readText(join(dir, 'memory.swappiness'))?.trim(), '0', 'cgroup v1: memory.swappiness is 0')
        t.ok(readFileSync(join(dir, 'cgroup.procs'), 'utf8').split('\n').includes(String(d.pid)), 'the daemon is in it')
      }
      if (dir !== null && layout.kind === 'v2') {
        if (/"event":"no_swap_guard","mode":"cgroup-v2"/.test(d.log())) {
          // its own leaf, or the cgroup it was started in when that (or one above) has it
          let zero = false
          for (let c = dir; c.startsWith(layout.root) && !zero; c = dirname(c)) {
            zero = readText(join(c, 'memory.swap.max'))?.trim() === '0'
            if (c === layout.root) break
          }
          t.ok(zero, 'cgroup v2: memory.swap.max is 0 in its cgroup or one above')
        } else {
          t.match(d.log(), /"event":"no_swap_guard","detail":"cgroup v2: /, 'cgroup v2 without a guard: the daemon says why')
        }
      }
    }
    await d.stop()
    if (dir !== null && dir !== ownDir) t.notOk(existsSync(dir), 'the daemon removed its cgroup on exit')
  })

  tap.test('stop refuses while the block file is on a loop device', async (t) => {
    const d = await startDaemon({ disksize: '64M', test: t })
    const loop = (await must('losetup', ['--direct-io=on', '--find', '--show', d.blockFile])).trim()
    t.match(loop, /^\/dev\/loop\d+$/, `attached to ${loop}`)

    const refused = await cli(['stop', '--mount', d.mount])
    t.not(refused.code, 0, 'stop exits non-zero')
    t.match(refused.stderr, loop, 'and names the loop device', { stderr: refused.stderr })
    t.ok(processAlive(d.pid), 'the daemon is still running')
    t.ok(isMountPoint(d.mount), 'the mount is still there')
    t.doesNotThrow(() => d.mmStat(), 'and it still answers')

    await must('losetup', ['-d', loop])
    t.same(findAttachments(d.blockFile).loops, [], 'detached')
    const stopped = await cli(['stop', '--mount', d.mount])
    t.equal(stopped.code, 0, 'stop succeeds once detached', { stderr: stopped.stderr })
    const exit = await d.exited
    t.same(exit, { code: 0, signal: null }, 'the daemon exited with 0')
    t.notOk(isMountPoint(d.mount), 'and unmounted')
    await d.stop()
  })

  tap.test('stop refuses while the block file is swap; --force detaches safely', async (t) => {
    const d = await startDaemon({ disksize: '128M', test: t })
    const on = await run(SWAP_SCRIPT, ['on', d.blockFile, '--priority', '10'])
    t.equal(on.code, 0, 'swap on', { stderr: on.stderr })
    const loop = on.stdout.trim()
    t.not(swapUsedKiB(loop), null, `${loop} is active swap`)

    const refused = await cli(['stop', '--mount', d.mount])
    t.not(refused.code, 0, 'stop without --force exits non-zero', { stderr: refused.stderr })
    t.ok(processAlive(d.pid), 'the daemon is still running')
    t.not(swapUsedKiB(loop), null, 'swap is still on')

    const forced = await cli(['stop', '--mount', d.mount, '--force'], 300_000)
    t.equal(forced.code, 0, 'stop --force succeeds', { stderr: forced.stderr })
    t.equal(swapUsedKiB(loop), null, 'swap is off')
    t.same(findAttachments(d.blockFile), { loops: [], swaps: [], mounts: [], holders: [] }, 'nothing is attached any more')
    const exit = await d.exited
    t.same(exit, { code: 0, signal: null }, 'the daemon exited with 0')
    t.notOk(isMountPoint(d.mount), 'and unmounted')
    await d.stop()
  })

  tap.test('SIGTERM while the block file is active swap: the daemon keeps serving', async (t) => {
    const d = await startDaemon({ disksize: '64M', test: t })
    const on = await run(SWAP_SCRIPT, ['on', d.blockFile, '--priority', '10'])
    t.equal(on.code, 0, 'swap on', { stderr: on.stderr })
    process.kill(d.pid, 'SIGTERM')
    // The daemon answers SIGTERM on active swap by logging stop_refused and serving on (daemon/start.ts).
    await d.waitForEvent('stop_refused')
    t.ok(processAlive(d.pid), 'the daemon is still running')
    t.match(d.log(), /"event":"stop_refused"/, 'and logged why it refused')
    t.doesNotThrow(() => d.mmStat(), 'and still answers')
    const off = await run(SWAP_SCRIPT, ['off', d.blockFile])
    t.equal(off.code, 0, 'swap off', { stderr: off.stderr })
    process.kill(d.pid, 'SIGTERM')
    // Its exit, bounded: a daemon that does not stop fails here rather than leaving the test unfinished.
    let timer: NodeJS.Timeout | undefined
    const exit = await Promise.race([d.exited, new Promise<null>((resolve) => {
      timer = setTimeout(() => resolve(null), 60_000)
    })])
    clearTimeout(timer)
    t.notOk(processAlive(d.pid), 'once swap is off, SIGTERM stops it')
    t.same(exit, { code: 0, signal: null }, 'with exit code 0')
    await d.stop()
  })
}
