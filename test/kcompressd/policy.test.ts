// kcompressd's rules (src/kcompressd/policy.ts) as pure functions: no device, no thread, no clock.
import t from 'tap'
import {
  cheaperInline, COLLECT_BATCH, deeperReserve, defaultWorkersFor, type HandoffState, inlineIsCheaper, isProbe, isSampled, MAX_SAMPLE_NS,
  MAX_WAKE_NS, MIN_RESERVED, MIN_STAGED_WORK_NS, nextCompressNs, nextDraw, PROBE_EVERY, resultsDue, SAMPLE_EVERY, WAKE_SAMPLES,
  wakeEstimate, wakeSampleNs,
} from '../../src/kcompressd/policy'
import { RESERVE_SLOTS } from '../../src/kcompressd/protocol'

t.test('inlineIsCheaper: a request whose pages compress faster than a wake-up (or 12 us) stays inline', async (t) => {
  t.notOk(inlineIsCheaper(1, 0, 20000), 'compression cost not measured yet: staged, to measure it')
  // lz4-like: 2 us per page against a 20 us wake-up.
  t.ok(inlineIsCheaper(1, 2000, 20000), 'a single lz4 page: inline')
  t.ok(inlineIsCheaper(8, 2000, 20000), '8 pages, 16 us: inline')
  t.notOk(inlineIsCheaper(32, 2000, 20000), '32 pages, 64 us: staged')
  t.ok(inlineIsCheaper(1, 5000, 1000), 'a cheap wake-up does not make a 5 us page worth a handoff')
  t.ok(inlineIsCheaper(5, 2000, 0), '10 us of work stays inline even with no wake-up')
  t.notOk(inlineIsCheaper(7, 2000, 0), '14 us is staged')
  t.notOk(inlineIsCheaper(1, 25000, 20000), 'a zstd page: staged')
  t.ok(inlineIsCheaper(1, 25000, 30000), 'but inline when the wake-up costs more still')
})

t.test('resultsDue: requests take results in batches of 16 (half a small ring), or when their pages would not fit', async (t) => {
  t.notOk(resultsDue(1, 256, 1), 'one result waiting: left for the batch or the idle wait')
  t.notOk(resultsDue(15, 256, 1), '15 of 256 busy: not yet')
  t.ok(resultsDue(16, 256, 1), '16 busy: taken')
  t.ok(resultsDue(2, 4, 1), 'a 4-slot ring: taken at 2')
  t.notOk(resultsDue(1, 4, 1), 'and not at 1')
  t.ok(resultsDue(1, 4, 4), 'a 4-page request on a 4-slot ring with one busy: taken first')
  t.ok(resultsDue(10, 256, 250), 'a request bigger than the free slots: taken first')
  t.notOk(resultsDue(0, 256, 256), 'nothing busy: nothing to take')
})

t.test('inlineIsCheaper: the bounds are strict, the floor is MIN_STAGED_WORK_NS', async (t) => {
  t.equal(MIN_STAGED_WORK_NS, 12_000)
  t.notOk(inlineIsCheaper(3, 4000, 0), 'exactly the floor (3 x 4 us): staged')
  t.ok(inlineIsCheaper(3, 3999, 0), 'just under the floor: inline')
  t.notOk(inlineIsCheaper(2, 10_000, 20_000), 'exactly a wake-up: staged')
  t.ok(inlineIsCheaper(2, 9_999, 20_000), 'just under a wake-up: inline')
  t.notOk(inlineIsCheaper(0, 0, 30_000), 'no estimate: staged, whatever the request')
})

/** A HandoffState that records what the rule asked for. */
function handoff(asleep: boolean, sinceMs: number, pollUs: number): HandoffState & { asked: string[] } {
  const asked: string[] = []
  return {
    asked,
    allAsleep() {
      asked.push('asleep')
      return asleep
    },
    msSinceLastWeighed() {
      asked.push('clock')
      return sinceMs
    },
    get pollUs() {
      asked.push('pollUs')
      return pollUs
    },
  }
}

t.test('cheaperInline: the floor first, then the sleepers, then the clock, each read only when needed', async (t) => {
  let s = handoff(true, Infinity, 1000)
  t.ok(cheaperInline(1, 2000, 30_000, s), 'under the floor: inline')
  t.same(s.asked, [], 'without reading the sleepers or the clock')

  s = handoff(false, Infinity, 1000)
  t.notOk(cheaperInline(1, 15_000, 30_000, s), 'over the floor with a worker awake: staged, though a wake-up would cost more')
  t.same(s.asked, ['asleep'], 'the clock is not read')

  s = handoff(true, Infinity, 1000)
  t.ok(cheaperInline(1, 15_000, 30_000, s), 'every worker asleep, the first such request: the wake-up keeps it inline')
  t.same(s.asked, ['asleep', 'clock', 'pollUs'])

  t.notOk(cheaperInline(1, 25_000, 20_000, handoff(true, Infinity, 1000)), 'every worker asleep, but the page costs more than the wake-up: staged')
  t.notOk(cheaperInline(1, 15_000, 30_000, handoff(true, 0.5, 1000)), 'within poll_us of the previous one: staged (the woken worker polls)')
  t.ok(cheaperInline(1, 15_000, 30_000, handoff(true, 1, 1000)), 'exactly poll_us after it: the wake-up counts again')
  t.ok(cheaperInline(1, 15_000, 30_000, handoff(true, 0, 0)), 'poll_us 0: a woken worker does not poll, every wake-up counts')
  t.notOk(cheaperInline(1, 0, 30_000, handoff(true, Infinity, 1000)), 'no estimate yet: staged, to measure it')
})

t.test('isProbe: one in PROBE_EVERY of the requests kept inline by cost is staged', async (t) => {
  t.equal(PROBE_EVERY, 1024)
  t.notOk(isProbe(1), 'the first is kept inline')
  t.notOk(isProbe(PROBE_EVERY - 1))
  t.ok(isProbe(PROBE_EVERY), 'the PROBE_EVERY-th is staged')
  t.ok(isProbe(3 * PROBE_EVERY))
  let probes = 0
  for (let run = 1; run <= 10 * PROBE_EVERY; run++) if (isProbe(run)) probes++
  t.equal(probes, 10, 'ten in ten times PROBE_EVERY')
})

t.test('nextDraw and isSampled: a full-period xorshift, one draw in SAMPLE_EVERY sampled', async (t) => {
  t.equal(SAMPLE_EVERY & (SAMPLE_EVERY - 1), 0, 'SAMPLE_EVERY is a power of two')
  t.equal(nextDraw(1), 270369, 'xorshift32 (13, 17, 5) from 1')
  let x = 0x9e3779b9
  let sampled = 0
  let run = 0
  let longest = 0
  const N = 1 << 16
  for (let i = 0; i < N; i++) {
    x = nextDraw(x)
    if (x === 0) {
      t.fail('a draw of 0: the generator would stay there')
      break
    }
    if (isSampled(x)) {
      sampled++
      run = 0
    } else if (++run > longest) longest = run
  }
  t.ok(Math.abs(sampled - N / SAMPLE_EVERY) < N / SAMPLE_EVERY / 10, `${sampled} of ${N} sampled, about one in ${SAMPLE_EVERY}`)
  t.ok(longest < 40 * SAMPLE_EVERY, `no long stretch without a sample (longest ${longest})`)
  t.notOk(isSampled(1), 'low bits not all 0: not sampled')
  t.ok(isSampled(SAMPLE_EVERY * 3), 'low bits all 0: sampled')
})

t.test('resultsDue: tiny rings and the request that does not fit', async (t) => {
  t.equal(COLLECT_BATCH, 16)
  t.ok(resultsDue(0, 1, 0), 'a 1-slot ring: always due (half of it is 0)')
  t.ok(resultsDue(1, 2, 0), 'a 2-slot ring: due at 1')
  t.notOk(resultsDue(0, 2, 1), 'and not at 0 when the page fits')
  t.notOk(resultsDue(15, 33, 1), 'a 33-slot ring: the batch is 16')
  t.ok(resultsDue(16, 33, 1))
  t.notOk(resultsDue(15, 256, 241), '241 pages fit in the 241 free slots')
  t.ok(resultsDue(15, 256, 242), '242 do not')
})

t.test('nextCompressNs: the first sample as it is, then an EWMA of 1/16; each sample clamped', async (t) => {
  t.equal(nextCompressNs(0, 5000), 5000, 'the first sample')
  t.equal(nextCompressNs(5000, 21_000), 6000, 'one sixteenth of the way to the next')
  t.equal(nextCompressNs(5000, 5000), 5000, 'a steady cost stays')
  t.equal(nextCompressNs(0, 10 * MAX_SAMPLE_NS), MAX_SAMPLE_NS, 'a first sample is clamped too')
  t.equal(nextCompressNs(4000, 10 * MAX_SAMPLE_NS), 4000 + (MAX_SAMPLE_NS - 4000) / 16, 'one stall moves it by a sixteenth of the clamp')
})

t.test('wakeSampleNs and wakeEstimate: per worker woken, clamped, the median of the recent ones', async (t) => {
  t.equal(wakeSampleNs(0.02, 1), 20_000, '20 us for one worker')
  t.equal(wakeSampleNs(0.02, 4), 5000, 'shared by the workers it woke')
  t.equal(wakeSampleNs(5, 1), MAX_WAKE_NS, 'a preempted notify counts for MAX_WAKE_NS')
  const s = new Float64Array(WAKE_SAMPLES)
  s.set([30_000, 8000, 12_000])
  t.equal(wakeEstimate(s, 1), 30_000, 'one sample')
  t.equal(wakeEstimate(s, 2), 19_000, 'two: their mean')
  t.equal(wakeEstimate(s, 3), 12_000, 'three: the middle one, not the mean')
  s.set([9000, 100, 9000, 30_000, 9000, 30_000, 30_000, 8000, 10_000, 11_000, 9500, 9500, 9000, 10_000, 9000, 9500])
  t.equal(wakeEstimate(s, WAKE_SAMPLES), 9500, 'a full window: outliers either way do not move it')
  t.same(Array.from(s.subarray(0, 3)), [9000, 100, 9000], 'the samples themselves are left in their order')
})

t.test('deeperReserve: MIN_RESERVED first, then doubling up to RESERVE_SLOTS', async (t) => {
  t.equal(deeperReserve(0), MIN_RESERVED)
  t.equal(deeperReserve(MIN_RESERVED), 2 * MIN_RESERVED)
  t.equal(deeperReserve(RESERVE_SLOTS / 2 - 1), RESERVE_SLOTS - 2)
  t.equal(deeperReserve(RESERVE_SLOTS / 2), RESERVE_SLOTS, 'the ring full')
  t.equal(deeperReserve(RESERVE_SLOTS / 2 + 1), RESERVE_SLOTS, 'never more than the ring holds')
  t.equal(deeperReserve(RESERVE_SLOTS), RESERVE_SLOTS)
  let d = 0
  const seen: number[] = []
  for (let i = 0; i < 6; i++) seen.push(d = deeperReserve(d))
  t.same(seen, [4, 8, 16, 32, 64, 64])
})

t.test('defaultWorkersFor: by algorithm on two cores or fewer, else one per spare core up to 4', async (t) => {
  for (const cores of [1, 2]) {
    t.equal(defaultWorkersFor('lz4', cores), 0, `lz4 on ${cores}: inline`)
    t.equal(defaultWorkersFor('zstd', cores), 1, `zstd on ${cores}: one worker`)
    t.equal(defaultWorkersFor('lzo-rle', cores), 1, `another algorithm on ${cores}: one worker`)
  }
  t.equal(defaultWorkersFor('lz4', 3), 2)
  t.equal(defaultWorkersFor('zstd', 4), 3)
  t.equal(defaultWorkersFor('lz4', 5), 4)
  t.equal(defaultWorkersFor('zstd', 64), 4, 'never more than 4')
})
