// The tensor-core matmul checks itself on the adapter before a mixed-precision run uses it.
//
// Why: the tensor-core kernels (matmul-smx.ts) are tested natively only where a test run has a
// tensor-core GPU (scripts/gpu-check.sh); everywhere else they pass emulated (smx-wgsl.ts), and the
// emulation cannot show what a driver's cooperative matrices do with a given form (the tensor-core
// attention passed emulated and failed natively on the first H100: attention-selfcheck.ts). A form
// that computes wrong numbers would make a training run wrong without a word. So before a run puts
// its products on tensor cores (`srk train` / `srk bench step` with mixed precision or
// --aug-precision mixed, on an adapter with native f16 subgroup matrices), every tensor-core tiling
// the products may take (SMX_CANDIDATES and the rule tilings split along K where the tuner picks among
// them, else the two rule tilings) runs a few small products
// in the forms the model uses, inputs from a fixed seed, against the float64 product bounded as f16
// operands allow:
//   - x W^T with a bias (direct stores from bias / alpha inside C, the scratch epilogue at its edges);
//   - dy W accumulating, A scaled (C preloaded into the accumulators), every tile inside C;
//   - dy^T x with a bias and accumulating, alpha -0.5 (the scratch epilogue), edge tiles;
//   - x W^T from f16 operand copies (half.ts), every tile inside C;
//   - attention's P V: A lower triangular (causal 'lowerA', entries above its diagonal holding 1e3
//     that must read as 0), two products sharing one B (grouped-query attention), in two groups (rows);
//   - attention's scores: only C's lower triangle (causal 'lowerC'), two groups of two products;
//     in both, the score rows as attention lays them out (a width no multiple of 4, rows 16-float
//     aligned, moved past their width to the quad: padA, padC; NaN beyond, never read), and the
//     groups apart with NaN between them;
//   - the rule tilings only: the K split in two (matmul-splitk.ts) with a bias, accumulating.
// Products that write C start from NaN, so an element left unwritten fails. A tuner candidate that
// fails is left out of this adapter's candidates (matmul.ts excludeTiling); a failing split leaves out
// the rule's split forms; a failing rule tiling turns on the safe forms (matmul.ts smxSafe: one stage,
// the scratch epilogue, scales reduced without subgroups) and the rule tilings are checked again; if
// they still fail, the run falls back to f32 with a warning. A kernel the adapter refuses to build is a
// failure of its tiling too (every case's kernels are built first, all at once and asynchronously).
// About sixty small products: their kernels' builds take most of the time. SRK_SMX_CHECK=0 skips it.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import type { KernelDef } from '../engine/kernel.js';
import { Rng } from '../init/prng.js';
import { envSwitch } from '../engine/env.js';
import { matmul, matmulDefs, excludeTiling, splitForms, useSafeTensorCoreForms, smxSafe, smxTilingFits, SMX_128, SMX_64, SMX_CANDIDATES, type MatmulArgs } from './matmul.js';
import { tileName, type MatmulTile } from './matmul-shared.js';
import { f16ProductTolerance, matmulRef } from './matmul.ref.js';
import { halfCopy } from './half.js';
import type { AugPrecisionChoice, PrecisionChoice } from '../engine/precision.js';

/** One check product: shapes and epilogue as matmul takes them; `batch` products `groupB` to a B. */
export interface SmxCheckCase {
  what: string;
  M: number; N: number; K: number;
  transA?: boolean; transB?: boolean;
  bias?: boolean; accumulate?: boolean; alpha?: number; scaleA?: boolean;
  /** Operands as f16 copies (half.ts) instead of f32. */
  copies?: boolean;
  causal?: 'lowerA' | 'lowerC';
  batch?: number; groupB?: number;
  /** Groups of `batch` products (attention's rows, of heads), GAP elements apart beyond their batch. */
  outer?: number;
  /**
   * The causal operand as attention's score rows: rows 16-float aligned, read ('lowerA': A) or written
   * ('lowerC': C) past their width up to the next multiple of 4 (matmul padA, padC).
   */
  padded?: boolean;
  /** The tiling's split-K form in 2 (rule tilings only). */
  split?: boolean;
}

/** The cases for a tiling (header comment): edges past one tile, wholly inside C, K not a multiple of BK. */
export function smxCheckCases(t: MatmulTile, rule: boolean): SmxCheckCase[] {
  const M = t.BM + 24; const N = t.BN + 40;
  const T = t.BM + 21; // attention's rows: a width no multiple of 4
  const cases: SmxCheckCase[] = [
    { what: 'x W^T with a bias', M, N, K: 88, transB: true, bias: true },
    { what: 'dy W accumulating, A scaled, tiles inside C', M: 2 * t.BM, N: t.BN, K: 128, accumulate: true, alpha: 0.5, scaleA: true },
    { what: 'dy^T x with a bias, accumulating, alpha -0.5', M, N, K: 72, transA: true, bias: true, accumulate: true, alpha: -0.5, scaleA: true },
    { what: 'x W^T from f16 copies, tiles inside C', M: t.BM, N: 2 * t.BN, K: 128, transB: true, copies: true },
    { what: 'P V, A lower triangular and padded, two products on one B, two groups', M: T, N: 64, K: T, causal: 'lowerA', padded: true, batch: 2, groupB: 2, outer: 2 },
    { what: 'scores, C lower triangle and padded, two groups of two', M: T, N: T, K: 64, transB: true, causal: 'lowerC', padded: true, batch: 2, outer: 2, alpha: 0.125 },
  ];
  if (rule) cases.push({ what: 'K split in two, with a bias, accumulating', M, N, K: 1040, bias: true, accumulate: true, alpha: -0.5, split: true });
  return cases;
}

/** One case made ready: its inputs, its tensors (uploaded), the arguments matmul takes. */
interface Prepared {
  c: SmxCheckCase; a: Float32Array; b: Float32Array; bias?: Float32Array; c0: Float32Array;
  /** C on the GPU; with copies, the f32 operands and their f16 copies to make first. */
  tc: Tensor; copies?: [Tensor, Tensor, Tensor, Tensor];
  args: MatmulArgs; tensors: Tensor[];
}

/** Elements between outer groups beyond their batch: filled with NaN, which no product may read. */
const GAP = 8;

/**
 * Where case c's products lie: A's and C's rows (stored), their width and leading dimension, the
 * per-product strides, the group strides, the total lengths.
 */
function caseLayout(c: SmxCheckCase) {
  const batch = c.batch ?? 1; const groupB = c.groupB ?? 1; const outer = c.outer ?? 1;
  const padA = !!c.padded && c.causal === 'lowerA'; const padC = !!c.padded && c.causal === 'lowerC';
  const rowsA = c.transA ? c.K : c.M; const colsA = c.transA ? c.M : c.K;
  const ldA = padA ? Math.ceil(colsA / 16) * 16 : colsA; const ldC = padC ? Math.ceil(c.N / 16) * 16 : c.N;
  const sA = rowsA * ldA; const sB = c.K * c.N; const sC = c.M * ldC;
  const oA = batch * sA + (outer > 1 ? GAP : 0); const oB = (batch / groupB) * sB + (outer > 1 ? GAP : 0);
  const oC = batch * sC + (outer > 1 ? GAP : 0);
  return { batch, groupB, outer, padA, padC, rowsA, colsA, ldA, ldC, sA, sB, sC, oA, oB, oC, lenA: outer * oA, lenB: outer * oB, lenC: outer * oC };
}

/** Inputs (a fixed seed per case) and tensors for case c through `tile` (its split form when c.split). */
function prepareCase(gpu: Gpu, tile: MatmulTile, c: SmxCheckCase, seed: number): Prepared {
  const L = caseLayout(c);
  const rng = new Rng(20261128, seed);
  const normals = (n: number) => rng.fillNormal(new Float32Array(n), 1);
  const a = normals(L.lenA); const b = normals(L.lenB);
  const c0 = c.accumulate ? normals(L.lenC) : new Float32Array(L.lenC).fill(NaN);
  for (let o = 1; o < L.outer; o++) {
    a.fill(NaN, o * L.oA - GAP, o * L.oA); b.fill(NaN, o * L.oB - GAP, o * L.oB); c0.fill(NaN, o * L.oC - GAP, o * L.oC);
  }
  // Above each A's diagonal ('lowerA'): values the kernel must not read (it takes them as 0). Past a
  // padded row's width: finite up to its quad (read, never used), then NaN (never read).
  const quadA = Math.ceil(L.colsA / 4) * 4;
  for (let o = 0; o < L.outer; o++) {
    for (let i = 0; i < L.batch; i++) {
      const at = o * L.oA + i * L.sA;
      for (let e = 0; e < L.sA; e++) {
        const row = Math.floor(e / L.ldA); const col = e % L.ldA;
        if (col >= quadA) a[at + e] = NaN;
        else if (col >= L.colsA || (c.causal === 'lowerA' && col > row)) a[at + e] = 1e3;
      }
    }
  }
  const bias = c.bias ? normals(c.N) : undefined;
  const ta = gpu.tensor([a.length], a); const tb = gpu.tensor([b.length], b); const tc = gpu.tensor([c0.length], c0);
  const tbias = bias ? gpu.tensor([bias.length], bias) : undefined;
  const tensors = [ta, tb, tc, ...(tbias ? [tbias] : [])];
  let copies: Prepared['copies'];
  if (c.copies) {
    copies = [ta, gpu.pool.acquire([a.length], 'f16'), tb, gpu.pool.acquire([b.length], 'f16')];
    tensors.push(copies[1], copies[3]);
  }
  const args: MatmulArgs = {
    a: copies?.[1] ?? ta, b: copies?.[3] ?? tb, c: tc, M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB,
    bias: tbias, accumulate: c.accumulate, alpha: c.alpha, scaleA: c.scaleA, precision: 'f16',
    tile: c.split ? splitForms(tile)[0] : tile, causal: c.causal,
    ...(L.padA ? { lda: L.ldA, padA: true } : {}), ...(L.padC ? { ldc: L.ldC, padC: true } : {}),
    ...(L.batch > 1 ? { batch: L.batch, groupB: L.groupB, strideA: L.sA, strideB: L.sB, strideC: L.sC } : {}),
    ...(L.outer > 1 ? { outer: L.outer, outerStrideA: L.oA, outerStrideB: L.oB, outerStrideC: L.oC } : {}),
  };
  return { c, a, b, bias, c0, tc, copies, args, tensors };
}

/** Records a prepared case: the f16 copies, then the product. */
function recordCase(gpu: Gpu, p: Prepared): void {
  if (p.copies) {
    const [xa, ha, xb, hb] = p.copies;
    halfCopy(gpu, { x: xa, out: ha, n: xa.numel }); halfCopy(gpu, { x: xb, out: hb, n: xb.numel });
  }
  matmul(gpu, p.args);
}

/**
 * What is wrong with `got` for case c (undefined: nothing): each element against the float64 product
 * of the f32 inputs, allowed twice what f16 operands and f32 sums allow (f16ProductTolerance, the
 * bound the kernels' tests hold them to). 'lowerC' products are compared on C's lower triangle.
 */
export function judgeCase(c: SmxCheckCase, a: Float32Array, b: Float32Array, bias: Float32Array | undefined,
  c0: Float32Array, got: Float32Array): string | undefined {
  const L = caseLayout(c); const alpha = c.alpha ?? 1;
  let worst = 0; let at = '';
  for (let p = 0; p < L.outer * L.batch; p++) {
    const o = Math.floor(p / L.batch); const i = p % L.batch;
    const offA = o * L.oA + i * L.sA; const offB = o * L.oB + Math.floor(i / L.groupB) * L.sB; const offC = o * L.oC + i * L.sC;
    // This product's A and C, dense.
    const ai = new Float32Array(L.rowsA * L.colsA); const ci = new Float32Array(c.M * c.N);
    for (let r = 0; r < L.rowsA; r++) ai.set(a.subarray(offA + r * L.ldA, offA + r * L.ldA + L.colsA), r * L.colsA);
    for (let m = 0; m < c.M; m++) ci.set(c0.subarray(offC + m * L.ldC, offC + m * L.ldC + c.N), m * c.N);
    const bi = b.subarray(offB, offB + L.sB);
    const common = { M: c.M, N: c.N, K: c.K, transA: c.transA, transB: c.transB, lowerA: c.causal === 'lowerA' };
    const exact = matmulRef({ ...common, a: ai, b: bi, bias, c: ci, accumulate: c.accumulate, alpha });
    const absProd = matmulRef({ ...common, a: Array.from(ai, Math.abs), b: Array.from(bi, Math.abs) });
    for (let m = 0; m < c.M; m++) {
      for (let n = 0; n < c.N; n++) {
        if (c.causal === 'lowerC' && n > m) continue;
        const e = m * c.N + n;
        const s = Math.abs(alpha) * absProd[e];
        const addends = (bias ? Math.abs(bias[n]) : 0) + (c.accumulate ? Math.abs(ci[e]) : 0);
        const allowed = 2 * f16ProductTolerance(s, addends);
        const g = got[offC + m * L.ldC + n];
        const r = Math.abs(g - exact[e]) / allowed;
        const ratio = Number.isNaN(r) ? Infinity : r;
        if (ratio > worst) { worst = ratio; at = `[${o}, ${i}, ${m}, ${n}]: ${g} for ${exact[e].toPrecision(6)}`; }
      }
    }
  }
  return worst <= 1 ? undefined : `${c.what}: ${Number.isFinite(worst) ? `${worst.toPrecision(3)} times the f16 bound` : 'not finite'} at ${at}`;
}

/** Per tiling, what went wrong in its cases: the split form's apart. */
export type TilingFindings = Map<MatmulTile, { plain: string[]; split: string[] }>;
/** Runs the cases of `tilings` (the split case for those among `rules`). */
export type TilingRunner = (gpu: Gpu, tilings: readonly MatmulTile[], rules: readonly MatmulTile[]) => Promise<TilingFindings>;

/**
 * Runs the cases of each tiling on the adapter (the runner checkTensorCoreMatmul uses), those `only`
 * keeps. Any tiling matmul takes runs them: tests run them on the f32 kernels too (f16 operands).
 * Every case's kernels are built first, all at once and asynchronously (the driver may compile them
 * side by side; kernel.ts checked()), so a kernel the adapter refuses is a finding, not a device error.
 */
export async function runTilings(gpu: Gpu, tilings: readonly MatmulTile[], rules: readonly MatmulTile[],
  only: (c: SmxCheckCase) => boolean = () => true): Promise<TilingFindings> {
  const out: TilingFindings = new Map();
  const device = gpu.device;
  const work = tilings.map((t) => {
    const found = { plain: [] as string[], split: [] as string[] };
    out.set(t, found);
    const cases = smxCheckCases(t, rules.includes(t)).map((c, i) => ({ c, i })).filter(({ c }) => only(c))
      .map(({ c, i }) => prepareCase(gpu, t, c, i));
    let defs: KernelDef[] = [];
    try {
      defs = cases.flatMap((p) => matmulDefs(gpu, p.args));
    } catch (e) {
      found.plain.push(`error: ${(e as Error).message}`);
    }
    return { t, found, cases, defs };
  });
  try {
    const building = work.flatMap((w) => w.defs).map((d) => gpu.kernels.checked(d));
    await Promise.all(building.map((st) => ('pending' in st ? st.pending : undefined)));
    for (const { found, cases, defs } of work) {
      if (found.plain.length) continue;
      const refused = defs.flatMap((d) => { const st = gpu.kernels.checked(d); return 'failed' in st ? [`the adapter refused ${d.name}: ${st.failed}`] : []; });
      if (refused.length) { found.plain.push(...new Set(refused)); continue; }
      device.pushErrorScope('internal');
      device.pushErrorScope('validation');
      try {
        for (const p of cases) recordCase(gpu, p);
        gpu.recorder.flush();
      } catch (e) {
        found.plain.push(`error: ${(e as Error).message}`);
      }
      const errors = (await Promise.all([device.popErrorScope(), device.popErrorScope()])).filter((e) => e);
      if (errors.length) { found.plain.push(...errors.map((e) => `adapter error: ${e!.message}`)); continue; }
      if (found.plain.length) continue;
      // One readback for the tiling's cases (one wait, not one per case).
      const results = cases.length ? await gpu.readManyF32(cases.map((p) => p.tc)) : [];
      cases.forEach((p, i) => {
        const bad = judgeCase(p.c, p.a, p.b, p.bias, p.c0, results[i]);
        if (bad) (p.c.split ? found.split : found.plain).push(bad);
      });
    }
  } finally {
    for (const w of work) for (const p of w.cases) gpu.pool.release(...p.tensors);
  }
  return out;
}

/** What the check found and did. */
export interface TensorCoreCheck {
  /** Whether the run may put its products on tensor cores (false: it runs f32). */
  usable: boolean;
  /** Whether the tensor-core kernels run in their safe forms (a rule tiling failed in its default form). */
  safe: boolean;
  /** Tuner candidates left out, by name, with why. */
  excluded: string[];
  /** What failed in the rule tilings (empty when usable and not safe). */
  why: string[];
  /** Tilings checked, and the check's wall time. */
  tilings: number; ms: number;
}

/**
 * Checks the tensor-core tilings on gpu and applies what it finds (header comment): by default those
 * its products may take, i.e. all of SMX_CANDIDATES that fit it with a tuner on native tensor cores,
 * else the two rule tilings alone (and their split forms only with such a tuner, which alone picks
 * them). Needs gpu.smxMode (native, or emulated for tests).
 */
export async function checkTensorCoreMatmul(gpu: Gpu, tilings?: readonly MatmulTile[], run: TilingRunner = runTilings): Promise<TensorCoreCheck> {
  if (!gpu.smxMode) throw new Error('checkTensorCoreMatmul: this adapter has no tensor-core kernels (gpu.smxMode)');
  const t0 = performance.now();
  const tuned = !!gpu.tuner && gpu.smxMode === 'native';
  const which = tilings ?? (tuned ? SMX_CANDIDATES : [SMX_128, SMX_64]);
  const rules = [SMX_128, SMX_64].filter((t) => which.includes(t));
  const fits = which.filter((t) => smxTilingFits(gpu, t));
  const withSplit = tuned || tilings !== undefined;
  const found = await run(gpu, fits, withSplit ? rules : []);
  const excluded: string[] = [];
  for (const [t, f] of found) {
    if (f.split.length) {
      for (const s of splitForms(t)) excludeTiling(gpu, s);
      excluded.push(`${tileName(t)} split along K (${f.split.join('; ')})`);
    }
    if (f.plain.length && !rules.includes(t)) { excludeTiling(gpu, t); excluded.push(`${tileName(t)} (${f.plain.join('; ')})`); }
  }
  const ruleWhy = rules.flatMap((t) => found.get(t)?.plain.map((w) => `${tileName(t)}: ${w}`) ?? []);
  const done = (usable: boolean, why: string[]): TensorCoreCheck =>
    ({ usable, safe: smxSafe(gpu), excluded, why, tilings: fits.length, ms: performance.now() - t0 });
  if (ruleWhy.length === 0) return done(true, []);
  if (smxSafe(gpu)) return done(false, ruleWhy);
  useSafeTensorCoreForms(gpu);
  const again = await run(gpu, rules, []);
  const safeWhy = rules.flatMap((t) => again.get(t)?.plain.map((w) => `${tileName(t)} (safe forms): ${w}`) ?? []);
  return done(safeWhy.length === 0, [...ruleWhy, ...safeWhy]);
}

/** A line for the run's log. */
export function describeCheck(r: TensorCoreCheck): string {
  const head = `tensor-core matmul: ${r.tilings} tilings checked on this adapter in ${(r.ms / 1000).toFixed(1)} s`;
  const parts = [r.usable ? (r.safe ? 'the default forms failed, the safe forms pass (SRK_SMX_SAFE=1 does the same)' : 'all as computed in float64')
    : 'they fail even in their safe forms'];
  if (r.excluded.length) parts.push(`left out of tuning: ${r.excluded.join('; ')}`);
  if (r.why.length) parts.push(`failed: ${r.why.join('; ')}`);
  return `${head}: ${parts.join('; ')}`;
}

/**
 * The precision choices after the check: unchanged where no product runs on native tensor cores, the
 * check passes, or SRK_SMX_CHECK=0; else f32 (gpu.matmulPrecision and the augmented pass's), with a
 * note saying why. `log` gets the check's line.
 */
export async function checkedPrecision(gpu: Gpu, main: PrecisionChoice, aug: AugPrecisionChoice | undefined,
  log: (line: string) => void, check: (gpu: Gpu) => Promise<TensorCoreCheck> = checkTensorCoreMatmul):
  Promise<{ main: PrecisionChoice; aug: AugPrecisionChoice | undefined }> {
  const mode = envSwitch('SRK_SMX_CHECK');
  const onTc = main.precision === 'mixed' || aug?.matmul === 'f16';
  if (!onTc || mode === '0' || !(gpu.smxMode === 'native' || (mode === '1' && gpu.smxMode))) return { main, aug };
  const r = await check(gpu);
  log(describeCheck(r));
  if (r.usable) return { main, aug };
  const note = 'the tensor-core matmul failed its check on this adapter (above); running f32';
  if (gpu.matmulPrecision === 'f16') gpu.matmulPrecision = 'f32';
  console.warn(`srk: ${note}`);
  return {
    main: main.precision === 'mixed' ? { precision: 'f32', note } : main,
    aug: aug && aug.matmul === 'f16' ? { precision: 'f32', note, matmul: 'f32', description: note } : aug,
  };
}
