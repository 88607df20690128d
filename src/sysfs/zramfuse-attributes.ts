import type { ZramDevice } from '../device/zram-device'
import { type Attribute, MODE_RO, MODE_RW } from './attribute'
import { formatInt, formatU64 } from './format'
import { parseBool, parseU32 } from './kstrtox'
import { Errno, ErrnoError } from '../errno'
import { writebackExtensionAttributes } from './writeback-attributes'
import { recompressExtensionAttributes } from './recompress-attributes'
import type { KcompressdStats } from '../kcompressd/kcompressd'
import { MAX_FIFO_SIZE, MAX_POLL_US, MAX_WORKERS } from '../kcompressd/limits'

/** A read-only kcompressd counter, one value per file. */
function counter(name: string, key: keyof KcompressdStats): Attribute<ZramDevice> {
  return { name, mode: MODE_RO, show: (dev) => formatU64(dev.kcompressdStats()[key]) }
}

/** /sys/block/zramN/zramfuse/: our extensions, kept apart from the kernel's names. */
export const extensionAttributes: readonly Attribute<ZramDevice>[] = [
  {
    // Bytes of page-table metadata (the kernel's zram_table_entry array): 16 per page.
    name: 'page_table_bytes',
    mode: MODE_RO,
    show: (dev) => formatU64(dev.metadataBytes),
  },
  {
    // Pool chunks currently held from the OS (each chunkPages x 4 KiB).
    name: 'pool_chunks',
    mode: MODE_RO,
    show: (dev) => formatU64(dev.poolChunks),
  },
  {
    // Requests refused for lying past the end of the device: the kernel's io_stat invalid_io until
    // 6.4 (io_stat prints a literal 0 in its place since, as ours does).
    name: 'invalid_io',
    mode: MODE_RO,
    show: (dev) => formatU64(dev.stats().invalidIo),
  },
  // ---- kcompressd (src/kcompressd): compression off the request path ----
  {
    // Worker threads compressing staged pages; 0 compresses inline on the request path.
    // Writable any time: pages in flight finish on the old workers; with 0, queued ones are
    // compressed on the main thread.
    name: 'workers',
    mode: MODE_RW,
    show: (dev) => formatU64(dev.workers),
    store: (dev, text) => {
      // Parsed like the kernel's unsigned attributes (kstrtouint base 10, as writeback_batch_size).
      const v = parseU32(text, 10)
      if (v > MAX_WORKERS) throw new ErrnoError(Errno.EINVAL, `workers must be 0..${MAX_WORKERS}`)
      dev.setWorkers(v)
    },
  },
  {
    // Staging slots = the bounded FIFO's length in pages (default 256). EBUSY while pages are staged.
    name: 'fifo_size',
    mode: MODE_RW,
    show: (dev) => formatU64(dev.fifoSize),
    store: (dev, text) => {
      // kstrtouint base 10 (EINVAL / ERANGE), out of range -> EINVAL, then EBUSY while pages are staged.
      const v = parseU32(text, 10)
      if (v < 1 || v > MAX_FIFO_SIZE) throw new ErrnoError(Errno.EINVAL, `fifo_size must be 1..${MAX_FIFO_SIZE}`)
      dev.setFifoSize(v)
    },
  },
  {
    // 1 (default): when compressing the request's pages takes less than a wake-up, or less than 12 us
    // in all (compress_ns and wake_ns, measured; kcompressd/policy.ts inlineIsCheaper), the writer
    // compresses them itself. 0: always stage.
    name: 'inline_when_cheaper',
    mode: MODE_RW,
    show: (dev) => formatInt(dev.inlineWhenCheaper),
    store: (dev, text) => {
      // kstrtobool, as shrinker_enabled.
      dev.inlineWhenCheaper = parseBool(text)
    },
  },
  {
    // 1: while inline_when_cheaper is 1, single-page requests go inline for a while when a trial of
    // both ways found requests coming faster that way (kcompressd/way-trial.ts). 0 (default): the
    // cost rule alone decides (in the last runs the trials' effect was inside the bench's noise).
    name: 'outcome_trials',
    mode: MODE_RW,
    show: (dev) => formatInt(dev.outcomeTrials),
    store: (dev, text) => {
      dev.outcomeTrials = parseBool(text)
    },
  },
  {
    // Microseconds an idle worker keeps polling for pages (timed waits) before it sleeps until
    // woken (default 1000): a writer never pays a wake-up while its requests come closer than this.
    // 0: sleep at once (every idle-to-busy turn costs the writer an Atomics.notify).
    name: 'poll_us',
    mode: MODE_RW,
    show: (dev) => formatU64(dev.pollUs),
    store: (dev, text) => {
      const v = parseU32(text, 10)
      if (v > MAX_POLL_US) throw new ErrnoError(Errno.EINVAL, `poll_us must be 0..${MAX_POLL_US}`)
      dev.pollUs = v
    },
  },
  // Staged pages not yet committed (queued + in flight).
  counter('fifo_depth', 'fifoDepth'),
  // Of those, pages a worker is compressing now.
  counter('in_flight', 'inFlight'),
  // Pages staged (a page rewritten while still queued counts again).
  counter('queued', 'queued'),
  // Worker (or recompressed) results committed into the pool.
  counter('completed', 'completed'),
  // Stagings superseded by an overwrite, discard or reset: their result was dropped.
  counter('stale', 'stale'),
  // Staged pages that could not be stored even raw: dropped, counted in failed_writes too.
  counter('failed', 'failed'),
  // Pages compressed inline because the FIFO was full.
  counter('inline_fallbacks', 'inlineFallbacks'),
  // Pages compressed inline because handing them off cost more (kcompressd/policy.ts inlineIsCheaper).
  counter('inline_cheaper', 'inlineCheaper'),
  // Pages compressed inline because requests of their kind came faster that way in the last outcome
  // trial (kcompressd/way-trial.ts), and the trials finished / of those, the ones that chose inline.
  counter('inline_measured', 'inlineMeasured'),
  counter('trials', 'trials'),
  counter('trials_inline', 'trialsInline'),
  // Times the FIFO became full (episodes, not pages).
  counter('fifo_full_events', 'fifoFullEvents'),
  counter('max_fifo_depth', 'maxFifoDepth'),
  // Worker runs: a worker woke up and compressed what was queued until the queue was empty.
  counter('batches', 'batches'),
  // Pages a worker failed to compress (it threw or its thread died): compressed again, nothing lost.
  counter('worker_errors', 'workerErrors'),
  // Results a worker wrote straight into a pool object reserved for it (committed without a copy),
  // and the objects reserved for workers now (in mem_used_total, holding no page yet).
  counter('written_in_place', 'written'),
  counter('reserved_objects', 'reserved'),
  // New pool chunks a worker faulted in, so that the main thread's first writes into them do not fault.
  counter('populated_chunks', 'populated'),
  // Atomics.notify calls that woke a sleeping worker, and times the main thread was woken to commit.
  counter('worker_wakeups', 'workerWakeups'),
  counter('main_wakeups', 'mainWakeups'),
  // The writer's running estimates behind inline_cheaper: ns per wake-up, ns to compress a page.
  counter('wake_ns', 'wakeNs'),
  counter('compress_ns', 'compressNs'),
  // Main-thread nanoseconds spent staging, waking workers and committing, in total and per staged page.
  counter('main_ns', 'mainNs'),
  counter('main_ns_per_page', 'mainNsPerPage'),
  // ---- the writeback tier (src/backing) ----
  ...writebackExtensionAttributes,
  // ---- recompression (src/device/recompressor.ts) and multi-page units ----
  ...recompressExtensionAttributes,
]
