/**
 * zram-generator.conf, read as zram-generator (systemd/zram-generator, src/config.rs) reads it:
 * one `[zramN]` section per device, its keys, defaults and checks; `set!var = command` at the top
 * level; sizes evaluated against this host's MemTotal. The main file and its drop-ins (dropins.ts
 * says which, in which order) are read in turn into the same devices: a key read later overrides
 * it, section by section, key by key, and sizes are evaluated once all are read. Every bad value is
 * a ConfigError naming the file, line and key (zram-generator stops at the first one too); unknown
 * keys and sections are warnings. Nothing here touches a device: see apply.ts.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { isAbsolute, normalize } from 'node:path'
import { configSources } from './dropins'
import { type ConfigPlace, ConfigError, type IniEntry, parseIni } from './ini'
import { evalSizeExpr, parseSizeExpr, type SizeExpr } from './size-expr'

/** One algorithm of `compression-algorithm`: the first is the primary, later ones recompress. */
export interface AlgorithmSpec {
  name: string
  /** `level=3 dict=/x` (zram-generator turns the commas inside the parentheses into spaces) */
  params: string
}

export interface DeviceConfig {
  id: number
  /** `zram0` */
  name: string
  /** false when host-memory-limit is below MemTotal or the size came out 0 (then `skipped` says why) */
  enabled: boolean
  skipped: string | null
  disksizeBytes: number
  /** zram-resident-limit -> mem_limit (0 = none) */
  memLimitBytes: number
  algorithms: AlgorithmSpec[]
  /** parameters given without an algorithm, e.g. `(type=idle)`: zram-generator writes them to `recompress` */
  recompressParams: string
  writebackDevice: string | null
  swapPriority: number
  /** `swap`, or the file system mkfs makes (ext2 when only mount-point is given, as zram-generator) */
  fsType: string
  mountPoint: string | null
  /** swapon / mount options; default `discard`; empty: none */
  options: string
  /** where each key was last set (for errors raised when the value is applied) */
  places: Record<string, ConfigPlace>
  /** the section's first header */
  header: ConfigPlace
}

export interface ZramConfig {
  /** the main file (`--config FILE`) */
  file: string
  /** every file read, in order: the main file (unless only drop-ins exist), then the drop-ins */
  files: string[]
  memTotalMb: number
  devices: DeviceConfig[]
  warnings: string[]
}

export interface ConfigHost {
  /** MemTotal in MiB, as zram-generator computes it (kB / 1024, truncated) */
  memTotalMb: number
  /** run a `set!` command with /bin/sh -c; returns its stdout (default: really run it) */
  runSetCommand?: (command: string) => string
  /** where zram-generator's /usr/lib, /etc, /run are (default $ZRAM_GENERATOR_ROOT, else /) */
  root?: string
}

/** One file's text, to be read in turn with the others. */
export interface ConfigText {
  file: string
  text: string
}

/** The largest device number we hot-add up to (each one in between exists meanwhile). */
export const MAX_DEVICE_ID = 255
const KNOWN_KEYS = new Set(['host-memory-limit', 'memory-limit', 'zram-size', 'zram-resident-limit',
  'compression-algorithm', 'writeback-device', 'swap-priority', 'mount-point', 'fs-type', 'options',
  'zram-fraction', 'max-zram-size'])

/** MemTotal in MiB from /proc/meminfo ($ZRAM_GENERATOR_ROOT/proc/meminfo when set, as zram-generator). */
export function hostMemTotalMb(): number {
  const root = process.env.ZRAM_GENERATOR_ROOT ?? '/'
  const text = readFileSync(`${root.replace(/\/$/, '')}/proc/meminfo`, 'utf8')
  const m = /^MemTotal:\s+(\d+)/m.exec(text)
  if (!m) throw new Error(`no MemTotal in ${root}/proc/meminfo`)
  return Math.floor(Number(m[1]) / 1024)
}

function defaultRunSetCommand(command: string): string {
  // zram-generator: /bin/sh -c -- COMMAND, stdin /dev/null, stderr passed through; a non-zero exit
  // is only a warning there, so the output is used either way.
  try {
    return execFileSync('/bin/sh', ['-c', '--', command], { stdio: ['ignore', 'pipe', 'inherit'], encoding: 'utf8', timeout: 60_000 })
  } catch (err) {
    const out = (err as { stdout?: string }).stdout
    if (typeof out === 'string') return out
    throw err
  }
}

interface PlacedExpr {
  expr: SizeExpr
  at: ConfigPlace
}

interface Pending {
  cfg: DeviceConfig
  zramSize: PlacedExpr | null
  residentLimit: PlacedExpr | null
  hostMemoryLimitMb: number | null
  zramFraction: number | null
  /** undefined: not set; null: `none` */
  maxZramSizeMb: number | null | undefined
  fsTypeSet: string | null
}

function newDevice(id: number, header: ConfigPlace): Pending {
  return {
    cfg: {
      id, name: `zram${id}`, enabled: true, skipped: null, disksizeBytes: 0, memLimitBytes: 0, algorithms: [],
      recompressParams: '', writebackDevice: null, swapPriority: 100, fsType: 'swap', mountPoint: null,
      options: 'discard', places: {}, header,
    },
    zramSize: null, residentLimit: null, hostMemoryLimitMb: null, zramFraction: null, maxZramSizeMb: undefined,
    fsTypeSet: null,
  }
}

/** parse_optional_size: `none` or a u64 of MiB. */
function optionalMb(file: string, e: IniEntry): number | null {
  if (e.value === 'none') return null
  if (!/^\d+$/.test(e.value)) throw new ConfigError(file, e.line, e.key, `expected a number of MiB or "none", got ${JSON.stringify(e.value)}`)
  return Number(e.value)
}

/** verify_mount_point: absolute, no `..`, `/./` normalised away. */
function absolutePath(file: string, e: IniEntry): string {
  if (!isAbsolute(e.value)) throw new ConfigError(file, e.line, e.key, `${JSON.stringify(e.value)} is not absolute`)
  if (e.value.split('/').includes('..')) throw new ConfigError(file, e.line, e.key, `${JSON.stringify(e.value)} is not normalized`)
  const p = normalize(e.value)
  return p.length > 1 ? p.replace(/\/$/, '') : p
}

function sizeExpr(file: string, e: IniEntry): PlacedExpr {
  try {
    return { expr: parseSizeExpr(e.value), at: { file, line: e.line } }
  } catch (err) {
    throw new ConfigError(file, e.line, e.key, (err as Error).message)
  }
}

/** `lz4 zstd(level=3) (type=idle)`: algorithms with their parameters, and global recompress parameters. */
export function parseAlgorithms(value: string): { algorithms: AlgorithmSpec[]; recompressParams: string } {
  const algorithms: AlgorithmSpec[] = []
  let recompressParams = ''
  for (const word of value.split(/\s+/).filter((w) => w !== '')) {
    const paren = word.indexOf('(')
    let name = word
    let params = ''
    if (paren >= 0) {
      name = word.slice(0, paren)
      params = word.slice(paren + 1)
      if (params.endsWith(')')) params = params.slice(0, -1)
      params = params.replace(/,/g, ' ')
    }
    if (name === '') recompressParams = params
    else algorithms.push({ name, params })
  }
  return { algorithms, recompressParams }
}

function applyKey(file: string, p: Pending, e: IniEntry): void {
  const d = p.cfg
  switch (e.key) {
    case 'host-memory-limit':
    case 'memory-limit':
      p.hostMemoryLimitMb = optionalMb(file, e)
      break
    case 'zram-size':
      p.zramSize = sizeExpr(file, e)
      break
    case 'zram-resident-limit':
      p.residentLimit = sizeExpr(file, e)
      break
    case 'compression-algorithm': {
      const { algorithms, recompressParams } = parseAlgorithms(e.value)
      d.algorithms = algorithms
      d.recompressParams = recompressParams
      break
    }
    case 'writeback-device':
      d.writebackDevice = absolutePath(file, e)
      break
    case 'swap-priority': {
      // parse_swap_priority: an i32 in -1..32767 (swapon --priority)
      const v = /^[+-]?\d+$/.test(e.value) ? Number(e.value) : NaN
      if (!Number.isInteger(v)) throw new ConfigError(file, e.line, e.key, `expected an integer, got ${JSON.stringify(e.value)}`)
      if (v < -1 || v > 0x7fff) throw new ConfigError(file, e.line, e.key, `swap priority ${v} out of range (-1..32767)`)
      d.swapPriority = v
      break
    }
    case 'mount-point':
      d.mountPoint = absolutePath(file, e)
      break
    case 'fs-type':
      if (!/^[A-Za-z0-9_.+-]+$/.test(e.value)) throw new ConfigError(file, e.line, e.key, `not a file system type: ${JSON.stringify(e.value)}`)
      p.fsTypeSet = e.value
      break
    case 'options':
      d.options = e.value
      break
    case 'zram-fraction': {
      const v = Number(e.value)
      if (e.value === '' || !Number.isFinite(v) || v < 0) throw new ConfigError(file, e.line, e.key, `expected a non-negative number, got ${JSON.stringify(e.value)}`)
      p.zramFraction = v
      break
    }
    case 'max-zram-size':
      p.maxZramSizeMb = optionalMb(file, e)
      break
  }
  d.places[e.key === 'memory-limit' ? 'host-memory-limit' : e.key] = { file, line: e.line }
}

function mib(d: DeviceConfig, key: string, at: ConfigPlace, value: number): number {
  if (!Number.isFinite(value)) throw ConfigError.at(at, key, `evaluates to ${value} MiB for ${d.name}`)
  if (value < 0) throw ConfigError.at(at, key, `${d.name}: ${key}=${value} < 0`)
  // zram-generator: (value * 1024 * 1024) as u64, i.e. truncated to whole bytes
  return Math.trunc(value * 1024 * 1024)
}

/** Parse and evaluate a configuration text. Throws ConfigError at the first bad value. */
export function parseConfig(text: string, file: string, host: ConfigHost): ZramConfig {
  return parseConfigFiles([{ file, text }], host)
}

/**
 * Parse a main file and its drop-ins, in the order given, into one set of devices, and evaluate
 * it. Throws ConfigError at the first bad value, naming the file it is in.
 */
export function parseConfigFiles(texts: readonly ConfigText[], host: ConfigHost): ZramConfig {
  const warnings: string[] = []
  const vars: Record<string, number> = { ram: host.memTotalMb }
  const run = host.runSetCommand ?? defaultRunSetCommand
  const byId = new Map<number, Pending>()
  for (const { file, text } of texts) {
    for (const section of parseIni(text, file)) {
      if (section.name === null) {
        for (const e of section.entries) {
          if (!e.key.startsWith('set!') || e.key.length === 4) {
            warnings.push(`${file}:${e.line}: invalid outside-of-section key ${e.key}, ignoring`)
            continue
          }
          const name = e.key.slice(4)
          if (name === 'ram' || !/^[A-Za-z_][A-Za-z0-9_]*$/.test(name)) throw new ConfigError(file, e.line, e.key, `cannot set variable ${JSON.stringify(name)}`)
          let out: string
          try {
            out = run(e.value)
          } catch (err) {
            throw new ConfigError(file, e.line, e.key, `running ${JSON.stringify(e.value)}: ${(err as Error).message}`)
          }
          try {
            vars[name] = evalSizeExpr(parseSizeExpr(out.trim()), vars)
          } catch (err) {
            throw new ConfigError(file, e.line, e.key, `output ${JSON.stringify(out.trim())}: ${(err as Error).message}`)
          }
        }
        continue
      }
      const m = /^zram(\d+)$/.exec(section.name)
      if (!m) {
        warnings.push(`${file}:${section.line}: ignoring section [${section.name}]`)
        continue
      }
      const id = Number(m[1])
      if (id > MAX_DEVICE_ID) throw new ConfigError(file, section.line, null, `[${section.name}]: zramfuse serves zram0..zram${MAX_DEVICE_ID}`)
      let p = byId.get(id)
      if (p === undefined) {
        p = newDevice(id, { file, line: section.line })
        byId.set(id, p)
      }
      for (const e of section.entries) {
        if (!KNOWN_KEYS.has(e.key)) {
          warnings.push(`${file}:${e.line}: [${section.name}] unknown key ${e.key}, ignoring`)
          continue
        }
        applyKey(file, p, e)
      }
    }
  }

  const devices: DeviceConfig[] = []
  for (const p of [...byId.values()].sort((a, b) => a.cfg.id - b.cfg.id)) {
    const d = p.cfg
    // fs-type: as given; else ext2 with a mount point, swap without (Device::effective_fs_type)
    d.fsType = p.fsTypeSet ?? (d.mountPoint !== null ? 'ext2' : 'swap')
    if (d.fsType === 'swap' && d.mountPoint !== null) {
      throw ConfigError.at(d.places['mount-point'] ?? d.header, 'mount-point', `[${d.name}] has fs-type=swap: a swap area is not mounted`)
    }
    if (p.hostMemoryLimitMb !== null && p.hostMemoryLimitMb < host.memTotalMb) {
      d.enabled = false
      d.skipped = `host has ${host.memTotalMb} MiB, more than host-memory-limit=${p.hostMemoryLimitMb}`
      devices.push(d)
      continue
    }
    if (p.zramFraction !== null || p.maxZramSizeMb !== undefined) {
      // the deprecated keys override zram-size
      const maxMb = p.maxZramSizeMb ?? Number.MAX_SAFE_INTEGER
      d.disksizeBytes = Math.min(Math.trunc((p.zramFraction ?? 0.5) * host.memTotalMb), maxMb) * 1024 * 1024
    } else if (p.zramSize !== null) {
      let v: number
      try {
        v = evalSizeExpr(p.zramSize.expr, vars)
      } catch (err) {
        throw ConfigError.at(p.zramSize.at, 'zram-size', (err as Error).message)
      }
      d.disksizeBytes = mib(d, 'zram-size', p.zramSize.at, v)
    } else {
      d.disksizeBytes = Math.trunc(Math.min(host.memTotalMb / 2, 4096) * 1024 * 1024) // min(ram / 2, 4096)
    }
    if (p.residentLimit !== null) {
      let v: number
      try {
        v = evalSizeExpr(p.residentLimit.expr, vars)
      } catch (err) {
        throw ConfigError.at(p.residentLimit.at, 'zram-resident-limit', (err as Error).message)
      }
      d.memLimitBytes = mib(d, 'zram-resident-limit', p.residentLimit.at, v)
    }
    if (d.disksizeBytes === 0) {
      d.enabled = false
      d.skipped = 'zram-size is 0'
    }
    devices.push(d)
  }
  const files = texts.map((x) => x.file)
  return { file: files[0] ?? '', files, memTotalMb: host.memTotalMb, devices, warnings }
}

function readConfigText(file: string): string {
  try {
    return readFileSync(file, 'utf8')
  } catch (err) {
    throw new ConfigError(file, 0, null, `cannot read: ${(err as Error).message}`)
  }
}

/**
 * `--config FILE`: FILE and its drop-ins (FILE.d/*.conf; all four zram-generator.conf.d when FILE
 * is one of zram-generator's main files), read as zram-generator reads its own. FILE may be
 * missing when drop-ins exist, as zram-generator's main file may.
 */
export function loadConfig(file: string, host: ConfigHost): ZramConfig {
  const sources = configSources(file, host.root ?? process.env.ZRAM_GENERATOR_ROOT ?? '/', existsSync)
  const texts: ConfigText[] = []
  if (sources.dropins.length === 0 || existsSync(file)) texts.push({ file, text: readConfigText(file) })
  for (const dropin of sources.dropins) texts.push({ file: dropin, text: readConfigText(dropin) })
  const cfg = parseConfigFiles(texts, host)
  return { ...cfg, file, warnings: [...sources.warnings, ...cfg.warnings] }
}
