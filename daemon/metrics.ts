/**
 * `--metrics [HOST:]PORT`: Prometheus text exposition (prom-client) of every device's counters,
 * read at scrape time from the same attribute shows the files print (mm_stat, io_stat, bd_stat,
 * stat, zramfuse/*), so a scrape and a `cat` never disagree. Names follow Prometheus conventions:
 * base units (bytes, seconds), `_total` for counters, one `device="zramN"` label. Process metrics
 * (resident memory, CPU, heap, event-loop lag) are prom-client's defaults.
 */
import { createServer, type Server } from 'node:http'
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client'
import type { DeviceSet } from '../src/device/device-set'
import type { ZramDevice } from '../src/device/zram-device'
import type { EventLog } from '../src/log'
import type { Attribute } from '../src/sysfs/attribute'
import { deviceAttribute } from '../src/sysfs/device-attributes'
import { PAGE_SIZE } from '../src/page'

/** One metric taken from one field of one attribute, times a scale into base units. */
export interface FieldMetric {
  /** attribute name; `zramfuse/x` for an extension */
  attr: string
  /** whitespace-separated field index in the attribute's text */
  field: number
  name: string
  help: string
  type: 'gauge' | 'counter'
  scale?: number
}

const PAGE = PAGE_SIZE
const SECTOR = 512
const MS = 1e-3

function stat(field: number, name: string, help: string, type: 'gauge' | 'counter', scale?: number): FieldMetric {
  return { attr: 'stat', field, name, help, type, scale }
}
function ext(attr: string, name: string, help: string, type: 'gauge' | 'counter', scale?: number): FieldMetric {
  return { attr: `zramfuse/${attr}`, field: 0, name, help, type, scale }
}

/** Every exported device metric. */
export const DEVICE_METRICS: readonly FieldMetric[] = [
  { attr: 'disksize', field: 0, name: 'zramfuse_disksize_bytes', help: 'disksize: size of the block device', type: 'gauge' },
  // mm_stat
  { attr: 'mm_stat', field: 0, name: 'zramfuse_orig_data_bytes', help: 'mm_stat orig_data_size: uncompressed bytes stored', type: 'gauge' },
  { attr: 'mm_stat', field: 1, name: 'zramfuse_compr_data_bytes', help: 'mm_stat compr_data_size: compressed bytes stored', type: 'gauge' },
  { attr: 'mm_stat', field: 2, name: 'zramfuse_mem_used_total_bytes', help: 'mm_stat mem_used_total: pool memory incl. fragmentation', type: 'gauge' },
  { attr: 'mm_stat', field: 3, name: 'zramfuse_mem_limit_bytes', help: 'mm_stat mem_limit: pool limit (0 = none)', type: 'gauge' },
  { attr: 'mm_stat', field: 4, name: 'zramfuse_mem_used_max_bytes', help: 'mm_stat mem_used_max: peak pool memory', type: 'gauge' },
  { attr: 'mm_stat', field: 5, name: 'zramfuse_same_pages', help: 'mm_stat same_pages: same-filled pages (no pool memory)', type: 'gauge' },
  { attr: 'mm_stat', field: 6, name: 'zramfuse_pages_compacted_total', help: 'mm_stat pages_compacted: pages freed by compaction', type: 'counter' },
  { attr: 'mm_stat', field: 7, name: 'zramfuse_huge_pages', help: 'mm_stat huge_pages: incompressible pages stored raw', type: 'gauge' },
  { attr: 'mm_stat', field: 8, name: 'zramfuse_huge_pages_since_total', help: 'mm_stat huge_pages_since: huge pages ever stored', type: 'counter' },
  // io_stat (its third field is a literal 0 since 6.4: invalid_io comes from zramfuse/invalid_io)
  { attr: 'io_stat', field: 0, name: 'zramfuse_failed_reads_total', help: 'io_stat failed_reads', type: 'counter' },
  { attr: 'io_stat', field: 1, name: 'zramfuse_failed_writes_total', help: 'io_stat failed_writes', type: 'counter' },
  { attr: 'io_stat', field: 3, name: 'zramfuse_notify_free_total', help: 'io_stat notify_free: pages freed by discard', type: 'counter' },
  ext('invalid_io', 'zramfuse_invalid_io_total', 'requests refused for lying past the end of the device', 'counter'),
  // bd_stat, 4 KiB units
  { attr: 'bd_stat', field: 0, name: 'zramfuse_backing_dev_used_bytes', help: 'bd_stat bd_count: bytes of the backing file in use', type: 'gauge', scale: PAGE },
  { attr: 'bd_stat', field: 1, name: 'zramfuse_backing_dev_read_bytes_total', help: 'bd_stat bd_reads: bytes read from the backing file', type: 'counter', scale: PAGE },
  { attr: 'bd_stat', field: 2, name: 'zramfuse_backing_dev_written_bytes_total', help: 'bd_stat bd_writes: bytes written to the backing file', type: 'counter', scale: PAGE },
  // stat: the block layer's 17 fields, named as node_exporter names /proc/diskstats
  stat(0, 'zramfuse_disk_reads_completed_total', 'stat read I/Os', 'counter'),
  stat(1, 'zramfuse_disk_reads_merged_total', 'stat read merges', 'counter'),
  stat(2, 'zramfuse_disk_read_bytes_total', 'stat read sectors, in bytes', 'counter', SECTOR),
  stat(3, 'zramfuse_disk_read_time_seconds_total', 'stat read ticks', 'counter', MS),
  stat(4, 'zramfuse_disk_writes_completed_total', 'stat write I/Os', 'counter'),
  stat(5, 'zramfuse_disk_writes_merged_total', 'stat write merges', 'counter'),
  stat(6, 'zramfuse_disk_written_bytes_total', 'stat write sectors, in bytes', 'counter', SECTOR),
  stat(7, 'zramfuse_disk_write_time_seconds_total', 'stat write ticks', 'counter', MS),
  stat(8, 'zramfuse_disk_io_now', 'stat in_flight: requests in progress', 'gauge'),
  stat(9, 'zramfuse_disk_io_time_seconds_total', 'stat io_ticks', 'counter', MS),
  stat(10, 'zramfuse_disk_io_time_weighted_seconds_total', 'stat time_in_queue', 'counter', MS),
  stat(11, 'zramfuse_disk_discards_completed_total', 'stat discard I/Os', 'counter'),
  stat(12, 'zramfuse_disk_discards_merged_total', 'stat discard merges', 'counter'),
  stat(13, 'zramfuse_disk_discarded_bytes_total', 'stat discard sectors, in bytes', 'counter', SECTOR),
  stat(14, 'zramfuse_disk_discard_time_seconds_total', 'stat discard ticks', 'counter', MS),
  stat(15, 'zramfuse_disk_flush_requests_total', 'stat flush I/Os', 'counter'),
  stat(16, 'zramfuse_disk_flush_requests_time_seconds_total', 'stat flush ticks', 'counter', MS),
  // kcompressd
  ext('workers', 'zramfuse_kcompressd_workers', 'kcompressd worker threads (0 = inline)', 'gauge'),
  ext('fifo_size', 'zramfuse_kcompressd_fifo_size_pages', 'kcompressd FIFO length', 'gauge'),
  ext('fifo_depth', 'zramfuse_kcompressd_fifo_depth_pages', 'pages staged, not yet committed', 'gauge'),
  ext('max_fifo_depth', 'zramfuse_kcompressd_fifo_depth_max_pages', 'deepest the FIFO has been', 'gauge'),
  ext('queued', 'zramfuse_kcompressd_queued_total', 'pages staged for the workers', 'counter'),
  ext('completed', 'zramfuse_kcompressd_completed_total', 'worker results committed', 'counter'),
  ext('stale', 'zramfuse_kcompressd_stale_total', 'stagings superseded before commit', 'counter'),
  ext('inline_fallbacks', 'zramfuse_kcompressd_inline_fallbacks_total', 'pages compressed inline because the FIFO was full', 'counter'),
  ext('fifo_full_events', 'zramfuse_kcompressd_fifo_full_events_total', 'times the FIFO became full', 'counter'),
  ext('batches', 'zramfuse_kcompressd_batches_total', 'batches sent to the workers', 'counter'),
  ext('worker_errors', 'zramfuse_kcompressd_worker_errors_total', 'batches whose worker failed (recompressed)', 'counter'),
  ext('main_ns', 'zramfuse_kcompressd_main_thread_seconds_total', 'main-thread time for staging, dispatch and commit', 'counter', 1e-9),
  // memory of the device's own bookkeeping
  ext('page_table_bytes', 'zramfuse_page_table_bytes', 'page-table metadata (16 bytes per page)', 'gauge'),
  ext('pool_chunks', 'zramfuse_pool_chunks', 'pool chunks held from the OS', 'gauge'),
  // writeback tier and shrinker
  ext('written_back_pages', 'zramfuse_written_back_pages_total', 'pages written back to the lower file', 'counter'),
  ext('lower_errors', 'zramfuse_lower_errors_total', 'failed lower-file writes (pages kept in memory)', 'counter'),
  ext('checksum_errors', 'zramfuse_checksum_errors_total', 'lower-file records that failed their checksum', 'counter'),
  ext('lower_live_bytes', 'zramfuse_lower_live_bytes', 'live record bytes in the lower file', 'gauge'),
  ext('lower_allocated_bytes', 'zramfuse_lower_allocated_bytes', 'bytes allocated in the lower file', 'gauge'),
  ext('pool_limit_hit', 'zramfuse_pool_limit_hit_total', 'stores at or above the pool limit', 'counter'),
  ext('shrinker_runs', 'zramfuse_shrinker_runs_total', 'shrinker writeback runs', 'counter'),
]


/** The registry with every metric, refreshed from the devices by update(). */
export class ZramMetrics {
  readonly registry = new Registry()
  private readonly metrics: { spec: FieldMetric; metric: Gauge<'device'> | Counter<'device'>; attr: Attribute<ZramDevice> | undefined }[]

  constructor(private readonly devices: DeviceSet) {
    collectDefaultMetrics({ register: this.registry })
    this.metrics = DEVICE_METRICS.map((spec) => {
      const cfg = { name: spec.name, help: spec.help, labelNames: ['device'] as const, registers: [this.registry] }
      return { spec, metric: spec.type === 'gauge' ? new Gauge(cfg) : new Counter(cfg), attr: deviceAttribute(spec.attr) }
    })
  }

  /** Read every device now (one show per attribute per device). */
  update(): void {
    const shown = new Map<string, string[]>()
    for (const m of this.metrics) m.metric.reset()
    for (const dev of this.devices.all()) {
      shown.clear()
      const labels = { device: `zram${dev.id}` }
      for (const m of this.metrics) {
        if (m.attr?.show === undefined) continue
        let fields = shown.get(m.spec.attr)
        if (fields === undefined) {
          fields = m.attr.show(dev).trim().split(/\s+/)
          shown.set(m.spec.attr, fields)
        }
        const v = Number(fields[m.spec.field]) * (m.spec.scale ?? 1)
        if (!Number.isFinite(v)) continue
        if (m.metric instanceof Gauge) m.metric.set(labels, v)
        else m.metric.inc(labels, v)
      }
    }
  }

  async text(): Promise<string> {
    this.update()
    return this.registry.metrics()
  }
}

export interface ListenAddress {
  host: string
  port: number
}

/** `PORT`, `HOST:PORT` or `[IPV6]:PORT`; the host defaults to 127.0.0.1 (never all interfaces by accident). */
export function parseListenAddress(text: string): ListenAddress {
  const m = /^(?:\[([0-9a-fA-F:.]+)\]:|([^:[\]]+):)?(\d{1,5})$/.exec(text)
  const port = m ? Number(m[3]) : NaN
  if (!m || port > 65535) throw new Error(`--metrics takes PORT or HOST:PORT, got ${JSON.stringify(text)}`)
  return { host: m[1] ?? m[2] ?? '127.0.0.1', port }
}

/** Serve GET /metrics; resolves once listening (rejects if the address cannot be bound). */
export function serveMetrics(metrics: ZramMetrics, addr: ListenAddress, log: EventLog): Promise<{ server: Server; port: number }> {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('see /metrics\n')
      return
    }
    metrics.text().then((body) => {
      res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(body)
    }, (err: unknown) => {
      log.error({ event: 'metrics_failed', err: String(err) })
      res.writeHead(500, { 'content-type': 'text/plain' }).end('metrics failed\n')
    })
  })
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(addr.port, addr.host, () => {
      server.off('error', reject)
      server.on('error', (err) => log.error({ event: 'metrics_server_error', err: String(err) }))
      const a = server.address()
      const port = typeof a === 'object' && a !== null ? a.port : addr.port
      log.info({ event: 'metrics', host: addr.host, port, url: `http://${addr.host.includes(':') ? `[${addr.host}]` : addr.host}:${port}/metrics` })
      resolve({ server, port })
    })
  })
}
