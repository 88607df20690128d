/**
 * zram's page_same_filled(): a page whose 8-byte words are all equal is kept as that word in the
 * page table and costs no pool memory. `words` is a Uint32Array view of an 8-byte-aligned page, so
 * an 8-byte word is the pair (words[2k], words[2k+1]).
 * Returns true and leaves the pattern in `pattern[0..1]` (low, high) when the page is same-filled.
 */
export function pageSameFilled(words: Uint32Array, pattern: Uint32Array): boolean {
  const lo = words[0]
  const hi = words[1]
  const n = words.length
  // Check the last word first: most pages that are not same-filled differ there (as the kernel does).
  if (words[n - 2] !== lo || words[n - 1] !== hi) return false
  for (let i = 2; i < n; i += 2) {
    if (words[i] !== lo || words[i + 1] !== hi) return false
  }
  pattern[0] = lo
  pattern[1] = hi
  return true
}

/** Fill a page (as 32-bit words) with an 8-byte pattern. */
export function fillPattern(words: Uint32Array, lo: number, hi: number): void {
  if (lo === hi) {
    words.fill(lo)
    return
  }
  for (let i = 0; i < words.length; i += 2) {
    words[i] = lo
    words[i + 1] = hi
  }
}
