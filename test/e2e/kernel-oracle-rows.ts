// The inputs test/e2e/kernel-oracle.test.ts writes both to this machine's kernel zram and to ours.
// One row = one write(2) of exact bytes to one attribute, from a known device state; the test
// asserts the same errno (or the same count written) on both, and the same device state after.
//
// Adding rows for a new attribute (writeback, idle, recompression, ...): append them here. A row
// for an attribute the kernel has and we do not yet is skipped with a note; a row whose kernel
// answer depends on a config option the running kernel lacks names it in `kernelConfig`.

/** The device before the write: freshly reset, or reset and then given INIT_DISKSIZE. */
export type OracleState = 'uninit' | 'init'

/** What the writer saw: `ok <bytes written>` or the errno's name. */
export type Outcome = string

export interface OracleRow {
  /** Path under sys/: `block/zram0/<attr>` or `class/zram-control/<attr>`. */
  attr: string
  /** The exact bytes written, one char per byte (latin1). '' is a write of 0 bytes. */
  input: string
  state: OracleState
  /** What the row is about. */
  why: string
  /** Run only when the running kernel has this option on (/proc/config.gz): its answer depends on it. */
  kernelConfig?: string
  /**
   * A difference kept on purpose, documented in docs/attributes.md, and why. With `ours`, the answer
   * differs: the test checks that we answer exactly that and the kernel still answers otherwise.
   * With `stateAfter`, both answer alike but leave a different state: the test checks that they
   * still do, so a stale note shows up.
   */
  differs?: { why: string; ours?: Outcome; stateAfter?: true }
}

/** disksize given to rows in the 'init' state (small: the kernel allocates its table for real). */
export const INIT_DISKSIZE = '4M'

const ZRAM0 = 'block/zram0'

function rows(attr: string, state: OracleState, why: string, inputs: readonly string[]): OracleRow[] {
  return inputs.map((input) => ({ attr, input, state, why }))
}

const X = (n: number): string => 'x'.repeat(n)

export const ORACLE_ROWS: readonly OracleRow[] = [
  // ---- disksize: memparse, value 0 -> EINVAL, initialised -> EBUSY, PAGE_ALIGN, table (ENOMEM)
  ...rows(`${ZRAM0}/disksize`, 'uninit', 'sizes memparse takes, trailing bytes ignored', [
    '4M', '4M\n', '4m\n\n', '4096K\t', '4M\xa0', '4M junk', '4M\0junk', '010', '0x10000', '1',
  ]),
  ...rows(`${ZRAM0}/disksize`, 'uninit', 'value 0 or nothing parsed: EINVAL (no whitespace skipped, no sign)', [
    '0', '0\n', 'abc', '\n', ' 4M', '\t4M', '\xa04M', '-1', '+4M', '0x', 'K', 'K1', '16E', '\0' + '4M', X(5000),
  ]),
  ...rows(`${ZRAM0}/disksize`, 'uninit', 'the page table cannot be allocated: ENOMEM', [
    '1P', '8E', '18446744073709551615', '18446744073709549568',
  ]),
  ...rows(`${ZRAM0}/disksize`, 'uninit', 'an empty write never reaches the store', ['']),
  ...rows(`${ZRAM0}/disksize`, 'init', 'once initialised: parse errors first, then EBUSY', ['8M', '4M', '0', 'abc']),

  // ---- initstate (read only), reset: kstrtou16, 0 -> EINVAL, then EBUSY if open
  ...rows(`${ZRAM0}/initstate`, 'uninit', 'a read-only attribute cannot be opened for writing: EACCES', ['1']),
  ...rows(`${ZRAM0}/reset`, 'uninit', 'kstrtou16 base 10', [
    '1', '1\n', '2', '+1', '01', '65535', '65536', '99999999999999999999', '0', '-1', '-0', 'abc', '\n', ' 1',
    '1 ', '1\t', '1\xa0', '0x1', '1\n\n', '1\0junk', '',
  ]),
  ...rows(`${ZRAM0}/reset`, 'init', 'reset an initialised device', ['1', '0', 'x']),

  // ---- compact: the bytes are not looked at; EINVAL until initialised
  ...rows(`${ZRAM0}/compact`, 'uninit', 'not initialised: EINVAL', ['1', 'x', '\n', '']),
  ...rows(`${ZRAM0}/compact`, 'init', 'initialised: anything goes', ['1', 'x', '\n', X(5000)]),

  // ---- mem_limit: memparse, nothing parsed -> EINVAL, anything after the number ignored, PAGE_ALIGN
  ...rows(`${ZRAM0}/mem_limit`, 'uninit', 'memparse takes a number and ignores the rest', [
    '1G', '1G\n', '1M ', '1Gjunk', '0', '1', '010', '0x1000', 'K', '16E', '15E', '18446744073709551615',
    '99999999999999999999', '0' + X(5000), '12\0' + '34',
  ]),
  ...rows(`${ZRAM0}/mem_limit`, 'uninit', 'nothing parsed: EINVAL', ['abc', '\n', ' 1M', '\xa01M', '-1', '+1M', '']),
  ...rows(`${ZRAM0}/mem_limit`, 'init', 'writable any time', ['1M', 'x']),

  // ---- mem_used_max: kstrtoul base 10, only 0, every failure EINVAL
  ...rows(`${ZRAM0}/mem_used_max`, 'uninit', 'kstrtoul: one trailing newline, one leading +, no space', [
    '0', '0\n', '+0', '00', '1', '0\n\n', ' 0', '0 ', '0\t', '\xa00', '0\xa0', '-0', '0x0', 'abc', '',
    '99999999999999999999', '18446744073709551616',
  ]),
  ...rows(`${ZRAM0}/mem_used_max`, 'init', 'initialised', ['0', '1']),

  // ---- comp_algorithm: >= 128 bytes -> E2BIG, one newline dropped then sysfs_streq, then EBUSY
  ...rows(`${ZRAM0}/comp_algorithm`, 'uninit', 'names as sysfs_streq compares them', [
    'lz4', 'lz4\n', 'lz4\0junk', 'lz4\n\n\n', ' lz4', 'lz4 ', 'lz4\t', 'lz4\xa0', 'LZ4', 'lz', 'nope',
    '\n', '',
  ]),
  {
    attr: `${ZRAM0}/comp_algorithm`, input: 'lz4\n\n', state: 'uninit',
    why: 'accepted: one newline dropped, sysfs_streq tolerates the other',
    differs: {
      stateAfter: true,
      why: 'the kernel keeps "lz4\\n" as the name: comp_algorithm then brackets nothing and ' +
        'algorithm_params algo=lz4 no longer finds it, though lz4 compresses; we select lz4 by its name',
    },
  },
  ...rows(`${ZRAM0}/comp_algorithm`, 'uninit', 'name length: strlen >= 128 is E2BIG', [
    X(127), X(128), X(127) + '\n', X(4095), X(5000),
  ]),
  ...rows(`${ZRAM0}/comp_algorithm`, 'init', 'initialised: E2BIG and EINVAL before EBUSY', ['lz4', 'nope', X(128)]),

  // ---- algorithm_params (its store body belongs to the dict= work; the rows record what 6.18 does)
  ...rows(`${ZRAM0}/algorithm_params`, 'uninit', 'next_arg and kstrtoint', [
    'foo=1', 'algo=lz4', '', '\n', ' ', 'level', 'level=',
    'level=x', 'level=99999999999', 'level=2147483648', 'priority=0', 'priority=4', 'priority=-1', 'algo=nope',
    'algo=LZ4', '=x',
  ]),
  ...rows(`${ZRAM0}/algorithm_params`, 'uninit', 'the kernel takes a level for lz4 (its backend uses it as the acceleration)', [
    'level=3', 'level=3\n', 'algo=lz4 level=1',
  ]),
  {
    attr: `${ZRAM0}/algorithm_params`, input: 'level=-3', state: 'uninit',
    why: 'the kernel takes any level when written and refuses an lz4 acceleration below 1 at disksize',
    differs: {
      ours: 'EINVAL',
      why: 'we check the lz4 acceleration (1..65537) when the parameter is written, not at disksize',
    },
  },
  {
    attr: `${ZRAM0}/algorithm_params`, input: 'priority=1', state: 'uninit', kernelConfig: 'CONFIG_ZRAM_MULTI_COMP',
    why: 'priority 1 exists only with recompression (ZRAM_MAX_COMPS is 1 without it)',
  },
  {
    attr: `${ZRAM0}/algorithm_params`, input: 'level=3', state: 'init',
    why: '6.18 takes parameters after init (they apply from the next disksize, and reset drops them)',
    differs: {
      ours: 'EBUSY',
      why: 'parameters apply when the codec context is made at disksize; after it we refuse them rather than keep values that do nothing until a reset',
    },
  },

  // ---- io_stat, mm_stat, debug_stat, size, stat: read only
  ...['io_stat', 'mm_stat', 'debug_stat', 'size', 'stat'].map((name): OracleRow => ({
    attr: `${ZRAM0}/${name}`, input: '0', state: 'uninit', why: 'read only: EACCES at open for writing',
  })),

  // ---- idle: sysfs_streq "all", or seconds with CONFIG_ZRAM_TRACK_ENTRY_ACTIME; EINVAL until initialised
  ...rows(`${ZRAM0}/idle`, 'uninit', 'not initialised: EINVAL', ['all', 'all\n']),
  ...rows(`${ZRAM0}/idle`, 'init', '"all" as sysfs_streq compares it', ['all', 'all\n', 'all\n\n', ' all', 'All', 'x']),
  ...['5', '0x10', '4294967296', '-1'].map((input): OracleRow => ({
    attr: `${ZRAM0}/idle`, input, state: 'init', kernelConfig: 'CONFIG_ZRAM_TRACK_ENTRY_ACTIME',
    why: 'an age in seconds (kstrtouint base 0) needs access-time tracking',
  })),

  // ---- hot_remove: kstrtoint base 10, negative -> EINVAL, absent -> ENODEV. The test refuses any
  // row whose id names a device that exists on either side: it would remove it.
  ...rows('class/zram-control/hot_remove', 'uninit', 'kstrtoint base 10', [
    '-2147483649', '2147483648', '99999999999999999999', '-1', 'abc', '\n', ' 5', '5 ', '5\t', '\xa05',
    '5\n\n', '+5', '05', '99\n', '2147483647', '5\0junk', '',
  ]),
]
