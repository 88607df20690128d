import t from 'tap'
import { PAGE_SIZE, generateMix, fillPage, prng } from '../../bench/mix'

t.test('the mix is deterministic and has every kind', async (t) => {
  const a = generateMix(512, 7)
  const b = generateMix(512, 7)
  t.ok(a.data.equals(b.data), 'same seed, same bytes')
  t.notOk(generateMix(512, 8).data.equals(a.data), 'another seed, other bytes')
  const total = Object.values(a.counts).reduce((s, n) => s + n, 0)
  t.equal(total, 512)
  for (const [k, n] of Object.entries(a.counts)) t.ok(n > 0, `${k}: ${n} pages`)
  t.equal(a.data.length, 512 * PAGE_SIZE)
})

t.test('page kinds look like what zram will see', async (t) => {
  const rand = prng(1)
  const page = (kind: 'zero' | 'pattern' | 'text' | 'binary' | 'random'): Buffer => {
    const p = Buffer.alloc(PAGE_SIZE)
    fillPage(p, kind, rand)
    return p
  }
  t.ok(page('zero').every((x) => x === 0))
  const pat = page('pattern')
  const w0 = pat.readBigUInt64LE(0)
  t.not(w0, 0n, 'pattern pages are not zero pages')
  let same = true
  for (let i = 0; i < PAGE_SIZE; i += 8) same &&= pat.readBigUInt64LE(i) === w0
  t.ok(same, 'pattern: one 8-byte word repeated (same-filled)')
  const text = page('text').toString('latin1')
  t.match(text, /^[a-z \n]+$/)
  const rnd = page('random')
  t.ok(new Set(rnd).size > 200, 'random pages use most byte values')
  let notSame = false
  const bin = page('binary')
  for (let i = 8; i < PAGE_SIZE; i += 8) notSame ||= bin.readBigUInt64LE(i) !== bin.readBigUInt64LE(0)
  t.ok(notSame, 'binary pages are not same-filled')
})
