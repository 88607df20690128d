/** The bench's data: fio's generated mix and the real-data ext4 image. */
import { existsSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { dirBytes, mkfsImage } from './real-image'
import { DEFAULT_WEIGHTS, PAGE_SIZE, describeWeights, generateMix } from './mix'
import { realDirCandidates } from './options'
import { formatBytes } from './size'
import { REPO, Dataset, Ctx, note } from './context'

export function makeMixDataset(ctx: Ctx): Dataset {
  const pages = ctx.opts.fidelityBytes / PAGE_SIZE
  const { data, counts } = generateMix(pages, ctx.opts.seed)
  const path = join(ctx.shm, 'mix.img')
  writeFileSync(path, data)
  return {
    id: 'mix', title: 'Generated page mix', bytes: data.length, counts, path,
    source: `mulberry32 seed ${ctx.opts.seed}, page kinds drawn with weights ${describeWeights(DEFAULT_WEIGHTS)}`,
  }
}

/** An ext4 image of a real directory tree (mke2fs -d), deterministic: fixed UUIDs and time. */
export function makeRealDataset(ctx: Ctx): Dataset | null {
  const dir = realDirCandidates(ctx.opts, REPO).find((d) => existsSync(d))
  if (!dir) {
    note(ctx, 'no directory for the real-data image found: real-data pass skipped')
    return null
  }
  let used = 0
  try {
    used = dirBytes(dir)
  } catch (e) {
    note(ctx, `du ${dir} failed (${String(e)}): real-data pass skipped`)
    return null
  }
  const path = join(ctx.shm, 'real.img')
  let mib = Math.ceil((used * 1.1) / 2 ** 20) + 16
  for (let attempt = 0; attempt < 4; attempt++) {
    if (mib * 2 ** 20 > ctx.opts.disksize) {
      note(ctx, `${dir} needs an image of ${mib} MiB, more than the device (${formatBytes(ctx.opts.disksize)}): real-data pass skipped; pick a smaller --real-dir`)
      return null
    }
    try {
      mkfsImage(dir, path, mib)
      return {
        id: 'real', title: `ext4 image of ${dir}`, bytes: mib * 2 ** 20, counts: null, path,
        source: `mke2fs -t ext4 -d ${dir} (${formatBytes(used)} of files in a ${mib} MiB image; fixed UUID, hash seed and time)`,
      }
    } catch {
      mib = Math.ceil(mib * 1.4)
    }
  }
  note(ctx, `mke2fs -d ${dir} failed repeatedly: real-data pass skipped`)
  return null
}
