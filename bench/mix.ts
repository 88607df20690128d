/**
 * The generated data mix of the fidelity section: zero, pattern (same-filled), text, structured
 * binary and random pages in stated proportions, from a seeded PRNG, so the same bytes reach the
 * kernel's zram and zramfuse on every run. Pure.
 */

export type PageKind = 'zero' | 'pattern' | 'text' | 'binary' | 'random'
export const PAGE_KINDS: readonly PageKind[] = ['zero', 'pattern', 'text', 'binary', 'random']

import { PAGE_SIZE } from '../src/page'

export { PAGE_SIZE }

/** Fractions of the pages of each kind (they sum to 1). */
export type MixWeights = Record<PageKind, number>

export const DEFAULT_WEIGHTS: MixWeights = { zero: 0.1, pattern: 0.1, text: 0.3, binary: 0.3, random: 0.2 }

/** mulberry32: small and fast; the same seed gives the same pages. */
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

const WORDS = ['swap', 'page', 'zram', 'memory', 'the', 'kernel', 'compress', 'of', 'and', 'block',
  'device', 'cold', 'write', 'back', 'pool', 'size', 'class', 'zspage', 'idle', 'huge', 'a', 'to',
  'in', 'is', 'that', 'for', 'it', 'with', 'as', 'was', 'on', 'file', 'system', 'read', 'data']

/** Fill `page` (PAGE_SIZE bytes, zeroed) with one page of `kind`. */
export function fillPage(page: Buffer, kind: PageKind, rand: () => number): void {
  const size = page.length
  switch (kind) {
    case 'zero':
      return
    case 'pattern': {
      // a repeated 8-byte word: zram keeps it in the page table (same_pages), never 0 here
      const lo = (Math.floor(rand() * 0xffffffff) | 1) >>> 0
      const hi = Math.floor(rand() * 0xffffffff) >>> 0
      for (let i = 0; i < size; i += 8) {
        page.writeUInt32LE(lo, i)
        page.writeUInt32LE(hi, i + 4)
      }
      return
    }
    case 'text': {
      let off = 0
      while (off < size) {
        const w = WORDS[Math.floor(rand() * WORDS.length)] ?? 'x'
        off += page.write(w + (rand() < 0.1 ? '\n' : ' '), off, 'latin1')
      }
      return
    }
    case 'binary':
      // heap-like words: small integers next to pointer-like values
      for (let i = 0; i < size; i += 8) {
        page.writeUInt32LE(Math.floor(rand() * 64), i)
        page.writeUInt32LE(rand() < 0.5 ? 0 : 0x7f00 + Math.floor(rand() * 16), i + 4)
      }
      return
    case 'random':
      for (let i = 0; i < size; i += 4) page.writeUInt32LE(Math.floor(rand() * 4294967296) >>> 0, i)
      return
  }
}

export interface GeneratedMix {
  data: Buffer
  counts: Record<PageKind, number>
}

/** `pages` pages, kinds drawn with `weights` from `seed`. */
export function generateMix(pages: number, seed: number, weights: MixWeights = DEFAULT_WEIGHTS): GeneratedMix {
  const rand = prng(seed)
  const data = Buffer.alloc(pages * PAGE_SIZE)
  const counts: Record<PageKind, number> = { zero: 0, pattern: 0, text: 0, binary: 0, random: 0 }
  const total = PAGE_KINDS.reduce((s, k) => s + weights[k], 0)
  for (let p = 0; p < pages; p++) {
    let r = rand() * total
    let kind: PageKind = 'random'
    for (const k of PAGE_KINDS) {
      r -= weights[k]
      if (r < 0) {
        kind = k
        break
      }
    }
    counts[kind]++
    fillPage(data.subarray(p * PAGE_SIZE, (p + 1) * PAGE_SIZE), kind, rand)
  }
  return { data, counts }
}

export function describeWeights(w: MixWeights): string {
  return PAGE_KINDS.map((k) => `${Math.round(w[k] * 100)}% ${k}`).join(', ')
}
