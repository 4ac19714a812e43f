// tuning.json (src/train/tuning-file.ts): the tuner's choices saved with a run and taken back by a
// resumed one; anything else in the file (another adapter, other candidates, garbage) means tuning again.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { TuneTable } from '../../src/engine/tuner.js';
import { adapterName, loadTuning, saveTuning } from '../../src/train/tuning-file.js';
import { describeRun, fixtureArgs, tempDir, train } from './helpers.js';

/** A table whose key 'k' chose candidate 1 of three after one measured round. */
function tuned(): TuneTable {
  const t = new TuneTable(1, 1);
  for (const ms of [2, 1, 3]) { const p = t.pick('k', ['rule', 'fast', 'slow']); t.add(p.id, p.index, ms); }
  t.endStep();
  return t;
}

describe('tuning.json', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'srk-tuning-'));
  const file = path.join(dir, 'tuning.json');
  const gpuA = adapterName({ vendor: 'nvidia', device: 'H100', description: 'driver 580', backend: 'vulkan' });

  it('the adapter\'s name reads as it did when its fields were strings (tuning files written then still match)', () => {
    expect(adapterName({ vendor: 'nvidia', architecture: 'hopper', device: 'NVIDIA H100 80GB HBM3', description: '580.95.05',
      subgroupMinSize: 32, subgroupMaxSize: 32, isFallbackAdapter: false, backend: 'vulkan' }))
      .toBe('nvidia hopper NVIDIA H100 80GB HBM3 580.95.05 32 32 false vulkan');
  });

  it('a resumed run takes the saved choices: same kernels, untimed, reported with their times', () => {
    expect(saveTuning(tuned(), file, gpuA)).toBe(1);
    const t = new TuneTable();
    expect(loadTuning(t, file, gpuA)).toBe(1);
    expect(t.pick('k', ['rule', 'fast', 'slow'])).toMatchObject({ index: 1, timed: false });
    expect(t.decisions()).toEqual([{ key: 'k', candidates: ['rule', 'fast', 'slow'], chosen: 1, medianMs: [2, 1, 3] }]);
    expect(t.pick('new', ['rule', 'x']).timed).toBe(true); // keys not in the file are tuned as usual
  });

  it('other candidates for a saved key (another srk version): that key is tuned again', () => {
    saveTuning(tuned(), file, gpuA);
    const t = new TuneTable();
    loadTuning(t, file, gpuA);
    expect(t.pick('k', ['rule', 'fast', 'other'])).toMatchObject({ index: 0, timed: true });
    expect(t.chosen('k', ['rule', 'fast', 'other'])).toBeUndefined();
  });

  it('another adapter, a broken file or no file: nothing is taken', () => {
    saveTuning(tuned(), file, gpuA);
    const t = new TuneTable();
    expect(loadTuning(t, file, 'amd MI300')).toMatch(/timed on another adapter \(nvidia H100 driver 580 vulkan\): tuning again/);
    expect(t.chosen('k', ['rule', 'fast', 'slow'])).toBeUndefined();
    writeFileSync(file, readFileSync(file, 'utf8').slice(0, 20));
    expect(loadTuning(t, file, gpuA)).toMatch(/tuning\.json is unreadable \(.*\): tuning again/);
    writeFileSync(file, '[1, 2]');
    expect(loadTuning(t, file, gpuA)).toMatch(/is not a tuning file/);
    expect(loadTuning(t, path.join(dir, 'missing.json'), gpuA)).toBeUndefined();
    // A decision whose choice is out of range is skipped, the rest taken.
    writeFileSync(file, JSON.stringify({ adapter: gpuA, decisions: [
      { key: 'bad', candidates: ['a', 'b'], medianMs: [1, 2], chosen: 5 },
      { key: 'good', candidates: ['a', 'b'], medianMs: [2, 1], chosen: 1 },
    ] }));
    const u = new TuneTable();
    loadTuning(u, file, gpuA);
    expect(u.chosen('bad', ['a', 'b'])).toBeUndefined();
    expect(u.chosen('good', ['a', 'b'])).toBe(1);
  });

  it('the count returned is what the table kept (out of range, twice listed, mistyped times): the trainer saves again from it', () => {
    const good = { key: 'good', candidates: ['a', 'b'], medianMs: [2, 1], chosen: 1 };
    writeFileSync(file, JSON.stringify({ adapter: gpuA, decisions: [
      { key: 'bad', candidates: ['a', 'b'], medianMs: [1, 2], chosen: 5 }, good, good, { ...good, key: 'one', candidates: ['a'], medianMs: [1], chosen: 0 },
      { ...good, key: 'times', medianMs: ['fast', 1] },
    ] }));
    const t = new TuneTable();
    expect(loadTuning(t, file, gpuA)).toBe(1);
    expect(t.decisions()).toHaveLength(1);
    expect(t.chosen('times', ['a', 'b'])).toBeUndefined();
  });

  it('choices timed under other Dawn settings (another webgpu build, other toggles) are tuned again; a file from before they were kept is taken', () => {
    const dawnA = 'webgpu 0.6.2; enable-dawn-features=allow_unsafe_apis';
    expect(saveTuning(tuned(), file, gpuA, dawnA)).toBe(1);
    expect(JSON.parse(readFileSync(file, 'utf8')).dawn).toBe(dawnA);
    const t = new TuneTable();
    expect(loadTuning(t, file, gpuA, `${dawnA},disable_robustness`)).toMatch(/was timed with other Dawn settings \(webgpu 0\.6\.2; .*; now .*disable_robustness\): tuning again/);
    expect(t.chosen('k', ['rule', 'fast', 'slow'])).toBeUndefined();
    expect(loadTuning(t, file, gpuA, dawnA)).toBe(1);
    saveTuning(tuned(), file, gpuA); // as an srk before the settings were kept wrote it
    expect(loadTuning(new TuneTable(), file, gpuA, dawnA)).toBe(1);
  });

  it('a resumed run with the tuner off says that the run directory\'s tuning.json is not used', async () => {
    const out = tempDir();
    const args = [...fixtureArgs('gpt-neox-tiny'), '--batch-size', '3', '--loss', 'dpo', '--lr', '0', '--out', out];
    const r0 = await train([...args, '--max-steps', '1'], { SRK_TUNE: '0' });
    expect(r0.code, describeRun(r0)).toBe(0);
    saveTuning(tuned(), path.join(out, 'tuning.json'), gpuA);
    const r1 = await train([...args, '--max-steps', '2', '--resume'], { SRK_TUNE: '0' });
    expect(r1.code, describeRun(r1)).toBe(0);
    expect(r1.stderr).toMatch(/tuner off \(SRK_TUNE=0, or no timestamps\): .*tuning\.json's choices are not used; the built-in tilings run/);
  });
});
