// Python's str.strip / lstrip / rstrip for @huggingface/jinja's templates. Its strings' strip methods ignore
// their argument and trim whitespace (0.5.11, the newest): Qwen3's template writes `content.lstrip('\n')`,
// which in Python keeps a response's leading spaces and here dropped them (" star" became "star"), and
// `'xxhixx'.strip('x')` stayed whole. Chat templates are Python Jinja run by transformers, so the three
// methods are replaced with Python's: the characters given, else Python's whitespace (str.isspace: \x1c-\x1f
// and \x85 are, U+FEFF is not, unlike JS's trim). The `| trim` filter is Jinja's `str.strip()` too (the package's
// trimmed JS whitespace: a U+FEFF at a message's edge went, \x85 stayed).
import { Environment, Interpreter, parse, tokenize } from '@huggingface/jinja';

const PY_WHITESPACE = new Set(Array.from(' \t\n\v\f\r\x1c\x1d\x1e\x1f\x85\xa0\u1680\u2000\u2001\u2002\u2003\u2004\u2005\u2006\u2007\u2008\u2009\u200a\u2028\u2029\u202f\u205f\u3000'));

/** Python's s.strip(chars) (both sides), lstrip (left) or rstrip (right); chars undefined: whitespace. */
export function pyStrip(s: string, chars: string | undefined, left: boolean, right: boolean): string {
  const set = chars === undefined ? PY_WHITESPACE : new Set(Array.from(chars));
  const cps = Array.from(s);
  let i = 0; let j = cps.length;
  if (left) while (i < j && set.has(cps[i])) i++;
  if (right) while (j > i && set.has(cps[j - 1])) j--;
  return cps.slice(i, j).join('');
}

type Runtime = { value: unknown; type: string; constructor: new (v: unknown) => Runtime };
type Builtins = Map<string, Runtime>;
/** The filter's node as the interpreter passes it: `| name` or `| name(args)`. */
type FilterNode = { type: string; value?: string; callee?: { type: string; value?: string }; args?: unknown[] };
let installed = false;

/** Replaces the jinja package's string strip methods with Python's (idempotent). */
export function usePythonStrip(): void {
  if (installed) return;
  // The package exports no value classes: a rendered string is one, and its prototype holds the methods.
  const sample = new Interpreter(new Environment()).run(parse(tokenize("{{ 'x' }}"))) as unknown as Runtime;
  const proto = Object.getPrototypeOf(sample) as object;
  const getter = Object.getOwnPropertyDescriptor(proto, 'builtins')?.get;
  const fn = (getter?.call(sample) as Builtins | undefined)?.get('strip');
  // `| trim` goes through the interpreter's applyFilter (and its evaluateArguments for `trim(chars)`).
  const interp = Interpreter.prototype as unknown as { applyFilter: (this: unknown, operand: Runtime, node: FilterNode, env: unknown) => Runtime; evaluateArguments?: unknown };
  if (!getter || !fn || sample.type !== 'StringValue' || typeof interp.applyFilter !== 'function' || typeof interp.evaluateArguments !== 'function') {
    throw new Error('@huggingface/jinja: its strings or filters are not as srk expects (jinja-strings.ts)');
  }
  installed = true;
  // `| trim` (jinja2's do_trim: Python's strip, whitespace or the characters given as `trim(chars)`).
  const applyFilter = interp.applyFilter;
  interp.applyFilter = function (operand, node, env) {
    if (operand?.type === 'StringValue') {
      const StringValue = operand.constructor;
      if (node.type === 'Identifier' && node.value === 'trim') return new StringValue(pyStrip(operand.value as string, undefined, true, true));
      if (node.type === 'CallExpression' && node.callee?.type === 'Identifier' && node.callee.value === 'trim') {
        const [pos, kw] = (this as { evaluateArguments: (a: unknown[], e: unknown) => [Runtime[], Map<string, Runtime>] })
          .evaluateArguments(node.args ?? [], env);
        const chars = pos[0] ?? kw.get('chars');
        if (pos.length + kw.size > 1 || [...kw.keys()].some((k) => k !== 'chars')) throw new Error('trim takes one argument, chars');
        // (An undefined variable too: jinja2's Undefined is no str, and str.strip refuses it.)
        if (chars !== undefined && chars.type !== 'StringValue' && chars.type !== 'NullValue') throw new Error(`trim arg must be None or str, not ${chars.type}`);
        return new StringValue(pyStrip(operand.value as string, chars?.type === 'StringValue' ? chars.value as string : undefined, true, true));
      }
    }
    return applyFilter.call(this, operand, node, env);
  };
  const FunctionValue = fn.constructor as unknown as new (f: (args: Runtime[]) => Runtime) => Runtime;
  const patched = new WeakSet<Builtins>();
  Object.defineProperty(proto, 'builtins', {
    configurable: true,
    get(this: Runtime) {
      const map = getter.call(this) as Builtins;
      if (patched.has(map)) return map;
      const value = this.value as string;
      const StringValue = this.constructor;
      for (const [name, left, right] of [['strip', true, true], ['lstrip', true, false], ['rstrip', false, true]] as const) {
        map.set(name, new FunctionValue((args: Runtime[]) => {
          if (args.length > 1) throw new Error(`${name} expected at most 1 argument, got ${args.length}`);
          const a = args[0];
          if (a !== undefined && a.type !== 'NullValue' && a.type !== 'StringValue') {
            throw new Error(`${name} arg must be None or str, not ${a.type}`);
          }
          return new StringValue(pyStrip(value, a?.type === 'StringValue' ? a.value as string : undefined, left, right));
        }));
      }
      patched.add(map);
      return map;
    },
  });
}
