// Swap safety of the running daemon (daemon/swap-safety.ts): as root it locks its memory
// (mlockall CURRENT|FUTURE|ONFAULT, with the madvise shim preloaded so V8 survives it), sets
// IO_FLUSHER where the machine allows it, and logs one swap_safety line; --no-mlock leaves it all off.
//
// VmLck counts whole locked mappings (with ONFAULT, V8's reservations too), so it is at least VmRSS;
// /proc/PID/smaps_rollup's Locked counts the resident locked pages (proportionally, like Pss): every
// resident page is locked when Locked is (close to) Pss.
import t, { type Test } from 'tap'
import { readFileSync } from 'node:fs'
import { CAP_SYS_RESOURCE, hasCapability, parseCapSet } from '../../daemon/swap-safety'
import { canRunE2E, type Daemon, startDaemon } from './daemon'
import { runFio } from './util'

interface Memory { vmRss: number; vmLck: number; pss: number; locked: number }

function memory(pid: number): Memory {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8')
  const kb = (text: string, field: string): number => Number(new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(text)?.[1] ?? NaN) * 1024
  return { vmRss: kb(status, 'VmRSS'), vmLck: kb(status, 'VmLck'), pss: kb(rollup, 'Pss'), locked: kb(rollup, 'Locked') }
}

const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`
const fmt = (m: Memory): string => `VmRSS ${mib(m.vmRss)}, VmLck ${mib(m.vmLck)}, Pss ${mib(m.pss)}, Locked ${mib(m.locked)}`

/** The daemon's swap_safety log line. */
function swapSafetyLine(d: Daemon): Record<string, unknown> | undefined {
  for (const line of d.log().split('\n')) {
    if (!line.includes('"swap_safety"')) continue
    return JSON.parse(line) as Record<string, unknown>
  }
  return undefined
}

/** Write 96 MiB of half-compressible data through the block file and read it back verified. */
async function fill(t: Test, d: Daemon): Promise<void> {
  const r = await runFio(['--name=fill', `--filename=${d.blockFile}`, '--direct=1', '--ioengine=psync', '--rw=write', '--bs=128k',
    '--size=96M', '--buffer_compress_percentage=50', '--refill_buffers', '--verify=crc32c', '--verify_fatal=1',
    '--randseed=20261201', '--output-format=json'], { timeoutMs: 120_000 })
  t.equal(r.code, 0, 'fio wrote and verified 96 MiB', { stderr: r.stderr.slice(-1000) })
}

const boundingHasSysResource = hasCapability(parseCapSet(readFileSync('/proc/self/status', 'utf8'), 'CapBnd'), CAP_SYS_RESOURCE)

if (canRunE2E(t, ['fio'])) {
  for (const workers of ['0', '1']) {
    t.test(`as root: memory locked, the shim preloaded, one swap_safety line (--workers ${workers})`, async (t) => {
      const d = await startDaemon({ disksize: '256M', test: t, extraArgs: ['--workers', workers] })
      const line = swapSafetyLine(d)
      t.ok(line, 'the daemon logged swap_safety')
      if (!line) return
      t.equal(line.applied, true, 'applied')
      const ml = line.mlockall as { ok: boolean; flags: string; before: { vmRssBytes: number }; after: { vmRssBytes: number } }
      t.equal(ml.ok, true, 'mlockall succeeded')
      t.equal(ml.flags, 'MCL_CURRENT|MCL_FUTURE|MCL_ONFAULT')
      t.comment(`RSS at mlockall: ${mib(ml.before.vmRssBytes)} before, ${mib(ml.after.vmRssBytes)} after (ONFAULT: no population)`)
      t.ok(ml.after.vmRssBytes - ml.before.vmRssBytes < 16 * 2 ** 20, 'RSS does not jump at mlockall')
      const io = line.ioFlusher as { ok: boolean; value: number | null; error: string | null; required: boolean }
      if (boundingHasSysResource) {
        t.equal(io.value, 1, 'PR_GET_IO_FLUSHER reads 1')
        t.equal(line.level, 30, 'info level')
      } else {
        // This machine: CAP_SYS_RESOURCE is not in the bounding set, no process can set IO_FLUSHER.
        t.equal(io.ok, false)
        t.equal(io.required, false)
        t.match(io.error, /EPERM.*bounding set/)
        t.equal(line.level, 40, 'a warning, not an error: memory is locked and the daemon runs')
        t.comment(`IO_FLUSHER not available here: ${io.error ?? ''}`)
      }
      const maps = readFileSync(`/proc/${d.pid}/maps`, 'utf8')
      t.ok(maps.includes('/madvise-locked.so'), 'the madvise shim is mapped (the daemon re-executed itself with it)')
      const idle = memory(d.pid)
      t.comment(`idle: ${fmt(idle)}`)
      t.ok(idle.vmLck >= idle.vmRss, 'VmLck >= VmRSS')
      t.ok(idle.locked >= 0.95 * idle.pss, 'every resident page is locked (Locked >= 95% of Pss)')
      await fill(t, d)
      const full = memory(d.pid)
      t.comment(`with 96 MiB written: ${fmt(full)}; mm_stat mem_used_total ${mib(d.mmStat().memUsedTotal)}`)
      t.ok(full.locked > idle.locked + d.mmStat().memUsedTotal * 0.9, 'the pool grew locked')
      t.ok(full.locked >= 0.95 * full.pss, 'still every resident page locked')
      await d.stop()
    })
  }

  t.test('--no-mlock: nothing locked, no shim, said in the log', async (t) => {
    const d = await startDaemon({ disksize: '256M', test: t, extraArgs: ['--no-mlock'] })
    const line = swapSafetyLine(d)
    t.match(line, { event: 'swap_safety', applied: false, reason: '--no-mlock', level: 40 })
    const m = memory(d.pid)
    t.equal(m.vmLck, 0, 'VmLck is 0')
    t.equal(m.locked, 0, 'smaps Locked is 0')
    t.notOk(readFileSync(`/proc/${d.pid}/maps`, 'utf8').includes('/madvise-locked.so'), 'no shim')
    await fill(t, d)
    t.equal(memory(d.pid).vmLck, 0, 'still nothing locked after writing')
    await d.stop()
  })
}
