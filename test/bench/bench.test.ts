// `srk bench KIND --json` through the built CLI at small sizes: every kind runs, its report parses,
// and its numbers are positive and finite. The refusals of `bench step` are clear errors.
// Timing values themselves are not checked (lavapipe on a shared CPU is anything but steady).
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';

const root = resolve(import.meta.dirname, '../..');
const srk = resolve(root, 'bin/srk.js');

function run(args: string[]) {
  return spawnSync(process.execPath, [srk, 'bench', ...args], { cwd: root, encoding: 'utf8', timeout: 120_000 });
}

function bench(args: string[]): any {
  const r = run([...args, '--json']);
  if (r.status !== 0) throw new Error(`srk bench ${args.join(' ')} exited ${r.status}: ${r.stderr}`);
  const report = JSON.parse(r.stdout);
  expect(report.kind).toBe(args[0]);
  expect(report.copy.gbPerS).toBeGreaterThan(0);
  return report;
}

const positive = (x: unknown) => {
  expect(typeof x).toBe('number');
  expect(Number.isFinite(x as number) && (x as number) > 0).toBe(true);
};

let cpuAdapter = true;

describe('srk bench', () => {
  it('matmul --precision mixed: each f16 case after its f32 twin, the gradient products scaled as training scales them', () => {
    const saved = process.env.SRK_MIXED;
    process.env.SRK_MIXED = 'emulate'; // f16 operands on any adapter
    try {
      const r = bench(['matmul', '--precision', 'mixed', '--only', 'pythia-160m qkv (dx|dW)']);
      const by = new Map<string, any>(r.matmul.map((c: any) => [c.name, c]));
      expect([...by.keys()]).toEqual(['pythia-160m qkv dx', 'pythia-160m qkv dx f16', 'pythia-160m qkv dW', 'pythia-160m qkv dW f16']);
      expect(by.get('pythia-160m qkv dx f16')).toMatchObject({ precision: 'f16', scaleA: true });
      expect(by.get('pythia-160m qkv dx f16').scaleB).toBeUndefined();
      // dW = dy^T x: the layer input x is B, scaled (linear.ts).
      expect(by.get('pythia-160m qkv dW f16')).toMatchObject({ precision: 'f16', scaleA: true, scaleB: true });
      for (const c of by.values()) positive(c.gflops);
    } finally {
      if (saved === undefined) delete process.env.SRK_MIXED; else process.env.SRK_MIXED = saved;
    }
  }, 120_000);

  it('attention: plain causal and packed pairs, forward and backward', () => {
    const r = bench(['attention', '--pairs', '1', '--seq', '48', '--prompt', '24']);
    cpuAdapter = r.reducedForCpu;
    const layouts = r.attention.map((c: { layout: string }) => c.layout);
    expect(layouts).toContain('plain');
    expect(layouts).toContain('packed');
    for (const c of r.attention) {
      expect(c.Dh).toBe(64);
      for (const x of [c.visiblePairs, c.forward.timing.ms, c.forward.gflops, c.backward.timing.ms, c.backward.gflops]) positive(x);
    }
    const plain = r.attention.find((c: { layout: string }) => c.layout === 'plain');
    expect(plain.visiblePairs).toBe((plain.B * plain.T * (plain.T + 1)) / 2);
  }, 120_000);

  it('classifier: fused output layer forward and backward at d 768 and 1024', () => {
    const r = bench(['classifier', '--tokens', '8', '--vocab', '1024']);
    expect(r.classifier.map((c: { d: number }) => c.d)).toEqual([768, 1024]);
    for (const c of r.classifier) {
      expect(c.V).toBe(1024);
      for (const x of [c.chunkRows, c.forward.timing.ms, c.forward.gflops, c.backward.timing.ms, c.backward.gflops]) positive(x);
    }
  }, 120_000);

  it('norm: LayerNorm and RMSNorm, bias-gradient column sums, GB/s and share of copy bandwidth', () => {
    const r = bench(['norm', '--tokens', '64']);
    expect(r.norm).toHaveLength(4);
    for (const c of r.norm) for (const m of [c.forward, c.backward]) for (const x of [m.timing.ms, m.bytes, m.gbPerS, m.pctOfCopy]) positive(x);
    expect(r.columnSum.map((c: { D: number }) => c.D)).toEqual([768, 3072]);
    for (const c of r.columnSum) for (const x of [c.timing.ms, c.bytes, c.gbPerS, c.pctOfCopy]) positive(x);
  }, 120_000);

  it('optimizer: RMSprop and AdamW with clipping', () => {
    const r = bench(['optimizer']);
    expect(r.optimizer.map((o: { name: string }) => o.name)).toEqual(['rmsprop + clip', 'adamw + clip']);
    for (const o of r.optimizer) for (const x of [o.elements, o.bytes, o.timing.ms, o.gbPerS, o.pctOfCopy]) positive(x);
  }, 120_000);

  it('generate: the prompt pass and decode steps on the tiny shapes, rates and memory reported', () => {
    const r = bench(['generate', '--pairs', '3', '--prompt', '5', '--seq', '9']);
    expect(r.generate).toMatchObject({ shape: 'tiny', rows: 3, prompt: 5, newTokens: 4 });
    for (const x of [r.generate.prefillMs, r.generate.prefillTokensPerS, r.generate.decodeStepMs, r.generate.decodeTokensPerS, r.generate.peakInUseBytes]) positive(x);
    const over = run(['generate', '--prompt', '2000', '--seq', '2100']);
    expect(over.status).toBe(1);
    expect(over.stderr).toMatch(/over the tiny shape's \d+ positions/);
    for (const [args, msg] of [[['--prompt', '16', '--seq', '17'], /must be at least --prompt 16 \+ 2/], [['--precision', 'mixed'], /runs in f32/]] as const) {
      const x = run(['generate', ...args]);
      expect(x.status).toBe(1);
      expect(x.stderr).toMatch(msg);
    }
  });

  it('step: a full Sr-DPO training step on the tiny shapes', () => {
    const r = bench(['step', '--shape', 'tiny', '--pairs', '2', '--seq', '40', '--prompt', '16', '--loss', 'sr-dpo']);
    const s = r.step;
    expect(s.shape).toBe('tiny');
    expect(s.packed).toBe(true);
    // Packed: (prompt - 1) + 2 * (1 + completion) tokens per pair; unpacked count: 2 * pairs * seq.
    expect(s.policyTokens).toBe(2 * (15 + 2 * 25));
    expect(s.unpackedTokens).toBe(2 * 2 * 40);
    expect(s.augTokens).toBe(2 * (s.refineTokens + 15 + 2 * 25));
    // Both augmented rows begin with the refinement prompt: the blocks compute it once.
    expect(s.augSharedTokens).toBe(s.refineTokens);
    for (const x of [s.parameters, s.stepMs, s.tokensPerS, s.unpackedTokensPerS, s.peakInUseBytes, s.resident.params, s.resident.optimizerState]) positive(x);
    expect(s.peakInUseBytes).toBeGreaterThan(s.resident.params + s.resident.grads);
    // Host recording time: part of each step's wall time, so its median is at most the step's.
    positive(s.recordMs);
    expect(s.recordMs).toBeLessThanOrEqual(s.stepMs);
    // The same steps recorded with nothing submitted (the tuner is off here): host time only.
    positive(s.hostOnlyMs);
    expect(s.hostOnlyMs).toBeLessThan(s.stepMs);
    positive(s.hostOnlyCpuMs);
    // Steady state (the median timed step): every dispatch finds its bind group and uniform buffer
    // cached (the pool hands out the same buffers each step), so the host creates none.
    expect(s.bindGroupsPerStep).toBe(0);
    expect(s.uniformsPerStep).toBe(0);
    expect(Number.isInteger(s.dispatches) && s.dispatches > 50).toBe(true);
    expect(Number.isFinite(s.last.loss)).toBe(true);
    expect(Number.isFinite(s.last.gradNorm)).toBe(true);
    // The step against this run's matmul rate: the MLP's first product on a micro-batch's rows, timed
    // here; the share is the step's nominal rate over it (bench/step-flops.ts, checked in its own test).
    const m = s.matmul;
    expect(m.anchor).toMatchObject({ M: s.rowsPerMicroBatch * s.rowLength, N: 256, K: 64, precision: 'f32' });
    for (const x of [m.stepGflop, m.policyGflop, m.augGflop, m.stepTflops, m.anchor.tflops, m.share]) positive(x);
    expect(m.stepGflop).toBeCloseTo(m.policyGflop + m.augGflop, 9);
    expect(m.stepTflops).toBeCloseTo(m.stepGflop / s.stepMs, 9); // GFLOP / ms = TFLOP/s
    expect(m.share).toBeCloseTo(m.stepTflops / m.anchor.tflops, 9);
  }, 120_000);

  it('step --host-only: the host\'s recording at a Pythia shape on a CPU adapter, nothing submitted', () => {
    const r = bench(['step', '--shape', 'pythia-160m', '--loss', 'sr-dpo', '--host-only']);
    const s = r.step;
    expect(s.hostOnly).toBe(true);
    expect(s.shape).toBe('pythia-160m');
    expect(s.dispatches).toBeGreaterThan(500); // 12 layers, forward, augmented forward and backward
    for (const x of [s.recordMs, s.hostOnlyMs, s.hostOnlyCpuMs, s.peakInUseBytes]) positive(x);
    // Nothing ran: no step time, rate or loss (not the recording's wall clock as if it were one).
    for (const x of [s.stepMs, s.tokensPerS, s.unpackedTokensPerS, s.last, s.matmul]) expect(x).toBeNull();
    expect(s.refineTokens).toBe(48); // the paper's refinement prompt under the Pythia tokenizer, as PyTorch's anchor
    expect(s.precisionCheck).toBeUndefined();
    expect(s.tuning.on).toBe(false);
  }, 120_000);

  it('step: packed and unpacked layouts compute the same loss; unpacked processes every token', () => {
    const args = ['step', '--shape', 'tiny', '--pairs', '2', '--seq', '40', '--prompt', '16', '--loss', 'sr-dpo'];
    const packed = bench(args).step;
    const unpacked = bench([...args, '--no-packed']).step;
    expect(unpacked.packed).toBe(false);
    expect(unpacked.policyTokens).toBe(2 * 2 * 40);
    expect(Math.abs(unpacked.last.loss - packed.last.loss)).toBeLessThan(1e-5 * Math.abs(packed.last.loss) + 1e-6);
  }, 120_000);

  it('step --varied: lengths vary; length-ordered micro-batches give the same step as data order', () => {
    const args = ['step', '--shape', 'tiny', '--pairs', '6', '--micro-batch', '2', '--seq', '40', '--prompt', '16', '--loss', 'dpo', '--varied'];
    const ordered = bench(args).step;
    const plain = bench([...args, '--no-length-order']).step;
    expect(ordered.varied).toBe(true);
    expect([ordered.lengthOrder, plain.lengthOrder]).toEqual([true, false]);
    expect(ordered.policyTokens).toBeLessThan(6 * (16 + 1 + 2 * 24)); // lengths really vary
    expect(ordered.policyTokens).toBe(plain.policyTokens);
    expect(Math.abs(ordered.last.loss - plain.last.loss)).toBeLessThan(1e-5 * Math.abs(plain.last.loss) + 1e-6);
    expect(Math.abs(ordered.last.gradNorm - plain.last.gradNorm)).toBeLessThan(1e-5 * plain.last.gradNorm);
  }, 120_000);

  it('step --precision mixed: tensor cores where the adapter has f16 subgroup matrices, else f32 with a note', () => {
    const mixed = run(['step', '--shape', 'tiny', '--precision', 'mixed', '--pairs', '1', '--seq', '24', '--prompt', '8', '--json']);
    expect(mixed.status, mixed.stderr).toBe(0);
    const step = JSON.parse(mixed.stdout).step;
    expect(step.attention).toBe('f32'); // tensor-core attention is opt-in (SRK_ATTENTION=tc)
    if (cpuAdapter) {
      expect(step.precision).toBe('f32');
      expect(step.precisionNote).toMatch(/no f16 subgroup-matrix .* falls back to f32/);
      expect(mixed.stderr).toMatch(/falls back to f32/);
    } else {
      expect(step.precision).toBe('mixed');
      expect(step.precisionCheck.maxAbsDiffPerToken).toBeLessThan(1e-2);
    }
  }, 120_000);

  it('step --aug-precision mixed: an f32 step with only the augmented pass in f16 (emulated here), named in the report', () => {
    const args = ['step', '--shape', 'tiny', '--loss', 'sr-dpo', '--pairs', '2', '--seq', '24', '--prompt', '8', '--aug-precision', 'mixed', '--json'];
    const r = spawnSync(process.execPath, [srk, 'bench', ...args], { cwd: root, encoding: 'utf8', timeout: 120_000, env: { ...process.env, SRK_MIXED: 'emulate' } });
    expect(r.status, r.stderr).toBe(0);
    const step = JSON.parse(r.stdout).step;
    expect(step.precision).toBe('f32');
    expect(step.augPrecision).toBe('mixed');
    // Its log-probs against f32 on the same weights: close, and not the same (f16 operands were used).
    expect(step.augPrecisionCheck.maxAbsDiffPerToken).toBeLessThan(1e-2);
    expect(step.augPrecisionCheck.maxAbsDiff).toBeGreaterThan(0);
    expect(r.stderr).toMatch(/f32 \(augmented pass mixed\)/);
    // DPO has no augmented pass: nothing to report.
    const dpo = bench(['step', '--shape', 'tiny', '--loss', 'dpo', '--pairs', '1', '--seq', '24', '--prompt', '8', '--aug-precision', 'mixed']).step;
    expect(dpo.augPrecision).toBeNull();
  }, 120_000);

  it('step: refuses what it cannot do, with a clear message', () => {
    const prompt = run(['step', '--shape', 'tiny', '--seq', '64', '--prompt', '64']);
    expect(prompt.status).toBe(1);
    expect(prompt.stderr).toMatch(/must be shorter than --seq/);
    const attention = run(['attention', '--seq', '128', '--prompt', '200']);
    expect(attention.status).toBe(1);
    expect(attention.stderr).toMatch(/bench attention: --prompt 200 must be shorter than --seq 128/);
    // Past the shape's positions (the Sr losses' refinement prompt included), before any GPU work.
    const long = run(['step', '--shape', 'tiny', '--seq', '2040', '--prompt', '1000', '--loss', 'sr-dpo']);
    expect(long.status).toBe(1);
    expect(long.stderr).toMatch(/--seq 2040 \(\+ 48 refine-prompt tokens for sr-dpo\) is longer than the tiny shape's 2048 positions/);
    expect(long.stderr).not.toMatch(/GB\/s/); // refused before the copy benchmark
    if (cpuAdapter) {
      const big = run(['step', '--shape', 'pythia-160m']);
      expect(big.status).toBe(1);
      expect(big.stderr).toMatch(/CPU adapter .* --full/);
    }
  }, 120_000);
});
