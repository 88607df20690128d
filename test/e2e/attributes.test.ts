// Attribute files driven with shell redirection, as a script for the kernel's zram would: the
// kernel's errno for bad values, hot_add/hot_remove, mem_limit, and no stale reads.
import t from 'tap'
import { closeSync, openSync, readFileSync, readSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { canRunE2E, startDaemon } from './daemon'
import { parseMmStat, run } from './util'

/** Run a shell snippet; returns its exit code and stderr (where bash reports the errno text). */
async function sh(script: string): Promise<{ code: number; stderr: string; stdout: string }> {
  const r = await run('bash', ['-c', script])
  return { code: r.code ?? -1, stderr: r.stderr, stdout: r.stdout }
}

if (canRunE2E(t, ['dd'])) {
  t.test('attribute errno and behaviour through the mount', async (t) => {
    const d = await startDaemon({ disksize: null, test: t })
    const sys = d.sys
    const cat = (name: string): string => readFileSync(join(sys, name), 'utf8')

    t.equal(cat('initstate'), '0\n')
    t.equal(cat('comp_algorithm'), '[lz4] zstd \n')
    let r = await sh(`echo nope > ${sys}/comp_algorithm`)
    t.match(r.stderr, /Invalid argument/, 'unknown algorithm -> EINVAL')
    r = await sh(`echo zstd > ${sys}/comp_algorithm && echo level=5 > ${sys}/algorithm_params && echo 64M > ${sys}/disksize`)
    t.equal(r.code, 0, `configure and initialise: ${r.stderr}`)
    t.equal(cat('initstate'), '1\n')
    t.equal(cat('disksize'), `${64 * 1024 * 1024}\n`)
    r = await sh(`echo 128M > ${sys}/disksize`)
    t.match(r.stderr, /Device or resource busy/, 'disksize twice -> EBUSY')
    r = await sh(`echo lz4 > ${sys}/comp_algorithm`)
    t.match(r.stderr, /Device or resource busy/, 'comp_algorithm after init -> EBUSY')
    r = await sh(`echo 1 > ${sys}/mem_used_max`)
    t.match(r.stderr, /Invalid argument/, 'mem_used_max=1 -> EINVAL')
    r = await sh(`echo 0 > ${sys}/mem_used_max`)
    t.equal(r.code, 0, 'mem_used_max=0 accepted')
    r = await sh(`echo 1 > ${sys}/mm_stat`)
    t.match(r.stderr, /Permission denied/, 'read-only attribute -> EACCES')
    r = await sh(`cat ${sys}/reset`)
    t.match(r.stderr, /Permission denied/, 'write-only attribute -> EACCES')

    // No stale reads: mm_stat changes under a reader that re-opens it.
    const before = parseMmStat(cat('mm_stat'))
    r = await sh(`head -c 1048576 /usr/bin/env | dd of=${d.blockFile} bs=64k oflag=direct conv=notrunc status=none`)
    t.equal(r.code, 0, `dd: ${r.stderr}`)
    const after = parseMmStat(cat('mm_stat'))
    t.ok(after.origDataSize > before.origDataSize, `orig_data_size ${before.origDataSize} -> ${after.origDataSize}`)

    // reset while the block file is open -> EBUSY; after closing it works.
    r = await sh(`exec 3<${d.blockFile}; echo 1 > ${sys}/reset; rc=$?; exec 3<&-; exit $rc`)
    t.match(r.stderr, /Device or resource busy/, 'reset while open -> EBUSY')
    r = await sh(`echo 1 > ${sys}/reset`)
    t.equal(r.code, 0, `reset when closed: ${r.stderr}`)
    t.equal(cat('initstate'), '0\n')
    t.equal(cat('comp_algorithm'), '[lz4] zstd \n', 'reset restores the default algorithm')

    // One JSON log line per refused write, naming the errno.
    const refused = d.log().split('\n').filter((l) => l.includes('"event":"refused"'))
    t.ok(refused.length >= 7, `${refused.length} refused lines logged`)
    t.ok(refused.every((l) => JSON.parse(l).errno), 'each names its errno')
  })

  t.test('hot_add creates a device that works on its own; hot_remove', async (t) => {
    const d = await startDaemon({ disksize: '32M', test: t })
    const control = join(d.mount, 'sys/class/zram-control')
    const id = readFileSync(join(control, 'hot_add'), 'utf8')
    t.equal(id, '1\n', 'one cat, one device, id 1')
    t.same((await sh(`ls ${d.mount}/dev`)).stdout.split('\n').filter(Boolean), ['zram0', 'zram1'])
    t.equal(statSync(join(control, 'hot_add')).mode & 0o777, 0o400, 'hot_add is 0400, as in the kernel')
    // One open file, read as seq_file serves it: reading on ends the file, a read from offset 0 shows again.
    const fd = openSync(join(control, 'hot_add'), 'r')
    const buf = Buffer.alloc(16)
    const pread = (pos: number): string => buf.toString('latin1', 0, readSync(fd, buf, 0, buf.length, pos))
    try {
      t.equal(pread(0), '2\n')
      t.equal(pread(2), '', 'reading on: end of file, no device')
      t.equal(pread(0), '3\n', 'a re-read from offset 0 creates another, as in the kernel')
    } finally {
      closeSync(fd)
    }
    const removed = await sh(`echo 3 > ${control}/hot_remove && echo 2 > ${control}/hot_remove`)
    t.equal(removed.code, 0, `hot_remove 3 and 2: ${removed.stderr}`)
    const sys1 = join(d.mount, 'sys/block/zram1')
    let r = await sh(`echo 16M > ${sys1}/disksize && head -c 4194304 /dev/urandom > /tmp/zramfuse-e2e-hot.bin && ` +
      `dd if=/tmp/zramfuse-e2e-hot.bin of=${d.mount}/dev/zram1 bs=1M oflag=direct conv=notrunc status=none && ` +
      `cmp <(dd if=${d.mount}/dev/zram1 bs=1M count=4 iflag=direct status=none) /tmp/zramfuse-e2e-hot.bin; ` +
      `rc=$?; rm -f /tmp/zramfuse-e2e-hot.bin; exit $rc`)
    t.equal(r.code, 0, `zram1 stores and reads back its data: ${r.stderr}`)
    t.ok(parseMmStat(readFileSync(join(sys1, 'mm_stat'), 'utf8')).origDataSize > 0, 'zram1 counts its pages')
    t.equal(d.mmStat().origDataSize, 0, 'zram0 is untouched')
    r = await sh(`echo 9 > ${control}/hot_remove`)
    t.match(r.stderr, /No such device/, 'hot_remove of an absent id -> ENODEV')
    r = await sh(`exec 3<${d.mount}/dev/zram1; echo 1 > ${control}/hot_remove; rc=$?; exec 3<&-; exit $rc`)
    t.match(r.stderr, /Device or resource busy/, 'hot_remove while open -> EBUSY')
    r = await sh(`echo 1 > ${control}/hot_remove`)
    t.equal(r.code, 0, `hot_remove: ${r.stderr}`)
    t.same((await sh(`ls ${d.mount}/dev`)).stdout.split('\n').filter(Boolean), ['zram0'])
  })

  t.test('mem_limit: writes past it fail with EIO and are counted', async (t) => {
    const d = await startDaemon({ disksize: '64M', memLimit: '1M', test: t })
    // Random data is incompressible: 1 MiB of pool holds fewer than 256 pages.
    const r = await sh(`dd if=/dev/urandom of=${d.blockFile} bs=64k count=64 oflag=direct conv=notrunc status=none`)
    t.not(r.code, 0, 'dd fails')
    t.match(r.stderr, /Input\/output error/, 'with EIO')
    const io = readFileSync(join(d.sys, 'io_stat'), 'utf8').trim().split(/\s+/).map(Number)
    t.ok(io[1] >= 1, `failed_writes = ${io[1]}`)
    const mm = d.mmStat()
    t.ok(mm.memUsedTotal <= 1024 * 1024, `mem_used_total ${mm.memUsedTotal} stays within the limit`)
    t.equal(mm.memLimit, 1024 * 1024)
  })
}
