/** Deterministic page generators for tests: a seeded PRNG and the page kinds zram meets. */

/** mulberry32: small, fast, good enough to make test data; same seed, same pages. */
export function prng(seed: number): () => number {
  let a = seed >>> 0
  return () => {
    a = (a + 0x6d2b79f5) >>> 0
    let t = a
    t = Math.imul(t ^ (t >>> 15), t | 1)
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61)
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296
  }
}

export function seedFromEnv(fallback: number): number {
  const s = process.env.ZRAMFUSE_SEED
  return s !== undefined && s !== '' ? Number(s) : fallback
}

const WORDS = ['swap', 'page', 'zram', 'memory', 'the', 'kernel', 'compress', 'of', 'and', 'block',
  'device', 'cold', 'write', 'back', 'pool', 'size', 'class', 'zspage', 'idle', 'huge']

export type PageKind = 'zero' | 'pattern' | 'text' | 'binary' | 'random'
export const PAGE_KINDS: readonly PageKind[] = ['zero', 'pattern', 'text', 'binary', 'random']

export function makePage(kind: PageKind, rand: () => number, size = 4096): Buffer {
  const page = Buffer.alloc(size)
  switch (kind) {
    case 'zero':
      break
    case 'pattern': {
      const word = Buffer.alloc(8)
      for (let i = 0; i < 8; i++) word[i] = Math.floor(rand() * 256)
      for (let i = 0; i < size; i += 8) word.copy(page, i)
      break
    }
    case 'text': {
      let s = ''
      while (s.length < size) s += WORDS[Math.floor(rand() * WORDS.length)] + (rand() < 0.1 ? '\n' : ' ')
      page.write(s.slice(0, size), 'latin1')
      break
    }
    case 'binary':
      // Structured binary: small integers and pointers-like values, compressible like real heaps.
      for (let i = 0; i < size; i += 8) {
        page.writeUInt32LE(Math.floor(rand() * 64), i)
        page.writeUInt32LE(rand() < 0.5 ? 0 : 0x7f00 + Math.floor(rand() * 16), i + 4)
      }
      break
    case 'random':
      for (let i = 0; i < size; i++) page[i] = Math.floor(rand() * 256)
      break
  }
  return page
}
