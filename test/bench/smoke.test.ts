// The harness end to end, small: two targets, two jobs, file and loop, the fidelity and memory
// sections on a 4 MiB mix; then a run interrupted with SIGINT must leave nothing mounted or attached.
// Needs root, fio, losetup, fusermount and a build (npm run build); skips with the reason otherwise.
import t from 'tap'
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs'
import { cpus, tmpdir } from 'node:os'
import { join } from 'node:path'
import type { BenchResults } from '../../bench/results'

const REPO = join(__dirname, '..', '..')
const RUN = join(REPO, 'dist', 'bench', 'run.js')

function missing(): string | null {
  if (process.getuid?.() !== 0) return 'needs root'
  for (const tool of ['fio', 'losetup', 'fusermount', 'dd', 'mke2fs']) {
    if (spawnSync('sh', ['-c', `command -v ${tool}`]).status !== 0) return `${tool} is not installed`
  }
  if (!existsSync('/dev/fuse')) return 'no /dev/fuse'
  return null
}

/** Everything a bench run with this pid could have left: mounts, loop devices, its work dir. */
function leftovers(pid: number): string[] {
  const dir = `/tmp/zramfuse-bench/${pid}`
  const out: string[] = []
  for (const line of readFileSync('/proc/self/mounts', 'utf8').split('\n')) {
    const mp = line.split(' ')[1]
    if (mp?.startsWith(dir)) out.push(`mounted: ${mp}`)
  }
  for (const name of readdirSync('/sys/block').filter((n) => n.startsWith('loop'))) {
    try {
      const bf = readFileSync(`/sys/block/${name}/loop/backing_file`, 'utf8')
      if (bf.startsWith(dir)) out.push(`attached: /dev/${name} -> ${bf.trim()}`)
    } catch {
      // not attached
    }
  }
  if (existsSync(dir)) out.push(`work dir left: ${dir}`)
  if (existsSync(`/dev/shm/zramfuse-bench-${pid}`)) out.push('shm dir left')
  return out
}

const why = missing()
const noBuild = !existsSync(RUN)

t.test('a small run produces the report, the charts and the raw JSON', { skip: why ?? false }, async (t) => {
  if (noBuild) return t.fail(`${RUN} is missing: run npm run build`)
  const out = mkdtempSync(join(tmpdir(), 'zramfuse-bench-smoke-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))
  const child = spawn(process.execPath, [RUN, '--only', 'ceiling,zramfuse-lz4', '--jobs', 'randwrite-4k-qd1,read-1m',
    '--reps', '2', '--runtime', '0.3', '--region', '16M', '--fidelity-size', '4M', '--no-real', '--out', out], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (b: Buffer) => (stdout += b.toString()))
  child.stderr.on('data', (b: Buffer) => (stderr += b.toString()))
  const code = await new Promise<number | null>((res) => child.on('close', res))
  t.equal(code, 0, `exit 0; stderr tail: ${stderr.slice(-1500)}`)
  t.match(stderr, /\[bench +\d+\/\d+ \d+m\d\ds\] zramfuse-lz4 loop 4k randwrite QD1 run 2\/2: [\d.]+ k IOPS/, 'progress: which job, k of n')
  t.match(stdout, /\| 4k randwrite QD1 \| k IOPS \|/)
  const pids = [...stderr.matchAll(/\] zramfuse lz4: ready \(pid (\d+)\)/g)].map((m) => m[1])
  t.equal(new Set(pids).size, 2, `a fresh daemon for each of the 2 runs: pids ${pids.join(', ')}`)
  const files = readdirSync(out)
  const json = files.find((f) => f.endsWith('.json'))
  t.ok(json, 'raw JSON written')
  t.ok(files.some((f) => f.endsWith('.md')), 'report written')
  t.ok(files.some((f) => f.endsWith('-file-iops.svg')), 'charts written')
  if (!json) return
  const r = JSON.parse(readFileSync(join(out, json), 'utf8')) as BenchResults
  t.same(r.targets.map((x) => x.id), ['ceiling', 'zramfuse-lz4', 'zramfuse-lz4-aa'], 'the A/A twin comes with zramfuse-lz4')
  t.equal(r.perf.length, 3 * 2 * 2, 'targets x modes x jobs')
  t.match(r.config.placement, cpus().length >= 2 ? /^split: daemons on CPU 0, fio and dd on CPU 1/ : /^none/, 'pinned by default where there are 2 CPUs')
  t.match(stdout, /\| A\/A: zramfuse lz4 A\/A twin \/ zramfuse lz4 \|/, 'the A/A column in the summary')
  t.match(stdout, /\| \d+\.\d\d× \(±\d+(\.\d)?%\) \|/, 'an A/A ratio with its band')
  for (const c of r.perf) {
    t.equal(c.error, undefined, `${c.target} ${c.mode} ${c.job} ran`)
    t.equal(c.runs.length, 2)
    for (const run of c.runs) t.ok(run.iops > 0 && run.daemonCpuPct !== null)
  }
  const fid = r.fidelity[0]?.zramfuse['zramfuse-lz4']
  t.equal(fid?.orig_data_size, 4 << 20, 'fidelity: the whole mix is stored')
  const mem = r.memory.find((m) => m.target === 'zramfuse-lz4')
  t.ok(mem && mem.pageTableBytes !== null && mem.pageTableBytes / (mem.disksize / 4096) <= 16, 'at most 16 bytes of metadata per page')
  t.ok(mem && mem.rssAfterBytes !== null && mem.rssAfterBytes > 0)
  t.ok(mem && mem.compacted.mem_used_total <= mem.churned.mem_used_total, 'compaction does not grow the pool')
  t.same(leftovers(child.pid ?? 0), [], 'nothing left mounted or attached')
})

t.test('SIGINT in the middle of a loop-device job cleans up', { skip: why ?? false }, async (t) => {
  if (noBuild) return t.fail(`${RUN} is missing: run npm run build`)
  const out = mkdtempSync(join(tmpdir(), 'zramfuse-bench-smoke-'))
  t.teardown(() => rmSync(out, { recursive: true, force: true }))
  const child = spawn(process.execPath, [RUN, '--only', 'zramfuse-lz4', '--jobs', 'randwrite-4k-qd1', '--reps', '2', '--runtime', '2',
    '--region', '16M', '--no-real', '--no-fidelity', '--out', out], { stdio: ['ignore', 'ignore', 'pipe'] })
  let stderr = ''
  let sent = false
  child.stderr.on('data', (b: Buffer) => {
    stderr += b.toString()
    if (!sent && /zramfuse-lz4 loop: prefill/.test(stderr)) {
      sent = true
      // in the middle of the first timed run through the loop device
      setTimeout(() => child.kill('SIGINT'), 1500)
    }
  })
  const code = await new Promise<number | null>((res) => child.on('close', res))
  t.ok(sent, 'reached the loop device')
  t.equal(code, 130, `exit 130 after SIGINT; stderr tail: ${stderr.slice(-800)}`)
  t.match(stderr, /cleaning up/)
  t.same(leftovers(child.pid ?? 0), [], 'nothing left mounted or attached')
  t.ok(readdirSync(out).some((f) => f.endsWith('.json')), 'partial results written')
})
