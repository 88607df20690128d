/**
 * A sysfs attribute, declared once: name, mode, and the show/store functions of the object it
 * belongs to (the kernel's DEVICE_ATTR_RO/RW/WO). The file-system layer only walks tables of these.
 * `store` throws ErrnoError with the kernel's errno; `show` returns the file's whole content.
 */
export interface Attribute<T> {
  readonly name: string
  readonly mode: number
  readonly show?: (target: T) => string
  readonly store?: (target: T, text: string) => void
}

export const MODE_RO = 0o444
/** readable by root only (the kernel's hot_add) */
export const MODE_RO_ROOT = 0o400
export const MODE_RW = 0o644
export const MODE_WO = 0o200
