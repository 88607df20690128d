// native/memlock (the addon and the madvise shim) and daemon/swap-safety.ts. Every call that changes
// the process (IO_FLUSHER, mlockall, execve) runs in a child process, never in the test runner.
import t from 'tap'
import { spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { release } from 'node:os'
import { errnoName, loadMemlock, madviseShimPath, memlockAddonPath, type MemlockAddon } from '../../daemon/memlock'
import {
  CAP_IPC_LOCK, CAP_SYS_RESOURCE, applySwapSafety, ensureMadviseShim, hasCapability, isMapped, parseCapSet, parseMemlockLimit,
  swapSafetyVerdict,
} from '../../daemon/swap-safety'

const ADDON = memlockAddonPath()
const SHIM = madviseShimPath()
const status = readFileSync('/proc/self/status', 'utf8')
const mayIoFlush = hasCapability(parseCapSet(status, 'CapEff'), CAP_SYS_RESOURCE)
const mayLock = hasCapability(parseCapSet(status, 'CapEff'), CAP_IPC_LOCK) || parseMemlockLimit(readFileSync('/proc/self/limits', 'utf8'))?.soft === null

/** Run `code` in a fresh node (the addon's path in ADDON); its stdout parsed as JSON. */
function child(code: string, opts: { env?: NodeJS.ProcessEnv; args?: string[] } = {}): { status: number | null; signal: string | null; out: unknown; stderr: string } {
  const env: NodeJS.ProcessEnv = { ...process.env, ...opts.env }
  delete env.NODE_OPTIONS // no coverage hooks in the child
  const r = spawnSync(process.execPath, [...(opts.args ?? []), '-e', `const m = require(${JSON.stringify(ADDON)}); ${code}`], { encoding: 'utf8', env, timeout: 60_000 })
  let out: unknown = null
  try {
    out = JSON.parse(r.stdout.trim().split('\n').pop() ?? 'null')
  } catch {
    out = r.stdout
  }
  return { status: r.status, signal: r.signal, out, stderr: r.stderr }
}

t.test('the addon is built and loads with every function', async (t) => {
  t.ok(existsSync(ADDON), `${ADDON} exists (scripts/build-memlock.sh)`)
  t.ok(existsSync(SHIM), `${SHIM} exists`)
  const m = loadMemlock()
  t.same([m.MCL_CURRENT, m.MCL_FUTURE, m.MCL_ONFAULT], [1, 2, 4], 'MCL_* are the kernel\'s values')
  t.throws(() => loadMemlock('/nonexistent/memlock.node'), /build-memlock\.sh/)
  t.equal(errnoName(1), 'EPERM')
  t.equal(errnoName(-22), 'EINVAL')
  t.equal(errnoName(100000), 'errno 100000')
})

t.test('IO_FLUSHER: set, get, clear in a child process', async (t) => {
  const r = child('const a = m.getIoFlusher(); const s1 = m.setIoFlusher(true); const b = m.getIoFlusher(); const s0 = m.setIoFlusher(false); const c = m.getIoFlusher(); console.log(JSON.stringify([a, s1, b, s0, c]))')
  t.equal(r.status, 0, r.stderr)
  const [before, set1, after, set0, cleared] = r.out as number[]
  if (mayIoFlush) {
    t.same([before, set1, after, set0, cleared], [0, 0, 1, 0, 0], 'off, set, on, cleared, off')
  } else {
    // Without CAP_SYS_RESOURCE (this machine: not even in the bounding set) both calls are refused.
    t.same([set1, set0], [1, 1], 'PR_SET_IO_FLUSHER answers EPERM')
    t.same([before, after, cleared], [-1, -1, -1], 'PR_GET_IO_FLUSHER answers -EPERM')
    t.comment('round trip not possible here: no CAP_SYS_RESOURCE')
  }
  t.throws(() => loadMemlock().setIoFlusher(2 as unknown as boolean), RangeError, 'only 0 or 1')
})

t.test('mlockall(CURRENT|FUTURE|ONFAULT) in a child: VmLck rises, every resident page is locked, RSS does not jump', { skip: mayLock ? false : 'no CAP_IPC_LOCK and a finite RLIMIT_MEMLOCK' }, async (t) => {
  const code = `
    const fs = require('fs')
    const mem = () => { const s = fs.readFileSync('/proc/self/status', 'utf8'), r = fs.readFileSync('/proc/self/smaps_rollup', 'utf8')
      const g = (t, f) => Number(new RegExp('^' + f + ':\\\\s+(\\\\d+)', 'm').exec(t)[1]) * 1024
      return { vmLck: g(s, 'VmLck'), vmRss: g(s, 'VmRSS'), pss: g(r, 'Pss'), locked: g(r, 'Locked') } }
    const before = mem()
    const rc = m.mlockall(m.MCL_CURRENT | m.MCL_FUTURE | m.MCL_ONFAULT)
    const after = mem()
    const keep = []; for (let i = 0; i < 32; i++) keep.push(Buffer.alloc(1 << 20, 1))
    const grown = mem()
    console.log(JSON.stringify({ rc, before, after, grown }))`
  const r = child(code, { env: { LD_PRELOAD: SHIM } })
  t.equal(r.status, 0, r.stderr)
  const o = r.out as { rc: number; before: Record<string, number>; after: Record<string, number>; grown: Record<string, number> }
  t.equal(o.rc, 0, 'mlockall succeeded')
  t.equal(o.before.vmLck, 0, 'nothing locked before')
  t.ok(o.after.vmLck > 0, `VmLck rose to ${o.after.vmLck >> 20} MiB`)
  t.ok(o.after.locked >= 0.95 * o.after.pss, `resident memory locked: Locked ${o.after.locked >> 20} MiB of Pss ${o.after.pss >> 20} MiB`)
  t.ok(o.after.vmRss < o.before.vmRss + (16 << 20), `ONFAULT: RSS ${o.before.vmRss >> 20} -> ${o.after.vmRss >> 20} MiB, not populated`)
  t.ok(o.grown.locked >= o.after.locked + (30 << 20), 'MCL_FUTURE: 32 MiB allocated afterwards are locked as touched')
  t.comment(`VmLck counts whole locked mappings (${o.after.vmLck >> 20} MiB), smaps Locked only resident pages (${o.after.locked >> 20} MiB)`)
})

// V8 gives pages back with madvise(MADV_DONTNEED) and aborts when it fails; the kernel refuses it on
// locked memory. This is why the daemon preloads madvise-locked.so before it calls mlockall.
const CHURN = `
  const rc = m.mlockall(m.MCL_CURRENT | m.MCL_FUTURE | m.MCL_ONFAULT)
  for (let round = 0; round < 30; round++) { let keep = []; for (let i = 0; i < 20000; i++) keep.push({ i, s: 'x'.repeat(64) + i }); keep = null; gc() }
  console.log(JSON.stringify({ rc }))`
const kernelMajorMinor = release().split('.').slice(0, 2).map(Number)
const hasDontneedLocked = (kernelMajorMinor[0] ?? 0) > 5 || ((kernelMajorMinor[0] ?? 0) === 5 && (kernelMajorMinor[1] ?? 0) >= 18)

t.test('V8 under mlockall: aborts at its first page release without the shim, runs with it', { skip: mayLock ? false : 'cannot mlockall here' }, async (t) => {
  t.equal(loadMemlock().probeDontneedLocked(), hasDontneedLocked ? 0 : 22, `MADV_DONTNEED_LOCKED ${hasDontneedLocked ? 'works' : 'is unknown'} on ${release()}`)
  if (!hasDontneedLocked) return
  const without = child(CHURN, { args: ['--expose-gc'] })
  t.not(without.status, 0, `without the shim the child dies (status ${String(without.status)}, signal ${String(without.signal)})`)
  t.match(without.stderr, /Check failed|Fatal error/, 'V8 reports a failed CHECK')
  const withShim = child(CHURN, { args: ['--expose-gc'], env: { LD_PRELOAD: SHIM } })
  t.equal(withShim.status, 0, `with the shim it runs to the end: ${withShim.stderr.slice(-500)}`)
  t.same(withShim.out, { rc: 0 })
})

t.test('execve keeps the pid and stderr, clears the signal mask', async (t) => {
  // the re-executed image runs `node -e <same code>` again, with ZF_MARK set
  const script = `const m = require(${JSON.stringify(ADDON)});
    process.stderr.write('image ' + (process.env.ZF_MARK ?? 'first') + ' pid ' + process.pid + ' blocked ' + require('fs').readFileSync('/proc/self/status', 'utf8').match(/^SigBlk:\\s+(\\S+)/m)[1] + '\\n')
    if (!process.env.ZF_MARK) console.log('execve failed', m.execve(process.execPath, [process.execPath, '-e', process.argv[1] ?? ''], ['ZF_MARK=second']))`
  const r = spawnSync(process.execPath, ['-e', script, script], { encoding: 'utf8', timeout: 30_000, env: { PATH: process.env.PATH ?? '' } })
  t.equal(r.status, 0, r.stderr)
  const lines = r.stderr.trim().split('\n')
  t.equal(lines.length, 2, `both images wrote to the same stderr: ${JSON.stringify(lines)}`)
  const pid = /pid (\d+)/.exec(lines[0] ?? '')?.[1]
  t.match(lines[0], /^image first pid \d+/)
  t.match(lines[1], new RegExp(`^image second pid ${pid} blocked 0+$`), 'same pid, no blocked signals')
  t.equal(loadMemlock().execve('/nonexistent', ['x'], []), 2, 'a failed execve returns ENOENT and the caller goes on')
})

/** A fake addon: what the kernel answers, recorded calls. */
function fake(answers: { set?: number; get?: number; mlock?: number; probe?: number }): MemlockAddon & { calls: string[]; exec: { file: string; argv: readonly string[]; env: readonly string[] }[] } {
  const calls: string[] = []
  const exec: { file: string; argv: readonly string[]; env: readonly string[] }[] = []
  return {
    calls, exec,
    MCL_CURRENT: 1, MCL_FUTURE: 2, MCL_ONFAULT: 4,
    setIoFlusher: (on) => { calls.push(`set ${String(on)}`); return answers.set ?? 0 },
    getIoFlusher: () => { calls.push('get'); return answers.get ?? 1 },
    mlockall: (flags) => { calls.push(`mlockall ${flags}`); return answers.mlock ?? 0 },
    munlockall: () => 0,
    probeDontneedLocked: () => answers.probe ?? 0,
    execve: (file, argv, env) => { exec.push({ file, argv, env }); return 1 },
    setAffinity: () => 0,
  }
}

t.test('ensureMadviseShim: re-exec with the shim preloaded once, then give LD_PRELOAD back', async (t) => {
  const saved = { ...process.env }
  t.teardown(() => {
    for (const k of Object.keys(process.env)) if (!(k in saved)) delete process.env[k]
    Object.assign(process.env, saved)
  })
  delete process.env.ZRAMFUSE_MADVISE_SHIM
  process.env.LD_PRELOAD = '/lib/other.so'
  const notLoaded = '/nonexistent/madvise-locked.so'
  const a = fake({})
  t.match(ensureMadviseShim(a, notLoaded), /^execve\(.*EPERM/, 'a failed execve is reported')
  t.equal(a.exec.length, 1, 'execve was called once')
  const call = a.exec[0]!
  t.equal(call.file, process.execPath)
  t.same(call.argv, [process.execPath, ...process.execArgv, ...process.argv.slice(1)], 'same node, same arguments')
  t.ok(call.env.includes(`LD_PRELOAD=${notLoaded}:/lib/other.so`), 'the shim first, the caller\'s preload kept')
  t.ok(call.env.includes('ZRAMFUSE_MADVISE_SHIM=1') && call.env.includes('ZRAMFUSE_LD_PRELOAD_BEFORE=/lib/other.so'))

  const oldKernel = fake({ probe: 22 })
  t.match(ensureMadviseShim(oldKernel, notLoaded), /MADV_DONTNEED_LOCKED.*EINVAL/, 'a kernel without MADV_DONTNEED_LOCKED: refused')
  t.equal(oldKernel.exec.length, 0, 'no execve then')

  process.env.ZRAMFUSE_MADVISE_SHIM = '1'
  t.match(ensureMadviseShim(fake({}), notLoaded), /not loaded/, 're-executed but the shim did not load: no second execve')

  // The re-executed image: the shim is mapped (the addon stands in: it is mapped in this process).
  loadMemlock()
  process.env.ZRAMFUSE_LD_PRELOAD_BEFORE = '/lib/other.so'
  process.env.LD_PRELOAD = `${ADDON}:/lib/other.so`
  t.equal(ensureMadviseShim(fake({}), ADDON), null, 'loaded: go on')
  t.equal(process.env.LD_PRELOAD, '/lib/other.so', 'children get the caller\'s LD_PRELOAD back, not the shim')
  t.equal(process.env.ZRAMFUSE_MADVISE_SHIM, undefined, 'markers removed')
  process.env.ZRAMFUSE_MADVISE_SHIM = '1'
  process.env.ZRAMFUSE_LD_PRELOAD_BEFORE = ''
  t.equal(ensureMadviseShim(fake({}), ADDON), null)
  t.equal(process.env.LD_PRELOAD, undefined, 'no LD_PRELOAD before: none after')
})

const ALL_CAPS = 'CapEff:\t000001ffffffffff\nCapBnd:\t000001ffffffffff\n'
const NO_SYS_RESOURCE = 'CapEff:\t000001fffeffffff\nCapBnd:\t000001fffeffffff\n' // this machine
const UNPRIVILEGED = 'CapEff:\t0000000000000000\nCapBnd:\t000001ffffffffff\n'
const LIMITS = (v: string): string => `Limit                     Soft Limit           Hard Limit           Units\nMax locked memory         ${v}              ${v}              bytes\n`

t.test('parsers: capabilities and RLIMIT_MEMLOCK', async (t) => {
  t.equal(parseCapSet(ALL_CAPS, 'CapEff'), 0x1ffffffffffn)
  t.equal(parseCapSet('nothing', 'CapBnd'), null)
  t.ok(hasCapability(parseCapSet(ALL_CAPS, 'CapEff'), CAP_SYS_RESOURCE))
  t.notOk(hasCapability(parseCapSet(NO_SYS_RESOURCE, 'CapEff'), CAP_SYS_RESOURCE))
  t.ok(hasCapability(parseCapSet(NO_SYS_RESOURCE, 'CapEff'), CAP_IPC_LOCK))
  t.notOk(hasCapability(null, CAP_IPC_LOCK))
  t.same(parseMemlockLimit(LIMITS('8388608')), { soft: 8388608, hard: 8388608 })
  t.same(parseMemlockLimit(LIMITS('unlimited')), { soft: null, hard: null })
  t.equal(parseMemlockLimit(''), null)
  t.ok(isMapped('/x/madvise-locked.so', '7f00-7f01 r-xp 00000000 00:1 5 /x/madvise-locked.so\n'))
  t.notOk(isMapped('/x/madvise-locked.so', '7f00-7f01 r-xp 00000000 00:1 5 /y/madvise-locked.so\n'))
})

t.test('applySwapSafety: what is applied, what stops the daemon', async (t) => {
  const run = (addon: MemlockAddon, st: string, lim: string) => applySwapSafety(addon, { addon, status: st, limits: lim, threads: 9 })

  const ok = run(fake({}), ALL_CAPS, LIMITS('8388608'))
  t.ok(ok.ok, 'root with every capability: both applied')
  t.same([ok.ioFlusher.ok, ok.ioFlusher.value, ok.ioFlusher.earlierThreads, ok.mlockall.ok], [true, 1, 8, true])
  t.equal(ok.mlockall.rlimitMemlock, '8388608 bytes', 'the limit is reported; CAP_IPC_LOCK lifts it')

  const here = run(fake({ set: 1, get: -1 }), NO_SYS_RESOURCE, LIMITS('8388608'))
  t.ok(here.ok, 'CAP_SYS_RESOURCE outside the bounding set: IO_FLUSHER cannot be had, the daemon still starts')
  t.notOk(here.ioFlusher.ok)
  t.equal(here.ioFlusher.required, false)
  t.match(here.ioFlusher.error, /EPERM.*bounding set/)
  t.ok(here.mlockall.ok, 'memory is locked all the same')

  const dropped = run(fake({ set: 1, get: -1 }), 'CapEff:\t000001fffeffffff\nCapBnd:\t000001ffffffffff\n', LIMITS('unlimited'))
  t.notOk(dropped.ok, 'CAP_SYS_RESOURCE dropped but obtainable: a failure stops the daemon')
  t.match(dropped.ioFlusher.error, /needs CAP_SYS_RESOURCE/)

  const oldKernel = run(fake({ set: 22, get: -22 }), ALL_CAPS, LIMITS('unlimited'))
  t.notOk(oldKernel.ok)
  t.match(oldKernel.ioFlusher.error, /EINVAL \(kernel older than 5\.6\?\)/)

  const getterDisagrees = run(fake({ set: 0, get: 0 }), ALL_CAPS, LIMITS('unlimited'))
  t.notOk(getterDisagrees.ok, 'set answered 0 but the getter says 0: not applied')

  const user = fake({ set: 1 })
  const limited = run(user, UNPRIVILEGED, LIMITS('8388608'))
  t.notOk(limited.ok)
  t.match(limited.mlockall.error, /no CAP_IPC_LOCK and RLIMIT_MEMLOCK is 8388608 bytes/)
  t.notOk(user.calls.some((c) => c.startsWith('mlockall')), 'mlockall is not even tried: the pool would hit the limit later')

  const unlimitedUser = fake({ set: 1 })
  t.ok(run(unlimitedUser, UNPRIVILEGED, LIMITS('unlimited')).mlockall.ok, 'an unlimited RLIMIT_MEMLOCK is enough without CAP_IPC_LOCK')
  t.ok(unlimitedUser.calls.includes('mlockall 7'), 'MCL_CURRENT | MCL_FUTURE | MCL_ONFAULT')

  const enomem = run(fake({ mlock: 12 }), ALL_CAPS, LIMITS('unlimited'))
  t.notOk(enomem.ok)
  t.match(enomem.mlockall.error, /ENOMEM/)
})

t.test('swapSafetyVerdict: the log level and whether the daemon starts', async (t) => {
  const run = (addon: MemlockAddon, st: string, lim: string) => swapSafetyVerdict(applySwapSafety(addon, { addon, status: st, limits: lim, threads: 9 }))

  t.match(run(fake({}), ALL_CAPS, LIMITS('unlimited')), { level: 'info', start: true, message: 'memory locked, IO_FLUSHER set' })

  // This machine: memory locked, IO_FLUSHER impossible (CAP_SYS_RESOURCE not in the bounding set):
  // the start succeeded, so it is a warning, not an error.
  const here = run(fake({ set: 1, get: -1 }), NO_SYS_RESOURCE, LIMITS('8388608'))
  t.match(here, { level: 'warn', start: true })
  t.match(here.message, /^memory locked; IO_FLUSHER not set: prctl\(PR_SET_IO_FLUSHER\): EPERM .*bounding set/)

  // Real problems stay errors and stop the start.
  const dropped = run(fake({ set: 1, get: -1 }), 'CapEff:\t000001fffeffffff\nCapBnd:\t000001ffffffffff\n', LIMITS('unlimited'))
  t.match(dropped, { level: 'error', start: false }, 'IO_FLUSHER obtainable but not held')
  t.match(dropped.message, /needs CAP_SYS_RESOURCE/)
  const noLock = run(fake({ mlock: 12 }), ALL_CAPS, LIMITS('unlimited'))
  t.match(noLock, { level: 'error', start: false }, 'mlockall failed')
  t.match(noLock.message, /^mlockall\(MCL_CURRENT\|MCL_FUTURE\|MCL_ONFAULT\): ENOMEM$/)
  const noLockHere = run(fake({ set: 1, get: -1, mlock: 12 }), NO_SYS_RESOURCE, LIMITS('unlimited'))
  t.match(noLockHere, { level: 'error', start: false }, 'mlockall failed where IO_FLUSHER is impossible: still an error')
  t.match(noLockHere.message, /ENOMEM; prctl\(PR_SET_IO_FLUSHER\): EPERM/, 'naming both')
  const limited = run(fake({ set: 1 }), UNPRIVILEGED, LIMITS('8388608'))
  t.match(limited, { level: 'error', start: false }, 'RLIMIT_MEMLOCK too small')
})
