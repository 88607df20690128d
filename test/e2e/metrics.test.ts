// --metrics end to end: scrape the daemon's Prometheus endpoint before, during and after fio on
// the block file; the counters move (and never go back), every metric has the type its name
// promises, and the values agree with the attribute files.
import t from 'tap'
import { get } from 'node:http'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { DEVICE_METRICS } from '../../daemon/metrics'
import { canRunE2E, cli, startDaemon } from './daemon'
import { run, sleep } from './util'

function scrape(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => { body += c })
      res.on('end', () => (res.statusCode === 200 ? resolve(body) : reject(new Error(`HTTP ${res.statusCode ?? '?'}`))))
    }).on('error', reject)
  })
}

function values(text: string, device: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const m of text.matchAll(/^(\w+)\{device="(zram\d+)"\} (\S+)$/gm)) if (m[2] === device) out.set(m[1] as string, Number(m[3]))
  return out
}

if (canRunE2E(t, ['fio'])) {
  t.test('scrapes during fio: counters move, types are right', async (t) => {
    const d = await startDaemon({ disksize: '256M', test: t, extraArgs: ['--metrics', '127.0.0.1:0'] })
    const port = Number(/"event":"metrics".*?"port":(\d+)/.exec(d.log())?.[1])
    t.ok(port > 0, `metrics on port ${port}`)
    const before = values(await scrape(port), 'zram0')
    const fio = run('fio', ['--name=mix', `--filename=${d.blockFile}`, '--direct=1', '--ioengine=psync', '--rw=randrw',
      '--bs=4k', '--size=64M', '--time_based', '--runtime=4', '--randseed=1212', '--buffer_compress_percentage=50',
      '--refill_buffers', '--output-format=json'], { timeoutMs: 60_000 })
    // the live status view, alongside: the second table has fio's rates
    const watch = cli(['status', '--mount', d.mount, '--watch', '1', '--count', '2'], 30_000)
    // "During": the first scrape that sees fio's writes (fio may take a while to start on a loaded machine).
    const w = 'zramfuse_disk_writes_completed_total'
    let duringText = await scrape(port)
    for (const deadline = Date.now() + 60_000; !((values(duringText, 'zram0').get(w) ?? 0) > 0) && Date.now() < deadline;) {
      await sleep(100)
      duringText = await scrape(port)
    }
    const during = values(duringText, 'zram0')
    const r = await fio
    t.equal(r.code, 0, 'fio exits 0', { stderr: r.stderr.slice(-2000) })
    const wr = await watch
    t.equal(wr.code, 0, 'status --watch exits after --count tables')
    const tables = wr.stdout.split(/\n(?=every 1s)/)
    t.equal(tables.length, 2, 'two tables')
    t.match(tables[0], /READS\/s +WRITES\/s +READ MB\/s +WRITE MB\/s/)
    const second = (tables[1] ?? '').trim().split('\n')[2] ?? ''
    const m = /^zram0 .* (\d+) +(\d+) +(\d+\.\d) +(\d+\.\d) +\d+$/.exec(second)
    t.ok(m !== null && Number(m[2]) > 0 && Number(m[4]) > 0, `writes/s and write MB/s under fio: ${second}`)
    const afterText = await scrape(port)
    const after = values(afterText, 'zram0')

    const rd = 'zramfuse_disk_reads_completed_total'
    t.equal(before.get(w), 0)
    t.ok((during.get(w) ?? 0) > 0, `writes during fio: ${during.get(w)}`)
    t.ok((after.get(w) ?? 0) > (during.get(w) ?? 0), `and more after: ${after.get(w)}`)
    t.ok((after.get(rd) ?? 0) > (during.get(rd) ?? 0), 'reads move too')
    t.ok((during.get('zramfuse_orig_data_bytes') ?? 0) > 0, 'orig_data_size grows')
    t.ok((after.get('zramfuse_disk_written_bytes_total') ?? 0) >= (after.get(w) ?? 0) * 4096, 'written bytes: sectors x 512')
    for (const m of DEVICE_METRICS.filter((x) => x.type === 'counter')) {
      t.ok((after.get(m.name) ?? -1) >= (during.get(m.name) ?? Infinity), `${m.name} never goes back`)
    }
    for (const m of DEVICE_METRICS) {
      t.match(afterText, new RegExp(`^# TYPE ${m.name} ${m.type}$`, 'm'), `${m.name} is a ${m.type}`)
    }
    t.match(afterText, /^# TYPE process_resident_memory_bytes gauge$/m)
    t.ok(Number(/^process_resident_memory_bytes (\S+)$/m.exec(afterText)?.[1]) > 10e6, 'process RSS')
    t.equal(after.get('zramfuse_page_table_bytes'), (256 * 1024 * 1024 / 4096) * 16, 'page-table bytes')
    // the scrape and the file agree (nothing writes between the two reads now)
    const mm = readFileSync(join(d.sys, 'mm_stat'), 'utf8').trim().split(/\s+/).map(Number)
    const now = values(await scrape(port), 'zram0')
    t.equal(now.get('zramfuse_orig_data_bytes'), mm[0], 'orig_data_size as in mm_stat')
    t.equal(now.get('zramfuse_mem_used_total_bytes'), mm[2], 'mem_used_total as in mm_stat')
  })
}
