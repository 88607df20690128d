import t from 'tap'
import {
  formatAlgorithmList, formatBackingDev, formatBdStat, formatBlockStat, formatDebugStat, formatInt,
  formatIoStat, formatMmStat, formatRecompAlgorithmList, formatU32, formatU64, type BlockStat,
} from '../../src/sysfs/format'

t.test('formatIoStat: "%8llu %8llu 0 %8llu\\n"', async (t) => {
  t.equal(formatIoStat({ failedReads: 0, failedWrites: 0, notifyFree: 0 }), '       0        0 0        0\n')
  t.equal(formatIoStat({ failedReads: 1, failedWrites: 22, notifyFree: 333 }), '       1       22 0      333\n')
  t.equal(formatIoStat({ failedReads: 12345678, failedWrites: 123456789, notifyFree: 9007199254740993n }),
    '12345678 123456789 0 9007199254740993\n', 'wider than 8: never truncated')
  t.equal(formatIoStat({ failedReads: 5n, failedWrites: 6n, notifyFree: 7n }), '       5        6 0        7\n')
})

t.test('formatMmStat: "%8llu %8llu %8llu %8lu %8ld %8llu %8lu %8llu %8llu\\n"', async (t) => {
  t.equal(formatMmStat({
    origDataSize: 1750654976, comprDataSize: 664188565, memUsedTotal: 676864000, memLimit: 0,
    memUsedMax: 676864000, samePages: 1, pagesCompacted: 0, hugePages: 34288, hugePagesSince: 34288,
  }), '1750654976 664188565 676864000        0 676864000        1        0    34288    34288\n',
  'the kernel documentation sample line')
  t.equal(formatMmStat({
    origDataSize: 0, comprDataSize: 0, memUsedTotal: 0, memLimit: 0, memUsedMax: 0,
    samePages: 0, pagesCompacted: 0, hugePages: 0, hugePagesSince: 0,
  }), '       0        0        0        0        0        0        0        0        0\n')
  t.equal(formatMmStat({
    origDataSize: 4096, comprDataSize: 3625, memUsedTotal: 8192, memLimit: 1048576,
    memUsedMax: -4096, samePages: 2, pagesCompacted: 3, hugePages: 4, hugePagesSince: 5,
  }), '    4096     3625     8192  1048576    -4096        2        3        4        5\n',
  '%8ld keeps the sign of mem_used_max')
  t.equal(formatMmStat({
    origDataSize: 18446744073709551615n, comprDataSize: -1, memUsedTotal: 1, memLimit: 1, memUsedMax: 1n << 63n,
    samePages: 1, pagesCompacted: 1, hugePages: 1, hugePagesSince: 1,
  }), '18446744073709551615 18446744073709551615        1        1 -9223372036854775808        1        1' +
    '        1        1\n', 'C conversions: -1 as %llu, 2^63 as %ld')
})

t.test('formatBdStat: "%8llu %8llu %8llu\\n"', async (t) => {
  t.equal(formatBdStat({ count: 0, reads: 0, writes: 0 }), '       0        0        0\n')
  t.equal(formatBdStat({ count: 10, reads: 200, writes: 123456789 }), '      10      200 123456789\n')
})

t.test('formatDebugStat: mainline "version: %d\\n0 %8llu\\n"', async (t) => {
  t.equal(formatDebugStat({ missFree: 0 }), 'version: 1\n0        0\n')
  t.equal(formatDebugStat({ missFree: 42 }), 'version: 1\n0       42\n')
  t.equal(formatDebugStat({ missFree: 1234567890 }), 'version: 1\n0 1234567890\n')
})

t.test('formatBlockStat: part_stat_show, 17 fields', async (t) => {
  const zero: BlockStat = {
    readIos: 0, readMerges: 0, readSectors: 0, readTicksMs: 0,
    writeIos: 0, writeMerges: 0, writeSectors: 0, writeTicksMs: 0,
    inFlight: 0, ioTicksMs: 0, timeInQueueMs: 0,
    discardIos: 0, discardMerges: 0, discardSectors: 0, discardTicksMs: 0,
    flushIos: 0, flushTicksMs: 0,
  }
  const line = formatBlockStat(zero)
  t.equal(line, Array(17).fill('       0').join(' ') + '\n')
  t.equal(line.length, 17 * 8 + 16 + 1)

  t.equal(formatBlockStat({
    readIos: 1, readMerges: 2, readSectors: 3, readTicksMs: 4,
    writeIos: 5, writeMerges: 6, writeSectors: 7, writeTicksMs: 8,
    inFlight: 9, ioTicksMs: 10, timeInQueueMs: 11,
    discardIos: 12, discardMerges: 13, discardSectors: 14, discardTicksMs: 15,
    flushIos: 16, flushTicksMs: 17,
  }), '       1        2        3        4        5        6        7        8        9       10       11' +
    '       12       13       14       15       16       17\n', 'field order')

  t.equal(formatBlockStat({
    readIos: 4096, readSectors: 32768, readTicksMs: 12.9,
    writeIos: 123456789, writeSectors: 987654321012n, writeTicksMs: 4294967296 + 5,
    inFlight: 0, ioTicksMs: 1500.5, timeInQueueMs: 1600,
    discardIos: 3, discardSectors: 24, discardTicksMs: 0,
    flushIos: 7, flushTicksMs: 1,
  }), '    4096        0    32768       12 123456789        0 987654321012        5        0     1500     1600' +
    '        3        0       24        0        7        1\n',
  'merges default to 0, ms truncate, %8u wraps at 2^32, wide values are not truncated')

  t.throws(() => formatBlockStat({ ...zero, readIos: Number.NaN }), RangeError)
})

t.test('formatAlgorithmList (zcomp_available_show)', async (t) => {
  const names = ['lzo-rle', 'lzo', 'lz4', 'zstd']
  t.equal(formatAlgorithmList(names, 'lz4'), 'lzo-rle lzo [lz4] zstd \n')
  t.equal(formatAlgorithmList(names, 'lzo-rle'), '[lzo-rle] lzo lz4 zstd \n')
  t.equal(formatAlgorithmList(names, 'zstd'), 'lzo-rle lzo lz4 [zstd] \n')
  t.equal(formatAlgorithmList(names, 'lzo'), 'lzo-rle [lzo] lz4 zstd \n', 'exact match only')
  t.equal(formatAlgorithmList(names, 'brotli'), 'lzo-rle lzo lz4 zstd \n')
  t.equal(formatAlgorithmList(names, null), 'lzo-rle lzo lz4 zstd \n')
  t.equal(formatAlgorithmList([], 'lz4'), '\n')
})

t.test('formatRecompAlgorithmList (recomp_algorithm_show)', async (t) => {
  const names = ['lzo-rle', 'lzo', 'lz4', 'zstd']
  t.equal(formatRecompAlgorithmList(names, ['lz4']), '')
  t.equal(formatRecompAlgorithmList(names, ['lz4', 'zstd']), '#1: lzo-rle lzo lz4 [zstd] \n')
  t.equal(formatRecompAlgorithmList(names, ['lz4', null, 'zstd', 'lzo']),
    '#2: lzo-rle lzo lz4 [zstd] \n#3: lzo-rle [lzo] lz4 zstd \n')
})

t.test('single values', async (t) => {
  t.equal(formatU64(0), '0\n')
  t.equal(formatU64(1073741824), '1073741824\n', '%llu: no padding')
  t.equal(formatU64(18446744073709551615n), '18446744073709551615\n')
  t.equal(formatU64(-1), '18446744073709551615\n')
  t.equal(formatU32(1), '1\n')
  t.equal(formatU32(4294967296), '0\n')
  t.equal(formatInt(3), '3\n')
  t.equal(formatInt(-1), '-1\n')
  t.equal(formatInt(true), '1\n')
  t.equal(formatInt(false), '0\n')
  t.equal(formatBackingDev(null), 'none\n')
  t.equal(formatBackingDev('/dev/loop0'), '/dev/loop0\n')
})
