/**
 * algorithm_params dict=: the dictionary file, read once when the parameter is written, as the
 * kernel's comp_params_store does with kernel_read_file_from_path. Asynchronous on purpose: the
 * daemon's one JavaScript thread also serves its own mount, so a path on it (or a symlink into
 * it) must not be opened with a blocking call from that thread.
 */
import { constants } from 'node:fs'
import { open } from 'node:fs/promises'
import { isAbsolute } from 'node:path'

/** kernel_read_file_from_path(..., INT_MAX, ...): larger files are refused. */
export const MAX_DICT_BYTES = 0x7fffffff

/** The file cannot be used as a dictionary; zram answers every such case with EINVAL. */
export class DictionaryError extends Error {
  override readonly name = 'DictionaryError'
}

/**
 * The whole content of a regular, non-empty file at an absolute path (the kernel resolves a
 * relative one against the writer's working directory, which a FUSE request does not carry).
 */
export async function readDictionary(path: string): Promise<Uint8Array> {
  if (!isAbsolute(path)) throw new DictionaryError(`${JSON.stringify(path)} is not an absolute path`)
  let fh
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is refused below as not regular).
    fh = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY)
  } catch (err) {
    throw new DictionaryError(`cannot open ${JSON.stringify(path)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
  }
  try {
    const st = await fh.stat()
    if (!st.isFile()) throw new DictionaryError(`${JSON.stringify(path)} is not a regular file`)
    if (st.size <= 0) throw new DictionaryError(`${JSON.stringify(path)} is empty`)
    if (st.size > MAX_DICT_BYTES) throw new DictionaryError(`${JSON.stringify(path)} is larger than ${MAX_DICT_BYTES} bytes`)
    const buf = Buffer.allocUnsafe(st.size)
    let got = 0
    while (got < buf.length) {
      const { bytesRead } = await fh.read(buf, got, buf.length - got, got)
      if (bytesRead === 0) break
      got += bytesRead
    }
    // kernel_read_file: a file that changed size while being read is an error.
    if (got !== st.size) throw new DictionaryError(`${JSON.stringify(path)} changed size while being read`)
    return buf
  } catch (err) {
    if (err instanceof DictionaryError) throw err
    throw new DictionaryError(`cannot read ${JSON.stringify(path)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`)
  } finally {
    await fh.close()
  }
}
