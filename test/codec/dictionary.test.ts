// algorithm_params dict=: reading the file as the kernel does, and what each backend does with it.
import t from 'tap'
import { execFileSync } from 'node:child_process'
import { readFileSync, symlinkSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { type CodecContext, CodecParamsError } from '../../src/codec/codec'
import { DictionaryError, readDictionary } from '../../src/codec/dictionary'
import { findCodec } from '../../src/codec/registry'
import { makePage, type PageKind, prng, seedFromEnv } from '../helpers/pages'

const seed = seedFromEnv(31337)
t.comment(`seed ${seed} (replay with ZRAMFUSE_SEED=${seed})`)

const PAGE = 4096
const zstd = findCodec('zstd')!
const lz4 = findCodec('lz4')!

function hasZstdCli(): boolean {
  try {
    execFileSync('zstd', ['--version'], { stdio: 'ignore' })
    return true
  } catch {
    return false
  }
}

async function dictError(path: string): Promise<string> {
  try {
    await readDictionary(path)
    return 'no error'
  } catch (err) {
    return err instanceof DictionaryError ? err.message : `not a DictionaryError: ${String(err)}`
  }
}

t.test('the file: absolute, regular, non-empty; read whole; everything else is refused', async (t) => {
  const dir = t.testdir({ 'good.dict': 'some dictionary bytes', 'empty.dict': '', sub: {} })
  t.same(Buffer.from(await readDictionary(join(dir, 'good.dict'))), Buffer.from('some dictionary bytes'))
  symlinkSync(join(dir, 'good.dict'), join(dir, 'link.dict'))
  t.same(Buffer.from(await readDictionary(join(dir, 'link.dict'))), Buffer.from('some dictionary bytes'), 'a symlink is followed')
  t.match(await dictError('good.dict'), /not an absolute path/)
  t.match(await dictError(join(dir, 'missing.dict')), /ENOENT/)
  t.match(await dictError(join(dir, 'empty.dict')), /is empty/)
  t.match(await dictError(join(dir, 'sub')), /not a regular file/)
  t.match(await dictError('/dev/null'), /not a regular file/)
  execFileSync('mkfifo', [join(dir, 'fifo')])
  t.match(await dictError(join(dir, 'fifo')), /not a regular file/, 'a FIFO is refused without waiting for a writer')
})

/** Training pages and held-out pages of the same kinds. */
function samples(rand: () => number, n: number): Buffer[] {
  const kinds: PageKind[] = ['text', 'binary']
  return Array.from({ length: n }, (_, i) => makePage(kinds[i % 2] as PageKind, rand))
}

function totalSize(ctx: CodecContext, pages: Buffer[]): number {
  const dst = Buffer.alloc(2 * PAGE)
  return pages.reduce((s, p) => s + ctx.compress(p, dst), 0)
}

t.test('zstd with a dictionary from `zstd --train`: smaller pages, round trips, needs the dictionary to decode', { skip: !hasZstdCli() && 'the zstd CLI is not installed (scripts/setup.sh installs it)' }, async (t) => {
  const dir = t.testdir({})
  const rand = prng(seed)
  const train = samples(rand, 300)
  const files = train.map((p, i) => {
    const f = join(dir, `s${i}`)
    writeFileSync(f, p)
    return f
  })
  const dictPath = join(dir, 'zstd.dict')
  execFileSync('zstd', ['-q', '--train', ...files, '--maxdict=32768', '-o', dictPath])
  const dict = await readDictionary(dictPath)
  t.ok(dict.length > 1024 && dict.length <= 32768, `dictionary of ${dict.length} bytes`)
  const test = samples(rand, 100)
  const plain = zstd.createContext({ level: null, dict: null })
  const withDict = zstd.createContext({ level: null, dict })
  const a = totalSize(plain, test)
  const b = totalSize(withDict, test)
  t.ok(b < a * 0.95, `held-out pages: ${a} bytes without, ${b} with the dictionary (${(a / b).toFixed(2)}x)`)
  const dst = Buffer.alloc(2 * PAGE)
  const out = Buffer.alloc(PAGE)
  for (const p of test) {
    const n = withDict.compress(p, dst)
    withDict.decompress(dst.subarray(0, n), out)
    if (!out.equals(p)) {
      t.fail('a page did not round trip with the dictionary')
      return
    }
  }
  const n = withDict.compress(test[0] as Buffer, dst)
  t.throws(() => plain.decompress(dst.subarray(0, n), out), 'a page made with the dictionary does not decode without it')
  // A second context over the same bytes (a kcompressd worker's) decodes the first one's pages.
  zstd.createContext({ level: null, dict: new Uint8Array(dict) }).decompress(dst.subarray(0, n), out)
  t.same(out, test[0], 'another context with the same dictionary decodes it')
  // The CLI with the same dictionary agrees on the size of a page (it adds no checksum here).
  const f = join(dir, 'page')
  writeFileSync(f, test[0] as Buffer)
  const cli = execFileSync('zstd', ['-q', '-3', '--no-check', '-D', dictPath, '-c', f])
  t.equal(n, cli.length, `the zstd CLI with -D makes a ${cli.length}-byte frame too`)
  const level19 = zstd.createContext({ level: 19, dict })
  t.ok(totalSize(level19, test) <= b, 'level= still applies with a dictionary')
  // A file that claims to be a zstd dictionary and is not: refused, as the kernel's
  // zstd_setup_params (EINVAL at disksize).
  const fake = Buffer.from(readFileSync(dictPath))
  fake.fill(0x41, 8, 200)
  t.throws(() => zstd.createContext({ level: null, dict: fake }), CodecParamsError)
})

t.test('lz4 with a dictionary: LZ4_loadDict as backend_lz4, 8 bytes to 64 KiB', async (t) => {
  const rand = prng(seed + 1)
  const dict = Buffer.concat(samples(rand, 8)) // 32 KiB of pages like the ones below
  const test = samples(rand, 50)
  const plain = lz4.createContext({ level: null, dict: null })
  const withDict = lz4.createContext({ level: null, dict })
  const a = totalSize(plain, test)
  const b = totalSize(withDict, test)
  t.ok(b < a, `held-out pages: ${a} bytes without, ${b} with a 32 KiB dictionary`)
  const dst = Buffer.alloc(2 * PAGE)
  const out = Buffer.alloc(PAGE)
  for (const p of test) {
    const n = withDict.compress(p, dst)
    withDict.decompress(dst.subarray(0, n), out)
    if (!out.equals(p)) {
      t.fail('a page did not round trip with the dictionary')
      return
    }
  }
  t.throws(() => lz4.createContext({ level: null, dict: Buffer.alloc(64 * 1024 + 1, 1) }), CodecParamsError, 'over 64 KiB: EINVAL')
  t.throws(() => lz4.createContext({ level: null, dict: Buffer.alloc(7, 1) }), CodecParamsError, 'under 8 bytes: EINVAL')
  t.doesNotThrow(() => lz4.createContext({ level: null, dict: Buffer.alloc(64 * 1024, 1) }), 'exactly 64 KiB')
})
