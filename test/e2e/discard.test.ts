// Discard and write-zeroes end to end: blkdiscard, mkfs.ext4's discard, fstrim on ext4, and fio
// trim workloads with verify, through a loop device over the block file.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { canRunE2E, startDaemon } from './daemon'
import { must, run, runFio } from './util'

const MiB = 1024 * 1024

function ioStat(sys: string): { failedReads: number; failedWrites: number; notifyFree: number } {
  const f = readFileSync(join(sys, 'io_stat'), 'utf8').trim().split(/\s+/).map(Number)
  return { failedReads: f[0], failedWrites: f[1], notifyFree: f[3] }
}

function discardFields(sys: string): { ios: number; sectors: number } {
  const f = readFileSync(join(sys, 'stat'), 'utf8').trim().split(/\s+/).map(Number)
  return { ios: f[11], sectors: f[13] }
}

/** Kernel log lines since `since` (dmesg may be unavailable in a container: then null). */
async function kernelLogSince(since: number): Promise<string[] | null> {
  const r = await run('dmesg', [])
  if (r.code !== 0) return null
  const lines = r.stdout.split('\n')
  return lines.slice(since)
}

async function kernelLogLength(): Promise<number> {
  const r = await run('dmesg', [])
  return r.code === 0 ? r.stdout.split('\n').length - 1 : 0
}

if (canRunE2E(t, ['blkdiscard', 'mkfs.ext4', 'fstrim', 'fio'])) {
  t.test('blkdiscard frees pool memory; blkdiscard -z zeroes', async (t) => {
    const d = await startDaemon({ disksize: '128M', test: t })
    const loop = (await must('losetup', ['--direct-io=on', '--find', '--show', d.blockFile])).trim()
    t.teardown(() => run('losetup', ['-d', loop]).then(() => undefined))
    await must('bash', ['-c', `head -c ${32 * MiB} /usr/bin/node > /tmp/zramfuse-e2e-discard.bin; ` +
      `dd if=/tmp/zramfuse-e2e-discard.bin of=${loop} bs=1M oflag=direct status=none; rm -f /tmp/zramfuse-e2e-discard.bin`])
    const before = d.mmStat()
    const ioBefore = ioStat(d.sys)
    t.ok(before.origDataSize >= 16 * MiB, `stored ${before.origDataSize} bytes`)

    await must('blkdiscard', ['-o', '0', '-l', String(16 * MiB), loop])
    await must('bash', ['-c', `echo 1 > ${d.sys}/compact`])
    const after = d.mmStat()
    const ioAfter = ioStat(d.sys)
    t.equal(ioAfter.notifyFree - ioBefore.notifyFree, (16 * MiB) / 4096, 'notify_free rises by the pages discarded')
    t.ok(after.origDataSize <= before.origDataSize - 15 * MiB, `orig_data_size ${before.origDataSize} -> ${after.origDataSize}`)
    t.ok(after.memUsedTotal < before.memUsedTotal, `mem_used_total ${before.memUsedTotal} -> ${after.memUsedTotal}`)
    t.ok(discardFields(d.sys).ios > 0, 'stat counts discard I/Os')
    const zeros = await run('bash', ['-c', `cmp <(dd if=${loop} bs=1M count=16 iflag=direct status=none) <(head -c ${16 * MiB} /dev/zero)`])
    t.equal(zeros.code, 0, 'discarded range reads as zeros')

    // write-zeroes on the rest
    await must('blkdiscard', ['-z', '-o', String(16 * MiB), '-l', String(16 * MiB), loop])
    const zeroed = await run('bash', ['-c', `cmp <(dd if=${loop} bs=1M skip=16 count=16 iflag=direct status=none) <(head -c ${16 * MiB} /dev/zero)`])
    t.equal(zeroed.code, 0, 'blkdiscard -z zeroes')
    t.ok(d.mmStat().origDataSize < after.origDataSize, 'and frees those pages too')
    t.comment(`mm_stat before ${JSON.stringify(before)} after ${JSON.stringify(d.mmStat())}`)
  })

  t.test('mkfs.ext4 discards; fstrim after deleting files frees their pages', async (t) => {
    const d = await startDaemon({ disksize: '256M', test: t })
    const loop = (await must('losetup', ['--direct-io=on', '--find', '--show', d.blockFile])).trim()
    t.teardown(() => run('losetup', ['-d', loop]).then(() => undefined))
    const logStart = await kernelLogLength()
    const mkfs = await run('mkfs.ext4', ['-v', loop])
    t.equal(mkfs.code, 0, 'mkfs.ext4')
    t.match(mkfs.stdout + mkfs.stderr, /Discarding device blocks:.*done/, 'mkfs.ext4 reports its discard as done')
    const log = await kernelLogSince(logStart)
    if (log === null) t.comment('dmesg unavailable: kernel log not checked')
    else t.same(log.filter((l) => /operation not supported/i.test(l) && l.includes(loop.slice(5))), [], 'no "operation not supported" in the kernel log')

    const mnt = d.scratch('ext4')
    await must('mount', [loop, mnt])
    t.teardown(() => run('umount', [mnt]).then(() => undefined))
    const base = d.mmStat()
    await must('bash', ['-c', `for i in 1 2 3 4; do head -c ${16 * MiB} /usr/bin/node > ${mnt}/f$i; done; sync`])
    const full = d.mmStat()
    t.ok(full.origDataSize - base.origDataSize >= 60 * MiB, `files stored: ${full.origDataSize - base.origDataSize} bytes`)
    await must('bash', ['-c', `rm ${mnt}/f*; sync`])
    const trim = await run('fstrim', ['-v', mnt])
    t.equal(trim.code, 0, `fstrim: ${trim.stdout}${trim.stderr}`)
    const trimmed = d.mmStat()
    const dropped = full.origDataSize - trimmed.origDataSize
    t.ok(dropped >= 56 * MiB, `orig_data_size dropped by ${dropped} bytes after deleting 64 MiB`)
    t.comment(`mm_stat base ${JSON.stringify(base)} full ${JSON.stringify(full)} trimmed ${JSON.stringify(trimmed)}`)
    await must('umount', [mnt])
  })

  t.test('fio trimwrite and randtrim with verify, through a loop device', async (t) => {
    // fio trims a regular file with the BLKDISCARD ioctl (ENOTTY): trims reach us via a loop device.
    const d = await startDaemon({ disksize: '128M', test: t })
    const loop = (await must('losetup', ['--direct-io=on', '--find', '--show', d.blockFile])).trim()
    t.teardown(() => run('losetup', ['-d', loop]).then(() => undefined))
    for (const rw of ['trimwrite', 'randtrim']) {
      const r = await runFio(['--name=trim', `--filename=${loop}`, '--direct=1', '--ioengine=psync',
        `--rw=${rw}`, '--bs=64k', '--size=64M', '--verify=crc32c', '--verify_fatal=1', '--randseed=1234',
        '--output-format=json'], { timeoutMs: 120_000 })
      t.equal(r.code, 0, `fio ${rw} exits 0`, { stderr: r.stderr.slice(-2000) })
      if (r.code === 0) {
        const job = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))).jobs[0] as { error: number; trim: { io_bytes: number } }
        t.equal(job.error, 0, `fio ${rw}: no errors`)
        t.ok(job.trim.io_bytes > 0, `fio ${rw} trimmed ${job.trim.io_bytes} bytes`)
      }
    }
    t.ok(ioStat(d.sys).notifyFree > 0, 'notify_free counts the trims')
  })
}
