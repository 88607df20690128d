import type { ZramDevice } from '../device/zram-device'
import { type Attribute, MODE_RO } from './attribute'
import { formatU64 } from './format'

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
]
