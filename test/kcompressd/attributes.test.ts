// zramfuse/ kcompressd attributes through the sysfs table: what they print, what their stores
// accept, and fifo_size's EBUSY while a page is held (counters only, no timing).
import t from 'tap'
import { ZramDevice } from '../../src/device/zram-device'
import { Errno } from '../../src/errno'
import { extensionAttributes } from '../../src/sysfs/zramfuse-attributes'
import { errnoOf } from '../helpers/pages'

const PAGE = 4096

function attr(name: string): (typeof extensionAttributes)[number] {
  const a = extensionAttributes.find((x) => x.name === name)
  if (!a) throw new Error(`no zramfuse/${name}`)
  return a
}

const show = (dev: ZramDevice, name: string): string => attr(name).show!(dev)
const store = (dev: ZramDevice, name: string, text: string): Promise<number | null> => errnoOf(() => attr(name).store!(dev, text))

t.test('every kcompressd counter prints one decimal number', async (t) => {
  const dev = new ZramDevice(0, { workers: 0 })
  t.teardown(() => dev.close())
  for (const name of ['fifo_depth', 'in_flight', 'queued', 'completed', 'stale', 'failed', 'inline_fallbacks', 'inline_cheaper',
    'inline_measured', 'trials', 'trials_inline',
    'fifo_full_events', 'max_fifo_depth', 'batches', 'worker_errors', 'written_in_place', 'reserved_objects', 'populated_chunks', 'worker_wakeups', 'main_wakeups', 'wake_ns', 'compress_ns',
    'main_ns', 'main_ns_per_page']) {
    t.match(show(dev, name), /^\d+\n$/, name)
  }
})

t.test('inline_when_cheaper: a kstrtobool, 1 by default', async (t) => {
  const dev = new ZramDevice(0, { workers: 1 })
  t.teardown(() => dev.close())
  t.equal(show(dev, 'inline_when_cheaper'), '1\n')
  t.equal(await store(dev, 'inline_when_cheaper', 'n\n'), null)
  t.equal(show(dev, 'inline_when_cheaper'), '0\n')
  t.equal(dev.inlineWhenCheaper, false)
  t.equal(await store(dev, 'inline_when_cheaper', '1'), null)
  t.equal(show(dev, 'inline_when_cheaper'), '1\n')
  t.equal(await store(dev, 'inline_when_cheaper', 'x'), Errno.EINVAL)
  t.equal(await store(dev, 'inline_when_cheaper', ''), Errno.EINVAL)
})

t.test('outcome_trials: a kstrtobool, 0 by default (the cost rule alone)', async (t) => {
  const dev = new ZramDevice(0, { workers: 1 })
  t.teardown(() => dev.close())
  t.equal(show(dev, 'outcome_trials'), '0\n')
  t.equal(await store(dev, 'outcome_trials', 'on'), null)
  t.equal(show(dev, 'outcome_trials'), '1\n')
  t.equal(dev.outcomeTrials, true)
  t.equal(await store(dev, 'outcome_trials', 'n'), null)
  t.equal(dev.outcomeTrials, false)
  t.equal(await store(dev, 'outcome_trials', '2'), Errno.EINVAL)
})

t.test('poll_us: 0..1000000 microseconds, 1000 by default, kept when fifo_size replaces the ring', async (t) => {
  const dev = new ZramDevice(0, { workers: 1 })
  t.teardown(() => dev.close())
  t.equal(show(dev, 'poll_us'), '1000\n')
  t.equal(await store(dev, 'poll_us', '0\n'), null, '0: an idle worker sleeps at once')
  t.equal(show(dev, 'poll_us'), '0\n')
  t.equal(await store(dev, 'poll_us', '1000000'), null)
  t.equal(await store(dev, 'poll_us', '1000001'), Errno.EINVAL, 'over a second')
  t.equal(await store(dev, 'poll_us', '-1'), Errno.EINVAL, 'kstrtouint refuses a sign')
  t.equal(await store(dev, 'poll_us', '4294967296'), Errno.ERANGE, 'kstrtouint overflow')
  t.equal(await store(dev, 'poll_us', '250'), null)
  t.equal(await store(dev, 'fifo_size', '64'), null)
  t.equal(show(dev, 'poll_us'), '250\n', 'the new ring keeps the setting')
})

t.test('fifo_size: EBUSY while a worker holds a page, accepted once it is committed', async (t) => {
  const dev = new ZramDevice(0, { workers: 1, kcompressd: { delayMs: 600_000 } })
  t.teardown(() => dev.close())
  dev.initialise(64 * PAGE)
  await dev.workersReady()
  const page = Buffer.alloc(PAGE)
  for (let i = 0; i < PAGE; i++) page[i] = (i * 13) ^ (i >> 4)
  await dev.write(page, 0)
  t.equal(show(dev, 'fifo_depth'), '1\n', 'one page staged')
  t.equal(show(dev, 'queued'), '1\n')
  t.equal(await store(dev, 'fifo_size', '32'), Errno.EBUSY, 'EBUSY while it is staged')
  t.equal(await store(dev, 'fifo_size', '0'), Errno.EINVAL, 'a bad value is EINVAL first, as the kernel checks')
  t.equal(await store(dev, 'workers', '0'), null, 'workers 0 stops the worker, which commits its page')
  await dev.drain()
  t.equal(show(dev, 'fifo_depth'), '0\n')
  t.equal(show(dev, 'completed'), '1\n')
  t.equal(await store(dev, 'fifo_size', '32'), null)
  t.equal(show(dev, 'fifo_size'), '32\n')
  t.equal(show(dev, 'workers'), '0\n')
})
