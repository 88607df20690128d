/**
 * A sysfs attribute, declared once: name, mode, and the show/store functions of the object it
 * belongs to (the kernel's DEVICE_ATTR_RO/RW/WO). The file-system layer only walks tables of these.
 * `show` returns the file's whole content. `store` gets the written bytes one char per byte
 * (latin1), at most 4096 of them, never none, and follows its kernel store step by step:
 * parse with the src/sysfs/*-parse.ts function that copies the kernel's (named in a comment), then
 * the state checks in the kernel's order, each failure an ErrnoError(kernel errno, reason). The
 * FUSE layer answers the errno and logs one JSON line with the reason; test/e2e/kernel-oracle-rows.ts
 * takes the rows that compare it with the kernel's zram.
 * A store that waits for I/O (writeback, or algorithm_params reading a dict= file: the daemon's
 * thread must stay free to serve its own mount) returns a promise; the writer's write(2) returns
 * when it settles, with its errno if it rejects.
 */
export interface Attribute<T> {
  readonly name: string
  readonly mode: number
  readonly show?: (target: T) => string
  readonly store?: (target: T, text: string) => void | Promise<void>
}

export const MODE_RO = 0o444
/** readable by root only (the kernel's hot_add) */
export const MODE_RO_ROOT = 0o400
export const MODE_RW = 0o644
export const MODE_WO = 0o200
