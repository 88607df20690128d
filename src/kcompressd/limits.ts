/** The bounds and defaults of kcompressd's settings (zramfuse/workers, fifo_size, poll_us). */

export const DEFAULT_FIFO_SIZE = 256
export const MAX_FIFO_SIZE = 65536
export const MAX_WORKERS = 64
/**
 * How long a worker polls for the next page before it sleeps until woken (worker.ts, poll()):
 * longer than the gap between requests of a busy writer, so one never pays a wake-up per request.
 */
export const DEFAULT_POLL_US = 1000
export const MAX_POLL_US = 1_000_000

export function checkWorkers(n: number): number {
  if (!Number.isInteger(n) || n < 0 || n > MAX_WORKERS) throw new RangeError(`workers ${n} out of range 0..${MAX_WORKERS}`)
  return n
}

export function checkPollUs(us: number): number {
  if (!Number.isInteger(us) || us < 0 || us > MAX_POLL_US) throw new RangeError(`poll ${us} us out of range 0..${MAX_POLL_US}`)
  return us
}

export function checkFifoSize(n: number): number {
  if (!Number.isInteger(n) || n < 1 || n > MAX_FIFO_SIZE) throw new RangeError(`fifo size ${n} out of range`)
  return n
}
