/**
 * `zramfuse start --background`: run the daemon as a detached child (its own session, stdin
 * closed, stdout/stderr appended to a log file) and return only when it is ready (exit 0) or
 * has failed (its exit code, with the reason printed). The child reports on an inherited pipe
 * (fd 3, named by $ZRAMFUSE_READY_FD): `READY <pid>` once the mount and the config are up, or
 * `ERROR <reason as a JSON string>` before it exits (a reason may span lines: the commands of a
 * refusal). CI scripts and provisioning can then chain
 * `zramfuse start --background ... && swapon ...` with no sleep or polling.
 */
import { spawn } from 'node:child_process'
import { closeSync, mkdirSync, openSync, readFileSync, writeSync } from 'node:fs'
import { dirname } from 'node:path'

export const READY_FD_ENV = 'ZRAMFUSE_READY_FD'

/** The daemon's side: the pipe to a waiting `--background` parent, if there is one. */
export class ReadyChannel {
  private fd: number | null

  private readonly env: NodeJS.ProcessEnv

  constructor(env: NodeJS.ProcessEnv = process.env) {
    const v = env[READY_FD_ENV]
    this.fd = v !== undefined && /^\d+$/.test(v) ? Number(v) : null
    this.env = env
  }

  /**
   * Not for the daemon's own children (mkswap, mkfs...): they must not see it. Called once the
   * daemon will not re-execute itself any more (swap-safety.ts re-executes with the madvise shim,
   * keeping the pipe and this variable).
   */
  hideFromChildren(): void {
    delete this.env[READY_FD_ENV]
  }

  private send(line: string): void {
    if (this.fd === null) return
    try {
      writeSync(this.fd, `${line.replace(/\n/g, ' ')}\n`)
      closeSync(this.fd)
    } catch {
      // the parent is gone: nobody to tell
    }
    this.fd = null
  }

  ready(): void {
    this.send(`READY ${process.pid}`)
  }

  failed(reason: string): void {
    this.send(`ERROR ${JSON.stringify(reason)}`)
  }
}

export interface BackgroundOptions {
  /** the CLI script and its arguments for the child (without --background) */
  argv: string[]
  logFile: string
  /** where the daemon writes its pid (for the message) */
  pidFile: string
  out?: (line: string) => void
  err?: (line: string) => void
}

function tail(file: string, lines = 20): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n')
  } catch {
    return ''
  }
}

function decodeReason(text: string): string {
  try {
    const v: unknown = JSON.parse(text)
    return typeof v === 'string' ? v : text
  } catch {
    return text
  }
}

/** Start the daemon detached and wait for its verdict; resolves with the exit code for the CLI. */
export function startInBackground(opts: BackgroundOptions): Promise<number> {
  const out = opts.out ?? ((l: string) => process.stdout.write(`${l}\n`))
  const err = opts.err ?? ((l: string) => process.stderr.write(`${l}\n`))
  mkdirSync(dirname(opts.logFile), { recursive: true })
  const logFd = openSync(opts.logFile, 'a', 0o600)
  const child = spawn(process.execPath, opts.argv, {
    detached: true,
    stdio: ['ignore', logFd, logFd, 'pipe'],
    env: { ...process.env, [READY_FD_ENV]: '3' },
  })
  closeSync(logFd)
  return new Promise((resolve) => {
    let text = ''
    let verdict: 'ready' | 'error' | null = null
    let reason = ''
    const pipe = child.stdio[3] as NodeJS.ReadableStream | null
    pipe?.setEncoding('utf8')
    pipe?.on('data', (chunk: string) => {
      text += chunk
      const line = text.split('\n')[0] ?? ''
      if (!text.includes('\n') || verdict !== null) return
      if (line.startsWith('READY')) {
        verdict = 'ready'
        out(`zramfuse: daemon ${child.pid ?? '?'} is ready (pid file ${opts.pidFile}, log ${opts.logFile})`)
        child.unref()
        ;(pipe as NodeJS.ReadableStream & { destroy?: () => void }).destroy?.()
        resolve(0)
      } else if (line.startsWith('ERROR ')) {
        verdict = 'error'
        reason = decodeReason(line.slice(6))
      }
    })
    child.on('exit', (code, signal) => {
      if (verdict === 'ready') return
      err(`zramfuse: ${reason !== '' ? reason : `the daemon exited (code ${String(code)}, signal ${String(signal)}) before it was ready`}`)
      if (reason === '') {
        const t = tail(opts.logFile)
        if (t !== '') err(`--- last lines of ${opts.logFile} ---\n${t}`)
      }
      resolve(code !== null && code !== 0 ? code : 1)
    })
  })
}
