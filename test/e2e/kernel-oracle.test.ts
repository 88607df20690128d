// The kernel's zram is the oracle for every attribute: the rows of kernel-oracle-rows.ts are
// written with one write(2) of exact bytes both to this machine's /sys/block/zram0 and to a
// zramfuse mount, and must get the same errno (or the same count written) and leave the same
// disksize, initstate, mem_limit and selected algorithm behind. Also compared: the attribute
// names and modes, how reads regenerate content (seq_file), and io_stat after a write past the end.
//
// The kernel's zram0 is used only while it is uninitialised and not swap, mounted or held; it is
// reset afterwards and its algorithm and mem_limit are restored (in a finally). Parameters set on
// it with algorithm_params cannot be read back: the final reset drops them, as any reset would.
import t, { type Test } from 'tap'
import {
  chmodSync, closeSync, constants, existsSync, linkSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, renameSync, rmdirSync,
  statSync, symlinkSync, unlinkSync, writeSync,
} from 'node:fs'
import { join } from 'node:path'
import { gunzipSync } from 'node:zlib'
import { parseHotRemove } from '../../src/sysfs/device-parse'
import { canRunE2E, startDaemon } from './daemon'
import { INIT_DISKSIZE, ORACLE_ROWS, type OracleRow, type Outcome } from './kernel-oracle-rows'
import { readText } from './util'

const KERNEL_ZRAM0 = '/sys/block/zram0'

/** One side of the comparison: the kernel's /sys or the mount's sys/, and its zram0 block file. */
interface Side {
  name: 'kernel' | 'zramfuse'
  sys: string
  blockFile: string
  /** what reset selects: a build option of the kernel (CONFIG_ZRAM_DEF_COMP), lz4 for us */
  defaultAlgorithm: string
}

/** zram attributes mainline 6.18 adds only with these options (the running kernel may lack them). */
const CONFIG_GATED: Record<string, readonly string[]> = {
  CONFIG_ZRAM_WRITEBACK: ['bd_stat', 'backing_dev', 'writeback', 'writeback_limit', 'writeback_limit_enable'],
  CONFIG_ZRAM_MULTI_COMP: ['recomp_algorithm', 'recompress'],
  // CONFIG_ZRAM_WRITEBACK, in mainline after 6.18 (the writeback batching and compressed writeback series).
  after_6_18: ['writeback_batch_size', 'compressed_writeback'],
}

/** Why the kernel's zram0 cannot be the oracle now, or null. */
function kernelSkipReason(): string | null {
  if (!existsSync(KERNEL_ZRAM0)) return 'no kernel zram here (/sys/block/zram0 is absent; modprobe zram)'
  if (readText(`${KERNEL_ZRAM0}/initstate`)?.trim() !== '0') return 'the kernel zram0 is initialised: someone uses it, left alone'
  if ((readText('/proc/swaps') ?? '').split('\n').some((l) => l.startsWith('/dev/zram0 '))) return '/dev/zram0 is swap: left alone'
  if ((readText('/proc/self/mounts') ?? '').split('\n').some((l) => l.startsWith('/dev/zram0 '))) return '/dev/zram0 is mounted: left alone'
  if (existsSync(`${KERNEL_ZRAM0}/holders`) && readdirSync(`${KERNEL_ZRAM0}/holders`).length > 0) return '/dev/zram0 is held: left alone'
  if (!/(^|[\s[])lz4([\s\]]|$)/.test(readText(`${KERNEL_ZRAM0}/comp_algorithm`) ?? '')) return 'the kernel zram has no lz4, which the rows select'
  return null
}

/** The kernel's config options that are on (=y or =m), or null when /proc/config.gz is absent. */
function kernelConfig(): Set<string> | null {
  try {
    const text = gunzipSync(readFileSync('/proc/config.gz')).toString('latin1')
    return new Set(text.split('\n').filter((l) => /^CONFIG_\w+=[ym]$/.test(l)).map((l) => l.slice(0, l.indexOf('='))))
  } catch {
    return null
  }
}

function errnoName(err: unknown): string {
  return String((err as NodeJS.ErrnoException).code ?? err)
}

/** One write(2) of exact bytes on a fresh O_WRONLY descriptor: `ok <count>` or the errno's name. */
function writeBytes(path: string, input: string): Outcome {
  let fd: number
  try {
    fd = openSync(path, constants.O_WRONLY)
  } catch (err) {
    return errnoName(err)
  }
  try {
    return `ok ${writeSync(fd, Buffer.from(input, 'latin1'))}`
  } catch (err) {
    return errnoName(err)
  } finally {
    closeSync(fd)
  }
}

function must(side: Side, attr: string, input: string): void {
  const r = writeBytes(join(side.sys, attr), input)
  if (!r.startsWith('ok')) throw new Error(`${side.name}: writing ${JSON.stringify(input)} to ${attr}: ${r}`)
}

/** Bring zram0 to a row's starting state: reset, no limit, lz4, and disksize for 'init'. */
function prepare(side: Side, state: OracleRow['state']): void {
  must(side, 'block/zram0/reset', '1')
  must(side, 'block/zram0/mem_limit', '0')
  must(side, 'block/zram0/comp_algorithm', 'lz4')
  if (state === 'init') must(side, 'block/zram0/disksize', INIT_DISKSIZE)
}

interface View {
  disksize: string
  initstate: string
  memLimit: string
  algorithm: string
}

/** What a write may have changed, read back through the same files on both sides. */
function view(side: Side): View {
  const read = (name: string): string => readFileSync(join(side.sys, 'block/zram0', name), 'latin1')
  return {
    disksize: read('disksize'),
    initstate: read('initstate'),
    memLimit: read('mm_stat').trim().split(/\s+/)[3] ?? '?',
    algorithm: selectedAlgorithm(read('comp_algorithm')),
  }
}

function selectedAlgorithm(text: string): string {
  return /\[([^\]]*)\]/.exec(text)?.[1] ?? '(none selected)'
}

/** Both views, with "each side's default algorithm" as such: the defaults differ by build, not by parsing. */
function views(kernel: Side, ours: Side): { kernel: View; ours: View } {
  const k = view(kernel)
  const o = view(ours)
  if (k.algorithm === kernel.defaultAlgorithm && o.algorithm === ours.defaultAlgorithm) {
    k.algorithm = o.algorithm = '(the default)'
  }
  return { kernel: k, ours: o }
}

function defaultAlgorithm(sys: string): string {
  const r = writeBytes(join(sys, 'block/zram0/reset'), '1')
  if (!r.startsWith('ok')) throw new Error(`reset ${sys}: ${r}`)
  return selectedAlgorithm(readFileSync(join(sys, 'block/zram0/comp_algorithm'), 'latin1'))
}

/** Device ids a hot_remove input could name: ours, and the first digit run as a careless parser would read it. */
function idsNamedBy(input: string): number[] {
  const ids: number[] = []
  try {
    ids.push(parseHotRemove(input))
  } catch {
    // not an id for us
  }
  const run = /\d+/.exec(input)
  if (run) ids.push(Number(run[0]))
  return ids
}

function label(row: OracleRow): string {
  return `${row.attr} <- ${JSON.stringify(row.input.length > 40 ? `${row.input.slice(0, 12)}...(${row.input.length} bytes)` : row.input)} [${row.state}]`
}

async function compareRows(t: Test, kernel: Side, ours: Side): Promise<void> {
  const config = kernelConfig()
  const skipped = new Map<string, number>()
  const skip = (why: string): void => {
    skipped.set(why, (skipped.get(why) ?? 0) + 1)
  }
  let compared = 0
  for (const row of ORACLE_ROWS) {
    const name = label(row)
    const onKernel = existsSync(join(kernel.sys, row.attr))
    const onOurs = existsSync(join(ours.sys, row.attr))
    if (!onKernel && !onOurs) {
      t.fail(`${name}: neither side has ${row.attr} (a typo in the table?)`)
      continue
    }
    if (!onOurs) {
      skip(`${row.attr}: the kernel has it, zramfuse not yet`)
      continue
    }
    if (!onKernel) {
      skip(`${row.attr}: this kernel lacks it (a config option): nothing to compare with`)
      continue
    }
    if (row.kernelConfig !== undefined && !config?.has(row.kernelConfig)) {
      skip(`${row.attr}: rows that need ${row.kernelConfig}, which this kernel ${config ? 'lacks' : 'may lack (no /proc/config.gz)'}`)
      continue
    }
    if (row.attr.endsWith('/hot_remove')) {
      const live = idsNamedBy(row.input).filter((id) =>
        existsSync(join(kernel.sys, `block/zram${id}`)) || existsSync(join(ours.sys, `block/zram${id}`)))
      if (live.length > 0) {
        t.fail(`${name}: refused, it could remove the existing zram${live[0]}: pick an id no device has`)
        continue
      }
    }
    prepare(kernel, row.state)
    prepare(ours, row.state)
    const k = writeBytes(join(kernel.sys, row.attr), row.input)
    const o = writeBytes(join(ours.sys, row.attr), row.input)
    const v = views(kernel, ours)
    const differs = row.differs
    if (differs?.ours !== undefined) {
      t.equal(o, differs.ours, `${name}: zramfuse answers ${differs.ours} on purpose (${differs.why})`)
      t.not(k, o, `${name}: the kernel still answers otherwise (${k}); if not, drop the note in docs/attributes.md`)
    } else {
      t.equal(o, k, `${name}: ${row.why}`)
      if (differs?.stateAfter) {
        t.notSame(v.ours, v.kernel, `${name}: a different state after, on purpose (${differs.why}); if not, drop the note in docs/attributes.md`)
      } else {
        t.same(v.ours, v.kernel, `${name}: same state after`)
      }
    }
    compared++
  }
  t.comment(`${compared} rows compared with the kernel`)
  for (const [why, n] of skipped) t.skip(`${n} row(s) skipped: ${why}`, () => {})
}

function compareNames(t: Test, kernel: Side, ours: Side): void {
  const kernelNames = readdirSync(join(kernel.sys, 'block/zram0'))
  // What the block layer gives every disk: the names of another disk.
  const otherDisk = readdirSync('/sys/block').find((n) => !n.startsWith('zram'))
  const generic = new Set(otherDisk ? readdirSync(join('/sys/block', otherDisk)) : ['size', 'stat'])
  const kernelZram = kernelNames.filter((n) => !generic.has(n)).sort()
  const oursNames = readdirSync(join(ours.sys, 'block/zram0')).filter((n) => n !== 'zramfuse')
  const gated = new Set(Object.values(CONFIG_GATED).flat())
  for (const n of oursNames) {
    if (generic.has(n)) t.ok(kernelNames.includes(n), `block-layer attribute ${n} exists on the kernel's zram0`)
    else t.ok(kernelZram.includes(n) || gated.has(n), `${n} is a zram attribute of the kernel (or of one of its config options)`)
  }
  t.notOk(oursNames.includes('max_comp_streams'), 'no max_comp_streams (6.18 has none)')
  t.comment(`the kernel's zram attributes here: ${kernelZram.join(' ')}`)
  t.comment(`of those, not in zramfuse yet: ${kernelZram.filter((n) => !oursNames.includes(n)).join(' ') || '(none)'}`)
  const mode = (p: string): string => (statSync(p).mode & 0o777).toString(8)
  for (const n of oursNames.filter((x) => kernelNames.includes(x))) {
    t.equal(mode(join(ours.sys, 'block/zram0', n)), mode(join(kernel.sys, 'block/zram0', n)), `mode of ${n}`)
  }
  for (const n of ['hot_add', 'hot_remove']) {
    t.equal(mode(join(ours.sys, 'class/zram-control', n)), mode(join(kernel.sys, 'class/zram-control', n)), `mode of ${n}`)
  }
}

/** pread at chosen offsets around a store: which reads show the new content (seq_file's rules). */
function readSequence(side: Side): string[] {
  prepare(side, 'uninit')
  const path = join(side.sys, 'block/zram0/disksize')
  const fd = openSync(path, constants.O_RDONLY)
  const pread = (len: number, pos: number): string => {
    const buf = Buffer.alloc(len)
    return buf.toString('latin1', 0, readSync(fd, buf, 0, len, pos))
  }
  try {
    return [
      pread(1, 0), // "0"
      writeBytes(path, INIT_DISKSIZE),
      pread(100, 1), // on from where the last read ended: the old content
      pread(100, 3), // elsewhere: shown again
      pread(100, 0),
      pread(100, 8), // on from the end: nothing
    ]
  } finally {
    closeSync(fd)
  }
}

/** What a namespace operation answers: 'ok' or the errno's name. */
function attempt(fn: () => void): Outcome {
  try {
    fn()
    return 'ok'
  } catch (err) {
    return errnoName(err)
  }
}

/** Read a whole attribute: its text, or the errno's name. */
function readOutcome(path: string): Outcome {
  try {
    return readFileSync(path, 'latin1')
  } catch (err) {
    return errnoName(err)
  }
}

/**
 * Names made, removed, renamed or linked, and modes changed, in zram0's directory and in
 * zram-control. Every chmod is undone before this returns: on the kernel's side it would outlive
 * the test.
 */
function namespaceOps(side: Side): Record<string, Outcome> {
  const dir = join(side.sys, 'block/zram0')
  const ctl = join(side.sys, 'class/zram-control')
  const disksize = join(dir, 'disksize')
  const out: Record<string, Outcome> = {
    'create (touch)': attempt(() => closeSync(openSync(join(dir, 'zf-new'), constants.O_WRONLY | constants.O_CREAT, 0o644))),
    'create O_EXCL': attempt(() => closeSync(openSync(join(dir, 'zf-new'), constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL, 0o644))),
    mkdir: attempt(() => mkdirSync(join(dir, 'zf-new'))),
    'rm of an attribute': attempt(() => unlinkSync(disksize)),
    'rmdir of zram-control': attempt(() => rmdirSync(ctl)),
    mv: attempt(() => renameSync(disksize, join(dir, 'zf-new'))),
    'ln -s': attempt(() => symlinkSync('disksize', join(dir, 'zf-new'))),
    ln: attempt(() => linkSync(disksize, join(dir, 'zf-new'))),
  }
  const mode = statSync(disksize).mode & 0o7777
  try {
    out['chmod 000'] = attempt(() => chmodSync(disksize, 0))
    out['mode after chmod 000'] = (statSync(disksize).mode & 0o7777).toString(8)
    out['read after chmod 000 (root)'] = readOutcome(disksize)
  } finally {
    chmodSync(disksize, mode)
  }
  const mmStat = join(dir, 'mm_stat')
  const mmMode = statSync(mmStat).mode & 0o7777
  try {
    out['write to mm_stat made 0666'] = attempt(() => chmodSync(mmStat, 0o666))
    out['write to mm_stat made 0666'] += ` ${writeBytes(mmStat, '1')}`
  } finally {
    chmodSync(mmStat, mmMode)
  }
  out['mode restored'] = (statSync(disksize).mode & 0o7777).toString(8)
  return out
}

/** A write past the end of zram0's block file: the errno, then io_stat. */
function pastTheEnd(side: Side): [Outcome, string] {
  prepare(side, 'init')
  const fd = openSync(side.blockFile, constants.O_WRONLY)
  let outcome: Outcome
  try {
    outcome = `ok ${writeSync(fd, Buffer.alloc(4096, 0x5a), 0, 4096, 4 << 20)}`
  } catch (err) {
    outcome = errnoName(err)
  } finally {
    closeSync(fd)
  }
  return [outcome, readFileSync(join(side.sys, 'block/zram0/io_stat'), 'latin1')]
}

if (canRunE2E(t)) {
  const why = kernelSkipReason()
  if (why !== null) {
    t.skip(`kernel oracle: ${why}`, () => {})
  } else {
    for (const transport of ['native', 'fuse-native'] as const) t.test(`zramfuse answers every attribute write as the kernel does (${transport} transport)`, async (t) => {
      const d = await startDaemon({ disksize: null, test: t, transport })
      const savedAlgorithm = selectedAlgorithm(readText(`${KERNEL_ZRAM0}/comp_algorithm`) ?? '')
      const savedMemLimit = (readText(`${KERNEL_ZRAM0}/mm_stat`) ?? '').trim().split(/\s+/)[3] ?? '0'
      t.comment(`kernel ${readText('/proc/sys/kernel/osrelease')?.trim() ?? '?'}; its zram0: ${savedAlgorithm}, mem_limit ${savedMemLimit}`)
      try {
        const oursSys = join(d.mount, 'sys')
        const kernel: Side = { name: 'kernel', sys: '/sys', blockFile: '/dev/zram0', defaultAlgorithm: defaultAlgorithm('/sys') }
        const ours: Side = { name: 'zramfuse', sys: oursSys, blockFile: d.blockFile, defaultAlgorithm: defaultAlgorithm(oursSys) }
        await t.test('attribute names and modes', async (t) => compareNames(t, kernel, ours))
        await t.test('the table of inputs', async (t) => compareRows(t, kernel, ours))
        await t.test('reads show again as seq_file does', async (t) => {
          const k = readSequence(kernel)
          t.same(readSequence(ours), k)
          t.same(k, ['0', 'ok 2', '\n', '4304\n', '4194304\n', ''], 'the kernel behaves as the comment in zram-fs.ts says')
        })
        await t.test('namespace operations answered as sysfs answers them', async (t) => {
          const k = namespaceOps(kernel)
          const o = namespaceOps(ours)
          t.same(o, k, 'the same answers, operation by operation')
          t.equal(k['create (touch)'], 'EACCES', 'creating a file: EACCES, as the issue measured')
          t.equal(k.mkdir, 'EPERM')
          t.equal(k['write to mm_stat made 0666'], 'ok EIO', 'a store-less attribute made writable: EIO at write')
          // dev/ has the same answers as sys/ (the kernel's /dev is devtmpfs, not comparable).
          const dev = join(d.mount, 'dev')
          t.equal(attempt(() => closeSync(openSync(join(dev, 'zf-new'), constants.O_WRONLY | constants.O_CREAT, 0o600))), 'EACCES', 'create under dev/')
          t.equal(attempt(() => mkdirSync(join(dev, 'zf-new'))), 'EPERM', 'mkdir under dev/')
          t.equal(attempt(() => unlinkSync(d.blockFile)), 'EPERM', 'rm of the block file')
          t.equal(attempt(() => renameSync(d.blockFile, join(dev, 'zram9'))), 'EPERM', 'mv of the block file')
        })
        await t.test('a write past the end: ENOSPC, and io_stat counts nothing', async (t) => {
          const [ko, kio] = pastTheEnd(kernel)
          const [oo, oio] = pastTheEnd(ours)
          t.equal(oo, ko)
          t.equal(ko, 'ENOSPC')
          t.equal(oio, kio, `io_stat ${JSON.stringify(kio)}`)
        })
      } finally {
        // Restore the kernel's zram0 as we found it: uninitialised, its algorithm and mem_limit.
        const restore = (attr: string, value: string): void => {
          const r = writeBytes(join(KERNEL_ZRAM0, attr), value)
          if (!r.startsWith('ok')) t.fail(`restoring the kernel's zram0 ${attr} to ${value}: ${r}`)
        }
        restore('reset', '1')
        if (savedAlgorithm !== '(none selected)') restore('comp_algorithm', savedAlgorithm)
        restore('mem_limit', savedMemLimit)
      }
    })
  }
}
