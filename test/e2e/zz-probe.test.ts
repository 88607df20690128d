import tap from 'tap'
import { join } from 'node:path'
import { startDaemon } from './daemon'
import { must, REPO, run } from './util'

const scenario = process.env.PROBE ?? 'A'
tap.test('probe ' + scenario, async (t) => {
  if (scenario === 'C') {
    await startDaemon({ algorithm: 'nope', test: t })
    return
  }
  const a = await startDaemon({ disksize: '128M', test: t })
  const on = await run(join(REPO, 'scripts/zram-swap.sh'), ['on', a.blockFile])
  t.comment('swap ' + on.stdout + on.stderr)
  const b = await startDaemon({ disksize: '128M', test: t })
  const mnt = b.scratch('ext4')
  await run(join(REPO, 'scripts/zram-mkfs.sh'), ['mount', b.blockFile, mnt])
  t.comment(await must('cat', ['/proc/swaps']))
  t.comment(await must('losetup', ['-a']))
  if (scenario === 'B') {
    process.kill(process.pid, 'SIGTERM')
    await new Promise((r) => setTimeout(r, 5000))
  }
  if (scenario === 'D') {
    process.kill(b.pid, 'SIGKILL')
    await new Promise((r) => setTimeout(r, 500))
  }
  throw new Error('deliberate failure')
})
