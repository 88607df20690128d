import t from 'tap'
import { Shrinker, type ShrinkerHost } from '../../src/writeback/shrinker'

/**
 * A pool of `pages` pages with a limit; writing back takes pages out of it (as a compacted pool
 * would give their memory back). Records every call the shrinker makes.
 */
class FakePool implements ShrinkerHost {
  pages: number
  limit: number
  coldAsked: number[] = []
  written: number[][] = []
  compactions = 0
  /** Pages coldPages may still return (the CLOCK hand finds nothing once they are gone). */
  cold = Infinity
  /** writeBack rejects while this is set. */
  fail: Error | null = null
  /** writeBack writes back only this many of the pages it gets (a lower file that fills). */
  room = Infinity

  constructor(pages: number, limit: number) {
    this.pages = pages
    this.limit = limit
  }

  poolPages(): number {
    return this.pages
  }

  poolLimitPages(): number {
    return this.limit
  }

  coldPages(max: number): number[] {
    this.coldAsked.push(max)
    const n = Math.min(max, this.cold, this.pages)
    this.cold -= n
    return Array.from({ length: n }, (_, i) => i)
  }

  async writeBack(indexes: number[]): Promise<number> {
    this.written.push(indexes)
    if (this.fail !== null) throw this.fail
    const n = Math.min(indexes.length, this.room)
    this.room -= n
    this.pages -= n
    return n
  }

  compact(): void {
    this.compactions++
  }
}

function clock(): { now: () => number; advance: (ms: number) => void } {
  let ms = 1_000_000
  return { now: () => ms, advance: (d: number) => { ms += d } }
}

t.test('disabled, it never starts and never reports the limit', async (t) => {
  const pool = new FakePool(1000, 100)
  const s = new Shrinker(pool, clock().now)
  s.poke()
  await s.idle()
  t.equal(s.runs, 0)
  t.equal(pool.coldAsked.length, 0)
  t.equal(s.atLimit(), false)
})

t.test('atLimit: enabled, a limit, and the pool at or over it', async (t) => {
  const pool = new FakePool(99, 100)
  const s = new Shrinker(pool, clock().now)
  s.enabled = true
  t.equal(s.atLimit(), false, 'below the limit')
  pool.pages = 100
  t.equal(s.atLimit(), true, 'at the limit')
  pool.limit = 0
  t.equal(s.atLimit(), false, 'no limit: never at it')
})

t.test('starts only past accept_threshold_percent + 1%, and writes back to the threshold', async (t) => {
  const pool = new FakePool(910, 1000)
  const s = new Shrinker(pool, clock().now)
  s.enabled = true
  s.acceptThresholdPercent = 90
  s.poke()
  await s.idle()
  t.equal(s.runs, 0, '91% is not past 91%')
  pool.pages = 912
  s.poke()
  await s.idle()
  t.equal(s.runs, 1)
  t.ok(pool.pages <= 900 && pool.pages > 900 - 256, `stopped within a round under the threshold (90% of 1000): ${pool.pages}`)
  t.ok(pool.coldAsked.every((max) => max === 256), 'rounds of 256 pages')
  t.equal(pool.compactions, pool.written.length, 'compacted after every round')
})

t.test('a second poke while one runs does not start another', async (t) => {
  const pool = new FakePool(2000, 1000)
  const s = new Shrinker(pool, clock().now)
  s.enabled = true
  s.poke()
  s.poke()
  await s.idle()
  t.equal(s.runs, 1)
  t.equal(pool.written.length, 5, 'one run of ceil(1100 / 256) rounds')
})

t.test('stops when the CLOCK hand finds no cold pages, or nothing could be written', async (t) => {
  const pool = new FakePool(2000, 1000)
  pool.cold = 300
  const s = new Shrinker(pool, clock().now)
  s.enabled = true
  s.poke()
  await s.idle()
  t.equal(pool.pages, 1700, 'wrote back the 300 cold pages there were')
  t.equal(pool.coldAsked.length, 3, 'a third round found none and stopped')

  const full = new FakePool(2000, 1000)
  full.room = 10
  const s2 = new Shrinker(full, clock().now)
  s2.enabled = true
  s2.poke()
  await s2.idle()
  t.equal(full.pages, 1990)
  t.equal(full.written.length, 2, 'the round that wrote none ended the run')
})

t.test('a foreground pause holds background writeback back for pauseMs', async (t) => {
  const c = clock()
  const pool = new FakePool(2000, 1000)
  const s = new Shrinker(pool, c.now)
  s.enabled = true
  s.pauseMs = 500
  s.pause()
  s.poke()
  await s.idle()
  t.equal(s.runs, 0, 'no run starts while paused')
  c.advance(500)
  s.poke()
  await s.idle()
  t.equal(s.runs, 1)
  t.ok(pool.pages <= 900)
})

t.test('a pause during a run waits it out (counted), then goes on', async (t) => {
  // The real clock: the run sleeps on a timer until the pause is over.
  const pool = new FakePool(2000, 1000)
  const s = new Shrinker(pool)
  s.enabled = true
  s.pauseMs = 20
  const writeBack = pool.writeBack.bind(pool)
  let first = true
  pool.writeBack = async (indexes: number[]): Promise<number> => {
    if (first) {
      first = false
      s.pause()
    }
    return writeBack(indexes)
  }
  s.poke()
  await s.idle()
  t.equal(s.paused, 1, 'the pause was waited out once')
  t.ok(pool.pages <= 900, 'and the run finished')
})

t.test('a failed writeback ends the run and backs off before the next poke', async (t) => {
  const c = clock()
  const pool = new FakePool(2000, 1000)
  pool.fail = new Error('EIO')
  const s = new Shrinker(pool, c.now)
  s.enabled = true
  s.pauseMs = 500
  s.poke()
  await s.idle()
  t.equal(s.runs, 1)
  t.equal(pool.written.length, 1, 'one try')
  t.equal(pool.compactions, 0)
  pool.fail = null
  s.poke()
  await s.idle()
  t.equal(s.runs, 1, 'backing off')
  c.advance(500)
  s.poke()
  await s.idle()
  t.equal(s.runs, 2)
  t.ok(pool.pages <= 900)
})

t.test('disabling it mid-run stops after the round in flight', async (t) => {
  const pool = new FakePool(5000, 1000)
  const s = new Shrinker(pool, clock().now)
  s.enabled = true
  const writeBack = pool.writeBack.bind(pool)
  pool.writeBack = async (indexes: number[]): Promise<number> => {
    s.enabled = false
    return writeBack(indexes)
  }
  s.poke()
  await s.idle()
  t.equal(pool.written.length, 1)
  t.equal(pool.pages, 5000 - 256)
  t.same(s.stats(), { runs: 1, paused: 0, poolLimitHit: 0 })
})
