/** The slice of pino's logger the library uses, so tests can capture lines without pino. */
export interface EventLog {
  info(obj: object, msg?: string): void
  warn(obj: object, msg?: string): void
  error(obj: object, msg?: string): void
  debug(obj: object, msg?: string): void
}

export const silentLog: EventLog = {
  info() {},
  warn() {},
  error() {},
  debug() {},
}
