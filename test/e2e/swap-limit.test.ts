// Swap on a device whose limits hold: a pool limit of 8 MiB with the shrinker on, and a lower
// file on a 6 MiB tmpfs. A process in a memory cgroup fills memory until the device refuses
// writes; the kernel's swap keeps a page it could not write in memory ("Write-error on
// swap-device" in dmesg), so nothing dies: the process reads back every page, no SIGBUS, and the
// pool stays at its limit. Teardown: kill the process, swapoff, losetup -d, rmdir the cgroup, stop
// the daemon, unmount the tmpfs.
import tap from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { canRunE2E, daemonEnv, startDaemon } from './daemon'
import { exitOf, type MemCgroup, makeMemCgroup, removeCgroup } from './memcg'
import { cgroupLayout, must, readText, REPO, run, sleep, swapUsedKiB, which } from './util'

const POOL_LIMIT = 8 * 1024 * 1024
const CGROUP_MIB = 64
const HOG_MAX_MIB = 224
const HOG = join(__dirname, 'fixtures', 'limit-hog.py')
const SWAP_SCRIPT = join(REPO, 'scripts', 'zram-swap.sh')
const WRITE_ERROR = /Write-error on swap-device \((\d+):(\d+):\d+\)/

/** The kernel log's lines (dmesg), or null when it cannot be read. */
async function kernelLog(): Promise<string[] | null> {
  const r = await run('dmesg', [])
  return r.code === 0 ? r.stdout.split('\n') : null
}

/** A kernel log line's timestamp in seconds ("[ 13510.222890] ..."), or -1. */
function stampOf(line: string): number {
  const m = /^\[\s*(\d+\.\d+)\]/.exec(line)
  return m === null ? -1 : Number(m[1])
}

/** The newest timestamp of the kernel log, or -1. */
function lastStamp(lines: string[]): number {
  for (let i = lines.length - 1; i >= 0; i--) if (stampOf(lines[i] as string) >= 0) return stampOf(lines[i] as string)
  return -1
}

/**
 * Swap write errors for the block device major:minor among the kernel log's lines stamped after
 * `since` (the log is a ring: line numbers shift). The message is rate limited (10 per 5 s): a
 * suppressed run shows as "__end_swap_bio_write: N callbacks suppressed", counted too.
 */
function writeErrors(lines: string[], since: number, major: number, minor: number): number {
  let n = 0
  for (const line of lines.filter((l) => stampOf(l) > since)) {
    const m = WRITE_ERROR.exec(line)
    if (m !== null && Number(m[1]) === major && Number(m[2]) === minor) n++
    const suppressed = /end_swap_bio_write: (\d+) callbacks suppressed/.exec(line)
    if (suppressed !== null) n += Number(suppressed[1])
  }
  return n
}

function ioStat(sys: string): number[] {
  return (readText(join(sys, 'io_stat')) ?? '').trim().split(/\s+/).map(Number)
}

if (canRunE2E(tap, ['mkswap', 'swapon', 'swapoff', 'python3', 'dmesg'])) {
  if (cgroupLayout().kind === 'none') {
    tap.skip('end-to-end: no memory cgroup controller to limit the test process', () => {})
  } else if (which('python3') === null) {
    tap.skip('end-to-end: python3 (the memory hog) is missing', () => {})
  } else {
    tap.test('swap past the pool limit and a full lower file: failed swap-outs stay in memory, nothing is lost', async (t) => {
      const fsDir = mkdtempSync(join(tmpdir(), 'zramfuse-swaplimit-fs-'))
      await must('mount', ['-t', 'tmpfs', '-o', 'size=6M', 'tmpfs', fsDir])
      let fsMounted = true
      const lower = join(fsDir, 'lower')
      const stopFile = join(fsDir, '..', `zramfuse-swaplimit-stop-${process.pid}`)
      const d = await startDaemon({
        disksize: '256M', test: tap,
        extraArgs: ['--workers', '0', '--backing-file', lower, '--writeback-format', 'packed', '--shrinker', '--pool-limit', `${POOL_LIMIT}`],
      })
      let child: ChildProcess | null = null
      let cg: MemCgroup | null = null
      let swapOn = false
      t.teardown(async () => {
        const problems: string[] = []
        if (child !== null && child.exitCode === null && child.signalCode === null) {
          child.kill('SIGKILL')
          await exitOf(child)
        }
        if (swapOn) {
          const off = await run(SWAP_SCRIPT, ['off', d.blockFile], { timeoutMs: 300_000 })
          if (off.code !== 0) problems.push(`zram-swap.sh off failed: ${off.stderr}`)
        }
        if (cg !== null) {
          try {
            await removeCgroup(cg.dir)
          } catch (err) {
            problems.push((err as Error).message)
          }
        }
        await d.stop()
        if (fsMounted) {
          const um = await run('umount', [fsDir])
          if (um.code !== 0) problems.push(`umount ${fsDir}: ${um.stderr}`)
          else fsMounted = false
        }
        if (!fsMounted) rmSync(fsDir, { recursive: true, force: true })
        rmSync(stopFile, { force: true })
        if (problems.length > 0) throw new Error(problems.join('; '))
      })

      const on = await run(SWAP_SCRIPT, ['on', d.blockFile, '--priority', '32767'], { timeoutMs: 60_000 })
      t.equal(on.code, 0, 'zram-swap.sh on succeeds', { stderr: on.stderr })
      swapOn = on.code === 0
      if (!swapOn) return
      const loop = on.stdout.trim()
      const minor = Number(readText(`/sys/block/${loop.slice(5)}/dev`)?.trim().split(':')[1])
      const major = Number(readText(`/sys/block/${loop.slice(5)}/dev`)?.trim().split(':')[0])
      const before = await kernelLog()
      const since = before === null ? -1 : lastStamp(before)

      cg = makeMemCgroup(`zramfuse-swaplimit-${process.pid}`, CGROUP_MIB)
      const seed = Number(process.env.ZRAMFUSE_SWAP_SEED ?? 20261207)
      t.comment(`limit-hog: up to ${HOG_MAX_MIB} MiB in a cgroup of ${CGROUP_MIB} MiB, seed ${seed} (set ZRAMFUSE_SWAP_SEED to repeat)`)
      const hog = spawn('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg.dir, 'python3', HOG, String(HOG_MAX_MIB), String(seed), stopFile, join(d.sys, 'io_stat')], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: daemonEnv(),
      })
      child = hog
      let output = ''
      hog.stdout?.on('data', (b: Buffer) => (output += b.toString()))
      hog.stderr?.on('data', (b: Buffer) => (output += b.toString()))
      const done = exitOf(hog)
      let finished = false
      void done.then(() => (finished = true))

      // Tell the hog to stop as soon as the device refuses a write: the kernel keeps such pages
      // in memory, and a hog that went on allocating would only meet the cgroup's OOM killer.
      let peakPool = 0
      let peakSwapKiB = 0
      let refusedAt = -1
      let raised = false
      const deadline = Date.now() + 240_000
      while (!finished && Date.now() < deadline) {
        const failedWrites = ioStat(d.sys)[1] ?? 0
        if (failedWrites > 0 && refusedAt < 0) {
          refusedAt = Date.now()
          writeFileSync(stopFile, '')
        }
        peakSwapKiB = Math.max(peakSwapKiB, swapUsedKiB(loop) ?? 0)
        try {
          peakPool = Math.max(peakPool, d.mmStat().memUsedTotal)
        } catch {
          // a read racing with the daemon: next round
        }
        // Stopped, the process reads its pages back: from swap, and from memory where a swap-out
        // failed. With every swap-out failing, each page it brings in would cost the cgroup a round
        // of reclaim in vain (minutes, measured) until its OOM killer came: give it room, as an
        // administrator would. The pages already on swap still come back from the device.
        if (!raised && output.includes('limit-hog: stopped')) {
          raised = true
          cg.setLimit(4 * CGROUP_MIB)
        }
        await sleep(20)
      }
      if (!finished) {
        hog.kill('SIGKILL')
        t.fail('the memory hog did not finish within 240 s')
      }
      const result = await done
      t.comment(output.trim())
      const io = ioStat(d.sys)
      const logAfter = await kernelLog()
      const errors = logAfter === null || before === null ? -1 : writeErrors(logAfter, since, major, minor)
      t.comment(`peak swap on ${loop}: ${peakSwapKiB} KiB; peak mem_used_total ${peakPool}; failed_writes ${io[1]}; ` +
        `pool_limit_hit ${readText(`${d.sys}/zramfuse/pool_limit_hit`)?.trim()}; written_back_pages ${readText(`${d.sys}/zramfuse/written_back_pages`)?.trim()}; ` +
        `kernel write errors logged ${errors}`)
      t.ok(io[1] > 0, 'the device refused writes (failed_writes > 0): pool and lower file were full')
      t.not(result.signal, 'SIGBUS', 'no SIGBUS')
      t.equal(result.signal, null, 'the process was not killed')
      t.equal(result.code, 0, 'the process read back every page it wrote', { output })
      if (errors < 0) t.comment('dmesg cannot be read here: the kernel\'s write errors not checked')
      else t.ok(errors > 0, 'the kernel logged "Write-error on swap-device" for the loop device')
      // The loop device writes at most one transport request (queue/max_hw_sectors_kb) at a time.
      const request = Number(readText(`${d.sys}/queue/max_hw_sectors_kb`)) * 1024
      t.ok(peakPool <= POOL_LIMIT + request, `mem_used_total stayed within the limit plus a request (peak ${peakPool})`)
      t.ok(existsSync(d.blockFile), 'the daemon is still serving')
      t.equal(Number(readText(`${d.sys}/zramfuse/checksum_errors`)), 0)
    })
  }
}

// A write larger than one FUSE request is split by FUSE; when a later part fails (the pool at its
// limit) the loop device takes the short write for done, and the rest is lost without an error.
// scripts/lib-loop.sh caps the loop device's requests at the mount's queue/max_hw_sectors_kb.
// Over both transports: fuse-native takes 128 KiB per request, the native one 1 MiB.
for (const [transport, kb] of [['native', '1024'], ['fuse-native', '128']] as const) {
  if (!canRunE2E(tap, ['losetup', 'dd'])) break
  tap.test(`a loop device attached by the scripts never takes a half-failed write for done (${transport})`, async (t) => {
    // 1152 KiB of pool: four 256 KiB writes of random pages fit, the fifth fits half.
    const d = await startDaemon({ disksize: '16M', memLimit: '1152K', test: t, extraArgs: ['--workers', '0'], transport })
    const attach = await run('/bin/bash', ['-c', '. "$0/scripts/lib-loop.sh"; attach "$1"', REPO, d.blockFile])
    t.equal(attach.code, 0, 'attached', { stderr: attach.stderr })
    const loop = attach.stdout.trim()
    t.teardown(() => run('/bin/bash', ['-c', '. "$0/scripts/lib-loop.sh"; detach "$1"', REPO, loop]))
    t.equal(readText(`/sys/block/${loop.slice(5)}/queue/max_sectors_kb`)?.trim(), readText(`${d.sys}/queue/max_hw_sectors_kb`)?.trim(),
      'the loop device\'s requests are capped at the daemon\'s')
    t.equal(readText(`${d.sys}/queue/max_hw_sectors_kb`)?.trim(), kb)
    const dd = await run('dd', ['if=/dev/urandom', `of=${loop}`, 'bs=256K', 'count=8', 'oflag=direct'])
    t.not(dd.code, 0, 'dd fails')
    t.match(dd.stderr, /Input\/output error/)
    t.match(dd.stderr, /^4\+0 records out/m, 'at the fifth write, the one the pool could take only half of')
  })
}
