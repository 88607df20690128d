// --config end to end: a zram-generator config with swap on zram0 and an ext4 scratch file system
// on zram1 is set up exactly (swap priority and discard, ext4 mounted with its options, zstd on
// zram1), and `zramfuse stop` undoes it without --force in the safe order. Every broken fixture
// fails with exit 78 and the file:line: key, leaving nothing mounted or attached; a failure after
// the mount (a mount point that cannot be made) is rolled back too.
// The swap here is 64 MiB and is always turned off before the daemon goes (the daemon itself
// refuses to exit while a swap it did not make is on; the teardown never kills it with swap on).
import t from 'tap'
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { findAttachments } from '../../daemon/attachments'
import { zramAttributes } from '../../src/sysfs/zram-attributes'
import { canRunE2E, cli, type Daemon, startDaemon } from './daemon'
import { isMountPoint, REPO, readText, run, sleep } from './util'

const FIXTURES = join(REPO, 'test/e2e/fixtures/zram-generator')
const runtime = mkdtempSync('/tmp/zramfuse-config-run-')
process.env.ZRAMFUSE_RUNTIME_DIR = runtime
t.teardown(() => rmSync(runtime, { recursive: true, force: true }))

function swapLine(dev: string): string[] | null {
  for (const l of (readText('/proc/swaps') ?? '').split('\n').slice(1)) {
    const f = l.trim().split(/\s+/)
    if (f[0] === dev) return f
  }
  return null
}

/** The daemon's exit, waited for with a timer (the daemon's child handle is unref'd: a bare await would let the test process end). */
async function exitOf(d: Daemon): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
  let result: { code: number | null; signal: NodeJS.Signals | null } | null = null
  void d.exited.then((r) => { result = r })
  for (let i = 0; i < 600 && result === null; i++) await sleep(100)
  if (result === null) throw new Error(`daemon ${d.pid} did not exit within 60 s`)
  return result
}

/** A fixture with its placeholder directories pointed into `dir`. */
function fixtureIn(name: string, dir: string): string {
  const text = readFileSync(join(FIXTURES, name), 'utf8')
    .split('/run/zramfuse-test').join(dir)
    .split('/var/lib/zramfuse').join(dir)
  const file = join(dir, name)
  writeFileSync(file, text)
  return file
}

if (canRunE2E(t, ['mkswap', 'swapon', 'swapoff', 'mkfs.ext4'])) {
  t.test('two devices: swap on zram0, ext4 on zram1; stop undoes both', async (t) => {
    const dir = mkdtempSync('/tmp/zramfuse-config-')
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const conf = fixtureIn('two-devices.conf', dir)
    // a drop-in, as zram-generator.conf.d/ has them: overrides one key of zram0, the rest stays
    mkdirSync(`${conf}.d`)
    writeFileSync(join(`${conf}.d`, '50-priority.conf'), '[zram0]\nswap-priority = 91\n')
    const scratch = join(dir, 'scratch')
    const d = await startDaemon({ disksize: null, test: t, extraArgs: ['--config', conf] })
    // nothing below may leave the ext4 mount behind if an assertion throws
    t.teardown(async () => {
      if (isMountPoint(scratch)) await run('umount', [scratch])
    })
    const zram0 = findAttachments(d.blockFile)
    t.equal(zram0.swaps.length, 1, 'zram0 is swap')
    const sw = swapLine(zram0.swaps[0] as string)
    t.equal(sw?.[4], '91', 'with swap-priority 91 from the drop-in (the main file says 90)')
    t.equal(sw?.[2], String(64 * 1024 - 4), 'of zram-size 64 MiB (less the swap header page)')
    const zram1 = findAttachments(join(d.mount, 'dev/zram1'))
    t.same(zram1.mounts, [scratch], 'zram1 mounted at mount-point')
    const fm = await run('findmnt', ['-n', '-o', 'FSTYPE,OPTIONS', scratch])
    t.match(fm.stdout, /^ext4 +.*noatime.*discard/, 'ext4 with the options')
    t.equal(readFileSync(join(d.mount, 'sys/block/zram1/comp_algorithm'), 'utf8'), 'lz4 [zstd] \n')
    t.equal(readFileSync(join(d.mount, 'sys/block/zram1/disksize'), 'utf8'), `${96 << 20}\n`)
    writeFileSync(join(scratch, 'hello'), 'zram1 works\n')
    t.equal(readFileSync(join(scratch, 'hello'), 'utf8'), 'zram1 works\n')
    const log = d.log()
    t.match(log, /"event":"swap_on","device":"zram0"/)
    t.match(log, /"event":"fs_ready","device":"zram1"/)
    t.ok(log.indexOf('"event":"fs_ready"') < log.indexOf('"event":"ready"'), 'ready only after the config is up')

    const s = await cli(['stop', '--mount', d.mount])
    t.equal(s.code, 0, 'stop without --force', { stderr: s.stderr })
    t.match(s.stderr, /swapoff: swapoff \/dev\/loop\d+/)
    t.match(s.stderr, /umount: umount /)
    const { code } = await exitOf(d)
    t.equal(code, 0, 'the daemon exited 0')
    t.equal(swapLine(zram0.swaps[0] as string), null, 'swap off')
    t.notOk(isMountPoint(scratch), 'ext4 unmounted')
    for (const l of [...zram0.loops, ...zram1.loops]) {
      t.notOk(existsSync(`/sys/block/${l.slice(5)}/loop/backing_file`), `${l} detached`)
    }
    t.same(readdirSync(runtime).filter((f) => f.endsWith('.attachments.json')), [], 'no attachment record left')
  })

  t.test('SIGTERM (systemctl stop) undoes the swap itself', async (t) => {
    const dir = mkdtempSync('/tmp/zramfuse-config-')
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    writeFileSync(join(dir, 'z.conf'), '[zram0]\nzram-size = 32\noptions =\n')
    const d = await startDaemon({ disksize: null, test: t, extraArgs: ['--config', join(dir, 'z.conf')] })
    const att = findAttachments(d.blockFile)
    t.equal(att.swaps.length, 1)
    t.equal(swapLine(att.swaps[0] as string)?.[4], '100', 'default priority 100')
    process.kill(d.pid, 'SIGTERM')
    const { code } = await exitOf(d)
    t.equal(code, 0)
    t.equal(swapLine(att.swaps[0] as string), null, 'swap off')
    t.match(d.log(), /"event":"teardown","signal":"SIGTERM"/)
  })

  t.test('broken configs: exit 78, file:line: key, nothing mounted or attached', async (t) => {
    const dir = mkdtempSync('/tmp/zramfuse-config-')
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const mount = join(dir, 'mnt')
    const cases: [string, RegExp][] = [
      ['broken-size.conf', /broken-size\.conf:3: zram-size: unexpected/],
      ['broken-algorithm.conf', /broken-algorithm\.conf:3: compression-algorithm: \[zram0\] writing "lzo-rle" to comp_algorithm failed/],
      ['broken-priority.conf', /broken-priority\.conf:3: swap-priority: swap priority 40000 out of range/],
      ['broken-mount-point.conf', /broken-mount-point\.conf:3: mount-point: "var\/compressed" is not absolute/],
      ['broken-late-device.conf', /broken-late-device\.conf:8: compression-algorithm: \[zram1\] writing .* to algorithm_params failed: .*\(EINVAL\)/],
    ]
    const recomp = ['broken-recompression.conf', /broken-recompression\.conf:4: compression-algorithm: .*recomp_algorithm/] as [string, RegExp]
    if (!zramAttributes.some((a) => a.name === 'recomp_algorithm')) cases.push(recomp)
    for (const [name, why] of cases) {
      const conf = fixtureIn(name, dir)
      const r = await cli(['start', '--mount', mount, '--config', conf])
      t.equal(r.code, 78, `${name}: exit 78`)
      t.match(r.stderr, why, `${name}: ${r.stderr.trim().split('\n')[0] ?? ''}`)
      t.notOk(isMountPoint(mount), `${name}: not mounted`)
      t.same(findAttachments(join(mount, 'dev/zram0')).loops, [], `${name}: no loop device`)
    }
    t.notOk(existsSync(join(dir, 'late-writeback.img')), 'the backing file made on the way was removed')
    // a good main file with a bad drop-in: the error names the drop-in
    const good = fixtureIn('fedora-default.conf', dir)
    mkdirSync(`${good}.d`)
    writeFileSync(join(`${good}.d`, '10-bad.conf'), '[zram0]\n# a typo\nswap-priority = high\n')
    const bad = await cli(['start', '--mount', mount, '--config', good])
    t.equal(bad.code, 78, 'a bad drop-in: exit 78')
    t.match(bad.stderr, `${good}.d/10-bad.conf:3: swap-priority: expected an integer`, bad.stderr.trim().split('\n')[0] ?? '')
    t.notOk(isMountPoint(mount), 'not mounted')
    const conflict = await cli(['start', '--mount', mount, '--config', fixtureIn('fedora-default.conf', dir), '--disksize', '1G'])
    t.equal(conflict.code, 78)
    t.match(conflict.stderr, /--config sets the devices up: drop --disksize/)
  })

  t.test('a failure after the mount is rolled back: umount, loop devices, FUSE mount', async (t) => {
    const dir = mkdtempSync('/tmp/zramfuse-config-')
    const mount = join(dir, 'mnt')
    const first = join(dir, 'first')
    // whatever happens: nothing of this test stays mounted or attached
    t.teardown(async () => {
      if (isMountPoint(first)) await run('umount', [first])
      for (const dev of ['zram0', 'zram1']) {
        for (const l of findAttachments(join(mount, 'dev', dev)).loops) await run('losetup', ['-d', l])
      }
      if (isMountPoint(mount)) await run('fusermount', ['-uz', mount])
      rmSync(dir, { recursive: true, force: true })
    })
    // zram0 is made and mounted first, then zram1's mount point cannot be created (/proc refuses mkdir)
    writeFileSync(join(dir, 'z.conf'), `[zram0]\nzram-size = 16\nmount-point = ${first}\n\n` +
      '[zram1]\nzram-size = 16\nfs-type = ext4\nmount-point = /proc/zramfuse-cannot-exist\n')
    const r = await cli(['start', '--mount', mount, '--config', join(dir, 'z.conf')], 60_000)
    t.equal(r.code, 1, 'exit 1')
    t.match(r.stderr, /mkdir -p -- \/proc\/zramfuse-cannot-exist failed/)
    t.notOk(isMountPoint(first), "zram0's file system was unmounted again")
    t.notOk(isMountPoint(mount), 'FUSE unmounted')
    t.same(findAttachments(join(mount, 'dev/zram0')).loops, [], 'no loop device on zram0')
    t.same(findAttachments(join(mount, 'dev/zram1')).loops, [], 'no loop device on zram1')
  })

  t.test('a daemon that died with its file system mounted: start refuses (69) until it is undone', async (t) => {
    const dir = mkdtempSync('/tmp/zramfuse-config-')
    const fsDir = join(dir, 'fs')
    t.teardown(async () => {
      if (isMountPoint(fsDir)) await run('umount', ['-l', fsDir])
      rmSync(dir, { recursive: true, force: true })
    })
    // a file system, never swap: killing a daemon with swap on is what this guard exists for
    writeFileSync(join(dir, 'z.conf'), `[zram0]\nzram-size = 16\nmount-point = ${fsDir}\n`)
    const d = await startDaemon({ disksize: null, test: t, extraArgs: ['--config', join(dir, 'z.conf')] })
    const loops = findAttachments(d.blockFile).loops
    t.equal(loops.length, 1)
    process.kill(d.pid, 'SIGKILL')
    await exitOf(d)
    const again = await cli(['start', '--mount', d.mount, '--config', join(dir, 'z.conf')], 60_000)
    t.equal(again.code, 69, 'EX_UNAVAILABLE: systemd does not restart into it')
    t.match(again.stderr, `an earlier daemon on ${d.mount} died and left these active; the data of its devices is gone:\n` +
      `  ${loops[0]} on ${d.blockFile}: mounted at ${fsDir}\n`)
    t.match(again.stderr, `undo them, then start again:\n  umount ${fsDir}\n  losetup -d ${loops[0]}`)
    // Once the dead mount is lazily unmounted the kernel names the block file /dev/zram0, which no
    // longer says whose it is: the daemon's record of its attachments still finds it.
    await run('fusermount', ['-uz', d.mount])
    const hidden = await cli(['start', '--mount', d.mount, '--config', join(dir, 'z.conf')], 60_000)
    t.equal(hidden.code, 69, 'after a lazy unmount of the dead mount: still refused')
    t.match(hidden.stderr, `  ${loops[0]} on /dev/zram0: mounted at ${fsDir}\n`)
    const st = await cli(['status', '--mount', d.mount])
    t.equal(st.code, 1)
    t.equal(st.stdout, `${d.mount}: daemon ${d.pid} is gone, nothing is mounted\n  ${loops[0]} on /dev/zram0: mounted at ${fsDir}\n` +
      `    umount ${fsDir}\n    losetup -d ${loops[0]}\n`, 'status shows it')
    // undo it by hand, as the message says; then a start goes through
    await run('umount', [fsDir])
    await run('losetup', ['-d', loops[0] as string])
    await run('fusermount', ['-uz', d.mount])
    const bg = await cli(['start', '--background', '--mount', d.mount, '--disksize', '16M', '--log-file', join(dir, 'bg.log')], 60_000)
    t.equal(bg.code, 0, 'starts once the leftovers are gone', { stderr: bg.stderr })
    const s = await cli(['stop', '--mount', d.mount])
    t.equal(s.code, 0)
  })
}
