// Matrix multiply on tensor cores: f16 operands, f32 accumulation, through Dawn's
// chromium-experimental-subgroup-matrix (Vulkan cooperative matrices). Same arguments, Params and
// epilogue (alpha, bias, accumulate) as the f32 kernels in matmul.ts, which dispatches it for the
// 'f16' precision on adapters with an f16 16x16x16 -> f32 config (gpu.smxF16).
//
// Tiling: a workgroup computes BM x BN of C with (BM/TM) x (BN/TN) subgroups; each subgroup owns a
// TM x TN block as (TM/16) x (TN/16) 16x16 f32 result matrices. Per BK slice every thread loads
// quads of 4 f32 along each operand's contiguous storage dimension (vec4 where legal), rounds them
// to f16 (A after its dynamic scale) and stores them in workgroup memory in the operand's own
// storage order with a padded row; the subgroup-matrix loads then read row- or column-major as the
// transposes require, so no operand is transposed in memory. The next slice's global loads are
// issued before the current slice is multiplied. One workgroup buffer per operand by default; a
// tiling with stages: 2 stores the next slice into a second buffer after the multiply (one barrier
// per slice instead of two) but, measured on the H100, ran the step's dx/dW products ~50% slower
// (bench/RESULTS.md), so it is an option for tuning, not the default.
// Epilogue: tiles wholly inside C store their result matrices straight to C, alpha applied as a
// matrix scalar, the accumulators starting from C / alpha when accumulating (C loaded as result
// matrices) or from bias / alpha with a bias (broadcast down the columns through the subgroup's
// scratch: a subgroup-matrix load cannot broadcast a row, Dawn raises its stride to 16). Edge
// tiles, and products with both a bias and accumulate (no matrix add puts both into the
// accumulators), go through a per-subgroup 16x16 f32 scratch so the lanes can apply bounds, alpha,
// bias and accumulate element by element.
// Reference: matmul.ref.ts (matmulRef with f16 operands); checked in test/engine/matmul-f16.test.ts.
import { memoDef, type KernelDef } from '../engine/kernel.js';
import { batchOffsetsWgsl, causalLoop, causalSuffix, groupSuffix, f16Suffix, loadTileWgsl, matmulBindings, quadRegDecls, quadSlots, scalesWgsl,
  type Causal, type F16Staging, type MatmulTile, type StagedOperand, type VecFlags } from './matmul-shared.js';
import { smxDialect } from './smx-wgsl.js';

const FRAG = 16; // the f16 config's M = N = K
const PAD = 8;   // f16 elements of row padding in workgroup memory: 16-byte aligned rows, fewer bank conflicts

/** Thread count and workgroup memory of an smx tiling (throws on a malformed one). */
export function smxShape(t: MatmulTile, sgSize: number, transA: boolean, transB: boolean, stages: 1 | 2 = 1): { threads: number; sharedBytes: number; subgroups: number } {
  const { BM, BN, BK, TM, TN } = t;
  if (BM % TM || BN % TN || TM % FRAG || TN % FRAG || BK % FRAG || !(sgSize > 0)) {
    throw new RangeError(`matmul: smx tiling ${BM}x${BN}x${BK}/${TM}x${TN} needs TM, TN, BK multiples of ${FRAG} dividing BM, BN (subgroup size ${sgSize})`);
  }
  const subgroups = (BM / TM) * (BN / TN);
  const a = transA ? BK * (BM + PAD) : BM * (BK + PAD);
  const b = transB ? BN * (BK + PAD) : BK * (BN + PAD);
  const threads = subgroups * sgSize;
  return { threads, subgroups, sharedBytes: stages * 2 * (a + b) + 4 * subgroups * FRAG * FRAG + 4 * threads };
}

/**
 * `stages`: 1 or 2 workgroup buffers per operand. `direct`: tiles inside C may store their result
 * matrices straight to C (unless the product has both a bias and accumulate; a runtime choice).
 */
function smxDefGen(t: MatmulTile, transA: boolean, transB: boolean, full: boolean, vec: VecFlags,
  f16: F16Staging, sgSize: number, stages: 1 | 2, direct: boolean, emulated = false, subgroupScale = true, causal?: Causal, groupB = 1): KernelDef {
  const { BM, BN, BK, TM, TN } = t;
  const cl = causalLoop(causal, transA, BM, BK);
  const lower = causal === 'lowerA';
  const sm = smxDialect(emulated);
  const { threads, subgroups } = smxShape(t, sgSize, transA, transB);
  const SGN = BN / TN; const FM = TM / FRAG; const FN = TN / FRAG;
  const u = (n: number) => `${n}u`;

  // One operand as stored: a rows x cols tile (cols contiguous in memory), staged into `sh` with
  // row stride cols + PAD.
  interface Operand extends StagedOperand { sh: 'As' | 'Bs'; scale: string }
  // An f16 copy of A (half.ts) was scaled when it was made: its quads are staged as they are.
  const halfA = f16.halfA; const halfB = f16.halfB; const scaleOnStage = halfA ? '' : ' * sa';
  const scaleBOnStage = halfB || !f16.scaleB ? '' : ' * sb';
  const opA: Operand = transA
    ? { name: 'a', sh: 'As', vec: vec.a, half: halfA, lower, off: 'aOff', ld: 'p.lda', rows: BK, cols: BM, row0: 'k0', col0: 'm0', rowLim: 'p.K', colLim: 'p.M', scale: scaleOnStage }
    : { name: 'a', sh: 'As', vec: vec.a, half: halfA, lower, off: 'aOff', ld: 'p.lda', rows: BM, cols: BK, row0: 'm0', col0: 'k0', rowLim: 'p.M', colLim: 'p.K', scale: scaleOnStage };
  const opB: Operand = transB
    ? { name: 'b', sh: 'Bs', vec: vec.b, half: halfB, off: 'bOff', ld: 'p.ldb', rows: BN, cols: BK, row0: 'n0', col0: 'k0', rowLim: 'p.N', colLim: 'p.K', scale: scaleBOnStage }
    : { name: 'b', sh: 'Bs', vec: vec.b, half: halfB, off: 'bOff', ld: 'p.ldb', rows: BK, cols: BN, row0: 'k0', col0: 'n0', rowLim: 'p.K', colLim: 'p.N', scale: scaleBOnStage };
  const ops = [opA, opB];
  const slots = (o: Operand) => quadSlots(o, threads);
  const regDecls = quadRegDecls(ops, threads);
  const loadGlobal = (k: string) => loadTileWgsl(ops, threads, k, full);
  const stageSize = (o: Operand) => o.rows * (o.cols + PAD);
  const storeShared = (stage: string) => ops.flatMap((o) => slots(o).map((s) => {
    const base = stage === '0' ? '' : `${stage} * ${u(stageSize(o))} + `;
    const body = `{ let h = vec4<f16>(${s.reg}${o.scale}); let w = ${base}(${s.r}) * ${u(o.cols + PAD)} + ${s.c}; ` +
      [0, 1, 2, 3].map((j) => `${o.sh}[w + ${u(j)}] = h[${j}];`).join(' ') + ' }';
    return s.guard ? `if (${s.guard}) ${body}` : body;
  }));

  // Fragment loads for one 16-wide K step at kk (a constant).
  const aStride = opA.cols + PAD; const bStride = opB.cols + PAD;
  const loadLeft = (fi: number, kk: number) => transA
    // As[k][m]: element (m, k) at k * stride + m: column-major for the left (rows m, columns k).
    ? sm.load('left', `l${fi}`, 'As', `aS + ${u(kk * aStride)} + rowA + ${u(fi * FRAG)}`, 'col_major', u(aStride))
    : sm.load('left', `l${fi}`, 'As', `aS + (rowA + ${u(fi * FRAG)}) * ${u(aStride)} + ${u(kk)}`, 'row_major', u(aStride));
  const loadRight = (fj: number, kk: number) => transB
    // Bs[n][k]: element (k, n) at n * stride + k: column-major for the right (rows k, columns n).
    ? sm.load('right', `r${fj}`, 'Bs', `bS + (colB + ${u(fj * FRAG)}) * ${u(bStride)} + ${u(kk)}`, 'col_major', u(bStride))
    : sm.load('right', `r${fj}`, 'Bs', `bS + ${u(kk * bStride)} + colB + ${u(fj * FRAG)}`, 'row_major', u(bStride));
  const compute: string[] = [];
  for (let kk = 0; kk < BK; kk += FRAG) {
    compute.push('{');
    for (let fi = 0; fi < FM; fi++) compute.push(`  ${loadLeft(fi, kk)}`);
    for (let fj = 0; fj < FN; fj++) compute.push(`  ${loadRight(fj, kk)}`);
    for (let fi = 0; fi < FM; fi++) {
      for (let fj = 0; fj < FN; fj++) compute.push(`  ${sm.mma(`acc${fi}_${fj}`, `l${fi}`, `r${fj}`)}`);
    }
    compute.push('}');
  }
  const accDecls: string[] = [];
  for (let fi = 0; fi < FM; fi++) for (let fj = 0; fj < FN; fj++) accDecls.push(sm.declResult(`acc${fi}_${fj}`));

  // A bias without accumulate on a direct tile: the accumulators start at bias / alpha, so that
  // alpha * acc = bias + alpha A B (the same f32 sum with the bias first rather than last: it rounds
  // differently, as summation orders do). The scratch holds one 16-column block of it down 16 rows at a time.
  const biasInit: string[] = [];
  for (let fj = 0; fj < FN; fj++) {
    biasInit.push(`for (var e = lane; e < ${u(FRAG * FRAG)}; e += sgs) { Cs[sg * ${u(FRAG * FRAG)} + e] = bias[p.biasBase + n0 + colB + ${u(fj * FRAG)} + e % ${u(FRAG)}] / alpha; }`,
      'workgroupBarrier();');
    for (let fi = 0; fi < FM; fi++) biasInit.push(sm.load('result', `acc${fi}_${fj}`, 'Cs', `sg * ${u(FRAG * FRAG)}`, 'row_major', u(FRAG), true));
    biasInit.push('workgroupBarrier();');
  }

  // Epilogue, one result matrix at a time through the subgroup's scratch (every invocation runs
  // the same sequence, so the barriers are in uniform control flow).
  const epilogue: string[] = [];
  // Direct stores (tile inside C; not bias and accumulate together): C = alpha * acc, where
  // accumulating starts from acc = C / alpha (a bias from bias / alpha, above), so the one multiply
  // by alpha at the end gives C + alpha * A B.
  const cAt = (fi: number, fj: number) => `cOff + (m0 + rowA + ${u(fi * FRAG)}) * p.ldc + n0 + colB + ${u(fj * FRAG)}`;
  const preload: string[] = [];
  const directStore: string[] = [];
  for (let fi = 0; fi < FM; fi++) {
    for (let fj = 0; fj < FN; fj++) {
      const acc = `acc${fi}_${fj}`;
      preload.push(sm.load('result', acc, 'c', cAt(fi, fj), 'row_major', 'p.ldc', true), sm.scale(acc, '1.0 / alpha'));
      directStore.push(sm.scale(acc, 'alpha'), sm.store('c', cAt(fi, fj), acc, 'row_major', 'p.ldc'));
    }
  }
  for (let fi = 0; fi < FM; fi++) {
    for (let fj = 0; fj < FN; fj++) {
      epilogue.push(sm.store('Cs', `sg * ${u(FRAG * FRAG)}`, `acc${fi}_${fj}`, 'row_major', u(FRAG)),
        'workgroupBarrier();',
        `for (var e = lane; e < ${u(FRAG * FRAG)}; e += sgs) {`,
        `  let gm = m0 + rowA + ${u(fi * FRAG)} + e / ${u(FRAG)}; let gn = n0 + colB + ${u(fj * FRAG)} + e % ${u(FRAG)};`,
        `  if (${full ? 'true' : 'gm < p.M && gn < p.N'}) {`,
        `    var v = alpha * Cs[sg * ${u(FRAG * FRAG)} + e];`,
        '    if (p.hasBias != 0u) { v += bias[p.biasBase + gn]; }',
        '    let ci = cOff + gm * p.ldc + gn;',
        '    if (p.accumulate != 0u) { v += c[ci]; }',
        '    c[ci] = v;', '  }', '}', 'workgroupBarrier();');
    }
  }

  // The operand scales reduced by subgroups (absmax.ts f16ScaleWgsl), unless asked not to (SRK_SMX_SAFE).
  const mb = matmulBindings({ a: vec.a, b: vec.b, c: false }, f16, threads, subgroupScale ? sgSize : 0);
  const name = `matmul_smx_${transA ? 't' : 'n'}${transB ? 't' : 'n'}_${BM}x${BN}x${BK}_${TM}x${TN}_s${stages}` +
    `_${vec.a ? 'v' : 's'}${vec.b ? 'v' : 's'}${full ? '_full' : ''}${direct ? '_direct' : ''}${f16Suffix(f16)}_sg${sgSize}${subgroupScale ? '' : '_wgscale'}${causalSuffix(causal)}${groupSuffix(groupB)}${emulated ? '_emu' : ''}`;
  // The K loop: 1 stage = store, barrier, prefetch, multiply, barrier; 2 stages = one barrier (the
  // stages as `t % 2u` and `1u - cur`, which Dawn's integer range analysis bounds: matmul-simt.ts).
  // K slices t0 .. nT - 1 (all of K unless causal: causalLoop).
  const from0 = cl.t0 === '0u';
  const t0 = from0 ? '0u' : 't0';
  const first = from0 ? '0u' : `t0 * ${u(BK)}`;
  const loop: string[] = stages === 2
    ? [`if (nT > ${t0}) {`, ...loadGlobal(first), ...storeShared('0'), '}', 'workgroupBarrier();',
      `for (var t = ${t0}; t < nT; t++) {`, `  let cur = ${from0 ? 't' : '(t - t0)'} % 2u;`, '  let more = t + 1u < nT;',
      `  let aS = cur * ${u(stageSize(opA))}; let bS = cur * ${u(stageSize(opB))};`,
      '  if (more) {', ...loadGlobal(`(t + 1u) * ${u(BK)}`), '  }',
      ...compute, '  if (more) {', ...storeShared('(1u - cur)'), '  }', '  workgroupBarrier();', '}']
    : [`if (nT > ${t0}) {`, ...loadGlobal(first), '}',
      `for (var t = ${t0}; t < nT; t++) {`, '  let aS = 0u; let bS = 0u;', ...storeShared('0'), '  workgroupBarrier();',
      '  if (t + 1u < nT) {', ...loadGlobal(`(t + 1u) * ${u(BK)}`), '  }',
      ...compute, '  workgroupBarrier();', '}'];
  // Whether this workgroup's tile lies wholly inside C (uniform: from workgroup_id and params).
  const inside = full ? 'true' : `m0 + ${u(BM)} <= p.M && n0 + ${u(BN)} <= p.N`;
  return {
    name,
    bindings: mb.kinds,
    uniform: true,
    code: sm.module(/* wgsl */ `${sm.header}
${mb.wgsl}
var<workgroup> As: array<f16, ${stages * stageSize(opA)}>; // [stage] A tile in storage order, padded rows
var<workgroup> Bs: array<f16, ${stages * stageSize(opB)}>; // [stage] B tile in storage order, padded rows
var<workgroup> Cs: array<f32, ${subgroups * FRAG * FRAG}>; // per-subgroup epilogue scratch

@compute @workgroup_size(${threads}, 1, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_index) li: u32,
        @builtin(subgroup_size) sgs: u32, @builtin(subgroup_invocation_id) lane: u32) {
  // This invocation's subgroup, from the adapter's fixed subgroup size as a constant (rather than
  // the sgs builtin), so Dawn's integer range analysis can bound every fragment offset below.
  let sg = li / ${u(sgSize)};
  let rowA = (sg / ${u(SGN)}) * ${u(TM)};    // the subgroup's rows within the tile
  let colB = (sg % ${u(SGN)}) * ${u(TN)};    // and columns
  let n0 = wg.x * ${u(BN)};
  let m0 = wg.y * ${u(BM)};${cl.skip ? `\n  ${cl.skip}` : ''}
  ${batchOffsetsWgsl(groupB)}
  ${scalesWgsl(f16)}
  ${accDecls.join('\n  ')}
  ${regDecls.join('\n  ')}
  let nT = ${cl.nT};${from0 ? '' : `\n  let t0 = ${cl.t0};`}
  let direct = ${direct ? `${inside} && (p.hasBias == 0u || p.accumulate == 0u)` : 'false'};
  if (direct && p.accumulate != 0u) {
    ${preload.join('\n    ')}
  }
  if (direct && p.hasBias != 0u) {
    ${biasInit.join('\n    ')}
  }
  ${loop.join('\n  ')}
  if (direct) {
    ${directStore.join('\n    ')}
  } else {
  ${epilogue.join('\n  ')}
  }
}`),
  };
}

// Generated kernel definitions are memoized by their arguments: the WGSL is built once per
// variant, and the kernel cache finds the pipeline by the definition's identity.
export const smxDef = memoDef(smxDefGen);
