// Types for the parts of fuse-native 2.2.6 (which ships none) that zramfuse uses.
declare module 'fuse-native' {
  export interface Stat {
    mode: number
    uid: number
    gid: number
    size: number
    nlink: number
    mtime: Date
    atime: Date
    ctime: Date
    blksize?: number
    blocks?: number
    ino?: number
    dev?: number
    rdev?: number
  }
  export type Callback = (result: number, ...rest: unknown[]) => void
  export interface Operations {
    init?(cb: (err: number) => void): void
    getattr?(path: string, cb: (err: number, stat?: Stat) => void): void
    fgetattr?(path: string, fd: number, cb: (err: number, stat?: Stat) => void): void
    readdir?(path: string, cb: (err: number, names?: string[]) => void): void
    open?(path: string, flags: number, cb: (err: number, fd?: number) => void): void
    release?(path: string, fd: number, cb: (err: number) => void): void
    read?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void
    write?(path: string, fd: number, buf: Buffer, len: number, pos: number, cb: (result: number) => void): void
    truncate?(path: string, size: number, cb: (err: number) => void): void
    ftruncate?(path: string, fd: number, size: number, cb: (err: number) => void): void
    fallocate?(path: string, fd: number, mode: number, offset: number, length: number, cb: (err: number) => void): void
    flush?(path: string, fd: number, cb: (err: number) => void): void
    fsync?(path: string, fd: number, datasync: boolean, cb: (err: number) => void): void
    utimens?(path: string, atime: number, mtime: number, cb: (err: number) => void): void
    statfs?(path: string, cb: (err: number, statfs?: Record<string, number>) => void): void
    [op: string]: unknown
  }
  export interface FuseOptions {
    timeout?: number | false
    mkdir?: boolean
    force?: boolean
    debug?: boolean
    [opt: string]: unknown
  }
  class Fuse {
    constructor(mnt: string, ops: Operations, opts?: FuseOptions)
    readonly mnt: string
    opts: FuseOptions
    mount(cb: (err: Error | null) => void): void
    unmount(cb: (err: Error | null) => void): void
    protected _fuseOptions(): string
    static unmount(mnt: string, cb: (err: Error | null) => void): void
    static isConfigured(cb: (err: Error | null, configured: boolean) => void): void
  }
  export default Fuse
}
