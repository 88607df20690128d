import t from 'tap'
import { availableParallelism } from 'node:os'
import { ZramDevice } from '../../src/device/zram-device'
import { defaultWorkers } from '../../src/kcompressd/kcompressd'

const cores = availableParallelism()
t.comment(`${cores} cores`)

t.test('defaultWorkers: inline for lz4 and one worker for zstd on <= 2 cores, else one per spare core up to 4', async (t) => {
  if (cores <= 2) {
    t.equal(defaultWorkers('lz4'), 0)
    t.equal(defaultWorkers('zstd'), 1)
  } else {
    t.equal(defaultWorkers('lz4'), Math.min(4, cores - 1))
    t.equal(defaultWorkers('zstd'), Math.min(4, cores - 1))
  }
})

t.test("workers 'auto' follows comp_algorithm until set explicitly; reset restores it", async (t) => {
  const dev = new ZramDevice(0, { workers: 'auto' })
  t.teardown(() => dev.close())
  t.equal(dev.workers, defaultWorkers('lz4'), 'lz4 (the default algorithm)')
  dev.setAlgorithm('zstd')
  t.equal(dev.workers, defaultWorkers('zstd'), 'zstd')
  await dev.workersReady()
  dev.initialise(1024 * 1024)
  const page = Buffer.alloc(4096)
  for (let i = 0; i < 4096; i++) page[i] = (i * 7) & 0xff ^ (i >> 5)
  await dev.write(page, 0)
  await dev.drain()
  const out = Buffer.alloc(4096)
  await dev.read(out, 0)
  t.same(out, page, 'a zstd page round-trips with the default workers')
  dev.setWorkers(0)
  t.equal(dev.workers, 0, 'an explicit count wins')
  dev.reset()
  t.equal(dev.workers, defaultWorkers('lz4'), 'reset: back to lz4 and to the automatic count')
  dev.setWorkers(2)
  dev.setAlgorithm('zstd')
  t.equal(dev.workers, 2, 'an explicit count is kept when the algorithm changes')
})

t.test('a fixed worker count ignores the algorithm', async (t) => {
  const dev = new ZramDevice(0, { workers: 0 })
  t.teardown(() => dev.close())
  dev.setAlgorithm('zstd')
  t.equal(dev.workers, 0)
})
