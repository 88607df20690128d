// Runs fixtures/cgroup-child.ts (pinNoSwap moves the calling process, so a child does it).
import { spawnSync } from 'node:child_process'
import { join } from 'node:path'
import type { CgroupHost, NoSwapPin } from '../../daemon/cgroup'
import { REPO } from './util'

export interface ChildReport {
  pid: number
  /** the child's cgroup v2 path before pinning (after joining `join`) */
  joined: string | null
  pin: NoSwapPin
  inside: {
    procCgroup: string | null; unified: string | null; current: string | null; swappiness: string | null
    swapMax: string | null; procs: string | null; originSubtree: string | null
  }
  after: { unified: string | null; current: string | null; pathExists: boolean; originSubtree: string | null; logs: string[] }
}

/** Run the fixture with the TypeScript loader tap gave us (or on the built JS without one). */
export function runCgroupChild(arg: { join?: string; host?: CgroupHost } = {}): ChildReport {
  const loader = process.execArgv.filter((a) => a.includes('@tapjs/typescript'))
  let args: string[]
  if (loader.length > 0) {
    args = [...loader, join(__dirname, 'fixtures', 'cgroup-child.ts'), JSON.stringify(arg)]
  } else {
    // the same steps as fixtures/cgroup-child.ts, on dist/
    const built = join(REPO, 'dist', 'daemon', 'cgroup.js')
    args = [
      '-e',
      `const c = require(${JSON.stringify(built)}); const fs = require('fs'); const path = require('path');
       const r = (p) => { try { return fs.readFileSync(p, 'utf8').trim() } catch { return null } };
       const arg = JSON.parse(process.argv[1] ?? '{}');
       if (arg.join !== undefined) fs.writeFileSync(path.join(arg.join, 'cgroup.procs'), process.pid + '\\n');
       const unified = () => ((r('/proc/self/cgroup') ?? '').split('\\n').find((l) => l.startsWith('0::')) ?? '').slice(3) || null;
       const joined = unified();
       const pin = c.pinNoSwap(arg.host);
       const at = (f) => pin.path === null ? null : r(path.join(pin.path, f));
       const sub = () => pin.origin === null ? null : r(path.join(pin.origin, 'cgroup.subtree_control'));
       const inside = { procCgroup: r('/proc/self/cgroup'), unified: unified(), current: c.currentCgroupDir(pin),
         swappiness: at('memory.swappiness'), swapMax: at('memory.swap.max'), procs: at('cgroup.procs'), originSubtree: sub() };
       const logs = []; c.unpinNoSwap(pin, (m) => logs.push(m));
       const after = { unified: unified(), current: c.currentCgroupDir(pin), pathExists: pin.path ? fs.existsSync(pin.path) : false, originSubtree: sub(), logs };
       console.log(JSON.stringify({ pid: process.pid, joined, pin, inside, after }))`,
      JSON.stringify(arg),
    ]
  }
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 60_000 })
  if (r.status !== 0) throw new Error(`cgroup child failed (${String(r.status)}): ${r.stderr}`)
  const line = r.stdout.trim().split('\n').pop() ?? ''
  return JSON.parse(line) as ChildReport
}
