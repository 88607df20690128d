/**
 * The parse steps of the algorithm stores (drivers/block/zram/zram_drv.c: __comp_algorithm_store,
 * recomp_algorithm_store, algorithm_params_store) and the priority rules recompress_store shares
 * with algorithm_params_store, on top of the kernel's primitives (kstrtox.ts, whose conventions apply).
 */
import { Errno, ErrnoError } from '../errno'
import { ZRAM_MAX_COMPS, ZRAM_PRIMARY_COMP, ZRAM_SECONDARY_COMP } from '../device/recomp-algorithms'
import { cString, einval, parseKeyValues, parseS32, sysfsStreq } from './kstrtox'

/** zram_drv.c: names this long or longer are refused with E2BIG. */
const ZRAM_MAX_ALGO_NAME_SZ = 128
/** zcomp.h: ZCOMP_PARAM_NOT_SET (INT_MIN) means "parameter not given". */
const ZCOMP_PARAM_NOT_SET = -2147483648

/** The parameters an algorithm_params write sets (all of them: the kernel replaces the whole set). */
export interface AlgorithmParamsArgs {
  /** `priority=`, default ZRAM_PRIMARY_COMP; not range-checked yet */
  priority: number
  /** `priority=` was given (the kernel's prio_param) */
  priorityGiven: boolean
  /** `algo=`, or null */
  algo: string | null
  /** `level=`, null when not given (or given as INT_MIN, which the kernel takes as "not set") */
  level: number | null
  /** `dict=` path, or null */
  dict: string | null
  /** `deflate.winbits=`, null when not given (or INT_MIN) */
  deflateWinbits: number | null
}

export interface AlgorithmParams extends AlgorithmParamsArgs {
  /** the priority slot the parameters apply to: 0..ZRAM_MAX_COMPS-1 */
  priority: number
}

/**
 * Phase 1 of algorithm_params_store: the parse loop. Every parameter must have a non-empty value
 * (else EINVAL, even for unknown keys); priority, level and deflate.winbits are kstrtoint base 10
 * (their EINVAL/ERANGE propagate; level may be negative); algo and dict are taken as is; a repeated
 * key keeps its last value; unknown keys are ignored (mainline; some vendor trees reject them).
 */
export function parseAlgorithmParamsArgs(text: string): AlgorithmParamsArgs {
  const out: AlgorithmParamsArgs = {
    priority: ZRAM_PRIMARY_COMP, priorityGiven: false, algo: null, level: null, dict: null, deflateWinbits: null,
  }
  for (const { key, value } of parseKeyValues(text)) {
    if (value === null || value === '') einval(`algorithm_params: "${key}" has no value`)
    switch (key) {
      case 'priority':
        out.priorityGiven = true
        out.priority = parseS32(value, 10)
        break
      case 'level': {
        const level = parseS32(value, 10)
        out.level = level === ZCOMP_PARAM_NOT_SET ? null : level
        break
      }
      case 'algo':
        out.algo = value
        break
      case 'dict':
        out.dict = value
        break
      case 'deflate.winbits': {
        const winbits = parseS32(value, 10)
        out.deflateWinbits = winbits === ZCOMP_PARAM_NOT_SET ? null : winbits
        break
      }
      default:
        break
    }
  }
  return out
}

/**
 * Phase 2 of algorithm_params_store, after its EBUSY check (mainline 7.1, "unify and harden
 * algo/priority params handling"): a `priority=` must be 0..3; `algo=` with `priority=` must name
 * the algorithm configured at that priority (validate_algo_priority); `algo=` alone selects the
 * lowest priority (0 up) configured with exactly that name (lookup_algo_priority); each failure
 * EINVAL. Neither: the primary. A `priority=` alone whose slot has no algorithm is accepted.
 *
 * @param compAlgs the device's configured algorithm per priority (comp_algs[0..3]); null,
 *   undefined or "" for an unset slot.
 */
export function resolveAlgorithmParams(
  args: AlgorithmParamsArgs,
  compAlgs: readonly (string | null | undefined)[],
): AlgorithmParams {
  const priority = resolveAlgoPriority('algorithm_params', args.priorityGiven ? args.priority : null, args.algo, compAlgs,
    ZRAM_PRIMARY_COMP)
  return { ...args, priority: priority ?? ZRAM_PRIMARY_COMP }
}

/**
 * The priority that `priority=` / `algo=` name, as algorithm_params_store and recompress_store
 * decide it since mainline 7.1: a given priority must be minPrio..3; with algo= too, the two must
 * agree (validate_algo_priority); algo= alone is the lowest priority from minPrio configured with
 * that name (lookup_algo_priority); each failure EINVAL. Null when neither is given.
 */
export function resolveAlgoPriority(
  attr: string,
  priority: number | null,
  algo: string | null,
  compAlgs: readonly (string | null | undefined)[],
  minPrio: number,
): number | null {
  if (priority !== null && (priority < minPrio || priority >= ZRAM_MAX_COMPS)) einval(`${attr}: priority ${priority} out of range`)
  if (algo !== null && priority !== null) {
    if (!compAlgs[priority]) einval(`${attr}: no algorithm at priority ${priority}`)
    if (compAlgs[priority] !== algo) einval(`${attr}: priority ${priority} is ${compAlgs[priority] as string}, not ${algo}`)
    return priority
  }
  if (algo !== null) {
    for (let p = minPrio; p < ZRAM_MAX_COMPS; p++) if (compAlgs[p] && compAlgs[p] === algo) return p
    einval(`${attr}: algorithm ${JSON.stringify(algo)} is not configured`)
  }
  return priority
}

/**
 * __comp_algorithm_store (comp_algorithm, and recomp_algorithm's algo=): strlen >= 128 -> E2BIG;
 * one trailing "\n" is dropped; the name must match an available backend by sysfs_streq (so one
 * more trailing "\n" is tolerated), else EINVAL. The store checks EBUSY (initialised) after this.
 * Returns the backend's own name. (6.18 keeps the name as written: after "lz4\n\n" it holds
 * "lz4\n", which comp_algorithm then shows without brackets and algorithm_params' algo= cannot
 * find; we select lz4 and say so in docs/attributes.md.)
 */
export function parseAlgorithmName(text: string, available: readonly string[]): string {
  let s = cString(text)
  if (s.length >= ZRAM_MAX_ALGO_NAME_SZ) {
    throw new ErrnoError(Errno.E2BIG, `algorithm name of ${s.length} bytes is too long`)
  }
  if (s.endsWith('\n')) s = s.slice(0, -1)
  const found = available.find((name) => sysfsStreq(s, name))
  if (found === undefined) einval(`unknown compression algorithm ${JSON.stringify(s)}`)
  return found
}

/**
 * recomp_algorithm_store: key=value parameters, each needing a non-empty value (EINVAL); `algo=`
 * (required, EINVAL without it), `priority=` (kstrtoint base 10, default 1; its errors propagate)
 * must be 1..3 (EINVAL); unknown keys are ignored; then the name goes through parseAlgorithmName
 * (E2BIG / EINVAL). The store checks EBUSY after this.
 */
export function parseRecompAlgorithm(
  text: string,
  available: readonly string[],
): { priority: number; algo: string } {
  let priority = ZRAM_SECONDARY_COMP
  let algo: string | null = null
  for (const { key, value } of parseKeyValues(text)) {
    if (value === null || value === '') einval(`recomp_algorithm: "${key}" has no value`)
    if (key === 'algo') algo = value
    else if (key === 'priority') priority = parseS32(value, 10)
  }
  if (algo === null) einval('recomp_algorithm: no algo=')
  if (priority < ZRAM_SECONDARY_COMP || priority >= ZRAM_MAX_COMPS) {
    einval(`recomp_algorithm: priority ${priority} out of range`)
  }
  return { priority, algo: parseAlgorithmName(algo, available) }
}
