// The one process-alive helper and the one /proc octal decoder the daemon, its CLI and the bench share.
import t from 'tap'
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mountPoints, processAlive, unescapeOctal } from '../../daemon/procfs'

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
