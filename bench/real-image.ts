/**
 * The benches' real-data image: an ext4 file system made by mke2fs -d from a directory of real
 * files, with fixed UUID, hash seed and time, so every run of every bench builds the same bytes.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

const MiB = 1024 * 1024

/** Bytes the files under dir take (du -s). */
export function dirBytes(dir: string, timeoutMs = 120_000): number {
  return Number(execFileSync('du', ['-s', '--block-size=1', dir], { encoding: 'utf8', timeout: timeoutMs }).split(/\s/)[0])
}

/** mke2fs -t ext4 -d dir into path (mib MiB); throws when mke2fs fails (e.g. the image is too small). */
export function mkfsImage(dir: string, path: string, mib: number, timeoutMs = 300_000): void {
  execFileSync('mke2fs', ['-q', '-F', '-t', 'ext4', '-b', '4096', '-U', '6a1c2b3d-0000-4000-8000-000000000001',
    '-E', 'hash_seed=6a1c2b3d-0000-4000-8000-000000000002,root_owner=0:0', '-d', dir, path, `${mib}M`],
  { stdio: 'pipe', timeout: timeoutMs, env: { ...process.env, E2FSPROGS_FAKE_TIME: '1700000000' } })
}

/** The image of dir in memory (1.3x its files + 16 MiB), or null when dir does not exist. */
export function readRealImage(dir: string): { name: string; data: Buffer } | null {
  if (!existsSync(dir)) return null
  const mib = Math.ceil((dirBytes(dir) * 1.3) / MiB) + 16
  const work = mkdtempSync(join(tmpdir(), 'zramfuse-real-image-'))
  try {
    const path = join(work, 'real.img')
    mkfsImage(dir, path, mib)
    return { name: `ext4 image of ${dir} (${mib} MiB)`, data: readFileSync(path) }
  } finally {
    rmSync(work, { recursive: true, force: true })
  }
}
