// After a crash (kill -9 of the daemon), what it left on its block files:
// - a loop device merely attached: `status` shows it (dead mount, the loop device, the command),
//   and the next `start` on the same mount detaches it, logs it and cleans the dead mount;
// - ext4 mounted from it: `start` refuses (exit 69) and prints the exact commands; they work;
// - swap on it: the same refusal. That swap area is empty and stays empty: a much larger swap area
//   on RAM with a higher priority takes any swap-out of the machine meanwhile, the daemon is killed
//   only when /proc/swaps shows 0 KiB used in it, and a finally turns it off (swapoff of an empty
//   area completes at once after the daemon is gone: measured) however the test ends.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, truncateSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { listLoopDevices } from '../../daemon/attachments'
import { canRunE2E, cli, type Daemon, startDaemon } from './daemon'
import { isMountPoint, must, run, type RunResult } from './util'

const runtime = mkdtempSync('/tmp/zramfuse-leftovers-run-')
process.env.ZRAMFUSE_RUNTIME_DIR = runtime
t.teardown(() => rmSync(runtime, { recursive: true, force: true }))

/** Is `loop` still attached to `blockFile`? (The number alone may be someone else's by now.) */
function attachedTo(loop: string, blockFile: string): boolean {
  return listLoopDevices().some((l) => l.dev === loop && l.backingFile === blockFile)
}

/** The daemon's JSON log lines. */
function events(logFile: string): Record<string, unknown>[] {
  const text = existsSync(logFile) ? readFileSync(logFile, 'utf8') : ''
  return text.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as Record<string, unknown>)
}

/** The commands a refusal prints after "undo them, then start again:". */
function printedCommands(stderr: string): string[] {
  const at = stderr.indexOf('undo them, then start again:\n')
  if (at < 0) return []
  return stderr.slice(at).split('\n').slice(1).filter((l) => l.startsWith('  ')).map((l) => l.trim())
}

/** `start --background` on the mount of a killed daemon; its log in the daemon's scratch space. */
async function startAgain(d: Daemon, log: string): Promise<RunResult> {
  return cli(['start', '--background', '--mount', d.mount, '--disksize', '16M', '--log-file', log], 60_000)
}

/** Stop the daemon a startAgain() left running (whatever the test saw). */
async function stopAgain(d: Daemon): Promise<void> {
  if (isMountPoint(d.mount)) await cli(['stop', '--mount', d.mount, '--force'])
}

if (canRunE2E(t, ['mkswap', 'swapon', 'swapoff', 'mkfs.ext4'])) {
  t.test('kill -9 with a loop device attached: status shows it, start detaches it and logs it', async (t) => {
    const d = await startDaemon({ disksize: '16M', test: t })
    const loop = (await must('losetup', ['--direct-io=on', '--find', '--show', d.blockFile])).trim()
    t.teardown(async () => {
      if (attachedTo(loop, d.blockFile)) await run('losetup', ['-d', loop])
    })
    process.kill(d.pid, 'SIGKILL')
    await d.exited
    t.ok(attachedTo(loop, d.blockFile), `precondition: ${loop} is still attached to the dead daemon's block file`)

    const one = await cli(['status', '--mount', d.mount])
    t.equal(one.code, 1, 'status --mount of a dead daemon: exit 1')
    t.equal(one.stdout, `${d.mount}: dead (daemon ${d.pid} is gone; the mount does not answer)\n` +
      `  ${loop} on ${d.blockFile}: attached\n    (zramfuse start --mount ${d.mount} detaches it, or:)\n    losetup -d ${loop}\n`, 'its state, the loop device and the command')
    const all = await cli(['status'])
    t.equal(all.code, 0, 'status of the host: exit 0')
    t.ok(all.stdout.includes(one.stdout), 'lists the dead daemon the same way', { stdout: all.stdout })
    const json = JSON.parse((await cli(['status', '--json'])).stdout) as { daemons: { mount: string; state: string; pid: number; leftovers: { loop: string; kind: string; commands: string[] }[] }[] }
    t.match(json.daemons.find((x) => x.mount === d.mount), { state: 'dead', pid: d.pid, leftovers: [{ loop, kind: 'attached', commands: [`losetup -d ${loop}`] }] }, 'and in JSON')

    const log = join(d.base, 'again.log')
    try {
      const again = await startAgain(d, log)
      t.equal(again.code, 0, 'start on the same mount succeeds', { stderr: again.stderr })
      t.notOk(attachedTo(loop, d.blockFile), `${loop} was detached`)
      const ev = events(log)
      const detached = ev.findIndex((e) => e.event === 'stale_loop_detached')
      t.match(ev[detached], { level: 40, mount: d.mount, loop, blockFile: d.blockFile }, 'and the start logged it')
      t.ok(detached >= 0 && ev.findIndex((e) => e.event === 'stale_mount_cleaned') > detached, 'before it cleaned the dead mount')
      t.equal((await cli(['status', '--mount', d.mount])).code, 0, 'the new daemon serves the mount')
    } finally {
      await stopAgain(d)
      rmSync(log, { force: true })
    }
  })

  t.test('kill -9 with ext4 mounted from it: start refuses (69) with the commands, which work', async (t) => {
    const d = await startDaemon({ disksize: '64M', test: t })
    const fsDir = d.scratch('fs')
    const loop = (await must('losetup', ['--direct-io=on', '--find', '--show', d.blockFile])).trim()
    t.teardown(async () => {
      if (isMountPoint(fsDir)) await run('umount', ['-l', fsDir])
      if (attachedTo(loop, d.blockFile)) await run('losetup', ['-d', loop])
    })
    await must('mkfs.ext4', ['-q', loop])
    await must('mount', [loop, fsDir])
    writeFileSync(join(fsDir, 'note'), 'in the page cache\n')
    process.kill(d.pid, 'SIGKILL')
    await d.exited
    t.equal(readFileSync(join(fsDir, 'note'), 'utf8'), 'in the page cache\n', 'the dead file system still shows cached data (why start never unmounts it)')

    const log = join(d.base, 'refused.log')
    const refused = await startAgain(d, log)
    t.equal(refused.code, 69, 'EX_UNAVAILABLE', { stderr: refused.stderr })
    t.match(refused.stderr, `zramfuse: an earlier daemon on ${d.mount} died and left these active; the data of its devices is gone:\n` +
      `  ${loop} on ${d.blockFile}: mounted at ${fsDir}\n`)
    t.same(printedCommands(refused.stderr), [`umount ${fsDir}`, `losetup -d ${loop}`], 'the exact commands')
    t.match(events(log).find((e) => e.event === 'stale_attachments'), { level: 50, mount: d.mount, leftovers: [{ loop, kind: 'mounted', mounts: [fsDir] }] })
    t.ok(isMountPoint(fsDir) && attachedTo(loop, d.blockFile), 'nothing was touched')
    const st = await cli(['status', '--mount', d.mount])
    t.match(st.stdout, `  ${loop} on ${d.blockFile}: mounted at ${fsDir}\n    umount ${fsDir}\n    losetup -d ${loop}\n`, 'status shows it too')

    for (const c of printedCommands(refused.stderr)) {
      const r = await run('/bin/sh', ['-c', c])
      t.equal(r.code, 0, `${c}: exit 0`, { stderr: r.stderr })
    }
    t.notOk(isMountPoint(fsDir), 'unmounted')
    t.notOk(attachedTo(loop, d.blockFile), 'detached')
    try {
      const again = await startAgain(d, join(d.base, 'again.log'))
      t.equal(again.code, 0, 'then start succeeds', { stderr: again.stderr })
    } finally {
      await stopAgain(d)
      rmSync(log, { force: true })
      rmSync(join(d.base, 'again.log'), { force: true })
    }
  })

  t.test('kill -9 with its (empty) swap on: start refuses (69) with swapoff and losetup -d, which work', async (t) => {
    const guardFile = join('/dev/shm', `zramfuse-leftovers-guard-${process.pid}`)
    let guardLoop: string | null = null
    let swapLoop: string | null = null
    let d: Daemon | null = null
    const swapsLine = (dev: string): string[] | null => {
      for (const l of readFileSync('/proc/swaps', 'utf8').split('\n').slice(1)) {
        const f = l.trim().split(/\s+/)
        if (f[0] === dev) return f
      }
      return null
    }
    // Synchronous, for an interrupted run too: the swap areas first, then their loop devices.
    const cleanup = (): void => {
      for (const [dev, file] of [[swapLoop, d?.blockFile], [guardLoop, guardFile]] as const) {
        if (dev === null || file === undefined) continue
        try {
          if (swapsLine(dev) !== null) execFileSync('swapoff', [dev], { stdio: 'ignore', timeout: 120_000 })
          if (attachedTo(dev, file)) execFileSync('losetup', ['-d', dev], { stdio: 'ignore' })
        } catch (err) {
          process.stderr.write(`# cleanup of ${dev}: ${(err as Error).message}\n`)
        }
      }
      rmSync(guardFile, { force: true })
    }
    process.once('exit', cleanup)
    try {
      writeFileSync(guardFile, '')
      truncateSync(guardFile, 1 << 30)
      guardLoop = (await must('losetup', ['--find', '--show', guardFile])).trim()
      await must('mkswap', ['-q', guardLoop])
      await must('swapon', [guardLoop])
      d = await startDaemon({ disksize: '16M', test: t })
      swapLoop = (await must('losetup', ['--direct-io=on', '--find', '--show', d.blockFile])).trim()
      await must('mkswap', ['-q', swapLoop])
      await must('swapon', [swapLoop])
      const guard = swapsLine(guardLoop)
      const ours = swapsLine(swapLoop)
      t.ok(guard !== null && ours !== null && Number(ours[4]) < Number(guard[4]), `the guard's priority ${guard?.[4]} is above ours ${ours?.[4]}`)
      if (ours === null || ours[3] !== '0' || guard === null || Number(ours[4]) >= Number(guard[4])) {
        t.fail(`not killing the daemon: its swap area is ${ours === null ? 'missing' : `${ours[3]} KiB used`}`)
        return
      }
      process.kill(d.pid, 'SIGKILL')
      await d.exited
      t.equal(swapsLine(swapLoop)?.[3], '0', 'its swap area held nothing')

      const log = join(d.base, 'refused.log')
      const refused = await startAgain(d, log)
      t.equal(refused.code, 69, 'EX_UNAVAILABLE', { stderr: refused.stderr })
      t.match(refused.stderr, `  ${swapLoop} on ${d.blockFile}: active swap (${swapLoop})\n` +
        'processes that had pages in that swap have lost them (SIGBUS when they touch one).\n')
      t.same(printedCommands(refused.stderr), [`swapoff ${swapLoop}`, `losetup -d ${swapLoop}`], 'the exact commands')
      t.not(swapsLine(swapLoop), null, 'the swap is still on: start never turns it off')
      const st = await cli(['status', '--mount', d.mount])
      t.match(st.stdout, `  ${swapLoop} on ${d.blockFile}: active swap (${swapLoop})\n    swapoff ${swapLoop}\n    losetup -d ${swapLoop}\n`)
      for (const c of printedCommands(refused.stderr)) {
        const r = await run('/bin/sh', ['-c', c], { timeoutMs: 120_000 })
        t.equal(r.code, 0, `${c}: exit 0`, { stderr: r.stderr })
      }
      t.equal(swapsLine(swapLoop), null, 'swap off')
      t.notOk(attachedTo(swapLoop, d.blockFile), 'detached')
      rmSync(log, { force: true })
      try {
        const again = await startAgain(d, join(d.base, 'again.log'))
        t.equal(again.code, 0, 'then start succeeds', { stderr: again.stderr })
      } finally {
        await stopAgain(d)
        rmSync(join(d.base, 'again.log'), { force: true })
      }
    } finally {
      cleanup()
      process.removeListener('exit', cleanup)
      t.equal(swapsLine(guardLoop ?? 'none'), null, 'the guard swap is off')
      t.equal(existsSync(guardFile), false, 'and its file removed')
    }
  })
}
