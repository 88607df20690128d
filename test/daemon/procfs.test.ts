// The one process-alive helper and the one /proc octal decoder the daemon, its CLI and the bench share.
import t from 'tap'
import { spawn } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { fuseDaemonAlive, mountPoints, parseMountinfo, processAlive, readMountinfo, unescapeOctal } from '../../daemon/procfs'
import { listPidFiles, pidFilePath } from '../../daemon/runtime-files'

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))

t.test('processAlive: ourselves, init, bad pids', async (t) => {
  t.equal(processAlive(process.pid), true)
  t.equal(processAlive(1), true, 'pid 1 always exists')
  for (const bad of [0, -1, 1.5, Number.NaN]) t.equal(processAlive(bad), false, `pid ${bad}`)
})

t.test('processAlive: a reaped child is gone, a zombie is gone too', async (t) => {
  // sh starts `sleep 0.3` in the background, prints its pid and becomes `sleep 3`, which never reaps it:
  // the background child stays a zombie until `sleep 3` exits. Not `sleep 0`: a child that ends
  // before sh reaches `exec` can be reaped by sh itself (seen once in CI: no /proc/PID left).
  const child = spawn('sh', ['-c', 'sleep 0.3 & echo $!; exec sleep 3'], { stdio: ['ignore', 'pipe', 'ignore'] })
  t.teardown(() => {
    child.kill('SIGKILL')
  })
  const zombie = await new Promise<number>((res) => child.stdout.once('data', (b: Buffer) => res(Number(b.toString().trim()))))
  let state = ''
  for (let i = 0; i < 100 && state !== 'Z'; i++) {
    await sleep(20)
    const stat = readFileSync(`/proc/${zombie}/stat`, 'utf8')
    state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3)
  }
  t.equal(state, 'Z', `pid ${zombie} is a zombie (precondition)`)
  t.doesNotThrow(() => process.kill(zombie, 0), 'kill(pid, 0) still succeeds on it')
  t.equal(processAlive(zombie), false, 'but it does not count as alive')
  t.equal(processAlive(child.pid ?? -1), true, 'its parent lives')
  child.kill('SIGKILL')
  await new Promise((r) => child.once('exit', r))
  t.equal(processAlive(child.pid ?? -1), false, 'a reaped child is gone')
})

t.test('unescapeOctal decodes what /proc escapes', async (t) => {
  t.equal(unescapeOctal('/tmp/a\\040b\\011c\\012d\\134e'), '/tmp/a b\tc\nd\\e')
  t.equal(unescapeOctal('/plain'), '/plain')
  t.equal(unescapeOctal('\\08'), '\\08', 'not three octal digits: left alone')
})

t.test('mountPoints lists / and /proc', async (t) => {
  const mps = mountPoints()
  t.ok(mps.includes('/'), '/')
  t.ok(mps.includes('/proc'), '/proc')
})

t.test('parseMountinfo: device, mount point, type and source, decoded', async (t) => {
  const text = '36 35 98:0 /mnt1 /mnt/a\\040b rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n' +
    '44 26 0:39 / /tmp/z/mnt rw,nosuid,nodev,relatime shared:2 - fuse.zramfuse zramfuse rw,user_id=0,group_id=0\n' +
    'garbage\n\n'
  t.same(parseMountinfo(text), [
    { devNumber: '98:0', mountPoint: '/mnt/a b', fsType: 'ext3', source: '/dev/root' },
    { devNumber: '0:39', mountPoint: '/tmp/z/mnt', fsType: 'fuse.zramfuse', source: 'zramfuse' },
  ])
  t.ok(readMountinfo().some((m) => m.mountPoint === '/proc' && m.fsType === 'proc'), 'this process: /proc is proc')
})

t.test('fuseDaemonAlive: only a live process that holds /dev/fuse open', {
  skip: existsSync('/dev/fuse') && process.getuid?.() === 0 ? false : 'needs /dev/fuse and root',
}, async (t) => {
  t.equal(fuseDaemonAlive(process.pid), false, 'the test runner holds no /dev/fuse: a pid the kernel gave to another process')
  t.equal(fuseDaemonAlive(0), false)
  const child = spawn('sh', ['-c', 'exec 3<>/dev/fuse && echo open && exec sleep 30'], { stdio: ['ignore', 'pipe', 'ignore'] })
  t.teardown(() => {
    child.kill('SIGKILL')
  })
  const said = await new Promise<string>((res) => {
    child.stdout.once('data', (b: Buffer) => res(b.toString().trim()))
    child.once('exit', () => res('exited'))
  })
  t.equal(said, 'open', 'the child opened /dev/fuse')
  t.equal(fuseDaemonAlive(child.pid ?? -1), true, 'a process holding /dev/fuse')
  child.kill('SIGKILL')
  await new Promise((r) => child.once('exit', r))
  t.equal(fuseDaemonAlive(child.pid ?? -1), false, 'gone')
})

t.test('listPidFiles: the pid files of the runtime directory, checked against their names', async (t) => {
  const dir = mkdtempSync('/tmp/zramfuse-pidfiles-')
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const saved = process.env.ZRAMFUSE_RUNTIME_DIR
  process.env.ZRAMFUSE_RUNTIME_DIR = dir
  t.teardown(() => {
    if (saved === undefined) delete process.env.ZRAMFUSE_RUNTIME_DIR
    else process.env.ZRAMFUSE_RUNTIME_DIR = saved
  })
  writeFileSync(pidFilePath('/m/a'), '123\n/m/a\n')
  writeFileSync(pidFilePath('/m/b c'), '456\n/m/b c\n')
  writeFileSync(pidFilePath('/m/d'), '789\n/m/elsewhere\n') // names another mount than its hash
  writeFileSync(pidFilePath('/m/e'), 'x\n/m/e\n')
  writeFileSync(join(dir, 'other.pid'), '1\n/m/a\n')
  writeFileSync(pidFilePath('/m/a').replace(/\.pid$/, '.attachments.json'), '[]\n')
  t.same(listPidFiles().map((p) => [p.pid, p.mount]).sort(), [[123, '/m/a'], [456, '/m/b c']])
  t.same(listPidFiles('/nonexistent'), [])
})
