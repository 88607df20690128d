/**
 * `start --kcompressd-cpus LIST`: put every kcompressd worker thread on CPUs of its own, apart from
 * the main thread that answers FUSE requests. The kernel's kcompressd is a kthread of its own for
 * the same reason: compression overlaps the request path only when it runs elsewhere. The codec's
 * helper thread (native/zcodec.c: it takes half of the pages of a large inline read or write) goes
 * there too. Without the option they run wherever the daemon may run (taskset or a cgroup's cpuset
 * decide).
 */
import { cpus } from 'node:os'
import type { Logger } from 'pino'
import { onWorkerThread } from '../src/kcompressd/workers'
import { zcodec } from '../src/codec/native'
import { errnoName, loadMemlock, type MemlockAddon } from './memlock'

/** A CPU list as taskset -c and cpusets write it: "1", "0,2", "1-3", "0-1,4"; ascending, unique. */
export function parseCpuList(text: string, cpuCount: number): number[] {
  const out = new Set<number>()
  for (const part of text.split(',')) {
    const m = /^(\d+)(?:-(\d+))?$/.exec(part.trim())
    if (m === null) throw new Error(`--kcompressd-cpus: ${JSON.stringify(part)} is not a CPU number or range (e.g. 1 or 1-3 or 0,2)`)
    const lo = Number(m[1])
    const hi = m[2] === undefined ? lo : Number(m[2])
    if (hi < lo) throw new Error(`--kcompressd-cpus: range ${part} runs backwards`)
    if (hi >= cpuCount) throw new Error(`--kcompressd-cpus: CPU ${hi} does not exist (this machine has CPUs 0-${cpuCount - 1})`)
    for (let c = lo; c <= hi; c++) out.add(c)
  }
  return [...out].sort((a, b) => a - b)
}

/**
 * Place every worker that starts from now on (replacements and workers added later too). A worker
 * that cannot be placed runs where it is; the error is logged once per worker thread.
 */
export function placeKcompressdWorkers(list: string, log: Logger, addon: MemlockAddon = loadMemlock(), cpuCount = cpus().length,
  helperThread: () => number = zcodec.helperThread): number[] {
  const set = parseCpuList(list, cpuCount)
  const tid = helperThread()
  const errno = tid > 0 ? addon.setAffinity(tid, set) : -1
  const fields = { event: 'codec_helper_cpus', tid, cpus: set }
  if (errno === 0) log.info(fields, 'codec helper thread placed')
  else log.error({ ...fields, err: tid > 0 ? errnoName(errno) : 'not started' }, 'codec helper thread could not be placed: it runs on the daemon\'s CPUs')
  onWorkerThread((tid, device, worker) => {
    const errno = addon.setAffinity(tid, set)
    const fields = { event: 'kcompressd_cpus', device: `zram${device}`, worker, tid, cpus: set }
    if (errno === 0) log.info(fields, 'kcompressd worker placed')
    else log.error({ ...fields, err: errnoName(errno) }, 'kcompressd worker could not be placed: it runs on the daemon\'s CPUs')
  })
  return set
}
