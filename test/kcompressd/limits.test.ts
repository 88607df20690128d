// The bounds of kcompressd's settings (src/kcompressd/limits.ts).
import t from 'tap'
import {
  checkFifoSize, checkPollUs, checkWorkers, DEFAULT_FIFO_SIZE, DEFAULT_POLL_US, MAX_FIFO_SIZE, MAX_POLL_US, MAX_WORKERS,
} from '../../src/kcompressd/limits'

t.test('each check returns what is in range and throws a RangeError for the rest', async (t) => {
  t.equal(checkWorkers(0), 0, 'workers 0: inline')
  t.equal(checkWorkers(MAX_WORKERS), MAX_WORKERS)
  for (const bad of [-1, MAX_WORKERS + 1, 1.5, NaN]) t.throws(() => checkWorkers(bad), RangeError, `workers ${bad}`)
  t.equal(checkPollUs(0), 0, 'poll_us 0: sleep at once')
  t.equal(checkPollUs(MAX_POLL_US), MAX_POLL_US)
  for (const bad of [-1, MAX_POLL_US + 1, 0.5]) t.throws(() => checkPollUs(bad), RangeError, `poll_us ${bad}`)
  t.equal(checkFifoSize(1), 1, 'the smallest ring')
  t.equal(checkFifoSize(MAX_FIFO_SIZE), MAX_FIFO_SIZE)
  for (const bad of [0, MAX_FIFO_SIZE + 1, 2.5]) t.throws(() => checkFifoSize(bad), RangeError, `fifo_size ${bad}`)
})

t.test('the defaults are in range', async (t) => {
  t.equal(checkFifoSize(DEFAULT_FIFO_SIZE), 256)
  t.equal(checkPollUs(DEFAULT_POLL_US), 1000)
})
