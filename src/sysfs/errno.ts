/**
 * errno values for the sysfs layer.
 *
 * `src/errno.ts` already defines `Errno` and `ErrnoError` with exactly this shape, so this module
 * re-exports them instead of declaring a second class: two `ErrnoError` classes would make
 * `instanceof ErrnoError` silently false for errors thrown by the other module.
 *
 *   Errno: { EPERM: 1, ENOENT: 2, EIO: 5, ... EINVAL: 22, ... ERANGE: 34, ENOTSUP: 95, EOPNOTSUPP: 95 }
 *   class ErrnoError extends Error { readonly errno: number; constructor(errno: number, message: string) }
 *
 * `errno` is the positive number; `message` says why (it is logged).
 */
export { Errno, ErrnoError, errnoName } from '../errno'
