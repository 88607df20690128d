/**
 * A sysfs attribute, declared once: name, mode, and the show/store functions of the object it
 * belongs to (the kernel's DEVICE_ATTR_RO/RW/WO). The file-system layer only walks tables of these.
 * `store` throws (or rejects) with ErrnoError carrying the kernel's errno; a store that waits for
 * I/O (writeback) returns a promise and the writer's write(2) returns when it settles; `show` returns the file's whole content.
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
