/**
 * The service manager's readiness protocol (sd_notify(3)): one datagram such as `READY=1` to the
 * AF_UNIX socket named by $NOTIFY_SOCKET. Node has no unix datagram sockets, so:
 * - a path socket (what systemd gives a system service, /run/systemd/notify) is written with
 *   unix-dgram (a small, widely used native addon by a Node core maintainer): the datagram comes
 *   from this process, so NotifyAccess=main accepts it and there is no race with a helper exiting;
 * - an abstract socket (`@name`), which unix-dgram cannot address, goes through `systemd-notify`
 *   with --pid=<our pid> (the service manager needs NotifyAccess=all for that case).
 * Without $NOTIFY_SOCKET every call is a no-op. A failure is logged, never thrown: readiness is a
 * courtesy to the supervisor, and the device works without it.
 */
import { execFile } from 'node:child_process'
import type { EventLog } from '../src/log'

export type NotifySender = (socketPath: string, message: string) => Promise<void>

function sendUnixDgram(socketPath: string, message: string): Promise<void> {
  // Loaded lazily: a daemon that is not under a supervisor never loads the addon.
  const { createSocket } = require('unix-dgram') as typeof import('unix-dgram')
  return new Promise((resolve, reject) => {
    const sock = createSocket('unix_dgram')
    const buf = Buffer.from(message)
    sock.on('error', (err: Error) => {
      sock.close()
      reject(err)
    })
    sock.send(buf, 0, buf.length, socketPath, (err?: Error) => {
      sock.close()
      if (err) reject(err)
      else resolve()
    })
  })
}

function sendSystemdNotify(_socketPath: string, message: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile('systemd-notify', [`--pid=${process.pid}`, ...message.split('\n').filter((l) => l !== '')],
      { timeout: 10_000 }, (err, _out, stderr) => (err ? reject(new Error(`systemd-notify: ${stderr.trim() || err.message}`)) : resolve()))
  })
}

export class Notifier {
  constructor(
    private readonly log: EventLog,
    private readonly socketPath: string | undefined = process.env.NOTIFY_SOCKET,
  ) {}

  get enabled(): boolean {
    return this.socketPath !== undefined && this.socketPath !== ''
  }

  /** Send `KEY=value` lines; resolves when sent (or failed and logged). */
  async notify(message: string): Promise<boolean> {
    const path = this.socketPath
    if (path === undefined || path === '') return false
    const send: NotifySender = path.startsWith('@') ? sendSystemdNotify : sendUnixDgram
    try {
      await send(path, message)
      this.log.debug({ event: 'sd_notify', message })
      return true
    } catch (err) {
      this.log.warn({ event: 'sd_notify_failed', socket: path, message, err: (err as Error).message })
      return false
    }
  }

  ready(status: string): Promise<boolean> {
    return this.notify(`READY=1\nSTATUS=${status}\nMAINPID=${process.pid}\n`)
  }

  stopping(status: string): Promise<boolean> {
    return this.notify(`STOPPING=1\nSTATUS=${status}\n`)
  }

  status(status: string): Promise<boolean> {
    return this.notify(`STATUS=${status}\n`)
  }
}
