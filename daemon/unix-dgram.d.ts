// Types for the part of unix-dgram 2.0 (which ships none) that daemon/notify.ts uses.
declare module 'unix-dgram' {
  import type { EventEmitter } from 'node:events'
  export interface UnixDgramSocket extends EventEmitter {
    send(buf: Buffer, offset: number, length: number, path: string, callback?: (err?: Error) => void): void
    close(): void
  }
  export function createSocket(type: 'unix_dgram', listener?: (msg: Buffer) => void): UnixDgramSocket
}
