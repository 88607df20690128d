// zram-generator configs: the INI reader, the size-expression evaluator, the interpretation of
// every fixture (defaults, skips, errors naming file:line:key, warnings), and applying them to
// in-memory devices through the attribute table (no mount, no root needed).
import t from 'tap'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { DeviceSet } from '../../src/device/device-set'
import { zramAttributes } from '../../src/sysfs/zram-attributes'
import { applyConfig, deviceWrites } from '../../daemon/config/apply'
import { ConfigError, parseIni } from '../../daemon/config/ini'
import { evalSizeExpr, parseSizeExpr } from '../../daemon/config/size-expr'
import { loadConfig, parseAlgorithms, parseConfig, type ZramConfig } from '../../daemon/config/zram-generator'
import { silentLog } from '../../src/log'

const FIXTURES = join(__dirname, '..', 'e2e', 'fixtures', 'zram-generator')
const MiB = 1024 * 1024
/** A fixed host for every expectation below: 8000 MiB of RAM. */
const HOST = { memTotalMb: 8000, runSetCommand: (cmd: string): string => (cmd === 'echo 2048' ? '2048\n' : '') }

function fixture(name: string, replace: Record<string, string> = {}): { file: string; text: string } {
  const file = join(FIXTURES, name)
  let text = readFileSync(file, 'utf8')
  for (const [from, to] of Object.entries(replace)) text = text.split(from).join(to)
  return { file, text }
}

function configError(fn: () => unknown): ConfigError {
  try {
    fn()
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error('expected a ConfigError')
}

async function rejectsConfig(p: Promise<unknown>): Promise<ConfigError> {
  try {
    await p
  } catch (err) {
    if (err instanceof ConfigError) return err
    throw err
  }
  throw new Error('expected a ConfigError')
}

t.test('INI: sections, comments, quotes, line numbers', async (t) => {
  const s = parseIni('# c\n; c\ntop = 1\n\n[zram0]\n  zram-size =  ram / 2  \nopt = "a b"\n[zram1]\nk=v=w\n', 'f.conf')
  t.same(s.map((x) => x.name), [null, 'zram0', 'zram1'])
  t.same(s[0]?.entries, [{ key: 'top', value: '1', line: 3 }])
  t.same(s[1]?.entries, [{ key: 'zram-size', value: 'ram / 2', line: 6 }, { key: 'opt', value: 'a b', line: 7 }])
  t.same(s[2]?.entries, [{ key: 'k', value: 'v=w', line: 9 }])
  const e = configError(() => parseIni('[zram0]\nno equals sign\n', 'x.conf'))
  t.equal(e.message, 'x.conf:2: expected "key = value", got "no equals sign"')
  t.match(configError(() => parseIni('[zram0\n', 'x.conf')).message, /^x\.conf:1: malformed section header/)
})

t.test('size expressions evaluate as zram-generator (fasteval) does', async (t) => {
  const ev = (s: string, ram = 8000): number => evalSizeExpr(parseSizeExpr(s), { ram })
  t.equal(ev('min(ram / 2, 4096)'), 4000)
  t.equal(ev('min(ram / 2, 4096)', 16000), 4096)
  t.equal(ev('min(min(ram, 4096) + max(ram - 4096, 0) / 2, 32 * 1024)'), 4096 + 1952)
  t.equal(ev('1 + 2 * 3'), 7)
  t.equal(ev('(1 + 2) * 3'), 9)
  t.equal(ev('[1 + 2] * 3'), 9)
  t.equal(ev('2 ^ 3 ^ 2'), 512, '^ is right-associative')
  t.equal(ev('-2 ^ 2'), -4, 'unary minus binds looser than ^')
  t.equal(ev('10 % 4'), 2)
  t.equal(ev('ram - 1000 - 1000'), 6000, '- is left-associative')
  t.equal(ev('1K'), 1000)
  t.equal(ev('2M / 1k'), 2000)
  t.equal(ev('int(7.9) + floor(1.5) + ceil(1.1) + round(2.5) + abs(-1)'), 7 + 1 + 2 + 3 + 1)
  t.equal(ev('round(512, 700)'), 512)
  t.equal(ev('log(100) + log(2, 8)'), 5)
  t.equal(ev('max(1, 5, 3)'), 5)
  t.equal(ev('(ram > 4000) && 1024 || 512'), 1024)
  t.equal(ev('(ram > 9000) && 1024 || 512'), 512)
  t.equal(ev('!0 + !5'), 1)
  t.ok(Math.abs(ev('pi() * e()') - Math.PI * Math.E) < 1e-12)
  t.equal(ev('1.5e3'), 1500)
  for (const bad of ['ram / / 2', 'min(ram', 'foo(1)', 'min()', 'e(1)', '1 +', 'ram ram', '']) {
    t.throws(() => parseSizeExpr(bad), { name: 'SizeExprError' }, `syntax error: ${JSON.stringify(bad)}`)
  }
  t.throws(() => evalSizeExpr(parseSizeExpr('mem / 2'), { ram: 1 }), /undefined variable mem/)
})

t.test('compression-algorithm lists', async (t) => {
  t.same(parseAlgorithms('lz4'), { algorithms: [{ name: 'lz4', params: '' }], recompressParams: '' })
  t.same(parseAlgorithms('lzo-rle zstd(level=3) (type=idle)'), {
    algorithms: [{ name: 'lzo-rle', params: '' }, { name: 'zstd', params: 'level=3' }], recompressParams: 'type=idle',
  })
  t.same(parseAlgorithms('zstd(dict=/etc/d,level=9)'), { algorithms: [{ name: 'zstd', params: 'dict=/etc/d level=9' }], recompressParams: '' })
})

t.test("Fedora's default: one swap device of min(ram, 8192) MiB", async (t) => {
  const { file, text } = fixture('fedora-default.conf')
  const cfg = parseConfig(text, file, HOST)
  t.equal(cfg.devices.length, 1)
  const d = cfg.devices[0]
  t.match(d, { name: 'zram0', enabled: true, disksizeBytes: 8000 * MiB, memLimitBytes: 0, fsType: 'swap', swapPriority: 100, options: 'discard', algorithms: [] })
  t.equal(parseConfig(text, file, { memTotalMb: 24000 }).devices[0]?.disksizeBytes, 8192 * MiB, 'capped at 8 GiB')
  t.same(cfg.warnings, [])
  // zram-generator's writes: no algorithm given, so only mem_limit then disksize
  t.same(deviceWrites(d as ZramConfig['devices'][number]).map((w) => `${w.attr}=${w.text}`), ['mem_limit=0', `disksize=${8000 * MiB}`])
})

t.test('zstd + writeback', async (t) => {
  const { file, text } = fixture('zstd-writeback.conf')
  const d = parseConfig(text, file, HOST).devices[0]
  t.match(d, { disksizeBytes: 2000 * MiB, memLimitBytes: 1000 * MiB, swapPriority: 50, writebackDevice: '/var/lib/zramfuse/zram0-writeback.img',
    algorithms: [{ name: 'zstd', params: 'level=3' }] })
  t.same(deviceWrites(d as ZramConfig['devices'][number]).map((w) => `${w.attr}=${w.text}`), [
    'comp_algorithm=zstd', 'algorithm_params=priority=0 level=3', 'backing_dev=/var/lib/zramfuse/zram0-writeback.img',
    `mem_limit=${1000 * MiB}`, `disksize=${2000 * MiB}`,
  ], "systemd-zram-setup's order")
})

t.test('two devices: swap and an ext4 scratch file system', async (t) => {
  const { file, text } = fixture('two-devices.conf')
  const cfg = parseConfig(text, file, HOST)
  t.match(cfg.devices, [
    { name: 'zram0', disksizeBytes: 64 * MiB, fsType: 'swap', swapPriority: 90, mountPoint: null, algorithms: [{ name: 'lz4' }] },
    { name: 'zram1', disksizeBytes: 96 * MiB, fsType: 'ext4', mountPoint: '/run/zramfuse-test/scratch', options: 'discard,noatime', algorithms: [{ name: 'zstd' }] },
  ])
  // mount-point alone means ext2, as in zram-generator
  t.equal(parseConfig('[zram3]\nmount-point = /a/./b/\n', 'x', HOST).devices[0]?.fsType, 'ext2')
  t.equal(parseConfig('[zram3]\nmount-point = /a/./b/\n', 'x', HOST).devices[0]?.mountPoint, '/a/b')
})

t.test('host-memory-limit, zero sizes, deprecated keys, set!', async (t) => {
  const { file, text } = fixture('host-memory-limit.conf')
  t.match(parseConfig(text, file, HOST).devices[0], { enabled: false, skipped: /more than host-memory-limit=2048/ })
  t.match(parseConfig(text, file, { memTotalMb: 2000 }).devices[0], { enabled: true, disksizeBytes: 2000 * MiB })
  t.match(parseConfig('[zram0]\nhost-memory-limit = 2048\nhost-memory-limit = none\n', 'x', HOST).devices[0], { enabled: true }, 'none lifts an earlier limit')
  t.match(parseConfig('[zram0]\nzram-size = 0\n', 'x', HOST).devices[0], { enabled: false, skipped: 'zram-size is 0' })
  t.match(parseConfig('[zram0]\nzram-fraction = 0.25\nzram-size = 10\n', 'x', HOST).devices[0], { disksizeBytes: 2000 * MiB }, 'zram-fraction overrides zram-size')
  t.match(parseConfig('[zram0]\nmax-zram-size = 100\n', 'x', HOST).devices[0], { disksizeBytes: 100 * MiB })
  t.match(parseConfig('set!half = echo 2048\n[zram0]\nzram-size = half / 2\n', 'x', HOST).devices[0], { disksizeBytes: 1024 * MiB })
  t.match(parseConfig('[zram0]\nzram-size = ram / 3\n', 'x', HOST).devices[0], { disksizeBytes: Math.trunc((8000 / 3) * MiB) }, 'fractional MiB truncated to bytes')
  t.match(parseConfig('[zram0]\n[zram0]\nswap-priority = 5\n[zram0]\nswap-priority = 7\n', 'x', HOST).devices[0], { swapPriority: 7 }, 'repeated sections merge, the later key wins')
})

t.test('warnings for unknown keys and sections, not errors', async (t) => {
  const { file, text } = fixture('warnings.conf')
  const cfg = parseConfig(text, file, HOST)
  t.equal(cfg.devices.length, 1)
  t.same(cfg.warnings, [
    `${file}:2: invalid outside-of-section key size, ignoring`,
    `${file}:6: [zram0] unknown key zram-sise, ignoring`,
    `${file}:8: ignoring section [swap]`,
  ])
})

t.test('bad values: an error naming the file, the line and the key', async (t) => {
  const cases: [string, number, string, RegExp][] = [
    ['broken-size.conf', 3, 'zram-size', /unexpected "\/ 2" at column 7/],
    ['broken-priority.conf', 3, 'swap-priority', /swap priority 40000 out of range/],
    ['broken-mount-point.conf', 3, 'mount-point', /"var\/compressed" is not absolute/],
  ]
  for (const [name, line, key, why] of cases) {
    const { file, text } = fixture(name)
    const e = configError(() => parseConfig(text, file, HOST))
    t.equal(e.file, file, `${name}: file`)
    t.equal(e.line, line, `${name}: line`)
    t.equal(e.key, key, `${name}: key`)
    t.match(e.message, why, `${name}: ${e.message}`)
    t.ok(e.message.startsWith(`${file}:${line}: ${key}: `), 'file:line: key: reason')
  }
  t.match(configError(() => parseConfig('[zram0]\nzram-size = ram - 9000\n', 'x', HOST)).message, /^x:2: zram-size: zram0: zram-size=-1000 < 0/)
  t.match(configError(() => parseConfig('[zram0]\nzram-size = 1 / 0\n', 'x', HOST)).message, /^x:2: zram-size: evaluates to Infinity/)
  t.match(configError(() => parseConfig('[zram0]\nwriteback-device = /a/../b\n', 'x', HOST)).message, /is not normalized/)
  t.match(configError(() => parseConfig('[zram0]\nhost-memory-limit = lots\n', 'x', HOST)).message, /^x:2: host-memory-limit: /)
  t.match(configError(() => parseConfig('[zram0]\nfs-type = swap\nmount-point = /x\n', 'x', HOST)).message, /^x:3: mount-point: .*fs-type=swap/)
  t.match(configError(() => parseConfig('[zram300]\n', 'x', HOST)).message, /zram0\.\.zram255/)
  t.match(configError(() => loadConfig('/nonexistent/zram.conf', HOST)).message, /^\/nonexistent\/zram\.conf: cannot read/)
})

t.test('applying: devices hot-added, attributes written through the table', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zramfuse-config-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { file, text } = fixture('zstd-writeback.conf', { '/var/lib/zramfuse': dir })
  const set = new DeviceSet()
  set.add()
  t.teardown(() => set.close())
  await applyConfig(set, parseConfig(text, file, HOST), silentLog)
  const dev = set.get(0)
  t.equal(dev?.algorithm, 'zstd')
  t.equal(dev?.disksize, 2000 * MiB)
  t.equal(dev?.stats().memLimit, 1000 * MiB)
  t.equal(dev?.lower.backingPath, join(dir, 'zram0-writeback.img'))
  t.ok(existsSync(join(dir, 'zram0-writeback.img')), 'the lower file was created')

  const two = new DeviceSet()
  two.add()
  t.teardown(() => two.close())
  const td = fixture('two-devices.conf')
  await applyConfig(two, parseConfig(td.text, td.file, HOST), silentLog)
  t.same(two.ids(), [0, 1])
  t.equal(two.get(1)?.algorithm, 'zstd')
  t.equal(two.get(1)?.disksize, 96 * MiB)

  const gap = new DeviceSet()
  gap.add()
  t.teardown(() => gap.close())
  await applyConfig(gap, parseConfig('[zram2]\nzram-size = 16\n', 'x', HOST), silentLog)
  t.same(gap.ids(), [0, 2], 'ids in between are removed again; zram0 stays, uninitialised')
  t.equal(gap.get(0)?.initialised, false)
})

t.test('applying: a refused write names the line; files it created are removed', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zramfuse-config-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const { file, text } = fixture('broken-late-device.conf', { '/var/lib/zramfuse': dir })
  const set = new DeviceSet()
  set.add()
  t.teardown(() => set.close())
  const e = await rejectsConfig(applyConfig(set, parseConfig(text, file, HOST), silentLog))
  t.equal(e.line, 8)
  t.equal(e.key, 'compression-algorithm')
  t.match(e.message, /\[zram1\] writing "priority=0 level=3 dict=zram\.dict" to algorithm_params failed: .*\(EINVAL\)/)
  t.notOk(existsSync(join(dir, 'late-writeback.img')), "zram0's backing file, created on the way, is gone again")

  const alg = fixture('broken-algorithm.conf')
  const e2 = await rejectsConfig(applyConfig(set, parseConfig(alg.text, alg.file, HOST), silentLog))
  t.equal(e2.line, 3)
  t.match(e2.message, /writing "lzo-rle" to comp_algorithm failed: .*\(EINVAL\)/)

  const fs = await rejectsConfig(applyConfig(set, parseConfig('[zram1]\nfs-type = nosuchfs\n', 'x', HOST), silentLog))
  t.match(fs.message, /^x:2: fs-type: \[zram1\] needs mkfs\.nosuchfs, which is not installed/)
})

t.test('recompression: an error naming the key until recomp_algorithm exists in the table', async (t) => {
  const { file, text } = fixture('broken-recompression.conf')
  const set = new DeviceSet()
  set.add()
  t.teardown(() => set.close())
  const cfg = parseConfig(text, file, HOST)
  if (zramAttributes.some((a) => a.name === 'recomp_algorithm')) {
    // recompression has landed: the same config must now apply
    await applyConfig(set, cfg, silentLog)
    t.equal(set.get(0)?.algorithm, 'lz4')
    return
  }
  const e = await rejectsConfig(applyConfig(set, cfg, silentLog))
  t.equal(e.line, 4)
  t.equal(e.key, 'compression-algorithm')
  t.match(e.message, /names recompression algorithms \(zstd\).*no recomp_algorithm attribute/)
  t.equal(set.get(0)?.initialised, false, 'nothing was set up')
})

t.test('loadConfig reads a file', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'zramfuse-config-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'z.conf'), '[zram0]\nzram-size = 32\n')
  t.equal(loadConfig(join(dir, 'z.conf'), HOST).devices[0]?.disksizeBytes, 32 * MiB)
})
