// The command line as a user meets it: built CLI, real processes, exit codes.
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { LIST_FLAGS } from '../../src/cli/run.js';

const root = resolve(import.meta.dirname, '../..');
const srk = resolve(root, 'bin/srk.js');

function run(args: string[], env: Record<string, string> = {}) {
  return spawnSync(process.execPath, [srk, ...args], { cwd: root, env: { ...process.env, ...env }, encoding: 'utf8', timeout: 120_000 });
}

describe('srk CLI', () => {
  it('--help lists the commands that exist', () => {
    const out = execFileSync(process.execPath, [srk, '--help'], { encoding: 'utf8' });
    expect(out).toMatch(/srk info/);
    expect(out).toMatch(/srk bench <kind>/);
  });

  it('info --json prints the adapter, features and limits', () => {
    const r = run(['info', '--json']);
    expect(r.status).toBe(0);
    const info = JSON.parse(r.stdout);
    expect(info.adapter.vendor).toBeTruthy();
    // Numbers and the fallback flag as JSON numbers and booleans (they were strings: "8", "true").
    for (const k of ['subgroupMinSize', 'subgroupMaxSize']) if (k in info.adapter) expect(typeof info.adapter[k], k).toBe('number');
    if ('isFallbackAdapter' in info.adapter) expect(typeof info.adapter.isFallbackAdapter).toBe('boolean');
    expect(info.limits.maxStorageBufferBindingSize).toBeGreaterThanOrEqual(128 * 2 ** 20);
    expect(Array.isArray(info.features)).toBe(true);
    expect(typeof info.srk.shaderF16).toBe('boolean');
    // Mixed precision runs on tensor cores exactly where an f16 -> f32 16x16x16 subgroup-matrix config exists.
    const f16Config = info.subgroupMatrixConfigs.some((c: { componentType: string; resultComponentType: string; M: number }) =>
      /f16/.test(c.componentType) && /f32/.test(c.resultComponentType) && c.M === 16);
    expect(info.srk.mixedPrecision).toBe(f16Config && info.adapter.subgroupMinSize === info.adapter.subgroupMaxSize && info.srk.subgroupMatrix);
    // The tuner: on for real GPUs with timestamps; SRK_TUNE=1 anywhere with them, and a bad value refused.
    const cpu = info.adapter.isFallbackAdapter === true || /llvmpipe|lavapipe|swiftshader/i.test(info.adapter.device + info.adapter.description);
    const env = process.env.SRK_TUNE;
    expect(info.srk.tuning).toBe(info.srk.timestampQuery && (env === '1' || (env !== '0' && !cpu)));
    expect(JSON.parse(run(['info', '--json'], { SRK_TUNE: '1' }).stdout).srk.tuning).toBe(info.srk.timestampQuery);
    // SRK_MATMUL takes the products out of the tuner: the tuning line says so.
    if (info.srk.timestampQuery) {
      expect(run(['info'], { SRK_TUNE: '1', SRK_MATMUL: 'reg' }).stdout).toMatch(/tuning: +on: .*not the matmul tilings: SRK_MATMUL=reg takes the products out of the tuner/);
      expect(run(['info'], { SRK_TUNE: '1' }).stdout).toMatch(/tuning: +on: the first training steps time the matmul tilings/);
    }
    const bad = run(['info'], { SRK_TUNE: 'on' });
    expect(bad.status).toBe(1);
    expect(bad.stderr).toMatch(/SRK_TUNE=on: expected 0 or 1/);
    // Extra Dawn toggles (a diagnostic switch): a toggle name is passed on, anything else refused.
    const withToggle = run(['info'], { SRK_DAWN_TOGGLES: 'use_vulkan_memory_model' });
    expect(withToggle.status).toBe(0);
    // The build and the toggles asked for, SRK_DAWN_TOGGLES's included (Dawn says nothing of a name it does not know).
    expect(withToggle.stdout).toMatch(/^dawn: +webgpu \d+\.\d+\.\d+; enable-dawn-features=.*use_vulkan_memory_model/m);
    expect(withToggle.stdout).toMatch(/^switches: +.*SRK_DAWN_TOGGLES=use_vulkan_memory_model/m);
    expect(info.dawn).toMatch(/^webgpu \d+\.\d+\.\d+; enable-dawn-features=allow_unsafe_apis/);
    const badToggle = run(['info'], { SRK_DAWN_TOGGLES: 'use vulkan;memory' });
    expect(badToggle.status).toBe(1);
    expect(badToggle.stderr).toMatch(/SRK_DAWN_TOGGLES=.*is not a Dawn toggle name/);
  });

  it('srk train without --model and --data (the demo) refuses the training flags it would not use, before any work', () => {
    const r = run(['train', '--loss', 'dpo', '--out', '/nonexistent-dir/demo', '--max-steps', '3']);
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/^srk: --loss, --max-steps: the built-in demo .* reads only --out, --seed, --adapter, --plain-progress, --precision; give --model and --data/m);
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('a single-value flag given twice with different values is refused by name; the same value twice is taken once', () => {
    for (const [args, re] of [
      [['train', '--model', 'a', '--model', 'b', '--data', 'x'], /^srk: --model is given 2 times \(a, b\); give it once$/m],
      [['train', '--batch-size', '2', '--batchSize', '4', '--model', 'a', '--data', 'x'], /^srk: --batch-size is given 2 times \(2, 4\); give it once$/m],
      [['eval', '--model', 'm', '--ref-model', 'a', '--ref-model', 'b', '--data', 'x'], /^srk: --ref-model is given 2 times/m],
      // yargs takes a number value of 1 as a count step (2 then 1 read as 3): read from the command line as typed.
      [['train', '--max-steps', '2', '--model', 'a', '--data', 'x', '--maxSteps=1'], /^srk: --max-steps is given 2 times \(2, 1\); give it once$/m],
    ] as const) {
      const r = run([...args]);
      expect(r.status, r.stderr).toBe(1);
      expect(r.stderr).toMatch(re);
    }
    // Every flag declared as a list is exempt (a new one must be added to LIST_FLAGS).
    const declared = ['src/cli.ts', ...readdirSync(resolve(root, 'src/cli')).filter((f) => f.endsWith('.ts')).map((f) => `src/cli/${f}`)]
      .flatMap((f) => [...readFileSync(resolve(root, f), 'utf8').matchAll(/'?([\w-]+)'?(?::|',) \{ type: '(?:array'|\w+',[^}]*\barray: true)/g)].map((m) => m[1]));
    expect(declared.sort()).toEqual(['name', 'runs', 'sizes']);
    // The data flags too: given again for each file (dataFilesFlag).
    for (const f of [...declared, 'data', 'eval-data']) expect(LIST_FLAGS.has(f), f).toBe(true);
    // Repeated alike: read as one value (the missing model is what stops it).
    const same = run(['train', '--batch-size', '2', '--batch-size', '2', '--model', '/nonexistent-model', '--data', 'x']);
    expect(same.stderr).toMatch(/^srk: --model \/nonexistent-model: no such file or directory/m);
  });

  it('fails fast with the install hint when no Vulkan driver is present', () => {
    const t0 = Date.now();
    const r = run(['info'], { VK_DRIVER_FILES: '/nonexistent-icd.json', VK_ICD_FILENAMES: '/nonexistent-icd.json' });
    expect(r.status).toBe(1);
    expect(r.stderr).toMatch(/No WebGPU adapter found/);
    expect(r.stderr).toMatch(/setup-vulkan\.sh/);
    expect(Date.now() - t0).toBeLessThan(30_000);
  });

  it('a malformed SRK_SUBMIT_EVERY, SRK_MIXED, SRK_ATTENTION, SRK_SMX_RELOAD or SRK_F16_COPIES is a one-line error naming the variable', () => {
    const submit = run(['info'], { SRK_SUBMIT_EVERY: 'abc' });
    expect(submit.status).toBe(1);
    expect(submit.stderr).toMatch(/^srk: SRK_SUBMIT_EVERY=abc: expected a positive whole number/m);
    expect(submit.stderr).not.toMatch(/\n\s+at /);
    const mixed = run(['bench', 'step', '--precision', 'mixed', '--pairs', '1', '--seq', '16', '--prompt', '8'], { SRK_MIXED: 'yes' });
    expect(mixed.status).toBe(1);
    expect(mixed.stderr).toMatch(/^srk: SRK_MIXED=yes: expected emulate or emulate-tc/m);
    // Also where it would change nothing (f32), as every other variable.
    const f32 = run(['bench', 'step', '--pairs', '1', '--seq', '16', '--prompt', '8'], { SRK_MIXED: 'yes' });
    expect(f32.status).toBe(1);
    expect(f32.stderr).toMatch(/^srk: SRK_MIXED=yes: expected emulate or emulate-tc/m);
    const attention = run(['bench', 'step', '--pairs', '1', '--seq', '16', '--prompt', '8'], { SRK_ATTENTION: 'fast' });
    expect(attention.status).toBe(1);
    expect(attention.stderr).toMatch(/^srk: SRK_ATTENTION=fast: expected tc, simt or unfused/m);
    expect(attention.stderr).not.toMatch(/\n\s+at /);
    // The tensor-core attention's diagnostic forms, refused whichever kernels run.
    const form = run(['bench', 'step', '--pairs', '1', '--seq', '16', '--prompt', '8'], { SRK_SMX_RELOAD: 'yes' });
    expect(form.status).toBe(1);
    expect(form.stderr).toMatch(/^srk: SRK_SMX_RELOAD=yes: expected 0 or 1/m);
    // Read by every linear layer, whatever the precision.
    const copies = run(['bench', 'step', '--pairs', '1', '--seq', '16', '--prompt', '8'], { SRK_F16_COPIES: 'on' });
    expect(copies.status).toBe(1);
    expect(copies.stderr).toMatch(/^srk: SRK_F16_COPIES=on: expected 0 or 1/m);
    expect(copies.stderr).not.toMatch(/\n\s+at /);
  });

  it('every SRK_* switch is checked before any device work, whatever path the run takes; an unknown SRK_ name is a warning', () => {
    // Each read only on a path this f32 lavapipe run does not take (tensor cores, f16 inputs), or parsed loosely before.
    for (const [name, value, re] of [
      ['SRK_SMX_SAFE', 'yes', /expected 0 or 1/], ['SRK_MATMUL', 'fast', /expected simple or reg/],
      ['SRK_FUSED_ABSMAX', 'off', /expected 0 or 1/], ['SRK_SMX_CHECK', 'no', /expected 0 or 1/],
      ['SRK_KEEP_LOGITS_MIB', ' ', /expected a number of MiB >= 0/], ['SRK_KEEP_LOGITS_MIB', '0x10', /expected a number of MiB >= 0/],
      ['SRK_DEBUG', 'true', /expected 0 or 1/],
    ] as const) {
      const r = run(['info'], { [name]: value });
      expect(r.status, `${name}=${value}: ${r.stderr}`).toBe(1);
      expect(r.stderr).toMatch(new RegExp(`^srk: ${name}=${value.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}: ${re.source}`, 'm'));
      expect(r.stderr).not.toMatch(/\n\s+at /);
    }
    const typo = run(['info'], { SRK_TUNES: '0' });
    expect(typo.status).toBe(0);
    expect(typo.stderr).toMatch(/^srk: SRK_TUNES is not a variable srk reads .*; ignored$/m);
  });

  it('an unknown adapter name is a clear error', () => {
    const r = run(['info', '--adapter', 'no-such-gpu-xyz']);
    expect(r.status).not.toBe(0);
    // Named as a name that matches nothing, with the adapters there are; not as a missing driver.
    expect(r.stderr).toMatch(/^srk: No WebGPU adapter matches "no-such-gpu-xyz" \(--adapter \/ SRK_ADAPTER\); leave it out, or give part of one of these names/m);
    expect(r.stderr).toMatch(/Available adapters:/);
    expect(r.stderr).not.toMatch(/setup-vulkan/);
  });

  it('bench matmul --json runs (tiny sizes) and reports GFLOP/s and copy bandwidth', () => {
    // --only: the square case and two layers' products (the other cases run the same code; the
    // output layer's 50304-wide ones take lavapipe ~40 s).
    const r = run(['bench', 'matmul', '--json', '--sizes', '64', '--tokens', '16', '--only', 'square|160m (attn-out|qkv)']);
    expect(r.status).toBe(0);
    const rep = JSON.parse(r.stdout);
    expect(rep.copy.gbPerS).toBeGreaterThan(0);
    expect(rep.matmul.length).toBeGreaterThan(5);
    for (const m of rep.matmul) expect(m.gflops).toBeGreaterThan(0);
  }, 300_000);
});
