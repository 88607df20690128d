/**
 * Deterministic pages for tests: the bench's seeded generator (bench/mix.ts), so tests and the
 * fidelity benchmark meet the same kinds of page.
 */
import { fillPage, PAGE_KINDS, prng, type PageKind } from '../../bench/mix'

export { PAGE_KINDS, prng, type PageKind }

/** The seed a randomised test uses: ZRAMFUSE_SEED replays a printed one. */
export function seedFromEnv(fallback: number): number {
  const s = process.env.ZRAMFUSE_SEED
  return s !== undefined && s !== '' ? Number(s) : fallback
}

export function makePage(kind: PageKind, rand: () => number, size = 4096): Buffer {
  const page = Buffer.alloc(size)
  fillPage(page, kind, rand)
  return page
}

/** The errno an ErrnoError-throwing call (sync or async) fails with; null when it succeeds. */
export async function errnoOf(fn: () => unknown): Promise<number | null> {
  try {
    await fn()
    return null
  } catch (err) {
    const e = (err as { errno?: unknown }).errno
    if (typeof e !== 'number') throw err
    return e
  }
}
