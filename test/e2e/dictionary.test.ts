// algorithm_params dict= through the mount, as a script for the kernel's zram writes it: a zstd
// dictionary made by `zstd --train`, data through the block file, the kernel's errno for bad
// paths, and a path on the daemon's own mount (read without deadlocking the daemon).
import t from 'tap'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { canRunE2E, startDaemon } from './daemon'
import { parseMmStat, run } from './util'

async function sh(script: string): Promise<{ code: number; stderr: string }> {
  const r = await run('bash', ['-c', script], { timeoutMs: 60_000 })
  return { code: r.code ?? -1, stderr: r.stderr }
}

if (canRunE2E(t, ['dd', 'zstd'])) {
  t.test('a trained zstd dictionary: set, used, and refused where the kernel refuses it', async (t) => {
    const d = await startDaemon({ disksize: null, test: t })
    const sys = d.sys
    const work = t.testdir({})
    // Training samples and test data: the same kinds of text, from one seeded generator.
    let x = 12345
    const rand = (): number => ((x = (x * 1103515245 + 12345) >>> 0) / 4294967296)
    const words = ['swap', 'page', 'zram', 'memory', 'kernel', 'compress', 'block', 'device', 'idle', 'huge', 'pool']
    const text = (n: number): Buffer => {
      let s = ''
      while (s.length < n) s += (words[Math.floor(rand() * words.length)] as string) + (rand() < 0.1 ? '\n' : ' ')
      return Buffer.from(s.slice(0, n))
    }
    const samples: string[] = []
    for (let i = 0; i < 100; i++) {
      const f = join(work, `s${i}`)
      writeFileSync(f, text(4096))
      samples.push(f)
    }
    const dict = join(work, 'zstd.dict')
    let r = await sh(`zstd -q --train ${samples.join(' ')} --maxdict=16384 -o ${dict}`)
    t.equal(r.code, 0, `zstd --train: ${r.stderr}`)
    const data = join(work, 'data')
    writeFileSync(data, text(4 * 1024 * 1024))

    r = await sh(`echo zstd > ${sys}/comp_algorithm && echo dict=${work}/missing > ${sys}/algorithm_params`)
    t.match(r.stderr, /Invalid argument/, 'a missing file -> EINVAL')
    r = await sh(`echo dict=${d.blockFile} > ${sys}/algorithm_params`)
    t.match(r.stderr, /Invalid argument/, 'the daemon\'s own (empty, uninitialised) block file -> EINVAL, no deadlock')
    r = await sh(`echo dict=${sys}/comp_algorithm > ${sys}/algorithm_params`)
    t.match(r.stderr, /Invalid argument/, 'an attribute of the own mount is read (no deadlock) and refused: shorter than its size')
    r = await sh(`echo "level=3 dict=${dict}" > ${sys}/algorithm_params && echo 64M > ${sys}/disksize`)
    t.equal(r.code, 0, `dictionary set, device initialised: ${r.stderr}`)
    r = await sh(`dd if=${data} of=${d.blockFile} bs=64k oflag=direct conv=notrunc status=none && cmp -n 4194304 ${data} ${d.blockFile}`)
    t.equal(r.code, 0, `written and read back: ${r.stderr}`)
    const withDict = parseMmStat(readFileSync(join(sys, 'mm_stat'), 'utf8')).comprDataSize
    r = await sh(`echo dict=${dict} > ${sys}/algorithm_params`)
    t.match(r.stderr, /Device or resource busy/, 'after init -> EBUSY')

    r = await sh(`echo 1 > ${sys}/reset && echo zstd > ${sys}/comp_algorithm && echo 64M > ${sys}/disksize && ` +
      `dd if=${data} of=${d.blockFile} bs=64k oflag=direct conv=notrunc status=none`)
    t.equal(r.code, 0, `the same data without a dictionary: ${r.stderr}`)
    const without = parseMmStat(readFileSync(join(sys, 'mm_stat'), 'utf8')).comprDataSize
    t.ok(withDict < without, `compr_data_size ${withDict} with the dictionary, ${without} without`)
  })
}
