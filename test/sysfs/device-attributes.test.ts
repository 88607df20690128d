import t from 'tap'
import { ZramDevice } from '../../src/device/zram-device'
import { Errno, ErrnoError } from '../../src/errno'
import { deviceAttribute, storeAttribute } from '../../src/sysfs/device-attributes'

t.test('kernel names and zramfuse/ names resolve to their tables', async (t) => {
  t.equal(deviceAttribute('disksize')?.name, 'disksize')
  t.equal(deviceAttribute('zramfuse/pool_limit')?.name, 'pool_limit')
  t.equal(deviceAttribute('pool_limit'), undefined, 'an extension is only under zramfuse/')
  t.equal(deviceAttribute('zramfuse/disksize'), undefined, 'a kernel name is not under zramfuse/')
  t.equal(deviceAttribute('nope'), undefined)
})

t.test('a store through it is the attribute\'s own: same parse, same errno, same effect', async (t) => {
  const dev = new ZramDevice(0)
  t.teardown(() => dev.close())
  await storeAttribute(dev, 'comp_algorithm', 'zstd\n')
  t.equal(dev.algorithm, 'zstd')
  await storeAttribute(dev, 'zramfuse/pool_limit', '8M')
  t.equal(dev.poolLimitBytes, 8 << 20)
  await storeAttribute(dev, 'disksize', '64M')
  t.equal(dev.disksize, 64 << 20)
  const errnoOf = (p: Promise<void>): Promise<number | null> => p.then(() => null, (e: unknown) => (e instanceof ErrnoError ? e.errno : -1))
  t.equal(await errnoOf(storeAttribute(dev, 'comp_algorithm', 'lz4')), Errno.EBUSY, 'EBUSY once initialised, as the kernel')
  t.equal(dev.algorithm, 'zstd', 'and nothing changed')
  t.equal(await errnoOf(storeAttribute(dev, 'comp_algorithm', 'nope')), Errno.EINVAL, 'an unknown name is EINVAL before EBUSY')
  t.equal(await errnoOf(storeAttribute(dev, 'mem_limit', 'junk')), Errno.EINVAL)
  await t.rejects(storeAttribute(dev, 'mm_stat', '1'), RangeError, 'a read-only attribute has no store')
  await t.rejects(storeAttribute(dev, 'nope', '1'), RangeError)
})
