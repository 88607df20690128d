/** Whether this machine's idle CPUs can be kept from halting (bench --awake), and what the report says of it. */

/** The guest's cpuidle driver (e.g. "haltpoll", "intel_idle"), "none", or null when there is no cpuidle. */
export function cpuidleDriver(read: (path: string) => string | null): string | null {
  return read('/sys/devices/system/cpu/cpuidle/current_driver')?.trim() ?? null
}

/**
 * Whether a 0 us PM QoS request stops idle CPUs from halting: only a cpuidle driver picks its idle
 * state by the latency allowed (and polls for 0). Without one (current_driver "none", or no cpuidle
 * at all) the idle loop calls default_idle_call(), which halts regardless (seen 2026-12-02: a VM of
 * the same kind without haltpoll, where --awake changed nothing).
 */
export function cpuidleHonoursQos(driver: string | null): boolean {
  return driver !== null && driver !== '' && driver !== 'none'
}
