/**
 * Pure copies of the kernel's text primitives that the zram store functions parse their input with.
 *
 * Sources (mainline, read for this file):
 *   lib/kstrtox.c       _parse_integer_fixup_radix, _parse_integer, kstrtoull, kstrtoll, kstrtouint,
 *                       kstrtoint, kstrtou16, kstrtobool (with the e/E = enabled, d/D = disabled cases)
 *   lib/vsprintf.c      simple_strtoull (no whitespace skipping, overflow silently wraps: "FIXME")
 *   lib/cmdline.c       memparse, next_arg
 *   lib/string.c        sysfs_streq, skip_spaces
 *
 * Conventions, shared by the per-attribute parsers (device-parse.ts, algorithm-parse.ts,
 * writeback-parse.ts, recompress-parse.ts):
 * - `text` is exactly what was written to the file, one JS char per byte (decode the write buffer as
 *   'latin1' to be byte exact). It usually ends with "\n".
 * - The kernel sees the buffer as a C string: everything from the first NUL on is ignored. Every
 *   parser does the same.
 * - Errors are thrown as ErrnoError with the errno the kernel returns for that input; where a store
 *   maps every parse failure to EINVAL (many do), its own parser does the same.
 * - Nothing here does I/O or looks at device state.
 */
import { Errno, ErrnoError } from '../errno'

export const U64_MAX = (1n << 64n) - 1n
const S64_MAX = (1n << 63n) - 1n
const S64_MIN = -(1n << 63n)

export type IntBase = 0 | 8 | 10 | 16

export function einval(reason: string): never {
  throw new ErrnoError(Errno.EINVAL, reason)
}

function erange(reason: string): never {
  throw new ErrnoError(Errno.ERANGE, reason)
}

/** What the kernel sees: the buffer up to its first NUL. */
export function cString(text: string): string {
  const nul = text.indexOf('\0')
  return nul < 0 ? text : text.slice(0, nul)
}

/**
 * The kernel's isspace(): lib/ctype.c marks \t \n \v \f \r, ' ' and 0xA0 (Latin-1 no-break space)
 * as _S.
 */
function isKernelSpaceCode(c: number): boolean {
  return c === 0x20 || (c >= 0x09 && c <= 0x0d) || c === 0xa0
}

function isXDigitAt(s: string, i: number): boolean {
  if (i >= s.length) return false
  const c = s.charCodeAt(i)
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66)
}

/** `_tolower(c) == 'x'`: the kernel's _tolower is `c | 0x20`, so only 'x' and 'X' match. */
function isXAt(s: string, i: number): boolean {
  return s[i] === 'x' || s[i] === 'X'
}

/** lib/kstrtox.c _parse_integer_fixup_radix: base 0 picks 16 ("0x" + hex digit), 8 ("0") or 10. */
function fixupRadix(s: string, at: number, base: IntBase): { base: number; at: number } {
  let b: number = base
  if (b === 0) {
    if (s[at] === '0') {
      b = isXAt(s, at + 1) && isXDigitAt(s, at + 2) ? 16 : 8
    } else {
      b = 10
    }
  }
  if (b === 16 && s[at] === '0' && isXAt(s, at + 1)) at += 2
  return { base: b, at }
}

interface Digits {
  /** the result modulo 2^64, as the kernel's u64 arithmetic leaves it */
  value: bigint
  /** number of digit characters consumed */
  count: number
  /** KSTRTOX_OVERFLOW was raised */
  overflow: boolean
}

/** lib/kstrtox.c _parse_integer: digits in `base` (letters a-f either case), u64 wrap-around. */
function parseDigits(s: string, at: number, base: number): Digits {
  const b = BigInt(base)
  let value = 0n
  let count = 0
  let overflow = false
  for (let i = at; i < s.length; i++) {
    const c = s.charCodeAt(i)
    const lc = c | 0x20
    let val: number
    if (c >= 0x30 && c <= 0x39) val = c - 0x30
    else if (lc >= 0x61 && lc <= 0x66) val = lc - 0x61 + 10
    else break
    if (val >= base) break
    const v = BigInt(val)
    if (value > (U64_MAX - v) / b) overflow = true
    value = (value * b + v) & U64_MAX
    count++
  }
  return { value, count, overflow }
}

/**
 * lib/vsprintf.c simple_strtoull(text, &end, base): no leading whitespace or sign is skipped;
 * parsing stops at the first non-digit; overflow wraps modulo 2^64 without any error. `end` is the
 * index just past what was consumed (0 when nothing was; a "0x" prefix counts as consumed only when
 * a hex digit follows it, as in the kernel).
 */
function simpleStrtoull(text: string, base: IntBase = 0): { value: bigint; end: number } {
  const s = cString(text)
  const fixed = fixupRadix(s, 0, base)
  const d = parseDigits(s, fixed.at, fixed.base)
  return { value: d.value, end: fixed.at + d.count }
}

/**
 * lib/cmdline.c memparse(text, &end): simple_strtoull(text, &end, 0), then one optional suffix
 * K/M/G/T/P/E (either case, binary multiples, shifts wrap modulo 2^64). Never fails by itself.
 * Note the kernel quirk: the suffix is consumed even when no digit preceded it ("K" -> 0, end 1).
 */
export function memparseRaw(text: string): { value: bigint; end: number } {
  const s = cString(text)
  const r = simpleStrtoull(s, 0)
  let value = r.value
  let end = r.end
  const n = suffixShift(s[end])
  if (n > 0) {
    value = (value << BigInt(10 * n)) & U64_MAX
    end++
  }
  return { value, end }
}

/** memparse's suffix switch: ASCII letters only (no Unicode case folding). */
function suffixShift(c: string | undefined): number {
  switch (c) {
    case 'E': case 'e': return 6
    case 'P': case 'p': return 5
    case 'T': case 't': return 4
    case 'G': case 'g': return 3
    case 'M': case 'm': return 2
    case 'K': case 'k': return 1
    default: return 0
  }
}

/**
 * memparse as mem_limit_store uses it:
 *
 *     limit = memparse(buf, &tmp);
 *     if (buf == tmp) return -EINVAL;   // no chars parsed
 *
 * So: a number in base 10, 0x hex or 0-prefixed octal with an optional K/M/G/T/P/E suffix.
 * Anything AFTER the number+suffix (the trailing "\n", "1Gjunk", "10Q") is ignored, exactly as in
 * the kernel. Nothing parsed at all ("", "abc", "-1", and also " 2M": the kernel does NOT skip
 * leading whitespace) is EINVAL. "0" is valid (0 = no limit). A lone suffix ("K\n") is accepted
 * as 0 because memparse consumes the suffix character. The result is in bytes, not yet page
 * aligned (the store does PAGE_ALIGN(limit) >> PAGE_SHIFT: see pageAlign).
 */
export function memparse(text: string): bigint {
  const r = memparseRaw(text)
  if (r.end === 0) einval(`no size in ${JSON.stringify(text)}`)
  return r.value
}

/** lib/kstrtox.c _kstrtoull: the whole string must be the number plus at most one "\n". */
function kstrtoullNoSign(s: string, base: IntBase, original: string): bigint {
  const fixed = fixupRadix(s, 0, base)
  const d = parseDigits(s, fixed.at, fixed.base)
  if (d.overflow) erange(`${JSON.stringify(original)} does not fit in 64 bits`)
  if (d.count === 0) einval(`${JSON.stringify(original)} is not a number`)
  let at = fixed.at + d.count
  if (s[at] === '\n') at++
  if (at < s.length) einval(`trailing characters in ${JSON.stringify(original)}`)
  return d.value
}

/**
 * kstrtoull(text, base): one optional leading '+', no '-', no whitespace except ONE trailing "\n",
 * nothing else. Overflow -> ERANGE (checked before the junk check, as in the kernel, so
 * "99999999999999999999x" is ERANGE); no digits or any junk -> EINVAL. Base 0 autodetects 0x/0;
 * base 10 reads "010" as 10 and refuses "0x10".
 */
export function parseU64(text: string, base: IntBase = 10): bigint {
  const s = cString(text)
  return kstrtoullNoSign(s[0] === '+' ? s.slice(1) : s, base, text)
}

/** kstrtoll(text, base): like parseU64 but also takes one leading '-'; out of s64 -> ERANGE. */
function parseS64(text: string, base: IntBase = 10): bigint {
  const s = cString(text)
  if (s[0] === '-') {
    const magnitude = kstrtoullNoSign(s.slice(1), base, text)
    const value = -magnitude
    if (value < S64_MIN) erange(`${JSON.stringify(text)} is out of range`)
    return value
  }
  const value = parseU64(s, base)
  if (value > S64_MAX) erange(`${JSON.stringify(text)} is out of range`)
  return value
}

/** kstrtouint(text, base): parseU64, then > 0xffffffff -> ERANGE. */
export function parseU32(text: string, base: IntBase = 10): number {
  const value = parseU64(text, base)
  if (value > 0xffffffffn) erange(`${JSON.stringify(text)} does not fit in 32 bits`)
  return Number(value)
}

/** kstrtoint(text, base): parseS64, then outside [-2^31, 2^31-1] -> ERANGE. */
export function parseS32(text: string, base: IntBase = 10): number {
  const value = parseS64(text, base)
  if (value < -0x80000000n || value > 0x7fffffffn) erange(`${JSON.stringify(text)} does not fit in an int`)
  return Number(value)
}

/** kstrtou16(text, base): parseU64, then > 0xffff -> ERANGE. */
export function parseU16(text: string, base: IntBase = 10): number {
  const value = parseU64(text, base)
  if (value > 0xffffn) erange(`${JSON.stringify(text)} does not fit in 16 bits`)
  return Number(value)
}

/**
 * kstrtobool (mainline, with the "enabled"/"disabled" cases): only the first character counts, or
 * the first two for "on"/"off":
 *   e E y Y t T 1 -> true;   d D n N f F 0 -> false;   o/O then n/N -> true, f/F -> false;
 *   anything else (including "" and a leading space) -> EINVAL.
 * So "yes", "true", "1\n", "10" and "nope" all parse (to true, true, true, true, false).
 */
export function parseBool(text: string): boolean {
  const s = cString(text)
  switch (s[0]) {
    case 'e': case 'E': case 'y': case 'Y': case 't': case 'T': case '1':
      return true
    case 'd': case 'D': case 'n': case 'N': case 'f': case 'F': case '0':
      return false
    case 'o': case 'O':
      switch (s[1]) {
        case 'n': case 'N':
          return true
        case 'f': case 'F':
          return false
        default:
          break
      }
      break
    default:
      break
  }
  return einval(`${JSON.stringify(text)} is not a boolean`)
}

/**
 * lib/string.c sysfs_streq: equal, or equal except that one of them has a single trailing "\n".
 */
export function sysfsStreq(a: string, b: string): boolean {
  const s1 = cString(a)
  const s2 = cString(b)
  let i = 0
  while (i < s1.length && i < s2.length && s1[i] === s2[i]) i++
  const r1 = s1.slice(i)
  const r2 = s2.slice(i)
  if (r1 === r2) return true
  if (r1 === '' && r2 === '\n') return true
  if (r1 === '\n' && r2 === '') return true
  return false
}

export interface KeyValue {
  key: string
  /** null when the parameter had no '=' (the kernel's `val == NULL`); "" for "key=" */
  value: string | null
}

const QUOTE = 0x22
const EQUALS = 0x3d

/**
 * Split `key=value` parameters exactly as the zram stores do:
 *
 *     args = skip_spaces(buf);
 *     while (*args) args = next_arg(args, &param, &val);
 *
 * next_arg (lib/cmdline.c): parameters are separated by kernel whitespace (so the trailing "\n"
 * just ends the last one); double quotes group text containing spaces ("dict=\"/a b\"" or
 * "\"key=a b\"") and are removed when they open the value or the whole parameter and close it;
 * a quote cannot be escaped. The value starts after the first '=' that is not the first character
 * of the parameter ("=x" is a key "=x" with no value; "a=b=c" is key "a", value "b=c").
 * This is a simulation of the kernel's in-place NUL writes, so odd quoting splits the same way.
 */
export function parseKeyValues(text: string): KeyValue[] {
  const s = cString(text)
  const buf: number[] = []
  for (let i = 0; i < s.length; i++) buf.push(s.charCodeAt(i))
  buf.push(0)

  const at = (i: number): number => buf[i] ?? 0
  const readC = (start: number): string => {
    let out = ''
    for (let i = start; at(i) !== 0; i++) out += String.fromCharCode(at(i))
    return out
  }
  const skipSpaces = (i: number): number => {
    while (isKernelSpaceCode(at(i))) i++
    return i
  }

  const result: KeyValue[] = []
  let args = skipSpaces(0)
  while (at(args) !== 0) {
    // next_arg(args, &param, &val)
    let inQuote = false
    let quoted = false
    if (at(args) === QUOTE) {
      args++
      inQuote = true
      quoted = true
    }
    let i = 0
    let equals = 0
    for (i = 0; at(args + i) !== 0; i++) {
      const c = at(args + i)
      if (isKernelSpaceCode(c) && !inQuote) break
      if (equals === 0 && c === EQUALS) equals = i
      if (c === QUOTE) inQuote = !inQuote
    }
    const param = args
    let val = -1
    if (equals !== 0) {
      buf[args + equals] = 0
      val = args + equals + 1
      // Don't include quotes in value.
      if (at(val) === QUOTE) {
        val++
        if (at(args + i - 1) === QUOTE) buf[args + i - 1] = 0
      }
    }
    if (quoted && at(args + i - 1) === QUOTE) buf[args + i - 1] = 0
    let next: number
    if (at(args + i) !== 0) {
      buf[args + i] = 0
      next = args + i + 1
    } else {
      next = args + i
    }
    result.push({ key: readC(param), value: val < 0 ? null : readC(val) })
    args = skipSpaces(next)
  }
  return result
}
