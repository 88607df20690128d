// What a killed daemon left (daemon/leftovers.ts), from /proc/swaps and mountinfo texts and loop
// devices as /sys shows them: which loop devices are its, which the start detaches and which make it
// refuse, and the exact commands it prints. No machine state is touched: the refusal for active swap
// is checked here, never with real swap on a dead daemon.
import t from 'tap'
import { parseProcSwaps, type LoopDevice, type SystemView } from '../../daemon/attachments'
import {
  describeLeftover, leftoverKind, leftoversOn, planLeftovers, refusalMessage, shellWord, undoCommands, type Leftover,
} from '../../daemon/leftovers'
import { parseMountinfo } from '../../daemon/procfs'
import type { ManagedAttachment } from '../../daemon/setup-devices'

const M = '/run/z'

function loop(n: number, backingFile: string, extra: Partial<LoopDevice> = {}): LoopDevice {
  return { dev: `/dev/loop${n}`, backingFile, names: [`loop${n}`], devNumbers: [`7:${n}`], holders: [], ...extra }
}

const SWAPS = `Filename\t\t\t\tType\t\tSize\t\tUsed\t\tPriority
/dev/loop0                              partition\t65532\t\t1024\t\t100
/dev/loop6p1                            partition\t1020\t\t0\t\t-2
/dev/loop8                              partition\t65532\t\t0\t\t100
/srv/swap\\040file (deleted)              file\t\t1020\t\t0\t\t-3
`

const MOUNTINFO = `22 1 259:1 / / rw,relatime shared:1 - ext4 /dev/vda1 rw
44 22 0:39 / ${M} rw,nosuid,nodev,relatime shared:20 - fuse.zramfuse zramfuse rw,user_id=0,group_id=0
51 22 7:1 / /var/x\\040y rw,relatime shared:30 - ext4 /dev/loop1 rw
`

function view(): SystemView {
  return {
    loops: [
      loop(0, `${M}/dev/zram0`), // swap
      loop(1, `${M}/dev/zram1`), // ext4 at "/var/x y"
      loop(2, `${M}/dev/zram0`), // merely attached
      loop(3, '/other/dev/zram0'),
      loop(4, `${M}/dev/zram0.img`), // not a block file of ours
      loop(5, '/run/zz/dev/zram0'), // a prefix of another mount point
      loop(6, `${M}/dev/zram3`, { names: ['loop6', 'loop6p1'], devNumbers: ['7:6', '259:6'] }), // swap on a partition
      loop(7, `${M}/dev/zram4`, { holders: ['dm-0'] }),
      loop(8, '/dev/zram2'), // recorded swap; the dead mount was lazily unmounted since
      loop(9, '/dev/zram5'), // recorded, merely attached: possibly someone else's by now
    ],
    swaps: parseProcSwaps(SWAPS),
    mounts: parseMountinfo(MOUNTINFO),
  }
}

const RECORDS: ManagedAttachment[] = [
  { device: 'zram2', blockFile: `${M}/dev/zram2`, loop: '/dev/loop8', fsType: 'swap', mountPoint: null },
  { device: 'zram5', blockFile: `${M}/dev/zram5`, loop: '/dev/loop9', fsType: 'swap', mountPoint: null },
]

t.test('parsed tables', async (t) => {
  t.same(parseProcSwaps(SWAPS), ['/dev/loop0', '/dev/loop6p1', '/dev/loop8', '/srv/swap file'], 'first column, unescaped, " (deleted)" dropped')
  t.same(parseProcSwaps('Filename\tType\tSize\tUsed\tPriority\n'), [], 'no swap')
  t.same(parseMountinfo(MOUNTINFO)[2], { devNumber: '7:1', mountPoint: '/var/x y', fsType: 'ext4', source: '/dev/loop1' })
})

t.test('which loop devices a dead daemon on /run/z left, and what uses them', async (t) => {
  const left = leftoversOn(M, view(), RECORDS)
  t.same(left.map((l) => [l.loop, leftoverKind(l), l.fromRecord]), [
    ['/dev/loop0', 'swap', false],
    ['/dev/loop1', 'mounted', false],
    ['/dev/loop2', 'attached', false],
    ['/dev/loop6', 'swap', false],
    ['/dev/loop7', 'held', false],
    ['/dev/loop8', 'swap', true],
  ], 'not /other, /run/zz, zram0.img, nor a recorded loop device that is merely attached')
  t.same(left[3]?.swaps, ['/dev/loop6p1'], 'swap on a partition counts')
  t.same(left[1]?.mounts, ['/var/x y'])
  t.same(leftoversOn('/run/zz', view()).map((l) => l.loop), ['/dev/loop5'])
  t.same(leftoversOn('/nothing', view(), []), [])
})

t.test('the plan: refuse for swap, mounts and holders; detach the idle ones only under a dead mount', async (t) => {
  const left = leftoversOn(M, view(), RECORDS)
  const dead = planLeftovers(left, 'dead')
  t.same(dead.refuse.map((l) => l.loop), ['/dev/loop0', '/dev/loop1', '/dev/loop6', '/dev/loop7', '/dev/loop8'])
  t.same(dead.detach.map((l) => l.loop), ['/dev/loop2'])
  t.same(dead.leave, [])
  const absent = planLeftovers(left, 'absent')
  t.same(absent.detach, [], 'not a dead mount here: nothing is detached')
  t.same(absent.leave.map((l) => l.loop), ['/dev/loop2'])
  t.same(absent.refuse.length, 5, 'active swap refuses the start all the same')
  const idleOnly = planLeftovers(left.filter((l) => leftoverKind(l) === 'attached'), 'dead')
  t.same([idleOnly.refuse, idleOnly.detach.map((l) => l.loop)], [[], ['/dev/loop2']], 'only idle ones: no refusal')
  const recordedIdle = { loop: '/dev/loop9', blockFile: '/dev/zram5', swaps: [], mounts: [], holders: [], fromRecord: true }
  t.same(planLeftovers([recordedIdle], 'dead').leave, [recordedIdle], 'a record alone never gets a loop device detached')
})

t.test('the exact commands, in the safe order', async (t) => {
  const byLoop = new Map(leftoversOn(M, view(), RECORDS).map((l) => [l.loop, l]))
  const get = (dev: string): Leftover => {
    const l = byLoop.get(dev)
    if (l === undefined) throw new Error(`no leftover ${dev}`)
    return l
  }
  const cmds = (dev: string): string[] => undoCommands(get(dev))
  t.same(cmds('/dev/loop0'), ['swapoff /dev/loop0', 'losetup -d /dev/loop0'])
  t.same(cmds('/dev/loop1'), ["umount '/var/x y'", 'losetup -d /dev/loop1'])
  t.same(cmds('/dev/loop2'), ['losetup -d /dev/loop2'])
  t.same(cmds('/dev/loop6'), ['swapoff /dev/loop6p1', 'losetup -d /dev/loop6'])
  t.same(cmds('/dev/loop7'), ['dmsetup remove /dev/dm-0', 'losetup -d /dev/loop7'])
  t.same(undoCommands({ loop: '/dev/loop3', blockFile: 'x', swaps: [], mounts: ['/a', '/a/b'], holders: ['md0'], fromRecord: false }),
    ['umount /a/b', 'umount /a', 'mdadm --stop /dev/md0', 'losetup -d /dev/loop3'], 'nested mounts deepest first')
  t.equal(shellWord("it's"), `'it'\\''s'`)
  t.equal(shellWord('/dev/loop0'), '/dev/loop0')
  t.equal(describeLeftover(get('/dev/loop0')), `/dev/loop0 on ${M}/dev/zram0: active swap (/dev/loop0)`)
  t.equal(describeLeftover(get('/dev/loop2')), `/dev/loop2 on ${M}/dev/zram0: attached`)
})

t.test('the refusal start prints', async (t) => {
  const { refuse } = planLeftovers(leftoversOn(M, view(), RECORDS), 'dead')
  const msg = refusalMessage(M, refuse.slice(0, 2))
  t.equal(msg, `an earlier daemon on ${M} died and left these active; the data of its devices is gone:
  /dev/loop0 on ${M}/dev/zram0: active swap (/dev/loop0)
  /dev/loop1 on ${M}/dev/zram1: mounted at /var/x y
processes that had pages in that swap have lost them (SIGBUS when they touch one).
a mounted file system may still show file data from the page cache: copy out what you need before umount.
undo them, then start again:
  swapoff /dev/loop0
  losetup -d /dev/loop0
  umount '/var/x y'
  losetup -d /dev/loop1`)
  t.notMatch(refusalMessage(M, refuse.slice(1, 2)), /SIGBUS/, 'the swap note only with swap')
})
