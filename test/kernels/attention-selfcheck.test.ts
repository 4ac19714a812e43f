// The tensor-core attention self-check (src/kernels/attention-selfcheck.ts) without a GPU: its
// judgement of a form's results against the float64 reference, and the walk through the kernel
// forms (next form after a failure, a warning when all failed, the first passing form kept). The
// GPU side (the check recorded beside real work, the form joining the tuner's candidates) is at the
// end of attention-smx.test.ts.
import { afterEach, describe, expect, it, vi } from 'vitest';
import type { Gpu } from '../../src/engine/gpu.js';
import { TC_FORMS, checkedTcForm, judgeTcCheck, tcCheckCase, tcCheckReference, tcCheckState, type TcCheckCase, type TcCheckResult, type TcForm } from '../../src/kernels/attention-selfcheck.js';

/** What correct tensor-core kernels return (the self-check's own reference, as f32). */
function goodResult(c: TcCheckCase): TcCheckResult {
  const { rounded, exact } = tcCheckReference(c);
  const f = (x: Float64Array) => Float32Array.from(x);
  return { out: f(rounded.out), lse: f(rounded.lse), dq: f(exact.dq), dk: f(exact.dk), dv: f(exact.dv) };
}

/** A Gpu stand-in with what checkedTcForm touches: a tuner that defers, tensor cores, a pool. */
function fakeGpu(): { gpu: Gpu; settle: () => Promise<void> } {
  const work: (() => Promise<void>)[] = [];
  const gpu = { tuner: { defer: (fn: () => Promise<void>) => work.push(fn) }, smxMode: 'native', pool: { release: () => {} } } as unknown as Gpu;
  return { gpu, settle: async () => { for (const fn of work.splice(0)) await fn(); } };
}

afterEach(() => { vi.restoreAllMocks(); });

describe('tensor-core attention self-check', () => {
  it('the case covers packed pairs, GQA and a short row; correct results pass, each kind of wrong one fails', () => {
    const c = tcCheckCase(40);
    expect(c.Hq).toBeGreaterThan(c.Hkv);
    expect(new Set(c.segments).size).toBe(3);
    expect(c.lengths[1]).toBeLessThan(c.lengths[0]);
    expect(c.lengths[0]).toBeLessThan(c.T);
    const good = goodResult(c);
    expect(judgeTcCheck(c, good)).toEqual([]);
    const tamper = (key: keyof TcCheckResult, f: (x: Float32Array) => void) => {
      const r = { ...good, [key]: Float32Array.from(good[key]) };
      f(r[key]);
      return judgeTcCheck(c, r);
    };
    expect(tamper('lse', (x) => { x[5] = NaN; })[0]).toMatch(/^lse not finite/);
    expect(tamper('out', (x) => { x[100] += 0.05; })[0]).toMatch(/^out /);
    expect(tamper('dv', (x) => { x.fill(0, 0, 40); })[0]).toMatch(/^dv /);
    expect(tamper('dq', (x) => { for (let i = 0; i < x.length; i++) x[i] *= 1.05; })[0]).toMatch(/^dq /);
    expect(tamper('dk', (x) => { x[7] = Infinity; })[0]).toMatch(/^dk not finite/);
  });

  it('walks the kernel forms: a failing form is followed by the next, the first that passes is kept', async () => {
    const { gpu, settle } = fakeGpu();
    const tried: TcForm[] = [];
    const passing = TC_FORMS[2];
    const record = (_g: Gpu, c: TcCheckCase, form: TcForm) => {
      tried.push(form);
      const r = goodResult(c);
      if (form !== passing) r.out[3] += 1;
      return { tensors: [], read: async () => r };
    };
    expect(checkedTcForm(gpu, 40, record)).toBeUndefined(); // recorded, pending
    expect(tcCheckState(gpu, 40)).toBe('pending (tc)');
    expect(checkedTcForm(gpu, 40, record)).toBeUndefined(); // still pending: nothing recorded again
    expect(tried).toHaveLength(1);
    await settle();
    expect(tcCheckState(gpu, 40)).toMatch(/^retry \(tc row\); tc: out /);
    expect(checkedTcForm(gpu, 40, record)).toBeUndefined();
    await settle();
    expect(checkedTcForm(gpu, 40, record)).toBeUndefined();
    await settle();
    expect(tried).toEqual(TC_FORMS.slice(0, 3));
    expect(checkedTcForm(gpu, 40, record)).toBe(passing);
    expect(tcCheckState(gpu, 40)).toBe('ok (tc reload)');
    expect(tried).toHaveLength(3); // nothing recorded once a form passed
    // Another head size is checked on its own.
    expect(tcCheckState(gpu, 64)).toBe('unchecked');
  });

  it('every form failing (or throwing) leaves the f32 kernels, with one warning naming each form', async () => {
    const { gpu, settle } = fakeGpu();
    const warn = vi.spyOn(console, 'warn').mockImplementation(() => {});
    let n = 0;
    const record = (_g: Gpu, c: TcCheckCase) => {
      const r = goodResult(c);
      r.dv[0] = NaN;
      return { tensors: [], read: async () => { if (n++ === 1) throw new Error('device lost'); return r; } };
    };
    for (let i = 0; i < TC_FORMS.length; i++) {
      expect(checkedTcForm(gpu, 24, record)).toBeUndefined();
      await settle();
    }
    expect(tcCheckState(gpu, 24)).toMatch(/^failed; tc: dv not finite.*; tc row: error: device lost; tc reload: dv/);
    expect(checkedTcForm(gpu, 24, record)).toBeUndefined();
    expect(n).toBe(TC_FORMS.length);
    expect(warn).toHaveBeenCalledTimes(1);
    expect(String(warn.mock.calls[0][0])).toMatch(/head size 24.*every form.*tc row reload: dv not finite/);
  });

  it('no tuner or no tensor cores: nothing is recorded', () => {
    const record = vi.fn();
    expect(checkedTcForm({ tuner: undefined, smxMode: 'native' } as unknown as Gpu, 64, record)).toBeUndefined();
    expect(checkedTcForm({ tuner: { defer: () => {} }, smxMode: undefined } as unknown as Gpu, 64, record)).toBeUndefined();
    expect(record).not.toHaveBeenCalled();
  });
});
