/**
 * The INI dialect of zram-generator.conf (systemd.syntax(5) as the rust-ini crate reads it):
 * `[section]` headers, `key = value` lines, whole-line comments starting with `#` or `;`, blank
 * lines. Keys and values are trimmed; a value wrapped in matching quotes loses them. A key that
 * repeats keeps every occurrence, in order (the later one wins where a single value is wanted).
 *
 * Hand-written rather than npm's `ini`: errors and warnings must name the line, and `ini` keeps no
 * line numbers (and turns `true`/`key[]` into other types, which zram-generator does not).
 */

export interface IniEntry {
  key: string
  value: string
  /** 1-based line number in the file */
  line: number
}

export interface IniSection {
  /** null for the entries before the first header (zram-generator's `set!` directives live there) */
  name: string | null
  line: number
  entries: IniEntry[]
}

/** A line of a configuration file (a main file or one of its drop-ins). */
export interface ConfigPlace {
  file: string
  /** 1-based */
  line: number
}

/** A syntax or value error in a configuration file: names the file, the line and the key. */
export class ConfigError extends Error {
  static at(place: ConfigPlace, key: string | null, reason: string): ConfigError {
    return new ConfigError(place.file, place.line, key, reason)
  }


  constructor(
    readonly file: string,
    /** 1-based; 0 when the error is about the whole file */
    readonly line: number,
    readonly key: string | null,
    readonly reason: string,
  ) {
    super(`${file}${line > 0 ? `:${line}` : ''}: ${key === null ? '' : `${key}: `}${reason}`)
    this.name = 'ConfigError'
  }
}

function unquote(v: string): string {
  if (v.length >= 2 && (v[0] === '"' || v[0] === "'") && v[v.length - 1] === v[0]) return v.slice(1, -1)
  return v
}

/** Sections in file order; sections with the same name are not merged here (the caller merges). */
export function parseIni(text: string, file: string): IniSection[] {
  const sections: IniSection[] = [{ name: null, line: 1, entries: [] }]
  const lines = text.split(/\r?\n/)
  lines.forEach((raw, i) => {
    const lineNo = i + 1
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) return
    if (line.startsWith('[')) {
      if (!line.endsWith(']')) throw new ConfigError(file, lineNo, null, `malformed section header ${JSON.stringify(line)}`)
      const name = line.slice(1, -1).trim()
      if (name === '') throw new ConfigError(file, lineNo, null, 'empty section name')
      sections.push({ name, line: lineNo, entries: [] })
      return
    }
    const eq = line.indexOf('=')
    if (eq <= 0) throw new ConfigError(file, lineNo, null, `expected "key = value", got ${JSON.stringify(line)}`)
    const key = line.slice(0, eq).trim()
    const value = unquote(line.slice(eq + 1).trim())
    ;(sections[sections.length - 1] as IniSection).entries.push({ key, value, line: lineNo })
  })
  return sections
}
