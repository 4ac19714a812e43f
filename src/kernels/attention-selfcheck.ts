// Tensor-core attention checks itself on the adapter before the tuner may choose it.
//
// Why: the tensor-core kernels (attention-smx*.ts) pass their tests emulated on lavapipe, but on the
// first real tensor cores (H100, bench/RESULTS.md run 5) they returned wrong outputs and NaN while
// the tensor-core matmul was exact, and that adapter could not be studied further. So in f16
// precision with the tuner on, the first attention call for a head size records a small case beside
// the step's work: forward and backward through the tensor-core kernels in one kernel form, inputs
// drawn from a fixed seed, a packed-pair mask, GQA and a short row. When the tuner settles after the
// step, the results are compared with the float64 reference (attention.ref.ts, inputs rounded to f16
// for the forward, as attention-smx.test.ts bounds them). A form that passes becomes one more tuner
// candidate for every attention pass of that head size (kept only where it is faster); one that
// fails is followed by the next form on a later call; when every form has failed, a warning says so
// and the f32 kernels stay. Forms (TC_FORMS): the default, the forward's softmax one lane per row
// without subgroup shuffles, the owned fragments loaded again per tile, both; they differ in exactly
// what the kernels take from the adapter (smx-platform.test.ts probes each alone).
// SRK_ATTENTION=tc forces the tensor-core kernels without this check (for checking them);
// SRK_ATTENTION=simt keeps them out.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { attentionBackward as backwardRef, attentionForward as forwardRef, packedPairMask } from './attention.ref.js';
import { roundF16 } from './absmax.ref.js';
import { Rng } from '../init/prng.js';

/** Normals from a fixed seed (init/prng.ts): the same case on every run and machine. */
const normals = (n: number, stream: number) => new Rng(20261127, stream).fillNormal(new Float32Array(n), 1);

export interface TcForm { rowLanes: boolean; reload: boolean }
export const TC_FORMS: readonly TcForm[] = [
  { rowLanes: false, reload: false }, { rowLanes: true, reload: false },
  { rowLanes: false, reload: true }, { rowLanes: true, reload: true },
];
export const tcFormLabel = (f: TcForm) => `tc${f.rowLanes ? ' row' : ''}${f.reload ? ' reload' : ''}`;

/** The check's case (one per head size): what the kernels must get right. */
export interface TcCheckCase {
  B: number; T: number; Hq: number; Hkv: number; Dh: number;
  q: Float32Array; k: Float32Array; v: Float32Array; dout: Float32Array;
  positions: Int32Array; segments: Int32Array; lengths: Int32Array;
}

/** The outputs of one form on the case, as read back. */
export interface TcCheckResult { out: Float32Array; lse: Float32Array; dq: Float32Array; dk: Float32Array; dv: Float32Array }

/** Records the case through the tensor-core kernels in `form`; returns a reader for after the step. */
export type TcCheckRecorder = (gpu: Gpu, c: TcCheckCase, form: TcForm) => { read: () => Promise<TcCheckResult>; tensors: Tensor[] };

/** Per head size; `why`: what each failed form got wrong. */
type State = { kind: 'pending' | 'retry'; form: number; why: string[] } | { kind: 'ok'; form: TcForm } | { kind: 'failed'; why: string[] };
const states = new WeakMap<Gpu, Map<number, State>>();

/**
 * Two rows of packed pairs (prompt 20, chosen 25, rejected 27: 72 tokens, row 1 cut to 60 by its
 * length, 3 padding tokens), two query heads on one kv head, head size Dh: every mask rule the
 * models use, tiles hidden by the segments, padding rows.
 */
export function tcCheckCase(Dh: number): TcCheckCase {
  const pm = packedPairMask(20, 25, 27);
  const B = 2; const T = pm.T + 3; const Hq = 2; const Hkv = 1;
  const positions = new Int32Array(B * T); const segments = new Int32Array(B * T);
  for (let b = 0; b < B; b++) { positions.set(pm.positions, b * T); segments.set(pm.segments, b * T); }
  return {
    B, T, Hq, Hkv, Dh, positions, segments, lengths: Int32Array.from([pm.T, 60]),
    q: normals(B * T * Hq * Dh, 1), k: normals(B * T * Hkv * Dh, 2), v: normals(B * T * Hkv * Dh, 3), dout: normals(B * T * Hq * Dh, 4),
  };
}

/** Largest |a - b| over max |b| (Infinity where a is not finite). */
function relErr(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let num = 0; let den = 1e-30;
  for (let i = 0; i < b.length; i++) {
    const d = Math.abs(a[i] - b[i]);
    num = Number.isFinite(d) ? Math.max(num, d) : Infinity;
    den = Math.max(den, Math.abs(b[i]));
  }
  return num / den;
}

/**
 * What correct tensor-core kernels give on the case, in float64: the forward on inputs rounded to f16
 * (out, lse), and the exact gradients.
 */
export function tcCheckReference(c: TcCheckCase): { rounded: { out: Float64Array; lse: Float64Array }; exact: { dq: Float64Array; dk: Float64Array; dv: Float64Array } } {
  const dims = { B: c.B, T: c.T, Hq: c.Hq, Hkv: c.Hkv, Dh: c.Dh };
  const mask = { positions: c.positions, segments: c.segments, lengths: c.lengths };
  const r16 = (x: Float32Array) => Float64Array.from(x, roundF16);
  const rounded = forwardRef(r16(c.q), r16(c.k), r16(c.v), dims, mask);
  const f = forwardRef(c.q, c.k, c.v, dims, mask);
  return { rounded, exact: backwardRef(c.dout, c.q, c.k, c.v, f.out, f.lse, dims, mask) };
}

/**
 * What is wrong with a form's result on the case (empty: nothing). Bounds as attention-smx.test.ts
 * sets them, with a margin: lse and out against the reference on f16-rounded inputs (1e-4, 4e-3),
 * the gradients against the exact ones (2e-2).
 */
export function judgeTcCheck(c: TcCheckCase, r: TcCheckResult): string[] {
  const { rounded, exact } = tcCheckReference(c);
  const bad: string[] = [];
  const bound = (name: string, got: Float32Array, want: Float64Array, tol: number) => {
    const e = relErr(got, want);
    if (!(e <= tol)) bad.push(`${name} ${Number.isFinite(e) ? e.toExponential(1) : 'not finite'} (bound ${tol})`);
  };
  bound('lse', r.lse, rounded.lse, 1e-4);
  bound('out', r.out, rounded.out, 4e-3);
  bound('dq', r.dq, exact.dq, 2e-2);
  bound('dk', r.dk, exact.dk, 2e-2);
  bound('dv', r.dv, exact.dv, 2e-2);
  return bad;
}

/**
 * The checked tensor-core form for head size Dh, or undefined: not checked yet (the first call
 * records the check, through `record`, for the tuner's next settle()), pending, or failed in every
 * form. Only with a tuner (the check is read back when it settles, and only the tuner chooses the
 * kernels) and tensor cores (native, or emulated where a test asks for them).
 */
export function checkedTcForm(gpu: Gpu, Dh: number, record: TcCheckRecorder): TcForm | undefined {
  const tuner = gpu.tuner;
  if (!tuner || !gpu.smxMode) return undefined;
  let byDh = states.get(gpu);
  if (!byDh) { byDh = new Map(); states.set(gpu, byDh); }
  const st = byDh.get(Dh) ?? { kind: 'retry', form: 0, why: [] };
  if (st.kind === 'ok') return st.form;
  if (st.kind !== 'retry') return undefined;
  const form = TC_FORMS[st.form];
  const c = tcCheckCase(Dh);
  const run = record(gpu, c, form);
  byDh.set(Dh, { kind: 'pending', form: st.form, why: st.why });
  const states_ = byDh;
  tuner.defer(async () => {
    let bad: string[];
    try {
      bad = judgeTcCheck(c, await run.read());
    } catch (e) {
      bad = [`error: ${(e as Error).message}`];
    } finally {
      gpu.pool.release(...run.tensors);
    }
    if (bad.length === 0) { states_.set(Dh, { kind: 'ok', form }); return; }
    const why = [...st.why, `${tcFormLabel(form)}: ${bad.join(', ')}`];
    const next = st.form + 1;
    if (next < TC_FORMS.length) { states_.set(Dh, { kind: 'retry', form: next, why }); return; }
    states_.set(Dh, { kind: 'failed', why });
    console.warn(`srk: tensor-core attention (head size ${Dh}) failed its check on this adapter in every form ` +
      `(${why.join('; ')}); attention stays on the f32 kernels`);
  });
  return undefined;
}

/** For tests: forgets the checks made on gpu. */
export function resetTcChecks(gpu: Gpu): void { states.delete(gpu); }

/** For tests and reports: the state of the check for Dh. */
export function tcCheckState(gpu: Gpu, Dh: number): string {
  const st = states.get(gpu)?.get(Dh);
  if (!st) return 'unchecked';
  if (st.kind === 'ok') return `ok (${tcFormLabel(st.form)})`;
  const why = st.why.length ? `; ${st.why.join('; ')}` : '';
  return st.kind === 'failed' ? `failed${why}` : `${st.kind} (${tcFormLabel(TC_FORMS[st.form])})${why}`;
}
