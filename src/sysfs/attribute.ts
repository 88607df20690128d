/**
 * A sysfs attribute, declared once: name, mode, and the show/store functions of the object it
 * belongs to (the kernel's DEVICE_ATTR_RO/RW/WO). The file-system layer only walks tables of these.
 * `store` throws ErrnoError with the kernel's errno (or returns a promise that rejects with one,
 * for a store that reads a file: the daemon's thread must stay free to serve its own mount);
 * `show` returns the file's whole content.
 */
export interface Attribute<T> {
  readonly name: string
  readonly mode: number
  readonly show?: (target: T) => string
  readonly store?: (target: T, text: string) => void | Promise<void>
}

export const MODE_RO = 0o444
export const MODE_RW = 0o644
export const MODE_WO = 0o200
