import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync, readdirSync, existsSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadModelConfig, parseModelConfig, type Arch } from '../../src/model/config.js';
import { openCheckpoint } from '../../src/model/safetensors.js';
import { compareCheckpointNames, expectedParameters } from '../../src/model/tensor-names.js';
import { loadTokenizer } from '../../src/model/tokenizer.js';
import { ENDOFTEXT_ID } from '../../src/init/byte-tokenizer.js';
import { countParameters, initConfigJson, initKind, initModel } from '../../src/init/init-model.js';
import { ARCHS, PRESETS, presetConfig } from '../../src/init/presets.js';

const root = mkdtempSync(path.join(os.tmpdir(), 'srk-init-'));
afterAll(() => rmSync(root, { recursive: true, force: true }));
let n = 0;
const fresh = () => path.join(root, `m${n++}`);

function stats(x: Float32Array): { mean: number; std: number } {
  let s = 0; let s2 = 0;
  for (const v of x) { s += v; s2 += v * v; }
  const mean = s / x.length;
  return { mean, std: Math.sqrt(s2 / x.length - mean * mean) };
}

describe.each(ARCHS as Arch[])('initModel %s tiny', (arch) => {
  it('writes a loadable HF checkpoint with HF names, shapes and init statistics', async () => {
    const dir = fresh();
    const r = await initModel({ arch, preset: 'tiny', outDir: dir, seed: 1 });
    expect(r.dir).toBe(path.resolve(dir));
    expect(readdirSync(dir).sort()).toEqual(['config.json', 'generation_config.json', 'model.safetensors', 'special_tokens_map.json', 'tokenizer.json', 'tokenizer_config.json']);
    expect(readdirSync(root).filter((f) => f.startsWith('.'))).toEqual([]); // no temp dir left

    const cfg = await loadModelConfig(dir);
    const { raw: _raw, ...want } = presetConfig(arch, 'tiny');
    const { raw, ...got } = cfg;
    expect(got).toEqual(want);
    expect(raw.initializer_range).toBe(0.02);
    expect(cfg.vocabSize % 64).toBe(0);
    expect(cfg.vocabSize).toBeGreaterThanOrEqual(257);
    expect([cfg.hiddenSize, cfg.numLayers, cfg.numHeads]).toEqual([64, 2, 4]);
    if (arch === 'gpt-neox') {
      expect([cfg.parallelResidual, cfg.rotaryDim, cfg.tiedEmbeddings, cfg.attentionBias]).toEqual([true, 4, false, true]);
    } else {
      expect(cfg.numKvHeads).toBe(2);
    }
    expect([cfg.bosTokenId, cfg.eosTokenId]).toEqual([ENDOFTEXT_ID, ENDOFTEXT_ID]);

    const ck = await openCheckpoint(dir);
    try {
      expect(ck.metadata).toEqual({ format: 'pt' });
      const check = compareCheckpointNames(cfg, ck.tensors);
      expect(check.ok, JSON.stringify(check)).toBe(true);
      expect(ck.names).toEqual(expectedParameters(cfg).map((p) => p.name));
      let total = 0;
      for (const spec of expectedParameters(cfg)) {
        const t = ck.tensors[spec.name]!;
        expect(t.dtype).toBe('F32');
        expect(t.shape).toEqual(spec.shape);
        const x = await ck.readTensor(spec.name);
        total += x.length;
        // Gemma's norm weights are zeros (the gain is 1 + w), every other norm's ones.
        const gemmaNorm = (arch === 'gemma' || arch === 'gemma2' || arch === 'gemma3') && spec.name.endsWith('norm.weight');
        const kind = initKind(spec, gemmaNorm ? 1 : 0);
        if (gemmaNorm) expect(kind, spec.name).toBe('zeros');
        if (kind === 'normal') {
          const s = stats(x);
          expect(Math.abs(s.std / 0.02 - 1), `${spec.name} std ${s.std}`).toBeLessThan(0.1);
          expect(Math.abs(s.mean), spec.name).toBeLessThan(0.02 * 5 / Math.sqrt(x.length));
        } else {
          expect(x.every((v) => v === (kind === 'ones' ? 1 : 0)), spec.name).toBe(true);
        }
      }
      expect(total).toBe(r.numParams);
      expect(total).toBe(countParameters(cfg));
      if (arch === 'gpt-neox') expect(ck.names).toContain('embed_out.weight');
      else expect(ck.names).toContain('lm_head.weight');
    } finally {
      await ck.close();
    }

    const tok = await loadTokenizer(dir);
    expect([tok.bosTokenId, tok.eosTokenId, tok.padTokenId]).toEqual([ENDOFTEXT_ID, ENDOFTEXT_ID, ENDOFTEXT_ID]);
    expect(tok.vocabSize).toBeLessThanOrEqual(cfg.vocabSize);
    const s = 'sort: 3 1 2 = 1 2 3 — ünïcödé 🙂';
    const ids = tok.encode(s, { addSpecialTokens: true });
    expect(tok.decode(ids)).toBe(s);
    expect(JSON.parse(readFileSync(path.join(dir, 'generation_config.json'), 'utf8'))).toMatchObject({ eos_token_id: ENDOFTEXT_ID });
  });

  it('is deterministic by seed: same seed, same bytes; another seed, other values', async () => {
    const a = fresh(); const b = fresh(); const c = fresh();
    await initModel({ arch, preset: 'tiny', outDir: a, seed: 42 });
    await initModel({ arch, preset: 'tiny', outDir: b, seed: 42 });
    await initModel({ arch, preset: 'tiny', outDir: c, seed: 43 });
    const bytes = (d: string) => readFileSync(path.join(d, 'model.safetensors'));
    expect(bytes(a).equals(bytes(b))).toBe(true);
    expect(bytes(a).equals(bytes(c))).toBe(false);
    expect(bytes(a).length).toBe(bytes(c).length);
  });
});

describe('initModel options and safety', () => {
  it('refuses a non-empty outDir unless force; an empty existing dir is fine', async () => {
    const dir = fresh();
    mkdirSync(dir);
    writeFileSync(path.join(dir, 'keep.txt'), 'x');
    await expect(initModel({ arch: 'llama', preset: 'tiny', outDir: dir, seed: 1 })).rejects.toThrow(/not empty/);
    expect(readdirSync(dir)).toEqual(['keep.txt']);
    expect(readdirSync(root).filter((f) => f.startsWith('.'))).toEqual([]);
    await initModel({ arch: 'llama', preset: 'tiny', outDir: dir, seed: 1, force: true });
    expect(existsSync(path.join(dir, 'keep.txt'))).toBe(false);
    expect(existsSync(path.join(dir, 'model.safetensors'))).toBe(true);
    const empty = fresh();
    mkdirSync(empty);
    await initModel({ arch: 'mistral', preset: 'tiny', outDir: empty, seed: 1 });
    expect(existsSync(path.join(empty, 'config.json'))).toBe(true);
    expect(readdirSync(root).filter((f) => f.startsWith('.'))).toEqual([]);
  });

  it('refuses a file as outDir, an unknown preset or arch, a bad seed', async () => {
    const f = path.join(root, 'afile');
    writeFileSync(f, 'x');
    await expect(initModel({ arch: 'llama', preset: 'tiny', outDir: f, seed: 1 })).rejects.toThrow(/not a directory/);
    await expect(initModel({ arch: 'llama', preset: 'huge', outDir: fresh(), seed: 1 })).rejects.toThrow(/unknown llama preset "huge"/);
    await expect(initModel({ arch: 'llama', preset: 'pythia-160m', outDir: fresh(), seed: 1 })).rejects.toThrow(/unknown llama preset/);
    await expect(initModel({ arch: 'gpt2' as Arch, preset: 'tiny', outDir: fresh(), seed: 1 })).rejects.toThrow(/unknown arch/);
    await expect(initModel({ arch: 'llama', preset: 'tiny', outDir: fresh(), seed: 1.5 })).rejects.toThrow(/seed/);
  });

  it('creates missing parent directories', async () => {
    const dir = path.join(fresh(), 'a', 'b');
    await initModel({ arch: 'gpt-neox', preset: 'tiny', outDir: dir, seed: 3 });
    expect(existsSync(path.join(dir, 'model.safetensors'))).toBe(true);
  });

  it('tied embeddings: no lm_head, config says tied', async () => {
    const dir = fresh();
    await initModel({ arch: 'llama', preset: 'tiny', outDir: dir, seed: 5, tiedEmbeddings: true });
    const cfg = await loadModelConfig(dir);
    expect(cfg.tiedEmbeddings).toBe(true);
    const ck = await openCheckpoint(dir);
    expect(ck.names).not.toContain('lm_head.weight');
    expect(compareCheckpointNames(cfg, ck.tensors).ok).toBe(true);
    await ck.close();
  });

  it('a tensor depends only on seed and name: tied and untied share the embedding', async () => {
    const a = fresh(); const b = fresh();
    await initModel({ arch: 'llama', preset: 'tiny', outDir: a, seed: 9 });
    await initModel({ arch: 'llama', preset: 'tiny', outDir: b, seed: 9, tiedEmbeddings: true });
    const [ca, cb] = [await openCheckpoint(a), await openCheckpoint(b)];
    expect(Buffer.from(await ca.readRaw('model.embed_tokens.weight')).equals(Buffer.from(await cb.readRaw('model.embed_tokens.weight')))).toBe(true);
    expect(Buffer.from(await ca.readRaw('model.embed_tokens.weight')).equals(Buffer.from(await ca.readRaw('lm_head.weight')))).toBe(false);
    await ca.close(); await cb.close();
  });

  it('initializerRange sets the std', async () => {
    const dir = fresh();
    await initModel({ arch: 'mistral', preset: 'tiny', outDir: dir, seed: 2, initializerRange: 0.05 });
    const ck = await openCheckpoint(dir);
    expect(Math.abs(stats(await ck.readTensor('model.embed_tokens.weight')).std / 0.05 - 1)).toBeLessThan(0.05);
    await ck.close();
    expect(JSON.parse(readFileSync(path.join(dir, 'config.json'), 'utf8')).initializer_range).toBe(0.05);
  });
});

describe('presets', () => {
  it('every preset config round-trips through config.json parsing; parameter counts', () => {
    const counts: Record<string, number> = {};
    for (const arch of ARCHS) {
      for (const p of PRESETS[arch]) {
        const cfg = presetConfig(arch, p.name);
        counts[`${arch}/${p.name}`] = countParameters(cfg);
        const { raw: _r, ...parsed } = parseModelConfig(JSON.parse(JSON.stringify(initConfigJson(cfg))), `${arch}/${p.name}`);
        const { raw: _w, ...want } = cfg;
        expect(parsed).toEqual(want);
      }
    }
    // Real Pythia sizes (HF parameter counts of EleutherAI/pythia-160m and -410m).
    expect(counts['gpt-neox/pythia-160m']).toBe(162_322_944);
    expect(counts['gpt-neox/pythia-410m']).toBe(405_334_016);
    expect(counts['gpt-neox/small']).toBeGreaterThan(500_000);
    expect(counts['gpt-neox/small']).toBeLessThan(1_500_000);
    expect(counts['llama/small']).toBeLessThan(1_500_000);
    expect(counts['gpt-neox/tiny']).toBeLessThan(200_000);
  });
});
