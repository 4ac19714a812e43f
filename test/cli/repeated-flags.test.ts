// A single-value flag typed more than once: read from the command line as typed (refuseRepeatedTyped), since
// yargs takes a number value of exactly 1 as a count step (`--epochs 1 --epochs 1` parsed as 2) and adds it
// to what came before (`--max-steps 2 --max-steps 1` as 3).
import yargs from 'yargs';
import { describe, expect, it } from 'vitest';
import { refuseRepeatedTyped } from '../../src/cli/run.js';

const options = {
  epochs: { type: 'number' as const, default: 1 },
  'max-steps': { type: 'number' as const },
  'micro-batch': { type: 'number' as const, default: 8, alias: 'micro-batch-size' },
  eos: { type: 'boolean' as const, default: true },
  data: { type: 'string' as const },
  out: { type: 'string' as const },
  smoothing: { type: 'string' as const, coerce: (v: string | string[]) => (Array.isArray(v) ? v.map(Number) : Number(v)) },
};

function parse(args: string[]): Record<string, unknown> {
  const y = yargs(args).options(options);
  const argv = y.parseSync() as Record<string, unknown>;
  const o = (y as unknown as { getOptions(): { boolean: string[]; number: string[]; alias: Record<string, string[]> } }).getOptions();
  refuseRepeatedTyped(args, argv, { booleans: new Set(o.boolean), numbers: new Set(o.number), aliases: o.alias });
  return argv;
}

describe('refuseRepeatedTyped', () => {
  it('the same value twice is that value, where yargs counted it up', () => {
    expect(yargs(['--epochs', '1', '--epochs', '1']).options(options).parseSync().epochs).toBe(2); // (why this exists)
    expect(parse(['--epochs', '1', '--epochs', '1']).epochs).toBe(1);
    const a = parse(['--max-steps', '1', '--maxSteps=1']);
    expect([a['max-steps'], a.maxSteps]).toEqual([1, 1]);
    const b = parse(['--micro-batch', '1', '--micro-batch-size', '1']);
    expect([b['micro-batch'], b['micro-batch-size'], b.microBatch, b.microBatchSize]).toEqual([1, 1, 1, 1]);
    // yargs lists other values: the first, as yargs typed or coerced it.
    expect(parse(['--epochs', '3', '--epochs', '3']).epochs).toBe(3);
    expect(parse(['--out', 'a', '--out', 'a']).out).toBe('a');
    expect(parse(['--smoothing', '0.5', '--smoothing', '0.5']).smoothing).toBe(0.5);
  });

  it('different values are refused by name, in any spelling or alias; list flags and single flags pass', () => {
    expect(() => parse(['--max-steps', '2', '--max-steps', '1'])).toThrow(/^--max-steps is given 2 times \(2, 1\); give it once$/);
    expect(() => parse(['--micro-batch', '4', '--micro-batch-size', '1'])).toThrow(/^--micro-batch is given 2 times \(4, 1\)/);
    expect(() => parse(['--no-eos', '--eos'])).toThrow(/^--eos is given 2 times \(false, true\)/);
    expect(parse(['--data', 'a', '--data', 'b']).data).toEqual(['a', 'b']);
    expect(parse(['--epochs', '3']).epochs).toBe(3);
  });
});
