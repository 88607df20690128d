// zram-generator drop-ins: `--config FILE` reads FILE.d/*.conf after FILE; FILE being one of
// zram-generator's own main files reads the drop-ins of all four directories (/usr/lib,
// /usr/local/lib, /etc, /run), masking and ordering as zram-generator does (liboverdrop). A key
// read later overrides that key only; bad drop-ins are errors naming their own file:line.
import t, { type Test } from 'tap'
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { DeviceSet } from '../../src/device/device-set'
import { silentLog } from '../../src/log'
import { applyConfig } from '../../daemon/config/apply'
import { scanDropIns } from '../../daemon/config/dropins'
import { ConfigError } from '../../daemon/config/ini'
import { loadConfig, type ZramConfig } from '../../daemon/config/zram-generator'

const MiB = 1024 * 1024
const HOST = { memTotalMb: 8000, runSetCommand: (cmd: string): string => (cmd === 'echo 300' ? '300\n' : '') }

function tree(t: Test, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'zramfuse-dropins-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const [rel, text] of Object.entries(files)) {
    mkdirSync(dirname(join(dir, rel)), { recursive: true })
    writeFileSync(join(dir, rel), text)
  }
  return dir
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

function dev(cfg: ZramConfig, id: number): ZramConfig['devices'][number] {
  const d = cfg.devices.find((x) => x.id === id)
  if (d === undefined) throw new Error(`no zram${id} in ${JSON.stringify(cfg.devices.map((x) => x.name))}`)
  return d
}

t.test('--config FILE: FILE.d/*.conf override single keys, in name order', async (t) => {
  const dir = tree(t, {
    'swap.conf': '[zram0]\nzram-size = 100\ncompression-algorithm = lz4\nswap-priority = 5\n',
    'swap.conf.d/10-size.conf': '[zram0]\nzram-size = 200\n',
    // bytewise, not numeric: "10-" < "9-", so this one is read last and wins
    'swap.conf.d/9-size.conf': '# the admin\'s\n[zram0]\nzram-size = 300\n\n[zram1]\nzram-size = 16\n',
    'swap.conf.d/.hidden.conf': '[zram0]\nzram-size = 1\n',
    'swap.conf.d/notes.txt': '[zram0]\nzram-size = 2\n',
    'swap.conf.d/a.conf.bak': '[zram0]\nzram-size = 3\n',
    'swap.conf.d/sub.conf/inner.conf': '[zram0]\nzram-size = 4\n',
  })
  const file = join(dir, 'swap.conf')
  const cfg = loadConfig(file, HOST)
  t.same(cfg.files, [file, join(dir, 'swap.conf.d/10-size.conf'), join(dir, 'swap.conf.d/9-size.conf')],
    'the main file, then *.conf by name; dotfiles, other names and directories skipped')
  const z0 = dev(cfg, 0)
  t.equal(z0.disksizeBytes, 300 * MiB, 'zram-size from the last drop-in')
  t.same(z0.places['zram-size'], { file: join(dir, 'swap.conf.d/9-size.conf'), line: 3 }, 'and it says where')
  t.equal(z0.swapPriority, 5, 'keys no drop-in sets stay as the main file has them')
  t.same(z0.places['swap-priority'], { file, line: 4 })
  t.same(z0.algorithms, [{ name: 'lz4', params: '' }])
  t.same(z0.header, { file, line: 1 }, 'the section is where it first appears')
  t.equal(dev(cfg, 1).disksizeBytes, 16 * MiB, 'a drop-in may add a device')
  t.same(cfg.warnings, [])
  t.equal(cfg.file, file)
})

t.test('a set! variable of the main file is there for the drop-ins', async (t) => {
  const dir = tree(t, {
    'z.conf': 'set!big = echo 300\n[zram0]\nzram-size = 10\n',
    'z.conf.d/50-use.conf': '[zram0]\nzram-size = big / 3\n',
  })
  t.equal(dev(loadConfig(join(dir, 'z.conf'), HOST), 0).disksizeBytes, 100 * MiB)
})

t.test('drop-ins alone are a configuration; nothing at all is an error', async (t) => {
  const dir = tree(t, { 'only.conf.d/10-a.conf': '[zram0]\nzram-size = 64\n' })
  const cfg = loadConfig(join(dir, 'only.conf'), HOST)
  t.same(cfg.files, [join(dir, 'only.conf.d/10-a.conf')], 'the missing main file is not read')
  t.equal(dev(cfg, 0).disksizeBytes, 64 * MiB)
  t.match(configError(() => loadConfig(join(dir, 'none.conf'), HOST)).message, /none\.conf: cannot read: ENOENT/)
})

t.test('bad drop-ins: the error names the drop-in, its line and the key', async (t) => {
  const dir = tree(t, {
    'z.conf': '[zram0]\nzram-size = 64\n',
    'syntax.conf.d/20-bad.conf': '[zram0]\n\nthis is not a key\n',
    'value.conf.d/20-bad.conf': '[zram0]\nswap-priority = 40000\n',
    'late.conf.d/20-bad.conf': '# evaluated only once every file is read\n[zram0]\nzram-size = ram - 9000\n',
    'apply.conf.d/20-bad.conf': '[zram0]\n\ncompression-algorithm = lzo-rle\n',
  })
  for (const name of ['syntax', 'value', 'late', 'apply']) writeFileSync(join(dir, `${name}.conf`), '[zram0]\nzram-size = 64\n')
  const at = (name: string): string => join(dir, `${name}.conf.d/20-bad.conf`)

  const syntax = configError(() => loadConfig(join(dir, 'syntax.conf'), HOST))
  t.equal(syntax.file, at('syntax'))
  t.equal(syntax.line, 3)
  t.match(syntax.message, `${at('syntax')}:3: expected "key = value"`)

  const value = configError(() => loadConfig(join(dir, 'value.conf'), HOST))
  t.ok(value.message.startsWith(`${at('value')}:2: swap-priority: swap priority 40000 out of range`), value.message)

  const late = configError(() => loadConfig(join(dir, 'late.conf'), HOST))
  t.ok(late.message.startsWith(`${at('late')}:3: zram-size: zram0: zram-size=-1000 < 0`), late.message)

  const set = new DeviceSet()
  set.add()
  t.teardown(() => set.close())
  let applied: unknown = null
  try {
    await applyConfig(set, loadConfig(join(dir, 'apply.conf'), HOST), silentLog)
  } catch (err) {
    applied = err
  }
  t.ok(applied instanceof ConfigError, 'a refused attribute write is a ConfigError')
  t.match((applied as Error).message, `${at('apply')}:3: compression-algorithm: [zram0] writing "lzo-rle" to comp_algorithm failed`)
})

t.test("the system's zram-generator.conf: all four conf.d, masking and order as zram-generator", async (t) => {
  const root = tree(t, {
    'usr/lib/systemd/zram-generator.conf': '[zram0]\nzram-size = 111\n',
    'etc/systemd/zram-generator.conf': '[zram0]\nzram-size = 100\noptions =\n',
    'usr/lib/systemd/zram-generator.conf.d/10-vendor.conf': '[zram0]\nswap-priority = 10\n[zram1]\nzram-size = 50\n',
    'usr/lib/systemd/zram-generator.conf.d/20-vendor.conf': '[zram0]\ncompression-algorithm = zstd\n',
    'usr/local/lib/systemd/zram-generator.conf.d/25-local.conf': '[zram0]\nswap-priority = 7\n',
    // the same name in /etc replaces the vendor's file (here: with nothing)
    'etc/systemd/zram-generator.conf.d/10-vendor.conf': '# masked\n',
    'etc/systemd/zram-generator.conf.d/30-admin.conf': '[zram0]\nzram-size = 400\n',
    // a drop-in named like the main file is just another drop-in
    'etc/systemd/zram-generator.conf.d/zram-generator.conf': '[zram2]\nzram-size = 8\n',
  })
  mkdirSync(join(root, 'run/systemd/zram-generator.conf.d'), { recursive: true })
  symlinkSync('/dev/null', join(root, 'run/systemd/zram-generator.conf.d/20-vendor.conf'))
  symlinkSync(join(root, 'usr/lib/systemd/zram-generator.conf.d/20-vendor.conf'), join(root, 'run/systemd/zram-generator.conf.d/40-link.conf'))

  const main = join(root, 'etc/systemd/zram-generator.conf')
  const cfg = loadConfig(main, { ...HOST, root })
  t.same(cfg.files, [
    main,
    join(root, 'etc/systemd/zram-generator.conf.d/10-vendor.conf'),
    join(root, 'usr/local/lib/systemd/zram-generator.conf.d/25-local.conf'),
    join(root, 'etc/systemd/zram-generator.conf.d/30-admin.conf'),
    join(root, 'etc/systemd/zram-generator.conf.d/zram-generator.conf'),
  ], 'one main file, then the drop-ins of every directory by name; /etc masks /usr/lib, /dev/null in /run removes')
  const z0 = dev(cfg, 0)
  t.equal(z0.disksizeBytes, 400 * MiB)
  t.equal(z0.swapPriority, 7)
  t.same(z0.algorithms, [], 'the /dev/null-masked drop-in is not read')
  t.equal(z0.options, '')
  t.same(cfg.devices.map((d) => d.name), ['zram0', 'zram2'], 'zram1 came from the masked vendor file')
  t.equal(cfg.warnings.length, 1)
  t.match(cfg.warnings[0], /40-link\.conf: a symlink .*zram-generator reads no symlinked drop-in/)

  // naming a main file that zram-generator would not read: read it, but say so
  const vendor = loadConfig(join(root, 'usr/lib/systemd/zram-generator.conf'), { ...HOST, root })
  t.equal(dev(vendor, 0).disksizeBytes, 400 * MiB, 'the same drop-ins')
  t.equal(vendor.files[0], join(root, 'usr/lib/systemd/zram-generator.conf'))
  t.ok(vendor.warnings.some((w) => w.startsWith(`${main} exists: zram-generator reads it instead of ${join(root, 'usr/lib/systemd/zram-generator.conf')}`)),
    vendor.warnings.join('\n'))
})

t.test('scanDropIns: a later directory replaces a name, /dev/null removes it, a later file brings it back', async (t) => {
  const root = tree(t, {
    'a/10.conf': '',
    'a/20.conf': '',
    'c/20.conf': '',
  })
  mkdirSync(join(root, 'b'))
  symlinkSync('/dev/null', join(root, 'b/10.conf'))
  symlinkSync('/dev/null', join(root, 'b/20.conf'))
  t.same(scanDropIns(['a', 'b', 'c', 'missing'].map((d) => join(root, d))), [join(root, 'c/20.conf')])
  t.same(scanDropIns(['c', 'b'].map((d) => join(root, d))), [], 'removed by the last directory')
})
