// status --watch: rates from two samples, ratios, pool use against the limit, and the table.
import t from 'tap'
import type { DeviceStatus } from '../../daemon/status'
import { computeRows, formatWatch, type WatchSample } from '../../daemon/watch'

function status(over: Partial<DeviceStatus['mm_stat']> = {}, disksize = 1 << 30): DeviceStatus {
  return {
    name: 'zram0', blockFile: '/m/dev/zram0', disksize, algorithm: 'lz4', streams: null, mountpoint: '',
    mm_stat: { orig_data_size: 400 << 20, compr_data_size: 100 << 20, mem_used_total: 128 << 20, mem_limit: 512 << 20,
      mem_used_max: 0, same_pages: 0, pages_compacted: 0, huge_pages: 0, huge_pages_since: 0, ...over },
    io_stat: { failed_reads: 0, failed_writes: 0, invalid_io: 0, notify_free: 0 },
    backing_dev: 'none', bd_stat: { bd_count: 0, bd_reads: 0, bd_writes: 0 }, written_back_pages: 7,
  }
}

function sample(at: number, stat: number[], s = status()): WatchSample {
  return { at, devices: new Map([['zram0', { status: s, stat }]]) }
}

const stat0 = [100, 0, 800, 0, 50, 0, 400, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]
const stat1 = [300, 0, 800 + 2 * 2048 * 1000, 0, 150, 0, 400 + 2 * 1000 * 1000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]

t.test('rates over the interval', async (t) => {
  const [r] = computeRows(sample(10, stat0), sample(12, stat1))
  t.equal(r?.readsPerSecond, 100)
  t.equal(r?.writesPerSecond, 50)
  t.equal(r?.readMBps, (2 * 2048 * 1000 * 512) / 1e6 / 2)
  t.equal(r?.writeMBps, 512)
  t.equal(r?.ratio, 4)
  t.equal(r?.ratioTotal, 400 / 128)
  t.equal(r?.poolUse, 0.25)
  t.equal(r?.wbPages, 7)
})

t.test('no rates on the first sample, after a reset, or without a limit', async (t) => {
  const [first] = computeRows(null, sample(1, stat0))
  t.equal(first?.readsPerSecond, null)
  const [reset] = computeRows(sample(1, stat1), sample(2, stat0))
  t.equal(reset?.readsPerSecond, null, 'counters went down: no negative rate')
  const [nolimit] = computeRows(null, sample(1, stat0, status({ mem_limit: 0, compr_data_size: 0, mem_used_total: 0 })))
  t.equal(nolimit?.poolUse, null)
  t.equal(nolimit?.ratio, null)
  t.same(computeRows(null, sample(1, stat0, status({}, 0))), [], 'uninitialised devices are not listed')
})

t.test('the table', async (t) => {
  const text = formatWatch(computeRows(sample(10, stat0), sample(12, stat1)), 2, new Date('2026-01-01T00:00:00Z'))
  const lines = text.trimEnd().split('\n')
  t.equal(lines[0], 'every 2s  2026-01-01T00:00:00.000Z')
  t.match(lines[1], /^NAME +ALGO +DISKSIZE +DATA +COMPR +TOTAL +RATIO +R\/TOTAL +POOL\/LIMIT +READS\/s +WRITES\/s +READ MB\/s +WRITE MB\/s +WB-PAGES$/)
  t.match(lines[2], /^zram0 +lz4 +1G +400M +100M +128M +4\.00 +3\.13 +25\.0% of 512M +100 +50 +1048\.6 +512\.0 +7$/)
})
