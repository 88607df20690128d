/** Test helper: a small XML well-formedness check for the SVG the harness writes. */

/** Every element closed in order, attributes quoted, no stray angle brackets. */
export function wellFormed(svg: string): boolean {
  const stack: string[] = []
  const re = /<(\/?)([a-zA-Z]+)((?:\s+[a-zA-Z][a-zA-Z0-9:-]*="[^"<>]*")*)\s*(\/?)>/g
  let last = 0
  for (let m = re.exec(svg); m; m = re.exec(svg)) {
    if (/[<>]/.test(svg.slice(last, m.index))) return false
    last = re.lastIndex
    const [, close, name, , self] = m
    if (self) continue
    if (close) {
      if (stack.pop() !== name) return false
    } else stack.push(name!)
  }
  return stack.length === 0 && !/[<>]/.test(svg.slice(last))
}
