/**
 * fio --output-format=json, parsed into the few figures the report uses. Pure: text in, data out.
 * Checked against recorded output of fio 3.33 (test/bench/fixtures/).
 */

export interface FioDirection {
  /** completed I/Os */
  ios: number
  bytes: number
  iops: number
  /** bytes per second */
  bwBytes: number
  runtimeMs: number
  /** total latency (submission + completion), mean, ns */
  latMeanNs: number
  /** completion latency percentiles, ns; null when fio printed none (no I/O in this direction) */
  clatP50Ns: number | null
  clatP99Ns: number | null
  clatMaxNs: number
}

export interface FioJob {
  name: string
  error: number
  read: FioDirection
  write: FioDirection
  /** fio's own CPU use, percent of one CPU */
  usrCpu: number
  sysCpu: number
  /** job options as fio echoes them (all values strings) */
  options: Record<string, string>
}

export interface FioOutput {
  fioVersion: string
  timestamp: number
  jobs: FioJob[]
}

type Json = null | boolean | number | string | Json[] | { [k: string]: Json }
type JsonObject = { [k: string]: Json }

function isObject(v: Json | undefined): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function obj(parent: JsonObject, key: string, where: string): JsonObject {
  const v = parent[key]
  if (!isObject(v)) throw new Error(`fio json: ${where}.${key} is not an object`)
  return v
}

function num(parent: JsonObject, key: string, where: string): number {
  const v = parent[key]
  if (typeof v !== 'number' || !Number.isFinite(v)) throw new Error(`fio json: ${where}.${key} is not a number`)
  return v
}

function optNum(parent: JsonObject | undefined, key: string): number | null {
  const v = parent?.[key]
  return typeof v === 'number' && Number.isFinite(v) ? v : null
}

/** The percentile fio printed closest to p (keys look like "99.000000"). */
function percentile(clat: JsonObject, p: number): number | null {
  const table = clat['percentile']
  if (!isObject(table)) return null
  let best: number | null = null
  let bestDist = Infinity
  for (const [k, v] of Object.entries(table)) {
    const d = Math.abs(Number(k) - p)
    if (typeof v === 'number' && d < bestDist) {
      best = v
      bestDist = d
    }
  }
  return bestDist <= 0.001 ? best : null
}

function direction(job: JsonObject, key: 'read' | 'write', where: string): FioDirection {
  const d = obj(job, key, where)
  const w = `${where}.${key}`
  const ios = num(d, 'total_ios', w)
  const clat = isObject(d['clat_ns']) ? d['clat_ns'] : undefined
  const lat = isObject(d['lat_ns']) ? d['lat_ns'] : undefined
  return {
    ios,
    bytes: num(d, 'io_bytes', w),
    iops: num(d, 'iops', w),
    bwBytes: num(d, 'bw_bytes', w),
    runtimeMs: num(d, 'runtime', w),
    latMeanNs: optNum(lat, 'mean') ?? 0,
    clatP50Ns: ios > 0 && clat ? percentile(clat, 50) : null,
    clatP99Ns: ios > 0 && clat ? percentile(clat, 99) : null,
    clatMaxNs: optNum(clat, 'max') ?? 0,
  }
}

/**
 * fio prints warnings ("fio: ...", "note: ...") before the JSON on stdout in some versions:
 * the JSON document starts at the first line that is exactly "{".
 */
export function extractJson(text: string): string {
  const m = /^\{\s*$/m.exec(text)
  const start = m ? m.index : text.indexOf('{')
  if (start < 0) throw new Error('fio json: no JSON object in fio output')
  const end = text.lastIndexOf('}')
  if (end < start) throw new Error('fio json: unterminated JSON object in fio output')
  return text.slice(start, end + 1)
}

export function parseFioOutput(text: string): FioOutput {
  let root: Json
  try {
    root = JSON.parse(extractJson(text)) as Json
  } catch (err) {
    throw new Error(`fio json: ${(err as Error).message}`)
  }
  if (!isObject(root)) throw new Error('fio json: top level is not an object')
  const jobsJson = root['jobs']
  if (!Array.isArray(jobsJson) || jobsJson.length === 0) throw new Error('fio json: no jobs')
  const jobs = jobsJson.map((j, i): FioJob => {
    if (!isObject(j)) throw new Error(`fio json: jobs[${i}] is not an object`)
    const where = `jobs[${i}]`
    const optsJson = j['job options']
    const options: Record<string, string> = {}
    if (isObject(optsJson)) {
      for (const [k, v] of Object.entries(optsJson)) if (typeof v === 'string') options[k] = v
    }
    const name = j['jobname']
    return {
      name: typeof name === 'string' ? name : `job${i}`,
      error: num(j, 'error', where),
      read: direction(j, 'read', where),
      write: direction(j, 'write', where),
      usrCpu: num(j, 'usr_cpu', where),
      sysCpu: num(j, 'sys_cpu', where),
      options,
    }
  })
  const version = root['fio version']
  const ts = root['timestamp']
  return {
    fioVersion: typeof version === 'string' ? version : 'unknown',
    timestamp: typeof ts === 'number' ? ts : 0,
    jobs,
  }
}

/** The figures of one run in one direction, all jobs of it together (sums; latencies I/O-weighted). */
export interface RunFigures {
  ios: number
  iops: number
  bwBytes: number
  latMeanNs: number
  clatP99Ns: number | null
  /** fio's CPU use summed over its jobs, percent of one CPU */
  fioCpuPct: number
  error: number
}

/**
 * Combine the jobs of one fio run (one entry with group_reporting, or one per job without it).
 * p99 of several entries is their maximum: an upper bound, exact with group_reporting.
 */
export function runFigures(out: FioOutput, dir: 'read' | 'write'): RunFigures {
  let ios = 0
  let iops = 0
  let bw = 0
  let latWeighted = 0
  let p99: number | null = null
  let cpu = 0
  let error = 0
  for (const j of out.jobs) {
    const d = j[dir]
    ios += d.ios
    iops += d.iops
    bw += d.bwBytes
    latWeighted += d.latMeanNs * d.ios
    if (d.clatP99Ns !== null) p99 = p99 === null ? d.clatP99Ns : Math.max(p99, d.clatP99Ns)
    cpu += j.usrCpu + j.sysCpu
    error = error || j.error
  }
  return { ios, iops, bwBytes: bw, latMeanNs: ios > 0 ? latWeighted / ios : 0, clatP99Ns: p99, fioCpuPct: cpu, error }
}
