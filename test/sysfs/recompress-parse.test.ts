import t from 'tap'
import { RECOMPRESS_HUGE, RECOMPRESS_IDLE } from '../../src/device/recompressor'
import { Errno, ErrnoError } from '../../src/errno'
import { parseRecompress } from '../../src/sysfs/recompress-parse'
import { zramAttributes } from '../../src/sysfs/zram-attributes'

const HUGE = 3625

function errno(text: string): number | null {
  try {
    parseRecompress(text, HUGE)
    return null
  } catch (err) {
    if (err instanceof ErrnoError) return err.errno
    throw err
  }
}

t.test('recompress_store\'s argument loop', async (t) => {
  t.same(parseRecompress('', HUGE), { mode: 0, threshold: 0, maxPages: Infinity, priority: null, algo: null }, 'defaults')
  t.same(parseRecompress('\n', HUGE).mode, 0)
  t.equal(parseRecompress('type=idle', HUGE).mode, RECOMPRESS_IDLE)
  t.equal(parseRecompress('type=huge\n', HUGE).mode, RECOMPRESS_HUGE)
  t.equal(parseRecompress('type=huge_idle', HUGE).mode, RECOMPRESS_IDLE | RECOMPRESS_HUGE)
  t.equal(parseRecompress('type=idle type=foo', HUGE).mode, RECOMPRESS_IDLE, 'an unknown type leaves the mode as it was')
  t.equal(parseRecompress('type=IDLE', HUGE).mode, 0, 'strcmp: case matters')
  t.equal(parseRecompress('type=huge type=idle', HUGE).mode, RECOMPRESS_IDLE, 'the last one wins')
  t.equal(parseRecompress('threshold=3624', HUGE).threshold, 3624)
  t.equal(parseRecompress('max_pages=0', HUGE).maxPages, 0)
  t.equal(parseRecompress('max_pages=+12', HUGE).maxPages, 12, 'kstrtoull takes one leading +')
  t.same(parseRecompress('priority=0', HUGE), { mode: 0, threshold: 0, maxPages: Infinity, priority: 0, algo: null },
    'priority=0 is kept as written (mainline 7.1 refuses it later instead of taking it for 1)')
  t.equal(parseRecompress('priority=3', HUGE).priority, 3)
  t.equal(parseRecompress('priority=-2', HUGE).priority, -2, 'kstrtoint: signed (the range check refuses it later)')
  t.equal(parseRecompress('algo=zstd priority=2', HUGE).algo, 'zstd')
  t.equal(parseRecompress('"algo=a b"', HUGE).algo, 'a b', 'next_arg quoting')
  t.equal(parseRecompress('foo=1 bar=2', HUGE).mode, 0, 'unknown keys are ignored')
  t.equal(parseRecompress('type=idle\0type=huge', HUGE).mode, RECOMPRESS_IDLE, 'the buffer ends at its first NUL')
  for (const [text, want] of [
    ['type', Errno.EINVAL], ['type=', Errno.EINVAL], ['foo', Errno.EINVAL], ['=x', Errno.EINVAL],
    ['max_pages=x', Errno.EINVAL], ['max_pages=-1', Errno.EINVAL], ['max_pages=18446744073709551616', Errno.ERANGE],
    ['threshold=1x', Errno.EINVAL], ['threshold=4294967296', Errno.ERANGE], ['threshold=3625', Errno.EINVAL],
    ['threshold=4096', Errno.EINVAL], ['priority=2147483648', Errno.ERANGE], ['priority=x', Errno.EINVAL],
    ['type=idle threshold=x', Errno.EINVAL],
  ] as const) {
    t.equal(errno(text), want, JSON.stringify(text))
  }
})

/** zram_disk_attrs of mainline zram_drv.c (7.1 merge window), then the block layer's size and stat. */
const MAINLINE_ORDER = ['disksize', 'initstate', 'reset', 'compact', 'mem_limit', 'mem_used_max', 'idle', 'comp_algorithm',
  'bd_stat', 'backing_dev', 'writeback', 'writeback_limit', 'writeback_limit_enable', 'writeback_batch_size',
  'compressed_writeback', 'io_stat', 'mm_stat', 'debug_stat', 'recomp_algorithm', 'recompress', 'algorithm_params', 'size', 'stat']

t.test('the attribute table is in zram_disk_attrs order, recompression included', async (t) => {
  t.same(zramAttributes.map((a) => a.name), MAINLINE_ORDER)
  const modes = Object.fromEntries(zramAttributes.map((a) => [a.name, a.mode]))
  t.equal(modes.recomp_algorithm, 0o644, 'DEVICE_ATTR_RW(recomp_algorithm)')
  t.equal(modes.recompress, 0o200, 'DEVICE_ATTR_WO(recompress)')
})
