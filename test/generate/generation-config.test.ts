// generation_config.json as transformers reads it for srk generate's defaults: an explicit null top_k turns
// top-k off (no TopK warper), where an absent one leaves transformers' default.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { generationDefaults } from '../../src/generate/generation-config.js';

describe('generationDefaults', () => {
  it('top_k: null is off (0), absent is unset, a number is kept', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'srk-gencfg-'));
    const write = (g: object) => writeFileSync(join(dir, 'generation_config.json'), JSON.stringify(g));
    write({ do_sample: true, top_k: null, eos_token_id: [2, 7] });
    const d = await generationDefaults(dir, 0);
    expect([d.doSample, d.topK, d.stopIds]).toEqual([true, 0, [2, 7]]);
    write({ do_sample: true });
    expect((await generationDefaults(dir, 0)).topK).toBeUndefined();
    write({ top_k: 5 });
    expect((await generationDefaults(dir, 0)).topK).toBe(5);
    write({ top_k: -1 });
    await expect(generationDefaults(dir, 0)).rejects.toThrow(/"top_k" must be a whole number, 0 or more, got -1/);
  });
});
