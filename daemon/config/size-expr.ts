/**
 * zram-generator's `zram-size` / `zram-resident-limit` expressions, evaluated as its expression
 * library (fasteval) does: numbers in MiB over the variable `ram` (MemTotal in MiB) and any `set!`
 * variables; `+ - * / % ^` (`^` binds tightest and is right-associative), unary `- + !`,
 * comparisons `< <= == != >= >` (1 or 0), `&&` / `||` (short-circuit, yielding an operand as
 * fasteval does), `( )` or `[ ]` for grouping; numeric suffixes n µ u m K k M G T (SI, powers of
 * 1000); functions min, max, abs, sign, int, ceil, floor, round([modulus,] x), log([base,] x),
 * the trigonometric ones, and the constants e() and pi().
 *
 * Parsed once into a tree (a syntax error names the column), evaluated per host.
 */

export type SizeExpr =
  | { kind: 'num'; value: number }
  | { kind: 'var'; name: string }
  | { kind: 'unary'; op: '-' | '+' | '!'; arg: SizeExpr }
  | { kind: 'binary'; op: string; left: SizeExpr; right: SizeExpr }
  | { kind: 'call'; name: string; args: SizeExpr[] }

export class SizeExprError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'SizeExprError'
  }
}

const SUFFIX: Record<string, number> = {
  n: 1e-9, 'µ': 1e-6, u: 1e-6, m: 1e-3, K: 1e3, k: 1e3, M: 1e6, G: 1e9, T: 1e12,
}

/** Binary operators by precedence, lowest first (fasteval's order). */
const LEVELS: readonly (readonly string[])[] = [
  ['||'], ['&&'], ['==', '!=', '<=', '>=', '<', '>'], ['+', '-'], ['*', '/', '%'],
]

const FUNCTIONS: Record<string, { min: number; max: number; fn: (a: number[]) => number }> = {
  min: { min: 1, max: Infinity, fn: (a) => Math.min(...a) },
  max: { min: 1, max: Infinity, fn: (a) => Math.max(...a) },
  abs: { min: 1, max: 1, fn: (a) => Math.abs(a[0] as number) },
  sign: { min: 1, max: 1, fn: (a) => Math.sign(a[0] as number) },
  int: { min: 1, max: 1, fn: (a) => Math.trunc(a[0] as number) },
  ceil: { min: 1, max: 1, fn: (a) => Math.ceil(a[0] as number) },
  floor: { min: 1, max: 1, fn: (a) => Math.floor(a[0] as number) },
  // round(x) or round(modulus, x): to the nearest multiple of modulus (default 1)
  round: { min: 1, max: 2, fn: (a) => {
    const [mod, x] = a.length === 2 ? [a[0] as number, a[1] as number] : [1, a[0] as number]
    return Math.round(x / mod) * mod
  } },
  // log(x) is base 10; log(base, x)
  log: { min: 1, max: 2, fn: (a) => (a.length === 2 ? Math.log(a[1] as number) / Math.log(a[0] as number) : Math.log10(a[0] as number)) },
  e: { min: 0, max: 0, fn: () => Math.E },
  pi: { min: 0, max: 0, fn: () => Math.PI },
  sin: { min: 1, max: 1, fn: (a) => Math.sin(a[0] as number) },
  cos: { min: 1, max: 1, fn: (a) => Math.cos(a[0] as number) },
  tan: { min: 1, max: 1, fn: (a) => Math.tan(a[0] as number) },
  asin: { min: 1, max: 1, fn: (a) => Math.asin(a[0] as number) },
  acos: { min: 1, max: 1, fn: (a) => Math.acos(a[0] as number) },
  atan: { min: 1, max: 1, fn: (a) => Math.atan(a[0] as number) },
  sinh: { min: 1, max: 1, fn: (a) => Math.sinh(a[0] as number) },
  cosh: { min: 1, max: 1, fn: (a) => Math.cosh(a[0] as number) },
  tanh: { min: 1, max: 1, fn: (a) => Math.tanh(a[0] as number) },
}

class Parser {
  private pos = 0
  constructor(private readonly text: string) {}

  parse(): SizeExpr {
    const e = this.binary(0)
    this.skipSpace()
    if (this.pos < this.text.length) this.fail(`unexpected ${JSON.stringify(this.text.slice(this.pos, this.pos + 8))}`)
    return e
  }

  private fail(why: string): never {
    throw new SizeExprError(`${why} at column ${this.pos + 1} of ${JSON.stringify(this.text)}`)
  }

  private skipSpace(): void {
    while (this.pos < this.text.length && /\s/.test(this.text[this.pos] as string)) this.pos++
  }

  private peekOp(ops: readonly string[]): string | null {
    this.skipSpace()
    // longest first, so `<=` is not read as `<`
    for (const op of [...ops].sort((a, b) => b.length - a.length)) {
      if (this.text.startsWith(op, this.pos)) return op
    }
    return null
  }

  private binary(level: number): SizeExpr {
    if (level === LEVELS.length) return this.power()
    let left = this.binary(level + 1)
    for (;;) {
      const op = this.peekOp(LEVELS[level] as readonly string[])
      if (op === null) return left
      this.pos += op.length
      left = { kind: 'binary', op, left, right: this.binary(level + 1) }
    }
  }

  /** `^` is right-associative and binds tighter than unary minus on its left: -2^2 = -4. */
  private power(): SizeExpr {
    this.skipSpace()
    const c = this.text[this.pos]
    if (c === '-' || c === '+' || c === '!') {
      this.pos++
      return { kind: 'unary', op: c, arg: this.power() }
    }
    const base = this.atom()
    if (this.peekOp(['^']) !== null) {
      this.pos++
      return { kind: 'binary', op: '^', left: base, right: this.power() }
    }
    return base
  }

  private atom(): SizeExpr {
    this.skipSpace()
    const rest = this.text.slice(this.pos)
    const open = rest[0]
    if (open === '(' || open === '[') {
      this.pos++
      const e = this.binary(0)
      this.skipSpace()
      const close = open === '(' ? ')' : ']'
      if (this.text[this.pos] !== close) this.fail(`expected "${close}"`)
      this.pos++
      return e
    }
    const num = /^(\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?/.exec(rest)
    if (num) {
      this.pos += num[0].length
      let value = Number(num[0])
      const suffix = this.text[this.pos]
      if (suffix !== undefined && suffix in SUFFIX && !/[A-Za-z0-9_]/.test(this.text[this.pos + 1] ?? '')) {
        value *= SUFFIX[suffix] as number
        this.pos++
      }
      return { kind: 'num', value }
    }
    const ident = /^[A-Za-z_][A-Za-z0-9_]*/.exec(rest)
    if (ident) {
      this.pos += ident[0].length
      const name = ident[0]
      this.skipSpace()
      if (this.text[this.pos] !== '(') return { kind: 'var', name }
      this.pos++
      const args: SizeExpr[] = []
      this.skipSpace()
      if (this.text[this.pos] !== ')') {
        for (;;) {
          args.push(this.binary(0))
          this.skipSpace()
          if (this.text[this.pos] === ',') { this.pos++; continue }
          if (this.text[this.pos] === ')') break
          this.fail('expected "," or ")"')
        }
      }
      this.pos++
      const f = FUNCTIONS[name]
      if (f === undefined) this.fail(`unknown function ${name}()`)
      if (args.length < f.min || args.length > f.max) this.fail(`${name}() takes ${f.min === f.max ? f.min : `${f.min}..${f.max === Infinity ? 'n' : f.max}`} arguments, got ${args.length}`)
      return { kind: 'call', name, args }
    }
    this.fail(rest === '' ? 'unexpected end of expression' : `unexpected ${JSON.stringify(rest.slice(0, 8))}`)
  }
}

export function parseSizeExpr(text: string): SizeExpr {
  return new Parser(text).parse()
}

/** Evaluate with variables (`ram` and set! ones); an unknown variable is an error, as in fasteval. */
export function evalSizeExpr(e: SizeExpr, vars: Readonly<Record<string, number>>): number {
  switch (e.kind) {
    case 'num':
      return e.value
    case 'var': {
      const v = vars[e.name]
      if (v === undefined) throw new SizeExprError(`undefined variable ${e.name}`)
      return v
    }
    case 'unary': {
      const v = evalSizeExpr(e.arg, vars)
      return e.op === '-' ? -v : e.op === '+' ? v : v === 0 ? 1 : 0
    }
    case 'call':
      return (FUNCTIONS[e.name] as { fn: (a: number[]) => number }).fn(e.args.map((a) => evalSizeExpr(a, vars)))
    case 'binary': {
      const l = evalSizeExpr(e.left, vars)
      if (e.op === '&&') return l === 0 ? l : evalSizeExpr(e.right, vars)
      if (e.op === '||') return l !== 0 ? l : evalSizeExpr(e.right, vars)
      const r = evalSizeExpr(e.right, vars)
      switch (e.op) {
        case '+': return l + r
        case '-': return l - r
        case '*': return l * r
        case '/': return l / r
        case '%': return l % r
        case '^': return l ** r
        case '<': return l < r ? 1 : 0
        case '<=': return l <= r ? 1 : 0
        case '>': return l > r ? 1 : 0
        case '>=': return l >= r ? 1 : 0
        case '==': return l === r ? 1 : 0
        default: return l !== r ? 1 : 0 // '!='
      }
    }
  }
}
