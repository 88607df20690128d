import t from 'tap'
import { Errno, ErrnoError } from '../../src/errno'
import { parseAlgorithmName, parseAlgorithmParamsArgs, parseRecompAlgorithm, resolveAlgorithmParams } from '../../src/sysfs/algorithm-parse'
import { pageAlign, parseDisksize, parseHotRemove, parseIdle, parseMemLimit, parseMemUsedMax, parseReset } from '../../src/sysfs/device-parse'
import { memparse, parseBool, parseKeyValues, parseS32, parseU32, parseU64, sysfsStreq } from '../../src/sysfs/kstrtox'
import {
  parseBackingDev, parseCompressedWriteback, parseWritebackBatchSize, parseWritebackLimit, parseWritebackLimitEnable,
} from '../../src/sysfs/writeback-parse'

const KiB = 1024n
const MiB = KiB * KiB
const GiB = MiB * KiB
const U64_MAX = (1n << 64n) - 1n

/** The errno an ErrnoError carries, or undefined when the call succeeds. */
function errnoOf(fn: () => unknown): number | undefined {
  try {
    fn()
  } catch (e) {
    if (e instanceof ErrnoError) return e.errno
    throw e
  }
  return undefined
}

t.test('ErrnoError', async (t) => {
  const e = new ErrnoError(Errno.EINVAL, 'why')
  t.ok(e instanceof Error)
  t.equal(e.errno, 22)
  t.equal(e.message, 'why')
  t.equal(Errno.ERANGE, 34)
  t.equal(Errno.EOPNOTSUPP, Errno.ENOTSUP)
})

t.test('the kernel sees a C string: everything from the first NUL on is ignored', async (t) => {
  t.equal(parseU64('12\0junk'), 12n)
  t.equal(parseU64('12\n\0garbage'), 12n)
  t.equal(memparse('1G\0' + '99'), GiB)
  t.equal(parseAlgorithmName('lz4\0junk', ['lz4']), 'lz4')
  t.equal(errnoOf(() => parseU64('\0' + '12')), Errno.EINVAL)
})

t.test('memparse number syntax (simple_strtoull, base 0)', async (t) => {
  t.equal(memparse('4096'), 4096n)
  t.equal(memparse('0x1000'), 4096n)
  t.equal(memparse('0X1f'), 31n)
  t.equal(memparse('010'), 8n, 'leading 0 is octal')
  t.equal(memparse('08'), 0n, '8 is not an octal digit: "0" parsed, the rest ignored')
  t.equal(memparse('0x'), 0n, '"0x" without a hex digit is octal 0')
  t.equal(memparse('0xg'), 0n)
  t.equal(errnoOf(() => memparse(' 1')), Errno.EINVAL, 'no whitespace skipping')
  t.equal(errnoOf(() => memparse('-1')), Errno.EINVAL, 'no sign')
  t.equal(memparse('18446744073709551616'), 0n, 'overflow wraps mod 2^64')
})

t.test('memparse suffixes', async (t) => {
  t.equal(memparse('1G'), GiB)
  t.equal(memparse('K'), 0n, 'a lone suffix is consumed, so something was parsed')
  t.equal(memparse('1Kb'), KiB)
  t.equal(memparse('0x10k'), 16n * KiB)
  t.equal(memparse('0x1e'), 30n, 'e is a hex digit after 0x, not a suffix')
  t.equal(memparse('1e'), 1n << 60n, 'decimal 1 then the E suffix')
})

t.test('memparse (mem_limit_store: EINVAL only when nothing was parsed)', async (t) => {
  t.equal(memparse('1G'), GiB)
  t.equal(memparse('1g\n'), GiB)
  t.equal(memparse('4096'), 4096n)
  t.equal(memparse('4096\n'), 4096n)
  t.equal(memparse('0x1000'), 4096n)
  t.equal(memparse('0x1000\n'), 4096n)
  t.equal(memparse('010'), 8n, 'octal')
  t.equal(memparse('0'), 0n, '0 = no limit is valid')
  t.equal(memparse('0\n'), 0n)
  t.equal(memparse('2M'), 2n * MiB)
  t.equal(memparse('3k'), 3n * KiB)
  t.equal(memparse('5t'), 5n << 40n)
  t.equal(memparse('5P'), 5n << 50n)
  t.equal(memparse('7E'), 7n << 60n)
  t.equal(memparse('15E'), 15n << 60n)
  t.equal(memparse('16E'), 0n, 'shift wraps modulo 2^64')
  t.equal(memparse('17e'), 1n << 60n)
  t.equal(memparse('18446744073709551615'), U64_MAX)
  t.equal(memparse('18446744073709551616'), 0n, 'digit overflow wraps silently (simple_strtoull)')
  // junk after the number (+ suffix) is ignored, exactly like the kernel
  t.equal(memparse('1Gjunk'), GiB)
  t.equal(memparse('1GB\n'), GiB)
  t.equal(memparse('10Q'), 10n, 'Q is no suffix: stops at Q, junk ignored')
  t.equal(memparse('12 34'), 12n)
  t.equal(memparse('1G\0' + '99'), GiB)
  // a lone suffix is "parsed" (memparse consumes it), so the kernel accepts it as 0
  t.equal(memparse('K\n'), 0n)
  t.equal(memparse('e'), 0n)
  // nothing parsed -> EINVAL
  t.equal(errnoOf(() => memparse('')), Errno.EINVAL)
  t.equal(errnoOf(() => memparse('\n')), Errno.EINVAL)
  t.equal(errnoOf(() => memparse('abc')), Errno.EINVAL)
  t.equal(errnoOf(() => memparse('Q')), Errno.EINVAL)
  t.equal(errnoOf(() => memparse('-1')), Errno.EINVAL, 'no sign')
  t.equal(errnoOf(() => memparse('+1')), Errno.EINVAL, 'not even +')
  t.equal(errnoOf(() => memparse(' 2M')), Errno.EINVAL, 'no leading whitespace in the kernel')
  t.equal(errnoOf(() => memparse('\t2M')), Errno.EINVAL)
  t.equal(errnoOf(() => memparse('\0' + '1G')), Errno.EINVAL)
})

t.test('parseDisksize (disksize_store: value 0 -> EINVAL, junk ignored)', async (t) => {
  t.equal(parseDisksize('1G\n'), GiB)
  t.equal(parseDisksize('1g'), GiB)
  t.equal(parseDisksize('4096'), 4096n)
  t.equal(parseDisksize('0x1000\n'), 4096n)
  t.equal(parseDisksize('1Gjunk'), GiB)
  t.equal(parseDisksize('10Q'), 10n)
  t.equal(parseDisksize('1'), 1n, 'not page aligned yet')
  for (const bad of ['', '\n', '0', '0\n', '0x0', 'abc', ' 2M', '-1', 'K', '16E', '0G']) {
    t.equal(errnoOf(() => parseDisksize(bad)), Errno.EINVAL, JSON.stringify(bad))
  }
})

t.test('parseMemLimit (mem_limit_store: memparse then PAGE_ALIGN)', async (t) => {
  t.equal(parseMemLimit('1G\n'), GiB)
  t.equal(parseMemLimit('1'), 4096n)
  t.equal(parseMemLimit('0'), 0n)
  t.equal(parseMemLimit('K'), 0n)
  t.equal(parseMemLimit('15E'), 15n << 60n)
  t.equal(parseMemLimit('16E'), 0n, 'the shift wraps')
  t.equal(parseMemLimit('18446744073709551615'), 0n, 'PAGE_ALIGN wraps')
  t.equal(parseMemLimit('99999999999999999999'), pageAlign(99999999999999999999n & U64_MAX), 'simple_strtoull wraps')
  const top = parseMemLimit('18446744073709547519')
  t.equal(top, U64_MAX - 4095n)
  t.equal(BigInt(Number(top)), top, 'a multiple of 4096 below 2^64 is exact as a double')
  t.equal(errnoOf(() => parseMemLimit('x')), Errno.EINVAL)
})

t.test('pageAlign', async (t) => {
  t.equal(pageAlign(0n), 0n)
  t.equal(pageAlign(1n), 4096n)
  t.equal(pageAlign(4096n), 4096n)
  t.equal(pageAlign(4097n), 8192n)
  t.equal(pageAlign(10n), 4096n)
  t.equal(pageAlign(U64_MAX), 0n, 'wraps like the C macro')
})

t.test('parseU64 (kstrtoull)', async (t) => {
  t.equal(parseU64('0'), 0n)
  t.equal(parseU64('12'), 12n)
  t.equal(parseU64('12\n'), 12n)
  t.equal(parseU64('+12'), 12n, 'one leading + is allowed')
  t.equal(parseU64('+12\n', 10), 12n)
  t.equal(parseU64('010', 10), 10n, 'base 10: leading zeros are decimal')
  t.equal(parseU64('010', 0), 8n, 'base 0: octal')
  t.equal(parseU64('0x10', 0), 16n)
  t.equal(parseU64('0X1F\n', 0), 31n)
  t.equal(parseU64('ff', 16), 255n)
  t.equal(parseU64('0xff', 16), 255n)
  t.equal(parseU64('18446744073709551615'), U64_MAX)
  t.equal(parseU64('0xffffffffffffffff', 0), U64_MAX)
  t.equal(errnoOf(() => parseU64('18446744073709551616')), Errno.ERANGE)
  t.equal(errnoOf(() => parseU64('99999999999999999999999')), Errno.ERANGE)
  t.equal(errnoOf(() => parseU64('0x10000000000000000', 0)), Errno.ERANGE)
  t.equal(errnoOf(() => parseU64('99999999999999999999x')), Errno.ERANGE, 'overflow is checked before junk')
  for (const bad of ['', '\n', '-1', '-0', '12 ', ' 12', '12\n\n', '12\r\n', '1 2', '12abc', 'abc', '++1',
    '+', '+-1', '0x10', '1.5', '1e3', '1K', '\t1']) {
    t.equal(errnoOf(() => parseU64(bad, 10)), Errno.EINVAL, `${JSON.stringify(bad)} base 10`)
  }
  t.equal(errnoOf(() => parseU64('08', 0)), Errno.EINVAL, 'octal has no 8')
  t.equal(errnoOf(() => parseU64('0x', 0)), Errno.EINVAL, '0x without digit: octal 0 then junk')
  t.equal(errnoOf(() => parseU64('0xg', 0)), Errno.EINVAL)
})

t.test('parseS32 / parseU32 (kstrtoint / kstrtouint)', async (t) => {
  t.equal(parseS32('-1'), -1)
  t.equal(parseS32('-0'), 0)
  t.equal(parseS32('+7\n'), 7)
  t.equal(errnoOf(() => parseS32('-9223372036854775809')), Errno.ERANGE, 'out of s64 (kstrtoll)')
  t.equal(errnoOf(() => parseS32('18446744073709551616')), Errno.ERANGE, 'out of u64')
  t.equal(errnoOf(() => parseS32('--1')), Errno.EINVAL)
  t.equal(errnoOf(() => parseS32('-+1')), Errno.EINVAL, 'no + after -')
  t.equal(errnoOf(() => parseS32('-')), Errno.EINVAL)

  t.equal(parseS32('-2147483648'), -2147483648)
  t.equal(parseS32('2147483647\n'), 2147483647)
  t.equal(parseS32('-5'), -5)
  t.equal(errnoOf(() => parseS32('2147483648')), Errno.ERANGE)
  t.equal(errnoOf(() => parseS32('-2147483649')), Errno.ERANGE)
  t.equal(errnoOf(() => parseS32('1x')), Errno.EINVAL)

  t.equal(parseU32('4294967295'), 4294967295)
  t.equal(parseU32('0x20', 0), 32)
  t.equal(errnoOf(() => parseU32('4294967296')), Errno.ERANGE)
  t.equal(errnoOf(() => parseU32('-1')), Errno.EINVAL)
})

t.test('parseBool (kstrtobool)', async (t) => {
  for (const yes of ['1', '1\n', 'y', 'Y', 'yes', 'Yes\n', 't', 'true', 'T', 'e', 'enabled', 'E', 'on', 'ON',
    'oN\n', '10', 'yellow']) {
    t.equal(parseBool(yes), true, JSON.stringify(yes))
  }
  for (const no of ['0', '0\n', 'n', 'N', 'no', 'f', 'false', 'F', 'd', 'disabled', 'D', 'off', 'OFF', 'of',
    'nope', '01']) {
    t.equal(parseBool(no), false, JSON.stringify(no))
  }
  for (const bad of ['', '\n', ' 1', '2', '-1', 'o', 'o\n', 'ox', 'x', 'Off'.slice(0, 1), '\0' + '1']) {
    t.equal(errnoOf(() => parseBool(bad)), Errno.EINVAL, JSON.stringify(bad))
  }
})

t.test('sysfsStreq', async (t) => {
  t.ok(sysfsStreq('all', 'all'))
  t.ok(sysfsStreq('all\n', 'all'))
  t.ok(sysfsStreq('all', 'all\n'))
  t.ok(sysfsStreq('all\n', 'all\n'))
  t.notOk(sysfsStreq('all\n\n', 'all'))
  t.notOk(sysfsStreq('al', 'all'))
  t.notOk(sysfsStreq('all ', 'all'))
  t.notOk(sysfsStreq(' all', 'all'))
  t.ok(sysfsStreq('', ''))
  t.ok(sysfsStreq('\n', ''))
})

t.test('parseKeyValues (next_arg)', async (t) => {
  t.same(parseKeyValues(''), [])
  t.same(parseKeyValues('\n'), [])
  t.same(parseKeyValues('   \n'), [])
  t.same(parseKeyValues('idle'), [{ key: 'idle', value: null }])
  t.same(parseKeyValues('idle\n'), [{ key: 'idle', value: null }])
  t.same(parseKeyValues('type=idle\n'), [{ key: 'type', value: 'idle' }])
  t.same(parseKeyValues('  algo=zstd   priority=1\n'), [
    { key: 'algo', value: 'zstd' },
    { key: 'priority', value: '1' },
  ])
  t.same(parseKeyValues('a=1\tb=2\nc=3'), [
    { key: 'a', value: '1' }, { key: 'b', value: '2' }, { key: 'c', value: '3' },
  ])
  t.same(parseKeyValues('level='), [{ key: 'level', value: '' }])
  t.same(parseKeyValues('a=b=c'), [{ key: 'a', value: 'b=c' }])
  t.same(parseKeyValues('=x'), [{ key: '=x', value: null }], 'an = at position 0 does not count')
  t.same(parseKeyValues('=x=y'), [{ key: '=x', value: 'y' }])
  t.same(parseKeyValues('dict="/my dicts/zstd.dict" level=3\n'), [
    { key: 'dict', value: '/my dicts/zstd.dict' },
    { key: 'level', value: '3' },
  ])
  t.same(parseKeyValues('"dict=/a b" x=1'), [
    { key: 'dict', value: '/a b' },
    { key: 'x', value: '1' },
  ], 'a quoted whole parameter')
  t.same(parseKeyValues('"quoted words"'), [{ key: 'quoted words', value: null }])
  t.same(parseKeyValues('a="b'), [{ key: 'a', value: 'b' }], 'unterminated quote runs to the end')
  t.same(parseKeyValues('a="b c\n'), [{ key: 'a', value: 'b c\n' }], 'even over the newline')
  t.same(parseKeyValues('a=b"c d"'), [{ key: 'a', value: 'b"c d"' }], 'quotes inside a value stay')
  t.same(parseKeyValues('a=""'), [{ key: 'a', value: '' }])
  t.same(parseKeyValues('"'), [{ key: '', value: null }])
  t.same(parseKeyValues('page_index=1 page_index=2'), [
    { key: 'page_index', value: '1' }, { key: 'page_index', value: '2' },
  ], 'repeated keys are kept in order')
  t.same(parseKeyValues('a=1\xa0b=2'), [{ key: 'a', value: '1' }, { key: 'b', value: '2' }],
    '0xA0 is kernel whitespace')
  t.same(parseKeyValues('a=1\0 b=2'), [{ key: 'a', value: '1' }], 'stops at NUL')
})

t.test('parseAlgorithmParamsArgs + resolveAlgorithmParams (algorithm_params_store)', async (t) => {
  const comps = ['lz4', 'zstd', null, 'deflate']
  // the store's two phases back to back (the store checks its state between them)
  const parseAlgorithmParams = (text: string, algs: readonly (string | null)[]) =>
    resolveAlgorithmParams(parseAlgorithmParamsArgs(text), algs)
  t.same(parseAlgorithmParams('level=3\n', comps), {
    priority: 0, priorityGiven: false, algo: null, level: 3, dict: null, deflateWinbits: null,
  })
  t.same(parseAlgorithmParams('algo=zstd level=-5\n', comps), {
    priority: 1, priorityGiven: false, algo: 'zstd', level: -5, dict: null, deflateWinbits: null,
  }, 'algo selects the priority; zstd levels may be negative')
  t.same(parseAlgorithmParams('priority=1 level=19 dict=/etc/zstd.dict', comps), {
    priority: 1, priorityGiven: true, algo: null, level: 19, dict: '/etc/zstd.dict', deflateWinbits: null,
  })
  // Mainline 7.1 ("unify and harden algo/priority params handling"): the two must agree.
  t.equal(errnoOf(() => parseAlgorithmParams('algo=lz4 priority=3', comps)), Errno.EINVAL, 'priority 3 is deflate, not lz4: EINVAL, no override')
  t.equal(errnoOf(() => parseAlgorithmParams('algo=lz4 priority=2', comps)), Errno.EINVAL, 'no algorithm at priority 2')
  t.same(parseAlgorithmParams('algo=deflate priority=3', comps).priority, 3, 'they agree')
  t.same(parseAlgorithmParams('priority=2 level=1', comps).priority, 2, 'an unset slot is accepted')
  t.same(parseAlgorithmParams('algo=deflate deflate.winbits=-12', comps), {
    priority: 3, priorityGiven: false, algo: 'deflate', level: null, dict: null, deflateWinbits: -12,
  })
  t.same(parseAlgorithmParams('level=1 level=2', comps).level, 2, 'last value wins')
  t.same(parseAlgorithmParams('level=-2147483648', comps).level, null, 'INT_MIN is "not set"')
  t.same(parseAlgorithmParams('level=3 foo=bar', comps).level, 3, 'unknown keys are ignored')
  t.same(parseAlgorithmParams('dict="/a b/c"', comps).dict, '/a b/c')
  t.same(parseAlgorithmParams('', comps), {
    priority: 0, priorityGiven: false, algo: null, level: null, dict: null, deflateWinbits: null,
  }, 'an empty write resets the primary parameters')

  t.equal(errnoOf(() => parseAlgorithmParams('level\n', comps)), Errno.EINVAL, 'key without value')
  t.equal(errnoOf(() => parseAlgorithmParams('level=\n', comps)), Errno.EINVAL, 'empty value')
  t.equal(errnoOf(() => parseAlgorithmParams('foo\n', comps)), Errno.EINVAL, 'even for unknown keys')
  t.equal(errnoOf(() => parseAlgorithmParams('algo=lzo level=1', comps)), Errno.EINVAL, 'algo not configured')
  t.equal(errnoOf(() => parseAlgorithmParams('algo=LZ4', comps)), Errno.EINVAL, 'strcmp is exact')
  t.equal(errnoOf(() => parseAlgorithmParams('level=abc', comps)), Errno.EINVAL)
  t.equal(errnoOf(() => parseAlgorithmParams('level=3x', comps)), Errno.EINVAL)
  t.equal(errnoOf(() => parseAlgorithmParams('level=2147483648', comps)), Errno.ERANGE, 'kstrtoint ERANGE')
  t.equal(errnoOf(() => parseAlgorithmParams('priority=4', comps)), Errno.EINVAL)
  t.equal(errnoOf(() => parseAlgorithmParams('priority=-1', comps)), Errno.EINVAL)
  t.equal(errnoOf(() => parseAlgorithmParams('priority=0x1', comps)), Errno.EINVAL, 'base 10 only')
  t.equal(errnoOf(() => parseAlgorithmParams('deflate.winbits=x', comps)), Errno.EINVAL)

  // the two phases, for callers that check EBUSY between them as the kernel does
  const args = parseAlgorithmParamsArgs('algo=zstd level=7')
  t.same(args, { priority: 0, priorityGiven: false, algo: 'zstd', level: 7, dict: null, deflateWinbits: null })
  t.equal(resolveAlgorithmParams(args, comps).priority, 1)
  t.equal(errnoOf(() => resolveAlgorithmParams(args, ['lz4'])), Errno.EINVAL)
})

t.test('parseAlgorithmName (__comp_algorithm_store)', async (t) => {
  const names = ['lzo-rle', 'lzo', 'lz4', 'zstd']
  t.equal(parseAlgorithmName('lz4\n', names), 'lz4')
  t.equal(parseAlgorithmName('lz4', names), 'lz4')
  t.equal(parseAlgorithmName('lz4\n\n', names), 'lz4', 'store strips one \\n, sysfs_streq one more')
  t.equal(parseAlgorithmName('lzo', names), 'lzo')
  t.equal(errnoOf(() => parseAlgorithmName('lz4\n\n\n', names)), Errno.EINVAL)
  t.equal(errnoOf(() => parseAlgorithmName('LZ4\n', names)), Errno.EINVAL)
  t.equal(errnoOf(() => parseAlgorithmName(' lz4\n', names)), Errno.EINVAL)
  t.equal(errnoOf(() => parseAlgorithmName('', names)), Errno.EINVAL)
  t.equal(errnoOf(() => parseAlgorithmName('lz', names)), Errno.EINVAL)
  t.equal(errnoOf(() => parseAlgorithmName('x'.repeat(127), names)), Errno.EINVAL)
  t.equal(errnoOf(() => parseAlgorithmName('x'.repeat(128), names)), Errno.E2BIG)
  t.equal(errnoOf(() => parseAlgorithmName('x'.repeat(127) + '\n', names)), Errno.E2BIG, 'strlen counts the \\n')
})

t.test('parseRecompAlgorithm (recomp_algorithm_store)', async (t) => {
  const names = ['lzo-rle', 'lzo', 'lz4', 'zstd']
  t.same(parseRecompAlgorithm('algo=zstd\n', names), { priority: 1, algo: 'zstd' })
  t.same(parseRecompAlgorithm('algo=zstd priority=3', names), { priority: 3, algo: 'zstd' })
  t.same(parseRecompAlgorithm('priority=2 algo=lz4 other=1', names), { priority: 2, algo: 'lz4' })
  t.equal(errnoOf(() => parseRecompAlgorithm('priority=1', names)), Errno.EINVAL, 'algo required')
  t.equal(errnoOf(() => parseRecompAlgorithm('algo', names)), Errno.EINVAL)
  t.equal(errnoOf(() => parseRecompAlgorithm('algo=zstd priority=0', names)), Errno.EINVAL)
  t.equal(errnoOf(() => parseRecompAlgorithm('algo=zstd priority=4', names)), Errno.EINVAL)
  t.equal(errnoOf(() => parseRecompAlgorithm('algo=zstd priority=9999999999', names)), Errno.ERANGE)
  t.equal(errnoOf(() => parseRecompAlgorithm('algo=brotli', names)), Errno.EINVAL)
  t.equal(errnoOf(() => parseRecompAlgorithm(`algo=${'z'.repeat(200)}`, names)), Errno.E2BIG)
})

t.test('store-specific parsers', async (t) => {
  // mem_used_max: only 0, and every failure is EINVAL
  t.equal(parseMemUsedMax('0\n'), undefined)
  t.equal(parseMemUsedMax('+0'), undefined)
  t.equal(errnoOf(() => parseMemUsedMax('1')), Errno.EINVAL)
  t.equal(errnoOf(() => parseMemUsedMax('99999999999999999999')), Errno.EINVAL, 'ERANGE becomes EINVAL')
  t.equal(errnoOf(() => parseMemUsedMax('')), Errno.EINVAL)

  // reset: kstrtou16, its errors as is, 0 -> EINVAL
  t.equal(parseReset('1\n'), 1)
  t.equal(parseReset('65535'), 65535)
  t.equal(errnoOf(() => parseReset('0')), Errno.EINVAL)
  t.equal(errnoOf(() => parseReset('65536')), Errno.ERANGE)
  t.equal(errnoOf(() => parseReset('yes')), Errno.EINVAL)

  // idle: "all" or seconds (base 0)
  t.equal(parseIdle('all\n'), 'all')
  t.equal(parseIdle('all'), 'all')
  t.equal(parseIdle('60\n'), 60)
  t.equal(parseIdle('0x10'), 16)
  t.equal(errnoOf(() => parseIdle('All')), Errno.EINVAL)
  t.equal(errnoOf(() => parseIdle('-1')), Errno.EINVAL)
  t.equal(errnoOf(() => parseIdle('4294967296')), Errno.EINVAL, 'ERANGE becomes EINVAL')

  // writeback_limit*, writeback_batch_size, compressed_writeback
  t.equal(parseWritebackLimit('1024\n'), 1024n)
  t.equal(errnoOf(() => parseWritebackLimit('18446744073709551616')), Errno.EINVAL)
  t.equal(errnoOf(() => parseWritebackLimit('1K')), Errno.EINVAL)
  t.equal(parseWritebackLimitEnable('1\n'), true)
  t.equal(parseWritebackLimitEnable('0'), false)
  t.equal(parseWritebackLimitEnable('2'), true)
  t.equal(errnoOf(() => parseWritebackLimitEnable('y')), Errno.EINVAL)
  t.equal(parseWritebackBatchSize('32\n'), 32)
  t.equal(errnoOf(() => parseWritebackBatchSize('0')), Errno.EINVAL)
  t.equal(errnoOf(() => parseWritebackBatchSize('4294967296')), Errno.EINVAL)
  t.equal(parseCompressedWriteback('yes\n'), true)
  t.equal(parseCompressedWriteback('0'), false)
  t.equal(errnoOf(() => parseCompressedWriteback('2')), Errno.EINVAL)

  // backing_dev: one trailing newline dropped, cut at PATH_MAX - 1
  t.equal(parseBackingDev('/dev/loop0\n'), '/dev/loop0')
  t.equal(parseBackingDev('/dev/loop0'), '/dev/loop0')
  t.equal(parseBackingDev('/dev/loop0\n\n'), '/dev/loop0\n')
  t.equal(parseBackingDev('/a b '), '/a b ')
  t.equal(parseBackingDev('/' + 'x'.repeat(5000)).length, 4095)

  // hot_remove: kstrtoint, negative -> EINVAL
  t.equal(parseHotRemove('3\n'), 3)
  t.equal(parseHotRemove('+3'), 3)
  t.equal(errnoOf(() => parseHotRemove('-1')), Errno.EINVAL)
  t.equal(errnoOf(() => parseHotRemove('2147483648')), Errno.ERANGE)
  t.equal(errnoOf(() => parseHotRemove('zram1')), Errno.EINVAL)
})
