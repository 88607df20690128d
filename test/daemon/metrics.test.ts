// Prometheus metrics from in-memory devices: every metric is present per device with the type its
// name promises, values equal the attribute files' fields (scaled to base units), and counters
// move when pages are written. Plus the --metrics address parser and the HTTP endpoint.
import t from 'tap'
import { get } from 'node:http'
import { DeviceSet } from '../../src/device/device-set'
import { silentLog } from '../../src/log'
import { zramAttributes } from '../../src/sysfs/zram-attributes'
import { DEVICE_METRICS, parseListenAddress, serveMetrics, ZramMetrics } from '../../daemon/metrics'

const MiB = 1024 * 1024

/** `name{device="zramN"} value` lines of a scrape, by name and device. */
function samples(text: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of text.split('\n')) {
    const m = /^(\w+)\{device="(zram\d+)"\} (\S+)$/.exec(line)
    if (m) out.set(`${m[1]}/${m[2]}`, Number(m[3]))
  }
  return out
}

function types(text: string): Map<string, string> {
  const out = new Map<string, string>()
  for (const m of text.matchAll(/^# TYPE (\w+) (\w+)$/gm)) out.set(m[1] as string, m[2] as string)
  return out
}

t.test('every device metric, typed by its name, equal to the files', async (t) => {
  const set = new DeviceSet({ log: silentLog })
  const dev = set.add()
  set.add()
  t.teardown(() => set.close())
  dev.initialise(16 * MiB)
  const metrics = new ZramMetrics(set)
  const before = samples(await metrics.text())

  const page = Buffer.alloc(4096)
  for (let i = 0; i < 64; i++) {
    page.fill(0)
    page.write(`page ${i} `.repeat(40))
    await dev.write(page, i * 4096)
  }
  await dev.read(Buffer.alloc(8192), 0)
  const text = await metrics.text()
  const after = samples(text)
  const typeOf = types(text)

  for (const m of DEVICE_METRICS) {
    t.equal(typeOf.get(m.name), m.type, `${m.name} is a ${m.type}`)
    t.equal(m.name.endsWith('_total'), m.type === 'counter', `${m.name}: _total iff counter`)
    for (const d of ['zram0', 'zram1']) t.ok(after.has(`${m.name}/${d}`), `${m.name} for ${d}`)
  }
  t.equal(typeOf.get('process_resident_memory_bytes'), 'gauge', 'process RSS')
  t.ok((after.get('zramfuse_page_table_bytes/zram0') ?? 0) > 0, 'page-table bytes')

  const mm = (zramAttributes.find((a) => a.name === 'mm_stat')?.show?.(dev) ?? '').trim().split(/\s+/).map(Number)
  t.equal(after.get('zramfuse_orig_data_bytes/zram0'), mm[0], 'orig_data_size as in mm_stat')
  t.equal(after.get('zramfuse_compr_data_bytes/zram0'), mm[1])
  t.equal(after.get('zramfuse_mem_used_total_bytes/zram0'), mm[2])
  t.equal(after.get('zramfuse_orig_data_bytes/zram0'), 64 * 4096)
  t.equal(before.get('zramfuse_orig_data_bytes/zram0'), 0)
  t.equal(after.get('zramfuse_disksize_bytes/zram0'), 16 * MiB)
  t.equal(after.get('zramfuse_disksize_bytes/zram1'), 0)
  t.equal(after.get('zramfuse_orig_data_bytes/zram1'), 0, 'the idle device stays at 0')
})

t.test('--metrics addresses', async (t) => {
  t.same(parseListenAddress('9100'), { host: '127.0.0.1', port: 9100 })
  t.same(parseListenAddress('0.0.0.0:9100'), { host: '0.0.0.0', port: 9100 })
  t.same(parseListenAddress('localhost:0'), { host: 'localhost', port: 0 })
  t.same(parseListenAddress('[::1]:9100'), { host: '::1', port: 9100 })
  for (const bad of ['', 'x', '9100x', '1.2.3.4:', ':9100', '70000', '::1:9100']) t.throws(() => parseListenAddress(bad), `refused: ${JSON.stringify(bad)}`)
})

t.test('GET /metrics over HTTP; other paths 404; a taken port is an error', async (t) => {
  const set = new DeviceSet({ log: silentLog })
  set.add().initialise(MiB)
  t.teardown(() => set.close())
  const { server, port } = await serveMetrics(new ZramMetrics(set), { host: '127.0.0.1', port: 0 }, silentLog)
  t.teardown(() => server.close())
  const fetchText = (path: string): Promise<{ status: number; type: string; body: string }> => new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, type: String(res.headers['content-type']), body }))
    }).on('error', reject)
  })
  const ok = await fetchText('/metrics')
  t.equal(ok.status, 200)
  t.match(ok.type, /^text\/plain; version=0\.0\.4/)
  t.match(ok.body, /^zramfuse_disksize_bytes\{device="zram0"\} 1048576$/m)
  t.equal((await fetchText('/')).status, 404)
  await t.rejects(serveMetrics(new ZramMetrics(set), { host: '127.0.0.1', port }, silentLog), { code: 'EADDRINUSE' })
})
