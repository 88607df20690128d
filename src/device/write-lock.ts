/**
 * Serialises mutations when the codec is asynchronous: a partial-page write is a
 * read-modify-write, and two of them on the same page must not interleave across an await.
 * With a synchronous codec every mutation runs to completion in one turn and the lock is unused.
 */
export class WriteLock {
  private tail: Promise<void> = Promise.resolve()

  run<T>(fn: () => Promise<T>): Promise<T> {
    const result = this.tail.then(fn)
    // The next holder waits for this one whether it succeeded or failed.
    this.tail = result.then(noop, noop)
    return result
  }
}

function noop(): void {}
