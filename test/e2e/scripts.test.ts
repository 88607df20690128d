// scripts/zram-swap.sh and scripts/zram-mkfs.sh against a running daemon.
import tap from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { findAttachments } from '../../daemon/attachments'
import { canRunE2E, startDaemon } from './daemon'
import { isMountPoint, readText, REPO, run } from './util'

const SWAP = join(REPO, 'scripts', 'zram-swap.sh')
const MKFS = join(REPO, 'scripts', 'zram-mkfs.sh')

function swapLine(dev: string): string[] | null {
  for (const line of (readText('/proc/swaps') ?? '').split('\n').slice(1)) {
    const f = line.trim().split(/\s+/)
    if (f[0] === dev) return f
  }
  return null
}

if (canRunE2E(tap, ['mkswap', 'swapon', 'swapoff', 'mkfs.ext4'])) {
  tap.test('zram-swap.sh on / off', async (t) => {
    const d = await startDaemon({ disksize: '128M', test: t })
    const on = await run(SWAP, ['on', d.blockFile, '--priority', '7', '--discard'])
    t.equal(on.code, 0, 'on succeeds', { stderr: on.stderr })
    const loop = on.stdout.trim()
    t.match(loop, /^\/dev\/loop\d+$/, 'prints the loop device')
    t.equal(readText(`/sys/block/${loop.slice(5)}/loop/dio`)?.trim(), '1', 'with direct I/O')
    t.equal(swapLine(loop)?.[4], '7', 'swap is active with priority 7')

    const again = await run(SWAP, ['on', d.blockFile])
    t.not(again.code, 0, 'a second "on" refuses')
    t.match(again.stderr, /already attached/)
    t.same(findAttachments(d.blockFile).loops, [loop], 'and attaches nothing more')

    const bad = await run(SWAP, ['on', d.blockFile, '--discard=sometimes'])
    t.not(bad.code, 0, 'an unknown discard policy is refused')

    const off = await run(SWAP, ['off', d.blockFile])
    t.equal(off.code, 0, 'off succeeds', { stderr: off.stderr })
    t.equal(swapLine(loop), null, 'swap is off')
    t.same(findAttachments(d.blockFile).loops, [], 'the loop device is detached')
    const offAgain = await run(SWAP, ['off', d.blockFile])
    t.equal(offAgain.code, 0, 'off with nothing attached is fine')
    await d.stop()
  })

  tap.test('zram-mkfs.sh mount / umount', async (t) => {
    const d = await startDaemon({ disksize: '128M', test: t })
    const mnt = d.scratch('fs')
    const m = await run(MKFS, ['mount', d.blockFile, mnt, '--fs', 'ext4', '-L', 'zramtest'])
    t.equal(m.code, 0, 'mount succeeds', { stderr: m.stderr })
    const loop = m.stdout.trim()
    t.match(loop, /^\/dev\/loop\d+$/, 'prints the loop device')
    t.ok(isMountPoint(mnt), 'mounted')
    writeFileSync(join(mnt, 'hello'), 'zram\n')
    t.equal(readFileSync(join(mnt, 'hello'), 'utf8'), 'zram\n', 'usable')

    const swapOff = await run(SWAP, ['off', d.blockFile])
    t.not(swapOff.code, 0, 'zram-swap.sh off refuses to detach a mounted device')
    t.same(findAttachments(d.blockFile).loops, [loop], 'it is still attached')

    const u = await run(MKFS, ['umount', mnt])
    t.equal(u.code, 0, 'umount succeeds', { stderr: u.stderr })
    t.notOk(isMountPoint(mnt), 'unmounted')
    t.same(findAttachments(d.blockFile).loops, [], 'and detached')
    const again = await run(MKFS, ['umount', mnt])
    t.not(again.code, 0, 'umount of nothing fails with a message')
    t.match(again.stderr, /nothing is mounted/)
    await d.stop()
  })
}
