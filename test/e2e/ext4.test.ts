// losetup --direct-io=on + mkfs.ext4 + mount + copy a real directory tree + sha256 of every
// file + umount + e2fsck -fn (clean) + detach + attach again + remount + compare checksums.
import t from 'tap'
import { createHash } from 'node:crypto'
import { existsSync, lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { join, relative } from 'node:path'
import { canRunE2E, startDaemon, uringSkipReason } from './daemon'
import { must, readText, REPO, run } from './util'

/** relative path -> sha256 (files) or "-> target" (symlinks) or "dir" for every entry */
function treeDigest(root: string): Map<string, string> {
  const out = new Map<string, string>()
  const walk = (dir: string): void => {
    for (const name of readdirSync(dir).sort()) {
      const p = join(dir, name)
      const rel = relative(root, p)
      const st = lstatSync(p)
      if (st.isSymbolicLink()) out.set(rel, `-> ${readlinkSync(p)}`)
      else if (st.isDirectory()) {
        out.set(rel, 'dir')
        walk(p)
      } else if (st.isFile()) out.set(rel, createHash('sha256').update(readFileSync(p)).digest('hex'))
    }
  }
  walk(root)
  return out
}

/** the digest of the mounted file system, without mkfs's lost+found */
function copyDigest(mnt: string): Map<string, string> {
  const m = treeDigest(mnt)
  for (const k of [...m.keys()]) if (k === 'lost+found' || k.startsWith('lost+found/')) m.delete(k)
  return m
}

function firstDifferences(a: Map<string, string>, b: Map<string, string>, max = 10): string[] {
  const diffs: string[] = []
  for (const [k, v] of a) {
    if (b.get(k) !== v) diffs.push(`${k}: ${v} vs ${String(b.get(k))}`)
    if (diffs.length >= max) return diffs
  }
  for (const k of b.keys()) if (!a.has(k) && diffs.length < max) diffs.push(`${k}: only in the copy`)
  return diffs
}

// Real trees: the TypeScript compiler (a few large files) and the system's docs (thousands of
// small files, symlinks, deep directories).
const SOURCES = [join(REPO, 'node_modules', 'typescript'), '/usr/share/doc'].filter((p) => existsSync(p))

if (canRunE2E(t, ['mkfs.ext4', 'e2fsck'])) {
  for (const transport of ['native', 'native over io_uring', 'fuse-native'] as const) t.test(`ext4 on the block file through a loop device (${transport} transport)`, async (t) => {
    const uring = transport === 'native over io_uring'
    const noUring = uring ? uringSkipReason() : null
    if (noUring !== null) {
      t.comment(`skipped: ${noUring}`)
      return
    }
    const d = await startDaemon({ disksize: '768M', test: t, transport: uring ? 'native' : transport, uring })
    const mnt = d.scratch('ext4')

    const attach = async (): Promise<string> => {
      const loop = (await must('losetup', ['--direct-io=on', '--find', '--show', d.blockFile])).trim()
      t.match(loop, /^\/dev\/loop\d+$/, `attached to ${loop}`)
      t.equal(readText(`/sys/block/${loop.slice(5)}/loop/dio`)?.trim(), '1', `direct I/O is on for ${loop}`)
      return loop
    }

    let loop = await attach()
    await must('mkfs.ext4', ['-q', loop])
    await must('mount', [loop, mnt])

    const expected = new Map<string, string>()
    for (const src of SOURCES) {
      const name = src.replace(/\//g, '_')
      await must('cp', ['-a', src, join(mnt, name)], { timeoutMs: 300_000 })
      expected.set(name, 'dir')
      for (const [k, v] of treeDigest(src)) expected.set(join(name, k), v)
    }
    t.ok(expected.size > 100, `copied ${expected.size} entries from ${SOURCES.join(', ')}`)
    t.same(firstDifferences(expected, copyDigest(mnt)), [], 'the copy matches before unmounting')

    await must('umount', [mnt])
    const fsck = await run('e2fsck', ['-fn', loop], { timeoutMs: 300_000 })
    t.equal(fsck.code, 0, 'e2fsck -fn finds the file system clean', { output: (fsck.stdout + fsck.stderr).slice(-3000) })

    // detach and attach again, so nothing can come from a cache of the old loop device
    await must('losetup', ['-d', loop])
    loop = await attach()
    await must('mount', [loop, mnt])
    const copied = copyDigest(mnt)
    t.same(firstDifferences(expected, copied), [], 'every file reads back with the same sha256 after remount')
    t.equal(copied.size, expected.size, 'the same number of entries after remount')

    const mm = d.mmStat()
    t.comment(`mm_stat: ${JSON.stringify(mm)}`)
    t.ok(mm.origDataSize > 0, 'mm_stat orig_data_size > 0')

    await must('umount', [mnt])
    await must('losetup', ['-d', loop])
    await d.stop()
  })
}
