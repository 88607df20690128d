/**
 * The fidelity, memory and recompression phases: the same data into the kernel's zram and into
 * zramfuse with mm_stat compared, metadata and RSS per page, and recompression under reads.
 */
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { recompressLatency, type RecompressLatencyRow } from './recompress-latency'
import { churnArgs } from './jobs'
import { type MmStat, formatMmStat, parseMmStat } from './mmstat'
import { mmStatDiffLines } from './report'
import { type FidelityEntry, type MemoryEntry } from './results'
import { formatBytes } from './size'
import { type DaemonProc, KERNEL_ZRAM, kernelZramInit, kernelZramReset, must, readText, startDaemon, stopDaemon, vmRssBytes } from './sys'
import { type TargetSpec, ZRAMFUSE_LZ4, ZRAMFUSE_ZSTD, daemonArgs } from './targets'
import { CLI, err, Dataset, Ctx, note } from './context'

export interface Stored {
  written: MmStat
  churned: MmStat
  compacted: MmStat
}

/** Write the dataset, read mm_stat; zero-fill every third page, read; compact, read. */
export async function storeAndCompact(ctx: Ctx, ds: Dataset, dev: string, sysDir: string, afterWrite: () => void): Promise<Stored> {
  const mm = (): MmStat => parseMmStat(readFileSync(join(sysDir, 'mm_stat'), 'utf8'))
  await must(ctx.cleanup, 'dd', [`if=${ds.path}`, `of=${dev}`, 'bs=1M', 'oflag=direct', 'conv=notrunc,fsync', 'status=none'], 600_000)
  const written = mm()
  afterWrite()
  await must(ctx.cleanup, 'fio', churnArgs({ filename: dev, sizeBytes: ds.bytes, seed: ctx.opts.seed }), 600_000)
  const churned = mm()
  writeFileSync(join(sysDir, 'compact'), '1\n')
  const compacted = mm()
  return { written, churned, compacted }
}

export async function fidelity(ctx: Ctx, datasets: Dataset[], targets: readonly TargetSpec[]): Promise<void> {
  const { opts, cleanup } = ctx
  const fuseTargets = targets.filter((t) => t.id === ZRAMFUSE_LZ4.id || t.id === ZRAMFUSE_ZSTD.id)
  for (const ds of datasets) {
    const entry: FidelityEntry = { dataset: ds.id, kernel: null, zramfuse: {} }
    ctx.results.fidelity.push(entry)
    if (ctx.kernelOk) {
      ctx.progress.step(`fidelity ${ds.id}: kernel zram lz4, ${formatBytes(ds.bytes)}`)
      try {
        kernelZramInit(cleanup, 'lz4', opts.disksize)
        const s = await storeAndCompact(ctx, ds, '/dev/zram0', KERNEL_ZRAM, () => undefined)
        entry.kernel = s.written
        ctx.results.memory.push({ target: 'kernel-lz4', dataset: ds.id, disksize: opts.disksize, pageTableBytes: null, rssIdleBytes: null, rssAfterBytes: null, ...s })
      } catch (e) {
        note(ctx, `fidelity ${ds.id} on the kernel zram: ${(e as Error).message}`)
      } finally {
        try {
          kernelZramReset(cleanup)
        } catch (e) {
          note(ctx, (e as Error).message)
        }
      }
    }
    for (const t of fuseTargets) {
      ctx.progress.step(`fidelity ${ds.id}: ${t.title}, ${formatBytes(ds.bytes)}`)
      const mount = join(ctx.work, `fid-${t.id}-${ds.id}`)
      mkdirSync(mount, { recursive: true })
      let d: DaemonProc | null = null
      try {
        d = await startDaemon(cleanup, 'zramfuse', CLI, ['start', '--mount', mount, '--disksize', String(opts.disksize), ...daemonArgs(t)], mount, join(ctx.work, `fid-${t.id}-${ds.id}.log`), ctx.pidsFile)
        const daemon = d
        const sysDir = join(mount, 'sys', 'block', 'zram0')
        const rssIdle = vmRssBytes(daemon.pid)
        let rssAfter: number | null = null
        const s = await storeAndCompact(ctx, ds, join(mount, 'dev', 'zram0'), sysDir, () => {
          rssAfter = vmRssBytes(daemon.pid)
        })
        const ptb = Number((readText(join(sysDir, 'zramfuse', 'page_table_bytes')) ?? 'NaN').trim())
        entry.zramfuse[t.id] = s.written
        const m: MemoryEntry = {
          target: t.id, dataset: ds.id, disksize: opts.disksize, pageTableBytes: Number.isFinite(ptb) ? ptb : null,
          rssIdleBytes: rssIdle, rssAfterBytes: rssAfter, ...s,
        }
        ctx.results.memory.push(m)
      } catch (e) {
        note(ctx, `fidelity ${ds.id} on ${t.id}: ${(e as Error).message}`)
      } finally {
        if (d) await stopDaemon(cleanup, d, (msg) => note(ctx, msg))
      }
    }
    if (entry.kernel) {
      const lz4 = entry.zramfuse[ZRAMFUSE_LZ4.id]
      err(`bench: fidelity ${ds.id}:\n  kernel   ${formatMmStat(entry.kernel)}${lz4 ? `\n  zramfuse ${formatMmStat(lz4)}\n${mmStatDiffLines(entry.kernel, lz4).join('\n')}` : ''}`)
    }
  }
}


/**
 * Recompression (lz4 to zstd level 9) of the dataset through the mount, single pages and units of
 * 16, with 4 KiB reads at QD1 going on: its time, memory before and after, and the read p99
 * against the same reads just before (bench/recompress-latency.ts).
 */
export async function recompression(ctx: Ctx, ds: Dataset): Promise<void> {
  const rows: RecompressLatencyRow[] = []
  ctx.results.recompression = rows
  const data = readFileSync(ds.path)
  for (const unitPages of [1, 16]) {
    err(`bench: recompression, ${unitPages === 1 ? 'single pages' : `units of ${unitPages}`}, of ${ds.title}`)
    rows.push(await recompressLatency({
      cleanup: ctx.cleanup, work: ctx.work, cli: CLI, data, dataName: ds.title, unitPages, zstdLevel: 9,
      baselineS: ctx.opts.quick ? 2 : 4, seed: ctx.opts.seed, log: (m) => err(`bench: ${m}`),
    }))
  }
}
