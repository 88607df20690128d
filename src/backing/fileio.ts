/**
 * The fileio addon (native/fileio/fileio.c, built from source at install by scripts/build-fileio.sh):
 * fallocate(2), which Node's fs lacks, run on libuv's thread pool as fs runs its own calls.
 */
import { existsSync } from 'node:fs'
import { join } from 'node:path'

export interface FileioBinding {
  /**
   * fallocate(fd, PUNCH_HOLE|KEEP_SIZE, offset, length) off the JavaScript thread. Throws a
   * TypeError/RangeError at once for a bad argument (fd an integer 0..2^31-1, offset and length
   * safe integers >= 0); rejects with an fs-style error (code 'EOPNOTSUPP', 'EBADF', ...; errno
   * negative; syscall 'fallocate') when the kernel refuses.
   */
  punchHole(fd: number, offset: number, length: number): Promise<void>
}

const ADDON = join('native', 'fileio', 'build', 'Release', 'fileio.node')

function load(): FileioBinding {
  // src/backing (tests) or dist/src/backing (built): the repository root is two or three levels up.
  for (const up of [['..', '..'], ['..', '..', '..']]) {
    const path = join(__dirname, ...up, ADDON)
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    if (existsSync(path)) return require(path) as FileioBinding
  }
  throw new Error(`fileio addon not built (${ADDON}): run bash scripts/build-fileio.sh (npm ci and scripts/setup.sh do)`)
}

export const fileio: FileioBinding = load()
