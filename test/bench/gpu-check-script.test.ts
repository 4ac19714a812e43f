// scripts/gpu-check.sh is run only on a lent GPU, a few minutes at a time, months apart: a bench flag it
// passes that the CLI no longer takes (renamed, or not read by that kind since bench refuses those), a
// misspelt SRK_ switch (srk stops at it), or a test file or title it greps for that has moved would
// cost that run. This parses each of its `srk bench` command lines with bench's own flag definitions and
// checks, its SRK_ assignments with the environment check, and its test paths and titles against test/.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import yargs from 'yargs';
import { describe, expect, it } from 'vitest';
import { benchFlags, checkBenchArgs, type ParsedBenchArgs } from '../../src/cli/bench.js';
import { checkEnvironment } from '../../src/engine/env.js';
import { BENCH_COMMON_FLAGS, BENCH_KIND_FLAGS } from '../../bench/index.js';

const root = resolve(import.meta.dirname, '../..');
const scriptPath = join(root, 'scripts/gpu-check.sh');

/** Shell words of one line (quotes, no expansion), up to a comment or a `;`, `|`, `&&`, `||`. */
function shellWords(line: string): string[] {
  const words: string[] = [];
  let cur: string | null = null;
  for (let i = 0; i < line.length; i++) {
    const c = line[i];
    if (c === "'" || c === '"') {
      const end = line.indexOf(c, i + 1);
      if (end < 0) throw new Error(`unbalanced quote: ${line}`);
      cur = (cur ?? '') + line.slice(i + 1, end);
      i = end;
    } else if (/\s/.test(c)) {
      if (cur !== null) { words.push(cur); cur = null; }
    } else if ((c === '#' && cur === null) || c === ';' || c === '|' || (c === '&' && line[i + 1] === '&')) {
      break;
    } else {
      cur = (cur ?? '') + c;
    }
  }
  if (cur !== null) words.push(cur);
  return words;
}

/** The values a loop variable takes anywhere in the script (`for s in a b; do`). */
function loopValues(script: string): Map<string, string[]> {
  const out = new Map<string, string[]>();
  for (const m of script.matchAll(/\bfor (\w+) in ([^;]+); do/g)) {
    out.set(m[1], [...new Set([...(out.get(m[1]) ?? []), ...m[2].trim().split(/\s+/)])]);
  }
  return out;
}

/** Every way a command's `$var` words expand over the script's loop values (other variables left as they are). */
function expand(words: string[], loops: Map<string, string[]>): string[][] {
  let out: string[][] = [[]];
  for (const w of words) {
    const v = /^\$\{?(\w+)\}?$/.exec(w)?.[1];
    const values = v !== undefined ? loops.get(v) : undefined;
    out = values ? out.flatMap((ws) => values.map((x) => [...ws, x])) : out.map((ws) => [...ws, w.replace(/\$\{?(\w+)\}?/g, (all, n) => loops.get(n)?.[0] ?? all)]);
  }
  return out;
}

interface Invocation { line: number; args: string[] }

/** The `srk bench` command lines of the script: `$srk bench ...`, and `step`/`tcstep NAME ARGS` through step()'s own bench line. */
function benchInvocations(script: string): Invocation[] {
  const lines = script.split('\n');
  const loops = loopValues(script);
  const stepDef = lines.find((l) => /\$srk bench step .*"\$@"/.test(l));
  if (!stepDef) throw new Error('gpu-check.sh: step() no longer runs `$srk bench step ... "$@"`');
  const stepFixed = shellWords(stepDef.slice(stepDef.indexOf('$srk bench') + '$srk bench'.length).replace('"$@"', ''));
  const out: Invocation[] = [];
  lines.forEach((raw, i) => {
    const text = raw.trim();
    if (text.startsWith('#') || /^\w+\(\)/.test(text) || raw === stepDef) return;
    const words = shellWords(text);
    const at = words.indexOf('$srk');
    let args: string[] | undefined;
    if (at >= 0 && words[at + 1] === 'bench') args = words.slice(at + 2);
    else {
      // `[ENV=... ]step NAME ARGS` (also after `do`, `then` or `||`).
      const s = words.findIndex((w, j) => (w === 'step' || w === 'tcstep') && (j === 0 || /^(\w+=\S*|do|then|\|\||&&)$/.test(words[j - 1])));
      if (s >= 0) args = [...stepFixed, ...words.slice(s + 2)];
    }
    if (args) for (const a of expand(args, loops)) out.push({ line: i + 1, args: a });
  });
  return out;
}

/** Parses `srk bench ARGS` with bench's flags and checks as the CLI does, short of starting a device. */
function parseBench(args: string[]): ParsedBenchArgs {
  let parsed: ParsedBenchArgs | undefined;
  yargs(['bench', ...args])
    .command('bench <kind>', '', (y) => benchFlags(y), (a) => { parsed = a; })
    .strict()
    .exitProcess(false)
    .fail((msg, err) => { throw err ?? new Error(msg); })
    .parseSync();
  if (!parsed) throw new Error('no bench command parsed');
  checkBenchArgs(parsed, args);
  return parsed;
}

const script = readFileSync(scriptPath, 'utf8');
/** The script without its comments (a `#` starting a line or after a space). */
const code = script.split('\n').map((l) => l.replace(/(^|\s)#.*$/, '')).join('\n');

describe('scripts/gpu-check.sh against the current CLI and tests', () => {
  it('every `srk bench` command line it runs parses and passes bench\'s checks', () => {
    const calls = benchInvocations(script);
    // The parser found the script's commands: the brief section's headline steps among them.
    expect(calls.length).toBeGreaterThan(40);
    const steps = calls.filter((c) => c.args[0] === 'step').map((c) => c.args.join(' '));
    expect(steps).toContain('step --pairs 8 --seq 512 --prompt 256 --json --shape pythia-410m --loss sr-dpo --precision f32 --aug-precision mixed');
    expect(calls.some((c) => c.args[0] === 'matmul' && c.args.includes('--tiles'))).toBe(true);
    expect(calls.some((c) => c.args[0] === 'generate')).toBe(true);
    const failures: string[] = [];
    for (const c of calls) {
      if (c.args.some((a) => a.includes('$'))) { failures.push(`line ${c.line}: unexpanded ${c.args.join(' ')}`); continue; }
      try { parseBench(c.args); } catch (e) { failures.push(`line ${c.line}: srk bench ${c.args.join(' ')}: ${(e as Error).message}`); }
    }
    expect(failures).toEqual([]);
  });

  it('a flag a kind does not read is caught (the check itself can fail)', () => {
    expect(() => parseBench(['matmul', '--json', '--loss', 'dpo'])).toThrow(/--loss is not read by this kind/);
    expect(() => parseBench(['step', '--shape', 'pythia-1b'])).toThrow(/shape/);
    expect(() => parseBench(['step', '--micro-batches', '2'])).toThrow(/micro-batches/);
  });

  it('BENCH_KIND_FLAGS names each of bench\'s flags, and only those', () => {
    const key = (benchFlags(yargs([])) as unknown as { getOptions(): { key: Record<string, unknown> } }).getOptions().key;
    const declared = new Set(Object.keys(key).filter((k) => k !== '$0' && k !== 'kind'));
    const named = new Set([...Object.values(BENCH_KIND_FLAGS).flat(), ...BENCH_COMMON_FLAGS]);
    expect([...declared].filter((f) => !named.has(f))).toEqual([]);
    expect([...named].filter((f) => !declared.has(f) && f !== 'help' && f !== 'version')).toEqual([]);
  });

  it('every SRK_ variable it sets is one srk reads, with a value srk takes', () => {
    const assigned = [...code.matchAll(/\b(SRK_[A-Z0-9_]+)=("[^"]*"|'[^']*'|[^\s;]*)/g)];
    expect(assigned.length).toBeGreaterThan(10);
    const failures: string[] = [];
    for (const [, name, rawValue] of assigned) {
      const value = rawValue.replace(/^["']|["']$/g, '');
      // Values from the script's own variables (`$r2`, `${tc_toggles:-...}`) are Dawn toggles, read as text.
      const env = { [name]: value.includes('$') ? '' : value };
      try {
        const warnings = checkEnvironment(env);
        if (warnings.length > 0) failures.push(...warnings);
      } catch (e) { failures.push((e as Error).message); }
    }
    // Every name it reads or sets (SRK_GPU_BUDGET, ...): an empty value passes any check, so a warning is an unknown name.
    for (const name of new Set([...code.matchAll(/\bSRK_[A-Z0-9_]+/g)].map((m) => m[0]))) failures.push(...checkEnvironment({ [name]: '' }));
    expect(failures).toEqual([]);
  });

  it('the test files it runs exist, and the test titles it looks for are in them', () => {
    const files = [...new Set([...code.matchAll(/\btest\/[\w/.-]+\.test\.ts\b/g)].map((m) => m[0]))];
    expect(files.length).toBeGreaterThan(5);
    expect(files.filter((f) => !existsSync(join(root, f)))).toEqual([]);
    // The folders it runs whole exist too.
    const dirs = [...new Set([...code.matchAll(/\$vt [^\n]*/g)].flatMap((m) => shellWords(m[0]).filter((w) => /^test\/[\w/-]+$/.test(w))))];
    expect(dirs.filter((d) => !existsSync(join(root, d)))).toEqual([]);
    // Titles: `-t 'PATTERN'` filters (JavaScript regular expressions) and `grep -q "×.*PATTERN"` checks of
    // vitest's verbose output (basic regular expressions): each alternative must match a test's name as
    // vitest itself lists them (titles are often built from templates).
    const names = listedTestNames(files);
    expect(names.length).toBeGreaterThan(50);
    const alternatives = [
      ...[...code.matchAll(/-t (?:"([^"]+)"|'([^']+)')/g)].map((m) => m[1] ?? m[2]),
      ...[...code.matchAll(/"[✓×]\.\*([^"]+)"/g)].map((m) => basicToJs(m[1])),
    ].flatMap(topLevelAlternatives);
    expect(alternatives.length).toBeGreaterThan(20);
    expect(alternatives.filter((a) => !names.some((n) => new RegExp(a).test(n)))).toEqual([]);
  });
});

/** The full names of the tests in `files`, as `vitest list` gives them (collected, not run). */
function listedTestNames(files: string[]): string[] {
  const dir = mkdtempSync(join(tmpdir(), 'srk-list-'));
  try {
    const out = join(dir, 'tests.json');
    const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('VITEST')));
    const r = spawnSync(process.execPath, [join(root, 'node_modules/vitest/vitest.mjs'), 'list', `--json=${out}`, ...files],
      { cwd: root, env, encoding: 'utf8', timeout: 60_000 });
    if (r.status !== 0) throw new Error(`vitest list exited ${r.status}: ${r.stderr}`);
    return (JSON.parse(readFileSync(out, 'utf8')) as { name: string }[]).map((t) => t.name);
  } finally { rmSync(dir, { recursive: true, force: true }); }
}

/** A basic regular expression (grep's) as a JavaScript one: `\(`, `\|`, `\)` are the operators; bare parentheses are text. */
function basicToJs(bre: string): string {
  let out = '';
  for (let i = 0; i < bre.length; i++) {
    const c = bre[i];
    if (c === '\\' && i + 1 < bre.length && '()|'.includes(bre[i + 1])) { out += bre[++i]; continue; }
    out += c === '(' || c === ')' || c === '|' ? `\\${c}` : c;
  }
  return out;
}

/** A regular expression's alternatives at the top level (outside groups), each checked on its own. */
function topLevelAlternatives(re: string): string[] {
  const parts: string[] = [];
  let depth = 0; let start = 0;
  for (let i = 0; i < re.length; i++) {
    const c = re[i];
    if (c === '\\') { i++; continue; }
    if (c === '(') depth++;
    else if (c === ')') depth--;
    else if (c === '|' && depth === 0) { parts.push(re.slice(start, i)); start = i + 1; }
  }
  parts.push(re.slice(start));
  // A whole pattern in one group, `(a|b)`, is its alternatives.
  if (parts.length === 1 && /^\(.*\)$/.test(parts[0])) {
    const inner = topLevelAlternatives(parts[0].slice(1, -1));
    if (inner.length > 1) return inner;
  }
  return parts;
}
