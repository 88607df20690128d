/**
 * Serialises mutations when the codec is asynchronous: a partial-page write is a
 * read-modify-write, and two of them on the same page must not interleave across an await.
 * With a synchronous codec every mutation runs to completion in one turn and the lock is unused.
 */
export class WriteLock {
  private tail: Promise<void> = Promise.resolve()
  private pending = 0

  /** No holder and nobody waiting: a mutation may run synchronously now without reordering. */
  get idle(): boolean {
    return this.pending === 0
  }

  run<T>(fn: () => Promise<T>): Promise<T> {
    this.pending++
    const result = this.tail.then(fn)
    // The next holder waits for this one whether it succeeded or failed.
    this.tail = result.then(noop, noop)
    result.then(this.release, this.release)
    return result
  }

  private readonly release = (): void => {
    this.pending--
  }
}

function noop(): void {}
