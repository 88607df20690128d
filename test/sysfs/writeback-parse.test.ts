import t from 'tap'
import { parseWritebackRequest } from '../../src/sysfs/writeback-parse'
import { WB_HUGE, WB_IDLE, WB_INCOMPRESSIBLE } from '../../src/writeback/writeback-request'
import { Errno } from '../../src/errno'
import { errnoOf } from '../helpers/pages'

const P = 100

t.test('mode words, bare or as type=, scan the whole device and end the parse', async (t) => {
  t.same(parseWritebackRequest('idle\n', P).scans, [{ mode: WB_IDLE, lo: 0, hi: P }])
  t.same(parseWritebackRequest('huge', P).scans, [{ mode: WB_HUGE, lo: 0, hi: P }])
  t.same(parseWritebackRequest('huge_idle', P).scans, [{ mode: WB_HUGE | WB_IDLE, lo: 0, hi: P }])
  t.same(parseWritebackRequest('type=incompressible\n', P).scans, [{ mode: WB_INCOMPRESSIBLE, lo: 0, hi: P }])
  t.same(parseWritebackRequest('idle page_index=5', P).scans, [{ mode: WB_IDLE, lo: 0, hi: P }], 'parsing stops at the mode')
})

t.test('page_index and page_indexes repeat; the last range carries into a later type=', async (t) => {
  t.same(parseWritebackRequest('page_index=1 page_index=7\n', P).scans, [
    { mode: 0, lo: 1, hi: 2 }, { mode: 0, lo: 7, hi: 8 },
  ])
  t.same(parseWritebackRequest('page_indexes=10-19 page_indexes=30-30', P).scans, [
    { mode: 0, lo: 10, hi: 20 }, { mode: 0, lo: 30, hi: 31 },
  ])
  t.same(parseWritebackRequest('page_indexes=1-3 type=huge', P).scans, [
    { mode: 0, lo: 1, hi: 4 }, { mode: WB_HUGE, lo: 1, hi: 4 },
  ])
  t.same(parseWritebackRequest('bogus=1 page_index=2', P).scans, [{ mode: 0, lo: 2, hi: 3 }], 'unknown keys are ignored')
  t.same(parseWritebackRequest('', P).scans, [], 'nothing to do')
})

t.test('errno: the kernel\'s for each bad argument', async (t) => {
  const cases: Array<[string, number]> = [
    ['hot', Errno.EINVAL], ['type=cold', Errno.EINVAL], ['Idle', Errno.EINVAL],
    ['page_index=100', Errno.ERANGE], ['page_index=-1', Errno.EINVAL], ['page_index=x', Errno.EINVAL],
    ['page_index=99999999999999999999999', Errno.ERANGE],
    ['page_indexes=5', Errno.EINVAL], ['page_indexes=5-4', Errno.ERANGE], ['page_indexes=5-100', Errno.ERANGE],
    ['page_indexes=100-101', Errno.ERANGE], ['page_indexes=a-4', Errno.EINVAL], ['page_indexes=1-b', Errno.EINVAL],
    ['page_index=1 type=nope', Errno.EINVAL],
  ]
  for (const [text, errno] of cases) {
    t.equal(await errnoOf(() => parseWritebackRequest(text, P)), errno, JSON.stringify(text))
  }
})
