// daemon/attachments.ts against real loop devices on a sparse file in /dev/shm (no daemon):
// finding loop devices / swap / mounts, " (deleted)" backing files, paths with spaces, and the
// detach order swapoff -> umount -> losetup -d, including a failing umount.
import t from 'tap'
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, mkdtempSync, readlinkSync, rmdirSync, rmSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { detachSafely, detachSafelyAsync, findAttachments, mountDeviceOf } from '../../daemon/attachments'
import { unescapeOctal } from '../../daemon/procfs'
import { e2eSkipReason } from './daemon'
import { isMountPoint, must, run, swapUsedKiB } from './util'

t.test('unescapeOctal decodes /proc escapes', async (t) => {
  t.equal(unescapeOctal('/tmp/a\\040b\\011c\\134d'), '/tmp/a b\tc\\d')
  t.equal(unescapeOctal('/plain'), '/plain')
})

const why = e2eSkipReason(['mkswap', 'swapon', 'swapoff', 'mkfs.ext4'])
if (why !== null) {
  t.skip(`attachments: ${why}`, () => {})
} else {
  // a directory with a space in its name, to exercise the octal escapes of /proc
  const base = mkdtempSync('/dev/shm/zramfuse attachments-')
  const file = join(base, 'block file')
  const mnt = join('/tmp', `zramfuse attach-mnt-${process.pid}`)

  // Whatever happens in the tests below: swapoff, umount, losetup -d with plain commands.
  t.teardown(async () => {
    const a = findAttachments(file)
    for (const s of a.swaps) await run('swapoff', [s])
    for (const m of a.mounts) await run('umount', [m])
    for (const l of a.loops) await run('losetup', ['-d', l])
    if (isMountPoint(mnt)) await run('umount', ['-l', mnt])
    try {
      rmdirSync(mnt)
    } catch {
      // not created or already gone
    }
    rmSync(base, { recursive: true, force: true })
  })

  const attach = async (): Promise<string> => (await must('losetup', ['--direct-io=on', '--find', '--show', file])).trim()

  t.test('nothing attached', async (t) => {
    writeFileSync(file, '')
    truncateSync(file, 128 << 20)
    t.same(findAttachments(file), { loops: [], swaps: [], mounts: [], holders: [] })
    t.same(findAttachments('/nonexistent/file'), { loops: [], swaps: [], mounts: [], holders: [] })
  })

  t.test('loop devices, swap and mounts are found, and detached in the safe order', async (t) => {
    const swapLoop = await attach()
    await must('mkswap', ['-q', swapLoop])
    await must('swapon', [swapLoop])
    const fsLoop = await attach()
    await must('mkfs.ext4', ['-q', fsLoop])
    mkdirSync(mnt, { recursive: true })
    await must('mount', [fsLoop, mnt])

    const a = findAttachments(file)
    t.same([...a.loops].sort(), [swapLoop, fsLoop].sort(), 'both loop devices')
    t.same(a.swaps, [swapLoop], 'the swap one')
    t.same(a.mounts, [mnt], 'the mounted one, its mount point unescaped')
    t.same(a.holders, [])
    // the relative and the absolute path name the same file
    t.same(findAttachments(join(base, '.', 'block file')).loops.length, 2, 'path is normalised')

    const log: string[] = []
    detachSafely(file, (m) => log.push(m))
    t.same(
      log.map((l) => l.split(':')[0]),
      ['swapoff', 'umount', 'losetup -d', 'losetup -d'],
      'swapoff, then umount, then losetup -d',
    )
    t.same(findAttachments(file), { loops: [], swaps: [], mounts: [], holders: [] }, 'nothing left')
    t.equal(swapUsedKiB(swapLoop), null, 'swap is off')
    t.notOk(isMountPoint(mnt), 'unmounted')
  })

  t.test('a failing step stops the procedure and says which', async (t) => {
    const loop = await attach()
    await must('mkfs.ext4', ['-q', loop])
    await must('mount', [loop, mnt])
    // a process with its working directory inside the mount keeps it busy
    const busy = spawn('sleep', ['60'], { cwd: mnt, stdio: 'ignore' })
    t.teardown(() => {
      busy.kill('SIGKILL')
    })
    // 'spawn' comes once the program runs, so its working directory is set (before exec).
    await once(busy, 'spawn')
    t.equal(readlinkSync(`/proc/${String(busy.pid)}/cwd`), mnt, 'a process works in the mount (precondition)')
    t.throws(() => detachSafely(file, () => {}), /umount failed/, 'detachSafely throws naming umount')
    t.same(findAttachments(file).loops, [loop], 'and the loop device was NOT detached')
    await t.rejects(detachSafelyAsync(file, () => {}), /umount failed/, 'so does detachSafelyAsync')
    busy.kill('SIGKILL')
    await new Promise((r) => busy.once('exit', r))
    await detachSafelyAsync(file, () => {})
    t.same(findAttachments(file), { loops: [], swaps: [], mounts: [], holders: [] }, 'then it detaches')
  })

  t.test('after a lazy unmount, loop devices are found by the mount device', async (t) => {
    // a file system of its own (like a zramfuse mount), lazily unmounted with a loop device on it
    const fsDir = join(base, 'lazy')
    mkdirSync(fsDir)
    await must('mount', ['-t', 'tmpfs', '-o', 'size=64m', 'zramfuse-test', fsDir])
    const inner = join(fsDir, 'block')
    writeFileSync(inner, '')
    truncateSync(inner, 32 << 20)
    const dev = mountDeviceOf(fsDir)
    t.match(dev, /^\d+:\d+$/, `the mount's device is ${String(dev)}`)
    const loop = (await must('losetup', ['--find', '--show', inner])).trim()
    t.teardown(async () => {
      await run('swapoff', [loop])
      await run('losetup', ['-d', loop])
    })
    await must('mkswap', ['-q', loop])
    await must('swapon', [loop])
    await must('umount', ['-l', fsDir])
    t.equal((await must('cat', [`/sys/block/${loop.slice(5)}/loop/backing_file`])).trim(), '/block', 'the kernel now shows the path relative to the lost mount')
    t.same(findAttachments(inner).loops, [], 'by path it is lost')
    const opts = { mountDevice: dev ?? 'none' }
    t.same(findAttachments(inner, opts), { loops: [loop], swaps: [loop], mounts: [], holders: [] }, 'by mount device it is found')
    const log: string[] = []
    await detachSafelyAsync(inner, (m) => log.push(m), opts)
    t.same(log.map((l) => l.split(':')[0]), ['swapoff', 'losetup -d'], 'and detached safely')
    t.equal(swapUsedKiB(loop), null, 'swap is off')
    t.same(findAttachments(inner, opts).loops, [], 'nothing left')
  })

  t.test('a deleted backing file is still found', async (t) => {
    const loop = await attach()
    await must('mkswap', ['-q', loop])
    await must('swapon', [loop])
    unlinkSync(file)
    t.match(
      (await must('cat', [`/sys/block/${loop.slice(5)}/loop/backing_file`])).trim(),
      / \(deleted\)$/,
      'the kernel marks the backing file deleted',
    )
    const a = findAttachments(file)
    t.same(a.loops, [loop], 'still found')
    t.same(a.swaps, [loop], 'and its swap')
    await detachSafelyAsync(file, () => {})
    t.same(findAttachments(file), { loops: [], swaps: [], mounts: [], holders: [] }, 'detached')
  })
}
