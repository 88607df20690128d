/**
 * Which files make up a zram-generator configuration, and in which order they are read, as
 * zram-generator does it (src/config.rs locate_fragments, through liboverdrop's scan):
 *
 * - drop-ins: `*.conf` in `zram-generator.conf.d/` under /usr/lib/systemd, /usr/local/lib/systemd,
 *   /etc/systemd and /run/systemd. They are read in the order of their file names (bytewise),
 *   whichever directory they are in; a name in a later directory of that list replaces the same
 *   name in an earlier one (so /etc masks /usr/lib), and a symlink to /dev/null removes it. Dotfiles,
 *   names not ending in `.conf`, directories and other symlinks are skipped (liboverdrop looks at
 *   the entry itself, not at what a symlink points to).
 * - the main file, `zram-generator.conf`, is read before every drop-in; only one is: the last of
 *   the four directories that has one.
 * - files do not replace each other's sections: a key read later overrides the same key of the
 *   same `[zramN]` section, every other key stays (parseConfigFiles merges them).
 *
 * zramfuse is given a file (`--config FILE`). Its drop-ins are `FILE.d/*.conf`, as
 * zram-generator.conf's are `zram-generator.conf.d/*.conf`; when FILE is one of zram-generator's
 * own four main files, the drop-ins are those of all four directories, so the devices are the
 * ones zram-generator would make.
 */
import { lstatSync, readdirSync, readlinkSync } from 'node:fs'
import { join, resolve } from 'node:path'

/** zram-generator's base directories, lowest priority first (each + `systemd/`). */
export const SYSTEM_BASES = ['usr/lib', 'usr/local/lib', 'etc', 'run'] as const
const MAIN_NAME = 'zram-generator.conf'
const DROPIN_DIR = 'zram-generator.conf.d'

export interface ConfigSources {
  /** the main file, as given (it may not exist: drop-ins alone are a configuration) */
  main: string
  /** the drop-ins, in the order they are read (after the main file) */
  dropins: string[]
  /** the directories searched for drop-ins, lowest priority first */
  dropinDirs: string[]
  /** things a user may want to know that change nothing (a skipped symlink, another main file) */
  warnings: string[]
}

/** Bytewise, as Rust orders the OsString keys of liboverdrop's BTreeMap. */
function byName(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b))
}

/**
 * liboverdrop::scan(dirs, "", ["conf"], ignore_dotfiles = true): unique file names across `dirs`
 * (a later directory wins), sorted by name. Unreadable or missing directories are skipped.
 */
export function scanDropIns(dirs: readonly string[], warnings: string[] = []): string[] {
  const byFileName = new Map<string, string>()
  for (const dir of dirs) {
    let names: string[]
    try {
      names = readdirSync(dir)
    } catch {
      continue
    }
    for (const name of names) {
      // Path::extension() == "conf": a dot before "conf", and something before that dot
      if (name.startsWith('.') || !name.endsWith('.conf')) continue
      const path = join(dir, name)
      let isFile: boolean
      let isLink: boolean
      try {
        const st = lstatSync(path)
        isFile = st.isFile()
        isLink = st.isSymbolicLink()
      } catch {
        continue
      }
      if (isFile) {
        byFileName.set(name, path)
        continue
      }
      if (!isLink) continue
      let target = ''
      try {
        target = readlinkSync(path)
      } catch {
        continue
      }
      if (target === '/dev/null') byFileName.delete(name)
      else warnings.push(`${path}: a symlink (to ${target}): zram-generator reads no symlinked drop-in, skipping it`)
    }
  }
  return [...byFileName.keys()].sort(byName).map((name) => byFileName.get(name) as string)
}

/** The system's zram-generator main files under `root`, lowest priority first. */
export function systemMainFiles(root: string): string[] {
  return SYSTEM_BASES.map((base) => resolve(root, base, 'systemd', MAIN_NAME))
}

/** What `--config FILE` reads: FILE, then its drop-ins. `root` is $ZRAM_GENERATOR_ROOT's role. */
export function configSources(file: string, root: string, exists: (path: string) => boolean): ConfigSources {
  const warnings: string[] = []
  const mains = systemMainFiles(root)
  const rank = mains.indexOf(resolve(file))
  let dropinDirs: string[]
  if (rank >= 0) {
    dropinDirs = SYSTEM_BASES.map((base) => resolve(root, base, 'systemd', DROPIN_DIR))
    const preferred = mains.slice(rank + 1).reverse().find((p) => exists(p))
    if (preferred !== undefined) {
      warnings.push(`${preferred} exists: zram-generator reads it instead of ${file} (it reads one main file, the last one of /usr/lib, /usr/local/lib, /etc, /run); zramfuse reads ${file}, as told`)
    }
  } else {
    dropinDirs = [`${file}.d`]
  }
  return { main: file, dropins: scanDropIns(dropinDirs, warnings), dropinDirs, warnings }
}
