/** errno values as the writer of a file sees them (positive; the FUSE layer negates them). */
export const Errno = {
  EPERM: 1, ENOENT: 2, EINTR: 4, EIO: 5, ENXIO: 6, E2BIG: 7, EBADF: 9, EAGAIN: 11, ENOMEM: 12, EACCES: 13, ENOTBLK: 15, EBUSY: 16,
  EEXIST: 17, ENODEV: 19, ENOTDIR: 20, EISDIR: 21, EINVAL: 22, EFBIG: 27, ENOSPC: 28, ESPIPE: 29, EROFS: 30,
  ERANGE: 34, ENOSYS: 38, EPROTO: 71, ENOTSUP: 95, EOPNOTSUPP: 95, ECONNABORTED: 103, ENOTCONN: 107, ECANCELED: 125,
} as const

/** An error that carries the errno the caller should see and, in its message, the reason (logged). */
export class ErrnoError extends Error {
  readonly errno: number
  /** The layer that raised it logged it already (once per episode): the caller need not log it again. */
  readonly logged: boolean
  constructor(errno: number, message: string, logged = false) {
    super(message)
    this.errno = errno
    this.logged = logged
    this.name = 'ErrnoError'
  }
}

export function errnoName(errno: number): string {
  for (const [name, value] of Object.entries(Errno)) if (value === errno) return name
  return `E${errno}`
}
