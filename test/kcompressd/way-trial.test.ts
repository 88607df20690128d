// way-trial.ts: the outcome trials that send single-page write requests inline when requests come
// faster that way. Driven by a simulated clock (the interval after each request depends on the way
// it went), so nothing here depends on wall-clock time. Seeded: replay with ZRAMFUSE_SEED=<seed>.
import t from 'tap'
import { chooseWay, MARGIN, MAX_RUN_WINDOWS, PAIRS, RUN_WINDOWS, WARMUP, WayTrial, wayOfWindow, WINDOW } from '../../src/kcompressd/way-trial'
import { prng, seedFromEnv } from '../helpers/pages'

const seed = seedFromEnv(20261202)
t.comment(`seed ${seed} (replay with ZRAMFUSE_SEED=${seed})`)

/** Requests per window: WARMUP not counted, then WINDOW counted. */
const SPAN = WARMUP + WINDOW
const TRIAL = 2 * PAIRS * SPAN
const RUN = RUN_WINDOWS * SPAN

/**
 * Run n requests; the interval after a single-page request is interval(inline, i) ms (with jitter of
 * +-10%); where large(i), request i is a larger one (not on trial), followed by 50 ms. Returns which
 * single pages went inline (false for the larger requests).
 */
function drive(trial: WayTrial, n: number, interval: (inline: boolean, i: number) => number,
  large: (i: number) => boolean = () => false, clock = { now: 0 }): boolean[] {
  const rand = prng(seed)
  const out: boolean[] = []
  for (let i = 0; i < n; i++) {
    if (large(i)) {
      trial.otherRequest()
      out.push(false)
      clock.now += 50
      continue
    }
    const inline = trial.inlineNext(clock.now)
    out.push(inline)
    clock.now += interval(inline, i) * (0.9 + 0.2 * rand())
  }
  return out
}

const count = (xs: boolean[]): number => xs.reduce((n, x) => n + (x ? 1 : 0), 0)

t.test('windows alternate the two ways, pairs alternating which goes first', async (t) => {
  t.same(Array.from({ length: 2 * PAIRS }, (_, w) => wayOfWindow(w)), [0, 1, 1, 0, 0, 1, 1, 0].slice(0, 2 * PAIRS))
  const trial = new WayTrial()
  const ways = drive(trial, TRIAL + 1, () => 1)
  for (let w = 0; w < 2 * PAIRS; w++) {
    const window = ways.slice(w * SPAN, (w + 1) * SPAN)
    // The interval after a window's last request closes it: the window's ways switch one request late.
    const body = window.slice(1)
    if (!body.every((x) => x === (wayOfWindow(w) === 1))) t.fail(`window ${w} did not go one way`)
  }
  t.equal(trial.trials, 1, 'one trial finished')
})

t.test('inline faster by 20%: the next run goes inline, then a new trial', async (t) => {
  const trial = new WayTrial()
  const ways = drive(trial, TRIAL + RUN + TRIAL + 1, (inline) => (inline ? 0.8 : 1.0))
  t.equal(trial.trialsInline, 2, 'both trials chose inline')
  const run = ways.slice(TRIAL, TRIAL + RUN)
  t.equal(count(run), run.length, 'every request of the run went inline')
  const next = ways.slice(TRIAL + RUN, TRIAL + RUN + SPAN)
  t.equal(count(next), 0, 'the next trial starts with the rule')
  t.equal(trial.trials, 2)
})

t.test('each trial that confirms the way doubles the next run, up to MAX_RUN_WINDOWS; a change starts over', async (t) => {
  const trial = new WayTrial()
  const clock = { now: 0 }
  let runs = [RUN_WINDOWS]
  while (runs[runs.length - 1] < MAX_RUN_WINDOWS) runs.push(Math.min(MAX_RUN_WINDOWS, runs[runs.length - 1] * 2))
  runs = [...runs, MAX_RUN_WINDOWS]
  const total = runs.reduce((n, r) => n + TRIAL + r * SPAN, 0)
  const ways = drive(trial, total + 1, (inline) => (inline ? 0.8 : 1), undefined, clock)
  // Runs are the stretches of inline longer than two windows (a trial's INLINE windows come in twos).
  const stretches: number[] = []
  let n = 0
  for (const x of [...ways, false]) {
    if (x) n++
    else if (n > 0) {
      if (n > 2 * SPAN) stretches.push(n)
      n = 0
    }
  }
  // A run joins the INLINE window before it only when the last window is INLINE; here it is RULE (7th).
  t.same(stretches.map((s) => Math.round(s / SPAN)), runs.slice(0, stretches.length), `runs of ${runs.join(', ')} windows`)
  t.equal(stretches.length, runs.length, 'every run seen')
  // The way changes: the rule now faster; the first run after the change is short again.
  const before = trial.trials
  const after = drive(trial, TRIAL + 2 * RUN, (inline) => (inline ? 1.5 : 1), undefined, clock)
  t.equal(trial.trials, before + 2, 'a trial at the end of the long run, another after a short one')
  t.equal(trial.trialsInline, before, 'the new ones chose the rule')
  t.ok(after.length > 0)
})

t.test('the rule faster, or inline ahead by less than the margin: the rule', async (t) => {
  for (const inlineMs of [1.5, 1.0, 1 - MARGIN / 2]) {
    const trial = new WayTrial()
    const ways = drive(trial, TRIAL + RUN, (inline) => (inline ? inlineMs : 1.0))
    t.equal(trial.trials, 1)
    t.equal(trial.trialsInline, 0, `inline at ${inlineMs} ms against 1 ms: not chosen`)
    t.equal(count(ways.slice(TRIAL + 1)), 0, 'the run follows the rule')
  }
})

t.test('pauses of the application do not decide: medians, not means', async (t) => {
  // The rule's windows hold a few 1 s pauses (the application thinking); inline is 10% slower.
  const trial = new WayTrial()
  drive(trial, TRIAL, (inline, i) => (inline ? 1.1 : i % 50 === 7 ? 1000 : 1.0))
  t.equal(trial.trialsInline, 0, 'inline stays unchosen although the rule windows took longer in all')
})

t.test('larger requests in between: the interval after one is not counted', async (t) => {
  // Every third request is a larger one followed by 50 ms; single pages are 20% faster inline.
  const trial = new WayTrial()
  // One sample per three requests: only the interval from a single page to the next single page counts.
  const ways = drive(trial, TRIAL * 3 + 3, (inline) => (inline ? 0.8 : 1), (i) => i % 3 === 2)
  t.equal(trial.trials, 1, 'a trial took single pages only')
  t.equal(trial.trialsInline, 1, 'and the 50 ms after the larger requests did not decide it')
  t.equal(ways.filter((x, i) => i % 3 === 2 && x).length, 0, 'the larger requests were not sent inline by the trial')
})

t.test('restart forgets a choice', async (t) => {
  const trial = new WayTrial()
  const start = { now: 0 }
  drive(trial, TRIAL + 10, (inline) => (inline ? 0.5 : 1), undefined, start)
  t.equal(trial.inlineNext(start.now), true, 'running inline')
  trial.restart()
  t.equal(trial.inlineNext(start.now + 1), false, 'after restart: the first window, the rule')
})

t.test('chooseWay: the median ratio over the pairs', async (t) => {
  // Window order per pair: R I, I R, R I, I R (wayOfWindow).
  const m = (pairs: Array<[number, number]>): Float64Array => {
    const out = new Float64Array(2 * PAIRS)
    pairs.forEach(([rule, inline], p) => {
      out[2 * p + (wayOfWindow(2 * p) === 0 ? 0 : 1)] = rule
      out[2 * p + (wayOfWindow(2 * p) === 0 ? 1 : 0)] = inline
    })
    return out
  }
  t.equal(chooseWay(m([[1, 0.5], [1, 0.5], [1, 0.5], [1, 0.5]])), 1, 'inline twice as fast')
  t.equal(chooseWay(m([[1, 0.5], [1, 2], [1, 2], [1, 2]])), 0, 'one pair of four for inline')
  t.equal(chooseWay(m([[1, 0.5], [1, 0.5], [1, 0.5], [1, 1.01]])), 0, 'one pair of four against inline: the rule')
  t.equal(chooseWay(m([[1, 0.5], [1, 0.5], [1, 0.99], [1, 0.99]])), 1, 'every pair for inline, the median 0.745')
  t.equal(chooseWay(m([[1, 0.5], [1, 0.98], [1, 0.98], [1, 0.99]])), 0, 'every pair for inline but the median within the margin')
  t.equal(chooseWay(m([[0, 0.5], [0, 0.5], [0, 0.5], [0, 0.5]])), 0, 'no rule figure: no change')
})
