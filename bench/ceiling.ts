#!/usr/bin/env node
/**
 * The raw ceiling: a minimal fuse-native file system holding one RAM file, no compression, mounted
 * with exactly zramfuse's options (src/fuse/mount.ts). Whatever zramfuse measures below this is the
 * cost of its own work (page table, codec, pool), not of FUSE or of JavaScript callbacks.
 *
 *   node dist/bench/ceiling.js --mount DIR --size 1G
 *
 * Layout: DIR/dev/zram0 (mode 0600, size SIZE), so the same fio job files run on both.
 * Logs one JSON line {"event":"ready",...} on stderr once mounted; SIGINT/SIGTERM unmount and exit 0.
 */
import Fuse, { type Operations, type Stat } from 'fuse-native'
import { execFileSync } from 'node:child_process'
import { mkdirSync } from 'node:fs'
import { resolve } from 'node:path'
import { parseArgs } from 'node:util'
import { MOUNT_OPTIONS } from '../src/fuse/mount'
import { parseSize } from './size'

const S_IFDIR = 0o040000
const S_IFREG = 0o100000
const ENOENT = 2
const EISDIR = 21
const ENOSPC = 28

class CeilingFuse extends Fuse {
  protected override _fuseOptions(): string {
    return '-o' + MOUNT_OPTIONS.map((o) => o.replace(/^(fsname|subtype)=zramfuse$/, '$1=zramfuse-ceiling')).join(',')
  }
}

function log(obj: Record<string, unknown>): void {
  process.stderr.write(JSON.stringify({ time: Date.now(), pid: process.pid, ...obj }) + '\n')
}

/** The RAM file: one flat buffer, so a request costs one copy and nothing else. */
export function ramOperations(size: number): Operations {
  const ram = Buffer.alloc(size)
  const now = new Date()
  const uid = process.getuid?.() ?? 0
  const gid = process.getgid?.() ?? 0
  const base = { uid, gid, mtime: now, atime: now, ctime: now, blksize: 4096 }
  const dirs = new Map<string, string[]>([['/', ['dev']], ['/dev', ['zram0']]])
  const FILE = '/dev/zram0'
  const getattr = (path: string): [number, Stat?] => {
    if (dirs.has(path)) return [0, { ...base, mode: S_IFDIR | 0o755, size: 0, nlink: 2 }]
    if (path === FILE) return [0, { ...base, mode: S_IFREG | 0o600, size, nlink: 1 }]
    return [-ENOENT]
  }
  return {
    getattr: (path, cb) => cb(...getattr(path)),
    fgetattr: (path, _fd, cb) => cb(...getattr(path)),
    readdir: (path, cb) => {
      const names = dirs.get(path)
      if (!names) return cb(-ENOENT)
      cb(0, names)
    },
    open: (path, _flags, cb) => {
      if (dirs.has(path)) return cb(-EISDIR)
      if (path !== FILE) return cb(-ENOENT)
      cb(0, 1)
    },
    release: (_path, _fd, cb) => cb(0),
    read: (_path, _fd, buf, len, pos, cb) => {
      if (pos >= size) return cb(0)
      const end = Math.min(size, pos + len)
      cb(ram.copy(buf, 0, pos, end))
    },
    write: (_path, _fd, buf, len, pos, cb) => {
      if (pos + len > size) return cb(-ENOSPC)
      cb(buf.copy(ram, pos, 0, len))
    },
    truncate: (_path, _size, cb) => cb(0),
    ftruncate: (_path, _fd, _size, cb) => cb(0),
    flush: (_path, _fd, cb) => cb(0),
    fsync: (_path, _fd, _datasync, cb) => cb(0),
    utimens: (_path, _atime, _mtime, cb) => cb(0),
    statfs: (_path, cb) => cb(0, {
      bsize: 4096, frsize: 4096, blocks: 0, bfree: 0, bavail: 0, files: 0, ffree: 0, favail: 0,
      fsid: 0, flag: 0, namemax: 255,
    }),
  }
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { mount: { type: 'string' }, size: { type: 'string', default: '1G' } },
    strict: true,
  })
  if (values.mount === undefined) throw new Error('usage: ceiling --mount DIR [--size SIZE]')
  const mount = resolve(values.mount)
  const size = parseSize(values.size ?? '1G')
  mkdirSync(mount, { recursive: true })
  const fuse = new CeilingFuse(mount, ramOperations(size), { timeout: false, mkdir: false, force: false })
  await new Promise<void>((res, rej) => fuse.mount((err) => (err ? rej(err) : res())))
  log({ level: 30, event: 'ready', mount, size, msg: 'mounted' })
  let stopping = false
  const stop = (signal: string): void => {
    if (stopping) return
    stopping = true
    log({ level: 30, event: 'stopping', signal })
    fuse.unmount((err) => {
      if (err) {
        try {
          execFileSync('fusermount', ['-uz', mount], { stdio: 'ignore' })
        } catch {
          // the kernel drops the mount when our /dev/fuse descriptor closes
        }
      }
      log({ level: 30, event: 'stopped' })
      process.exit(0)
    })
  }
  process.on('SIGINT', () => stop('SIGINT'))
  process.on('SIGTERM', () => stop('SIGTERM'))
}

if (require.main === module) {
  main().catch((err: unknown) => {
    log({ level: 50, event: 'fatal', err: String(err) })
    process.exit(1)
  })
}
