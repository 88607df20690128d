// Kernel-identical sizes: our pages against the C libraries' own command-line tools, byte for
// byte, and against a figure recorded from this machine's kernel zram (lz4).
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { findCodec } from '../../src/codec/registry'
import { pageSameFilled } from '../../src/codec/same-filled'
import { ZsPool } from '../../src/pool/zs-pool'
import { generateMix } from '../../bench/mix'

const PAGE = 4096

function hasTool(name: string): boolean {
  try {
    execFileSync(name, ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

/** Our compressed form of each page of data. */
function compressAll(algorithm: string, data: Buffer): Buffer[] {
  const ctx = findCodec(algorithm)!.createContext({ level: null, dict: null })
  const dst = Buffer.alloc(2 * PAGE)
  const out: Buffer[] = []
  for (let o = 0; o < data.length; o += PAGE) out.push(Buffer.from(dst.subarray(0, ctx.compress(data.subarray(o, o + PAGE), dst))))
  return out
}

const SEED = 99
const PAGES = 1024
t.comment(`mix seed ${SEED}, ${PAGES} pages`)

t.test('zstd: each page is the frame `zstd -3 --no-check` makes of it (the kernel backend\'s parameters)', { skip: !hasTool('zstd') && 'the zstd CLI is not installed (scripts/setup.sh installs it)' }, async (t) => {
  const dir = t.testdir({})
  const data = generateMix(PAGES, SEED).data
  const files: string[] = []
  for (let i = 0; i < PAGES; i++) {
    const f = join(dir, `p${i}`)
    writeFileSync(f, data.subarray(i * PAGE, (i + 1) * PAGE))
    files.push(f)
  }
  // One frame per file, concatenated: the CLI pledges the 4 KiB size, as the kernel's
  // zstd_get_params(level, PAGE_SIZE) does.
  const cli = execFileSync('zstd', ['-q', '-3', '--no-check', '-c', ...files], { maxBuffer: 64 << 20 })
  const ours = Buffer.concat(compressAll('zstd', data))
  t.equal(ours.length, cli.length, 'same total size')
  t.ok(ours.equals(cli), 'byte-identical')
})

t.test('lz4: each page is the block `lz4 -1 -B4096` makes of it (LZ4_compress_default)', { skip: !hasTool('lz4') && 'the lz4 CLI is not installed (scripts/setup.sh installs it)' }, async (t) => {
  const dir = t.testdir({})
  const data = generateMix(PAGES, SEED).data
  const file = join(dir, 'mix')
  writeFileSync(file, data)
  // An LZ4 frame of independent 4 KiB blocks; a block that does not shrink is stored raw.
  const frame = execFileSync('lz4', ['-q', '-1', '-B4096', '--no-frame-crc', '-c', file], { maxBuffer: 64 << 20 })
  let off = 4
  const flags = frame[off] as number
  off += 3 + (flags & 0x08 ? 8 : 0)
  const ours = compressAll('lz4', data)
  let same = 0
  let raw = 0
  for (let i = 0; i < PAGES; i++) {
    const word = frame.readUInt32LE(off)
    const size = word & 0x7fffffff
    const block = frame.subarray(off + 4, off + 4 + size)
    off += 4 + size
    const mine = ours[i] as Buffer
    if (word & 0x80000000) {
      raw++
      if (mine.length < PAGE - 1) t.fail(`page ${i}: the CLI stored it raw, we compressed it to ${mine.length}`)
    } else if (block.equals(mine)) {
      same++
    } else {
      t.fail(`page ${i}: ${mine.length} bytes, the CLI's block ${size}`)
    }
  }
  t.equal(frame.readUInt32LE(off), 0, 'the frame ends after the last page')
  t.equal(same + raw, PAGES, `${same} pages identical, ${raw} incompressible in both`)
})

t.test('lz4: compr_data_size and huge_pages of a mix as this machine\'s kernel zram stored it', async (t) => {
  // Recorded 2026-11-30, kernel 6.18 (lz4), 64 MiB device: generateMix(16384, 777) written with
  // dd oflag=direct; mm_stat: compr_data_size 37537453, same_pages 3354, huge_pages 3334.
  const KERNEL = { comprDataSize: 37537453, samePages: 3354, hugePages: 3334 }
  const data = generateMix(16384, 777).data
  const ctx = findCodec('lz4')!.createContext({ level: null, dict: null })
  const page = new Uint8Array(new ArrayBuffer(PAGE))
  const words = new Uint32Array(page.buffer)
  const pattern = new Uint32Array(2)
  const dst = Buffer.alloc(2 * PAGE)
  let compr = 0
  let same = 0
  let huge = 0
  for (let o = 0; o < data.length; o += PAGE) {
    page.set(data.subarray(o, o + PAGE))
    if (pageSameFilled(words, pattern)) {
      same++
      continue
    }
    const n = ctx.compress(page, dst)
    if (n >= ZsPool.hugeClassSize) {
      huge++
      compr += PAGE
    } else {
      compr += n
    }
  }
  t.equal(same, KERNEL.samePages, 'same_pages')
  t.equal(huge, KERNEL.hugePages, 'huge_pages')
  const diff = (compr - KERNEL.comprDataSize) / KERNEL.comprDataSize
  t.ok(Math.abs(diff) < 1e-4, `compr_data_size ${compr} against the kernel's ${KERNEL.comprDataSize} (${(diff * 100).toFixed(4)}%)`)
})
