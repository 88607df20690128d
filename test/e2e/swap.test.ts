// losetup --direct-io=on + mkswap + swapon (via scripts/zram-swap.sh) on the block file, then a
// process in a memory cgroup with a limit far below what it touches writes a known pattern and
// verifies all of it; swap must be in use while it runs.
// Teardown order: kill the process, swapoff, losetup -d, rmdir the cgroup, stop the daemon.
import tap from 'tap'
import { spawn, type ChildProcess } from 'node:child_process'
import { rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { canRunE2E, daemonEnv, startDaemon, uringSkipReason } from './daemon'
import { exitOf, type MemCgroup, makeMemCgroup, removeCgroup } from './memcg'
import { cgroupLayout, readText, REPO, run, sleep, swapUsedKiB } from './util'

const TOUCH_MIB = 256
const LIMIT_MIB = 96
const MEMHOG = join(__dirname, 'fixtures', 'memhog.js')
const SWAP_SCRIPT = join(REPO, 'scripts', 'zram-swap.sh')

if (canRunE2E(tap, ['mkswap', 'swapon', 'swapoff'])) {
  if (cgroupLayout().kind === 'none') {
    tap.skip('end-to-end: no memory cgroup controller to limit the test process', () => {})
  } else {
    // Inline compression with plain swapon; kcompressd (issue 4) with swapon --discard (issue 3):
    // after the process exits, its freed swap slots must give their pages back.
    // The lower file of the writeback configuration (removed at the end of the file's run).
    const lowerFile = join(tmpdir(), `zramfuse-swap-lower-${process.pid}`)
    tap.teardown(() => rmSync(lowerFile, { force: true }))
    const CONFIGS = [
      { label: 'inline (--workers 0)', daemonArgs: ['--workers', '0'], swapArgs: [] as string[] },
      // The fallback transport: swap over libfuse 2.9 through fuse-native.
      { label: 'inline, --transport fuse-native', daemonArgs: ['--workers', '0', '--transport', 'fuse-native'], swapArgs: [] as string[] },
      { label: 'kcompressd (--workers 1), swapon --discard', daemonArgs: ['--workers', '1'], swapArgs: ['--discard'] },
      // FUSE over io_uring, where the kernel has it (skipped with the reason elsewhere).
      { label: 'kcompressd (--workers 1), FUSE over io_uring', daemonArgs: ['--workers', '1'], swapArgs: [] as string[], uring: true },
      // Issue 9: a pool limit far below what the pool takes without one (peak mem_used_total
      // 37 MiB measured in the two runs above), the shrinker on, packed records on a lower file.
      {
        label: 'writeback: --pool-limit 4M, --shrinker, packed lower file',
        daemonArgs: ['--workers', '0', '--backing-file', lowerFile, '--writeback-format', 'packed', '--shrinker', '--pool-limit', '4M'],
        swapArgs: [] as string[],
      },
    ]
    for (const cfg of CONFIGS) tap.test(`swap on the block file under memory pressure: ${cfg.label}`, async (t) => {
      const noUring = 'uring' in cfg ? uringSkipReason() : null
      if (noUring !== null) {
        t.comment(`skipped: ${noUring}`)
        return
      }
      // the daemon's own teardown goes on the root test: it runs after this subtest's teardown
      const d = await startDaemon({ disksize: '512M', test: tap, extraArgs: cfg.daemonArgs, uring: 'uring' in cfg })
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
          // swapoff, then losetup -d: BEFORE the daemon may stop
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
        await d.stop() // checks again that no swap / loop device is left, then stops the daemon
        if (problems.length > 0) throw new Error(problems.join('; '))
      })

      const on = await run(SWAP_SCRIPT, ['on', d.blockFile, '--priority', '32767', ...cfg.swapArgs], { timeoutMs: 60_000 })
      t.equal(on.code, 0, 'zram-swap.sh on succeeds', { stderr: on.stderr })
      const loop = on.stdout.trim()
      swapOn = on.code === 0
      t.match(loop, /^\/dev\/loop\d+$/, `swap is on ${loop}`)
      t.equal(readText(`/sys/block/${loop.slice(5)}/loop/dio`)?.trim(), '1', 'the loop device uses direct I/O')
      t.not(swapUsedKiB(loop), null, `${loop} is listed in /proc/swaps`)
      if (!swapOn) return

      cg = makeMemCgroup(`zramfuse-swaptest-${process.pid}`, LIMIT_MIB)
      const baseOrig = d.mmStat().origDataSize
      const seed = Number(process.env.ZRAMFUSE_SWAP_SEED ?? 20261122)
      t.comment(`memhog: ${TOUCH_MIB} MiB in a cgroup limited to ${LIMIT_MIB} MiB (${cg.dir}), seed ${seed} (set ZRAMFUSE_SWAP_SEED to repeat)`)

      // the shell puts itself into the cgroup, then becomes the memory hog
      const hog = spawn('/bin/sh', ['-c', 'echo $$ > "$0/cgroup.procs" && exec "$@"', cg.dir, process.execPath, MEMHOG, String(TOUCH_MIB), String(seed)], {
        stdio: ['ignore', 'pipe', 'pipe'],
        env: daemonEnv(),
      })
      child = hog
      let output = ''
      hog.stdout?.on('data', (b: Buffer) => (output += b.toString()))
      hog.stderr?.on('data', (b: Buffer) => (output += b.toString()))
      const done = exitOf(hog)

      let maxSwapKiB = 0
      let maxCgroupSwap = 0
      let maxOrig = 0
      let maxPool = 0
      let finished = false
      void done.then(() => (finished = true))
      const deadline = Date.now() + 180_000
      while (!finished && Date.now() < deadline) {
        maxSwapKiB = Math.max(maxSwapKiB, swapUsedKiB(loop) ?? 0)
        maxCgroupSwap = Math.max(maxCgroupSwap, cg.swapBytes() ?? 0)
        try {
          const mm = d.mmStat()
          maxOrig = Math.max(maxOrig, mm.origDataSize)
          maxPool = Math.max(maxPool, mm.memUsedTotal)
        } catch {
          // a read racing with the daemon: try again next round
        }
        await sleep(100)
      }
      if (!finished) {
        hog.kill('SIGKILL')
        t.fail('the memory hog did not finish within 180 s')
      }
      const result = await done
      t.comment(output.trim())
      t.equal(result.code, 0, 'the process read back exactly what it wrote', { output })
      t.comment(`peak swap used on ${loop}: ${maxSwapKiB} KiB; peak swap of the cgroup: ${maxCgroupSwap} bytes; peak orig_data_size: ${maxOrig}`)
      t.ok(maxSwapKiB > 0 || maxCgroupSwap > 0, 'swap was used while the process ran')
      t.ok(maxSwapKiB > 0, `/proc/swaps showed ${loop} in use`)
      t.ok(maxOrig > 0, 'mm_stat orig_data_size > 0 while swapping')
      t.ok(d.mmStat().origDataSize > 0 || maxOrig > 0, 'mm_stat orig_data_size > 0')
      t.comment(`peak mem_used_total ${maxPool}`)
      if (cfg.daemonArgs.includes('--shrinker')) {
        const wb = Number(readText(`${d.sys}/zramfuse/written_back_pages`))
        t.comment(`written_back_pages ${wb}, pool_limit_hit ${readText(`${d.sys}/zramfuse/pool_limit_hit`)?.trim()}, bd_stat ${readText(`${d.sys}/bd_stat`)?.trim()}`)
        t.ok(wb > 0, 'pages went to the lower file')
        t.ok(maxPool <= 4 * 1024 * 1024 + 2 * 1024 * 1024, 'the pool stayed near its 4 MiB limit')
        t.equal(Number(readText(`${d.sys}/zramfuse/checksum_errors`)), 0)
      }
      if (cfg.swapArgs.includes('--discard')) {
        // Swap discards freed clusters asynchronously: wait up to 15 s for the pages to come back.
        let orig = d.mmStat().origDataSize
        for (let i = 0; i < 150 && orig > baseOrig + 8 * 1024 * 1024; i++) {
          await sleep(100)
          orig = d.mmStat().origDataSize
        }
        t.comment(`orig_data_size: ${baseOrig} at swapon, peak ${maxOrig}, ${orig} after the process exited`)
        t.ok(orig <= baseOrig + 8 * 1024 * 1024, 'swapon --discard: the pages the process used are freed after it exits')
        t.ok(Number(readText(`${d.sys}/io_stat`)?.trim().split(/\s+/)[3]) > 0, 'notify_free counts them')
      }
    })
  }
}
