// The built-in demo's output directory (src/train/demo.ts): it starts over where an earlier demo ran
// (it is deterministic), and leaves any other directory alone, before it touches the GPU. Ctrl-C in a
// stage stops the demo there (exit 130), not only that stage.
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DEMO_REFINE_PROMPT, demoDirState, runDemo } from '../../src/train/demo.js';
import { describeRun, readMetrics, startTrain, tempDir, waitFor } from './helpers.js';

describe('the demo\'s output directory', () => {
  const tmp = tempDir('srk-demo-dir-');

  it('new when absent or empty, earlier with its mark or an earlier SFT stage of its own, else foreign', () => {
    expect(demoDirState(join(tmp, 'absent'))).toBe('new');
    const empty = join(tmp, 'empty'); mkdirSync(empty);
    expect(demoDirState(empty)).toBe('new');
    const marked = join(tmp, 'marked'); mkdirSync(join(marked, 'sft'), { recursive: true });
    writeFileSync(join(marked, 'demo.json'), '{}');
    expect(demoDirState(marked)).toBe('earlier');
    // From before the mark: the SFT stage's config names OUT/init (absolute) and the demo's refine prompt.
    const legacy = join(tmp, 'legacy'); mkdirSync(join(legacy, 'sft'), { recursive: true });
    const config = (model: string, refinePrompt: string) => writeFileSync(join(legacy, 'sft', 'train_config.json'), JSON.stringify({ model, refinePrompt }));
    config(resolve(legacy, 'init'), DEMO_REFINE_PROMPT);
    expect(demoDirState(legacy)).toBe('earlier');
    config(resolve(legacy, 'init'), 'Please generate a response');
    expect(demoDirState(legacy)).toBe('foreign');
    config('/models/pythia-160m', DEMO_REFINE_PROMPT);
    expect(demoDirState(legacy)).toBe('foreign');
    const other = join(tmp, 'other'); mkdirSync(other); writeFileSync(join(other, 'notes.txt'), 'mine');
    expect(demoDirState(other)).toBe('foreign');
  });

  it('refuses a foreign directory with a one-line error, writing nothing there', async () => {
    const other = join(tmp, 'foreign'); mkdirSync(other); writeFileSync(join(other, 'notes.txt'), 'mine');
    await expect(runDemo({ out: other, seed: 0 })).rejects.toThrow(/holds files the demo did not write; choose another --out/);
    expect(demoDirState(other)).toBe('foreign');
  });

  it('Ctrl-C during SFT: that stage saves its checkpoint and the demo stops there, exit 130', async () => {
    const out = join(tmp, 'interrupted');
    const run = startTrain(['--out', out]);
    await waitFor(() => readMetrics(join(out, 'sft')).length >= 1 || run.child.exitCode !== null, 90_000, 'the SFT stage\'s first step', 10);
    run.child.kill('SIGINT');
    const r = await run.done;
    expect(r.code, describeRun(r)).toBe(130);
    expect(r.stderr).toMatch(/demo: interrupted during SFT; stopping/);
    expect(existsSync(join(out, 'sft', 'checkpoint'))).toBe(true);
    expect(existsSync(join(out, 'sr-dpo'))).toBe(false); // the next stage never started
  }, 120_000);
});
