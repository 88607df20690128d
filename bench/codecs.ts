#!/usr/bin/env node
/**
 * The codec microbenchmark: per 4 KiB page, what our codecs cost to compress and decompress, next
 * to the C library's own benchmark on the same pages (`lz4 -b1 -B4096`, `zstd -b3 -B4K`, when the
 * CLIs are installed), and the ratio ours / C.
 *
 *   npm run bench -- --codecs [--quick] [--codec-corpus SIZE] [--codec-seconds S]
 *   node dist/bench/codecs.js [--quick] [--codec-corpus SIZE] [--codec-seconds S]
 *
 * The corpus: files of system docs, shared libraries and Perl/Python sources, taken in turn from
 * each source in sorted order and cut into 4 KiB pages (not aligned to file boundaries). Our side
 * goes through the device's own API (a CodecContext, views of the corpus, one preallocated output
 * buffer) and, like the C benchmarks, reports the fastest of repeated passes over every page.
 * No root needed. The parsing and the report are pure functions (tested on recorded output).
 */
import { execFileSync } from 'node:child_process'
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { findCodec } from '../src/codec/registry'
import { zcodec } from '../src/codec/native'
import { parseBenchArgs } from './options'

import { PAGE_SIZE } from '../src/page'

export { PAGE_SIZE }

/** Where the corpus comes from, in turn, one file at a time. */
const FILE_CAP_BYTES = 256 * 1024

export const CORPUS_SOURCES: readonly string[] = ['/usr/share/doc', '/usr/lib/x86_64-linux-gnu', '/usr/share/perl', '/usr/lib/python3']

/** What the C benchmarks print on their last line (MB = 10^6 bytes). */
export interface CBenchFigures {
  inBytes: number
  outBytes: number
  ratio: number
  compressMBps: number
  decompressMBps: number
}

/**
 * The final figures of `lz4 -bN` or `zstd -bN` output (stdout and stderr together). Both redraw a
 * progress line with \r, showing the fastest speeds so far; the last line with both speeds is the
 * result:   ` 1#corpus   :  33554432 ->  15862345 (2.115),  580.3 MB/s ,3200.5 MB/s`
 *  or (zstd) ` 3#corpus   :  33554432 ->  11385632 (x2.947),  200.1 MB/s,  800.2 MB/s`
 */
export function parseCBenchOutput(text: string): CBenchFigures | null {
  const re = /:\s*(\d+)\s*->\s*(\d+)\s*\(x?([\d.]+)\),\s*([\d.]+)\s*MB\/s\s*,\s*([\d.]+)\s*MB\/s/
  let last: CBenchFigures | null = null
  for (const line of text.split(/[\r\n]/)) {
    const m = re.exec(line)
    if (!m) continue
    last = {
      inBytes: Number(m[1]), outBytes: Number(m[2]), ratio: Number(m[3]),
      compressMBps: Number(m[4]), decompressMBps: Number(m[5]),
    }
  }
  return last
}

/** Microseconds per 4 KiB page at a speed in MB/s (10^6 bytes per second = bytes per microsecond). */
export function usPerPage(mbPerS: number): number {
  return PAGE_SIZE / mbPerS
}

export interface CodecFigures {
  codec: string
  level: number
  /** our cost per page, microseconds */
  compressUs: number
  decompressUs: number
  ratio: number
  /** the C library's own benchmark on the same pages, or null when its CLI is missing */
  c: { tool: string; compressUs: number; decompressUs: number; ratio: number } | null
}

function fmt(n: number, digits = 2): string {
  return n.toFixed(digits)
}

/** The report: a markdown table, one row per codec, and the ratios ours / C. */
export function formatCodecReport(rows: readonly CodecFigures[], corpus: string): string {
  const out = [
    `Per 4 KiB page, ${corpus}; fastest of repeated passes, like the C benchmarks (MB = 10^6 bytes).`,
    '',
    '| codec | ours compress us | ours decompress us | C library | C compress us | C decompress us | compress ours/C | decompress ours/C | ratio ours / C |',
    '|---|---:|---:|---|---:|---:|---:|---:|---:|',
  ]
  for (const r of rows) {
    const name = `${r.codec} (level ${r.level})`
    if (r.c === null) {
      out.push(`| ${name} | ${fmt(r.compressUs)} | ${fmt(r.decompressUs)} | not installed | | | | | ${fmt(r.ratio, 3)} / - |`)
      continue
    }
    out.push(`| ${name} | ${fmt(r.compressUs)} | ${fmt(r.decompressUs)} | \`${r.c.tool}\` | ${fmt(r.c.compressUs)} | ${fmt(r.c.decompressUs)} | ` +
      `${fmt(r.compressUs / r.c.compressUs)}x | ${fmt(r.decompressUs / r.c.decompressUs)}x | ${fmt(r.ratio, 3)} / ${fmt(r.c.ratio, 3)} |`)
  }
  return out.join('\n') + '\n'
}

// ---- measuring ----------------------------------------------------------------------------------

function listFiles(dir: string, out: string[], limit: number): void {
  let names: string[]
  try {
    names = readdirSync(dir).sort()
  } catch {
    return
  }
  for (const name of names) {
    if (out.length >= limit) return
    const path = join(dir, name)
    let st
    try {
      st = statSync(path, { throwIfNoEntry: false })
    } catch {
      continue
    }
    if (!st) continue
    if (st.isDirectory()) listFiles(path, out, limit)
    else if (st.isFile() && st.size > 0) out.push(path)
  }
}

/** `bytes` of real data (a whole number of pages), files taken from each source in turn. */
export function buildCorpus(bytes: number, sources: readonly string[] = CORPUS_SOURCES): { data: Buffer; files: number } {
  const lists = sources.map((s) => {
    const files: string[] = []
    listFiles(s, files, 200_000)
    return files
  }).filter((l) => l.length > 0)
  if (lists.length === 0) throw new Error(`no files under ${sources.join(', ')}`)
  const data = Buffer.alloc(bytes)
  let filled = 0
  let files = 0
  const next = lists.map(() => 0)
  while (filled < bytes) {
    let progressed = false
    for (let s = 0; s < lists.length && filled < bytes; s++) {
      const list = lists[s] as string[]
      const i = next[s] as number
      if (i >= list.length) continue
      next[s] = i + 1
      progressed = true
      let content: Buffer
      try {
        content = readFileSync(list[i] as string)
      } catch {
        continue
      }
      // At most 256 KiB of a file: a mix of many files, not a few large libraries.
      filled += content.copy(data, filled, 0, Math.min(content.length, FILE_CAP_BYTES, bytes - filled))
      files++
    }
    if (!progressed) throw new Error(`the sources hold less than ${bytes} bytes`)
  }
  return { data, files }
}

/** The fastest of repeated passes of fn over `seconds`, in nanoseconds per pass. */
function fastestPass(fn: () => void, seconds: number): number {
  fn() // warm-up
  let best = Number.POSITIVE_INFINITY
  const until = process.hrtime.bigint() + BigInt(Math.round(seconds * 1e9))
  let passes = 0
  while (passes < 3 || process.hrtime.bigint() < until) {
    const t0 = process.hrtime.bigint()
    fn()
    const ns = Number(process.hrtime.bigint() - t0)
    if (ns < best) best = ns
    passes++
  }
  return best
}

/** Our compress and decompress cost per page, through the device's API. */
export function measureOurs(algorithm: string, level: number, data: Buffer, seconds: number): { compressUs: number; decompressUs: number; ratio: number } {
  const ctx = findCodec(algorithm)!.createContext({ level, dict: null })
  const pages = data.length / PAGE_SIZE
  const dst = Buffer.alloc(2 * PAGE_SIZE)
  const store = Buffer.alloc(pages * 2 * PAGE_SIZE)
  const offsets = new Uint32Array(pages + 1)
  for (let i = 0; i < pages; i++) {
    const n = ctx.compress(data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE), dst)
    dst.copy(store, offsets[i] as number, 0, n)
    offsets[i + 1] = (offsets[i] as number) + n
  }
  const out = Buffer.alloc(PAGE_SIZE)
  const compressNs = fastestPass(() => {
    for (let i = 0; i < pages; i++) ctx.compress(data.subarray(i * PAGE_SIZE, (i + 1) * PAGE_SIZE), dst)
  }, seconds)
  const decompressNs = fastestPass(() => {
    for (let i = 0; i < pages; i++) ctx.decompress(store.subarray(offsets[i] as number, offsets[i + 1] as number), out)
  }, seconds)
  return { compressUs: compressNs / pages / 1000, decompressUs: decompressNs / pages / 1000, ratio: data.length / (offsets[pages] as number) }
}

/** The C library's own benchmark on the corpus file, or null when the CLI is missing or fails. */
export function measureC(tool: string, args: readonly string[], file: string): CBenchFigures | null {
  try {
    // Both CLIs draw progress on stderr or stdout: take both.
    const text = execFileSync('sh', ['-c', `"$0" "$@" 2>&1`, tool, ...args, file], { encoding: 'utf8', timeout: 600_000 })
    return parseCBenchOutput(text)
  } catch {
    return null
  }
}

export interface CodecBenchOptions {
  corpusBytes: number
  seconds: number
}

export function runCodecBench(opts: CodecBenchOptions, log: (m: string) => void): string {
  log(`codecs: building a ${opts.corpusBytes >> 20} MiB corpus from ${CORPUS_SOURCES.join(', ')}`)
  const { data, files } = buildCorpus(opts.corpusBytes)
  const dir = mkdtempSync(join(tmpdir(), 'zramfuse-codecs-'))
  try {
    const file = join(dir, 'corpus')
    writeFileSync(file, data)
    const plan = [
      { codec: 'lz4', level: 1, tool: 'lz4', args: ['-b1', '-B4096'] },
      { codec: 'zstd', level: 3, tool: 'zstd', args: ['-b3', '-B4K'] },
    ]
    const rows: CodecFigures[] = []
    for (const p of plan) {
      log(`codecs: ${p.codec}: ours`)
      const ours = measureOurs(p.codec, p.level, data, opts.seconds)
      log(`codecs: ${p.codec}: ${p.tool} ${p.args.join(' ')}`)
      const c = measureC(p.tool, p.args, file)
      rows.push({
        codec: p.codec, level: p.level, ...ours,
        c: c === null ? null : { tool: `${p.tool} ${p.args.join(' ')}`, compressUs: usPerPage(c.compressMBps), decompressUs: usPerPage(c.decompressMBps), ratio: c.ratio },
      })
    }
    const v = zcodec.versions()
    const corpus = `${data.length >> 20} MiB corpus of ${files} files (${CORPUS_SOURCES.join(', ')}); liblz4 ${v.lz4}, libzstd ${v.zstd}; load average ${loadavg().map((l) => l.toFixed(2)).join(' ')}`
    return formatCodecReport(rows, corpus)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

if (require.main === module) {
  try {
    const opts = parseBenchArgs(process.argv.slice(2), '')
    process.stdout.write(runCodecBench({ corpusBytes: opts.codecCorpusBytes, seconds: opts.codecSeconds }, (m) => process.stderr.write(m + '\n')))
  } catch (e) {
    process.stderr.write(`codecs: ${(e as Error).message}\n`)
    process.exitCode = 2
  }
}
