import pino, { type Logger } from 'pino'

/**
 * JSON lines on stderr. Synchronous writes: the daemon logs events and refused requests, not
 * per-page traffic, and a synchronous destination loses nothing when the process exits.
 */
export function createLogger(level: string): Logger {
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime },
    pino.destination({ fd: 2, sync: true }))
}
