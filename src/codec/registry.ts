import type { Codec } from './codec'
import { lz4 } from './lz4'
import { zstd } from './zstd'

/** In the order comp_algorithm prints them. Adding an algorithm is adding a file and a line. */
export const codecs: readonly Codec[] = [lz4, zstd]

export const DEFAULT_ALGORITHM = 'lz4'

export function findCodec(name: string): Codec | undefined {
  return codecs.find((c) => c.name === name)
}

export function codecNames(): string[] {
  return codecs.map((c) => c.name)
}
