/**
 * What chmod, chown and utimes leave on a node of the mount. kernfs keeps such changes in the
 * node's iattrs for the node's life (a sysfs attribute chmod'ed 600 stays 600 until its device
 * goes); so do we: per scope (the device a node belongs to, or the mount for the rest), so a
 * device removed and added again starts from its defaults, as the kernel's does.
 */
export interface NodeMeta {
  /** Permission bits (07777), or null: the node's default. */
  perm: number | null
  uid: number | null
  gid: number | null
  atimeMs: number | null
  mtimeMs: number | null
  ctimeMs: number | null
}

/** (uid_t)-1 / (gid_t)-1: chown leaves that id as it is. */
const UNCHANGED_ID = 0xffffffff

export class NodeMetaStore {
  private readonly byScope = new WeakMap<object, Map<string, NodeMeta>>()
  private readonly clockMs: () => number

  constructor(clockMs: () => number = Date.now) {
    this.clockMs = clockMs
  }

  get(scope: object, path: string): NodeMeta | undefined {
    return this.byScope.get(scope)?.get(path)
  }

  chmod(scope: object, path: string, mode: number): void {
    const m = this.entry(scope, path)
    m.perm = mode & 0o7777
    m.ctimeMs = this.clockMs()
  }

  chown(scope: object, path: string, uid: number, gid: number): void {
    const m = this.entry(scope, path)
    if (uid !== UNCHANGED_ID && uid !== -1) m.uid = uid
    if (gid !== UNCHANGED_ID && gid !== -1) m.gid = gid
    m.ctimeMs = this.clockMs()
  }

  utimens(scope: object, path: string, atimeMs: number, mtimeMs: number): void {
    const m = this.entry(scope, path)
    m.atimeMs = atimeMs
    m.mtimeMs = mtimeMs
    m.ctimeMs = this.clockMs()
  }

  private entry(scope: object, path: string): NodeMeta {
    let paths = this.byScope.get(scope)
    if (paths === undefined) {
      paths = new Map()
      this.byScope.set(scope, paths)
    }
    let m = paths.get(path)
    if (m === undefined) {
      m = { perm: null, uid: null, gid: null, atimeMs: null, mtimeMs: null, ctimeMs: null }
      paths.set(path, m)
    }
    return m
  }
}
