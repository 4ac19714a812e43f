// The matmul's SIMT kernels (f32 arithmetic on any adapter; matmul.ts dispatches them, matmul-smx.ts
// has the tensor-core family):
//   simple: a loop-based kernel, TM x TN outputs per thread strided by the workgroup's shape, operands
//           staged in workgroup memory one element per load;
//   reg:    generated with every inner loop unrolled, the accumulators in registers as vec4 variables,
//           A transposed in workgroup memory, vec4 global loads and C stores where the operands allow
//           them, double-buffered tiles.
// Both round their operands to f16 while staging them in the f16 precision (h16 below; A, and B with
// scaleB, after their scales), read f16 copies (half.ts) as they are, and share the epilogue (alpha, bias, accumulate, and GELU or its
// backward where matmul.ts fuses an activation: matmul-shared.ts storeCWgsl).
// Reference: matmul.ref.ts; checked in test/engine/matmul.test.ts and matmul-f16.test.ts.
import { memoDef, type KernelDef } from '../engine/kernel.js';
import { actSuffix, batchOffsetsWgsl, groupSuffix, causalLoop, causalSuffix, f16Suffix, loadTileWgsl, matmulBindings, quadRegDecls, quadSlots, scalesWgsl, storeCWgsl, tileName,
  type ActEpilogue, type Causal, type F16Staging, type MatmulTile, type StagedOperand, type VecFlags } from './matmul-shared.js';

/** `enable f16;` where an operand is stored as f16 (it must open the module). */
function halfEnable(f16: F16Staging | undefined): string {
  return f16?.halfA || f16?.halfB ? 'enable f16;\n' : '';
}

/**
 * WGSL for the f16 staging of the f32 kernels: h16(x) rounds an f32 to the nearest f16 value (ties
 * to even, f16 subnormals below 2^-14, +-inf from 65520 on, as a conversion to f16 would) and keeps
 * it as f32. Done with integer bit operations because compilers may fold an f32 -> f16 -> f32 round
 * trip away (lavapipe does).
 */
function f16Header(f16: F16Staging | undefined): string {
  if (!f16) return '';
  return /* wgsl */ `
fn h16(x: f32) -> f32 {
  if (abs(x) >= 65520.0) { return bitcast<f32>((bitcast<u32>(x) & 0x80000000u) | 0x7f800000u); }
  if (abs(x) < 6.103515625e-5) { return round(x * 16777216.0) * 5.9604644775390625e-8; }
  let b = bitcast<u32>(x);
  return bitcast<f32>((b + 0xfffu + ((b >> 13u) & 1u)) & 0xffffe000u);
}
fn h16v(v: vec4<f32>) -> vec4<f32> { return vec4<f32>(h16(v.x), h16(v.y), h16(v.z), h16(v.w)); }`;
}
function matmulDefGen(t: MatmulTile, transA: boolean, transB: boolean, full: boolean, f16?: F16Staging, causal?: Causal, act?: ActEpilogue,
  groupB = 1): KernelDef {
  const { BM, BN, BK, TM, TN } = t;
  const cl = causalLoop(causal, transA, BM, BK);
  // A lower triangular as stored (causal 'lowerA'): entries above its diagonal read as 0.
  const maskA = causal !== 'lowerA' ? '' : transA ? '\n       if (gm > gk) { v = 0.0; }' : '\n       if (gk > gm) { v = 0.0; }';
  const vA = causal === 'lowerA' ? 'var' : 'let';
  const WX = BN / TN; const WY = BM / TM; const THREADS = WX * WY;
  // A tile element (row r of op(A), column kk): load index order follows the storage layout so
  // consecutive threads read consecutive addresses.
  // An element of a or b as f32 (f16 copies are widened).
  const A = (i: string) => (f16?.halfA ? `f32(a[${i}])` : `a[${i}]`);
  const B = (i: string) => (f16?.halfB ? `f32(b[${i}])` : `b[${i}]`);
  const loadA = transA
    ? `let kk = idx / ${BM}u; let r = idx % ${BM}u; let gm = m0 + r; let gk = k0 + kk;
       ${full ? `${vA} v = ${A('aOff + gk * p.lda + gm')};` : `var v = 0.0; if (gm < p.M && gk < p.K) { v = ${A('aOff + gk * p.lda + gm')}; }`}${maskA}`
    : `let r = idx / ${BK}u; let kk = idx % ${BK}u; let gm = m0 + r; let gk = k0 + kk;
       ${full ? `${vA} v = ${A('aOff + gm * p.lda + gk')};` : `var v = 0.0; if (gm < p.M && gk < p.K) { v = ${A('aOff + gm * p.lda + gk')}; }`}${maskA}`;
  const loadB = transB
    ? `let cc = idx / ${BK}u; let kk = idx % ${BK}u; let gn = n0 + cc; let gk = k0 + kk;
       ${full ? `let v = ${B('bOff + gn * p.ldb + gk')};` : `var v = 0.0; if (gn < p.N && gk < p.K) { v = ${B('bOff + gn * p.ldb + gk')}; }`}`
    : `let kk = idx / ${BN}u; let cc = idx % ${BN}u; let gn = n0 + cc; let gk = k0 + kk;
       ${full ? `let v = ${B('bOff + gk * p.ldb + gn')};` : `var v = 0.0; if (gn < p.N && gk < p.K) { v = ${B('bOff + gk * p.ldb + gn')}; }`}`;
  // Staging `n` elements, element idx = li + s THREADS: a loop counted from 0 by 1, so Dawn's integer
  // range analysis bounds idx and the workgroup stores go unclamped (as the reg kernel's do).
  const stagingLoop = (n: number, body: string) => {
    const steps = Math.ceil(n / THREADS);
    return `for (var s = 0u; s < ${steps}u; s++) {
      let idx = li + s * ${THREADS}u;${n % THREADS ? `
      if (idx >= ${n}u) { break; }` : ''}
      ${body}
    }`;
  };
  const name = `matmul_${transA ? 't' : 'n'}${transB ? 't' : 'n'}_${BM}x${BN}x${BK}_${TM}x${TN}${full ? '_full' : ''}${f16Suffix(f16)}${causalSuffix(causal)}${actSuffix(act)}${groupSuffix(groupB)}`;
  const mb = matmulBindings({ a: false, b: false, c: false }, f16, THREADS, 0, act);
  // f16 copies hold f16 values (A already scaled): staged as they are.
  const stageA = !f16 || f16.halfA ? 'v' : 'h16(v * sa)'; const stageB = !f16 || f16.halfB ? 'v' : 'h16(v * sb)';
  return {
    name,
    bindings: mb.kinds,
    uniform: true,
    code: /* wgsl */ `${halfEnable(f16)}
${mb.wgsl}${f16Header(f16)}

var<workgroup> As: array<f32, ${BK * BM}>; // [BK][BM]
var<workgroup> Bs: array<f32, ${BK * BN}>; // [BK][BN]

@compute @workgroup_size(${WX}, ${WY}, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  let n0 = wg.x * ${BN}u;
  let m0 = wg.y * ${BM}u;${cl.skip ? `
  ${cl.skip}` : ''}
  ${batchOffsetsWgsl(groupB)}
  ${scalesWgsl(f16)}
  var acc: array<array<f32, ${TN}>, ${TM}>;
  for (var k0 = ${causal ? `(${cl.t0}) * ${BK}u` : '0u'}; k0 < ${causal ? `(${cl.nT}) * ${BK}u` : 'p.K'}; k0 += ${BK}u) {
    ${stagingLoop(BM * BK, `${loadA}
      As[kk * ${BM}u + r] = ${stageA};`)}
    ${stagingLoop(BN * BK, `${loadB}
      Bs[kk * ${BN}u + cc] = ${stageB};`)}
    workgroupBarrier();
    for (var kk = 0u; kk < ${BK}u; kk++) {
      var av: array<f32, ${TM}>;
      var bv: array<f32, ${TN}>;
      for (var i = 0u; i < ${TM}u; i++) { av[i] = As[kk * ${BM}u + lid.y + i * ${WY}u]; }
      for (var j = 0u; j < ${TN}u; j++) { bv[j] = Bs[kk * ${BN}u + lid.x + j * ${WX}u]; }
      for (var i = 0u; i < ${TM}u; i++) {
        for (var j = 0u; j < ${TN}u; j++) { acc[i][j] = fma(av[i], bv[j], acc[i][j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${TM}u; i++) {
    let gm = m0 + lid.y + i * ${WY}u;
    for (var j = 0u; j < ${TN}u; j++) {
      let gn = n0 + lid.x + j * ${WX}u;
      if (${full ? 'true' : 'gm < p.M && gn < p.N'}) {
        var v = alpha * acc[i][j];
        if (p.hasBias != 0u) { v += bias[p.biasBase + gn]; }
        let ci = cOff + gm * p.ldc + gn;
        if (p.accumulate != 0u) { v += c[ci]; }
        ${storeCWgsl(act, false, 'v', 'ci')}
      }
    }
  }
}`,
  };
}


/** Checks a 'reg' tiling's shape rules; returns its thread grid. */
export function regShape(t: MatmulTile): { WX: number; WY: number; THREADS: number } {
  const { BM, BN, BK, TM, TN } = t;
  if (TM % 4 || TN % 4 || BK % 4 || BM % TM || BN % TN) {
    throw new RangeError(`matmul: reg tiling ${tileName(t)} needs TM, TN, BK multiples of 4 dividing BM, BN, BK`);
  }
  const WX = BN / TN; const WY = BM / TM;
  if (t.lanes && (WX % 8 || WY % 4)) throw new RangeError(`matmul: reg tiling ${tileName(t)} needs a thread grid of whole 8 x 4 blocks`);
  return { WX, WY, THREADS: WX * WY };
}

/** Workgroup memory bytes of a 'reg' tiling with `stages` buffers. */
export function regSharedBytes(t: MatmulTile, stages: number): number {
  return stages * t.BK * (t.BM + t.BN) * 4;
}

/**
 * The register-tiled kernel, generated with every inner loop unrolled (constant indices only), so
 * the TM x TN accumulators live in registers as TM * TN / 4 vec4 variables.
 *
 * Threads form a WX x WY grid. Thread (tx, ty) owns output rows gi * 4WY + 4ty + i (gi < TM/4,
 * i < 4) and column groups gj * 4WX + 4tx .. +3 (gj < TN/4): contiguous quads, so workgroup-memory
 * reads and C stores are vec4. Workgroup memory holds A transposed (As[k][m], as vec4 along m) and
 * B as is (Bs[k][n], vec4 along n). Global memory is read in quads of 4 consecutive elements along
 * each operand's contiguous storage dimension: one vec4 load where `vec` allows it (the binding is
 * then declared array<vec4<f32>>), else 4 bounds-checked scalar loads. With 2 stages the next K
 * slice is loaded into registers before the current one is multiplied and stored into the other
 * buffer afterwards: one barrier per K step. `full` tiles compile without bounds checks.
 */
function regDefGen(t: MatmulTile, transA: boolean, transB: boolean, full: boolean, vec: VecFlags, stages: 1 | 2, f16?: F16Staging,
  causal?: Causal, act?: ActEpilogue, groupB = 1): KernelDef {
  const { BM, BN, BK, TM, TN } = t;
  const cl = causalLoop(causal, transA, BM, BK);
  const lower = causal === 'lowerA';
  const { WX, WY, THREADS } = regShape(t);
  const AQ = BM / 4; const BQ = BN / 4; // vec4s per k row of As, Bs
  const aStage = BK * AQ; const bStage = BK * BQ;
  const L: string[] = [];
  const u = (n: number) => `${n}u`;

  // One operand as stored (matmul-shared.ts StagedOperand); store() writes a quad register
  // (storage row r, columns c..c+3) into workgroup stage `st`.
  interface Operand extends StagedOperand {
    store: (reg: string, r: string, c: string, st: string) => string;
  }
  // A: storage [M][lda] (contiguous K) or, transposed, [K][lda] (contiguous M).
  const halfA = f16?.halfA; const halfB = f16?.halfB;
  const opA: Operand = transA
    ? { name: 'a', vec: vec.a, half: halfA, lower, off: 'aOff', ld: 'p.lda', rows: BK, cols: BM, row0: 'k0', col0: 'm0', rowLim: 'p.K', colLim: 'p.M',
        store: (reg, r, c, st) => `As[${st} + (${r}) * ${u(AQ)} + (${c}) / 4u] = ${reg};` }
    : { name: 'a', vec: vec.a, half: halfA, lower, off: 'aOff', ld: 'p.lda', rows: BM, cols: BK, row0: 'm0', col0: 'k0', rowLim: 'p.M', colLim: 'p.K',
        store: (reg, r, c, st) => `{ let q = ${reg}; let r = ${r}; let w = ${st} + (${c}) * ${u(AQ)} + r / 4u; let e = r % 4u; ` +
          [0, 1, 2, 3].map((j) => `As[w + ${u(j * AQ)}][e] = q[${j}];`).join(' ') + ' }' };
  // B: storage [K][ldb] (contiguous N) or, transposed, [N][ldb] (contiguous K).
  const opB: Operand = transB
    ? { name: 'b', vec: vec.b, half: halfB, off: 'bOff', ld: 'p.ldb', rows: BN, cols: BK, row0: 'n0', col0: 'k0', rowLim: 'p.N', colLim: 'p.K',
        store: (reg, r, c, st) => `{ let q = ${reg}; let r = ${r}; let w = ${st} + (${c}) * ${u(BQ)} + r / 4u; let e = r % 4u; ` +
          [0, 1, 2, 3].map((j) => `Bs[w + ${u(j * BQ)}][e] = q[${j}];`).join(' ') + ' }' }
    : { name: 'b', vec: vec.b, half: halfB, off: 'bOff', ld: 'p.ldb', rows: BK, cols: BN, row0: 'k0', col0: 'n0', rowLim: 'p.K', colLim: 'p.N',
        store: (reg, r, c, st) => `Bs[${st} + (${r}) * ${u(BQ)} + (${c}) / 4u] = ${reg};` };
  const ops = [opA, opB];
  const slots = (o: Operand) => quadSlots(o, THREADS);
  const regDecls = quadRegDecls(ops, THREADS);
  const loadGlobal = (k: string) => loadTileWgsl(ops, THREADS, k, full);
  // f16 precision: round each quad as it is staged (A after its scale).
  // f16 copies (o.half) hold f16 values, A already scaled: staged as they are.
  const staged = (o: Operand, reg: string) => !f16 || o.half ? reg
    : o === opA ? `h16v(${reg} * sa)` : `h16v(${reg} * sb)`;
  const storeShared = (stage: string) => ops.flatMap((o) => slots(o).map((s) => {
    const st = stage === '0' ? '0u' : `${stage} * ${u(o === opA ? aStage : bStage)}`;
    const body = o.store(staged(o, s.reg), s.r, s.c, st);
    return s.guard ? `if (${s.guard}) { ${body} }` : body;
  }));
  const compute = (stage: string) => {
    const out = [`{ let ai = ${stage === '0' ? '' : `${stage} * ${u(aStage)} + `}ty; let bi = ${stage === '0' ? '' : `${stage} * ${u(bStage)} + `}tx;`];
    const step = (kk: string, sfx: string) => {
      for (let gi = 0; gi < TM / 4; gi++) out.push(`  let a${sfx}_${gi} = As[ai + ${kk}${AQ}u + ${u(gi * WY)}];`);
      for (let gj = 0; gj < TN / 4; gj++) out.push(`  let b${sfx}_${gj} = Bs[bi + ${kk}${BQ}u + ${u(gj * WX)}];`);
      for (let i = 0; i < TM; i++) {
        for (let gj = 0; gj < TN / 4; gj++) {
          const a = `a${sfx}_${i >> 2}[${i & 3}]`; const b = `b${sfx}_${gj}`;
          if (t.scalarAcc) for (let e = 0; e < 4; e++) out.push(`  acc${i}_${gj}_${e} = fma(${a}, ${b}[${e}], acc${i}_${gj}_${e});`);
          else out.push(`  acc${i}_${gj} = fma(vec4<f32>(${a}), ${b}, acc${i}_${gj});`);
        }
      }
    };
    if (t.unrollK !== false) for (let kk = 0; kk < BK; kk++) step(`${kk}u * `, `${kk}`);
    else { out.push(`for (var kk = 0u; kk < ${u(BK)}; kk++) {`); step('kk * ', 'k'); out.push('}'); }
    out.push('}');
    return out;
  };
  const accDecls: string[] = [];
  for (let i = 0; i < TM; i++) {
    for (let gj = 0; gj < TN / 4; gj++) {
      if (t.scalarAcc) for (let e = 0; e < 4; e++) accDecls.push(`var acc${i}_${gj}_${e} = 0.0;`);
      else accDecls.push(`var acc${i}_${gj} = vec4<f32>(0.0);`);
    }
  }
  // An output quad's accumulators as one vec4.
  const accQuad = (i: number, gj: number) => t.scalarAcc
    ? `vec4<f32>(${[0, 1, 2, 3].map((e) => `acc${i}_${gj}_${e}`).join(', ')})` : `acc${i}_${gj}`;

  // K slices t0 .. nT - 1 (all of K unless causal: causalLoop).
  const from0 = cl.t0 === '0u';
  L.push(scalesWgsl(f16),
    ...accDecls, ...regDecls, `let nT = ${cl.nT};`, ...(from0 ? [] : [`let t0 = ${cl.t0};`]));
  const t0 = from0 ? '0u' : 't0';
  const first = from0 ? '0u' : `t0 * ${u(BK)}`;
  if (stages === 2) {
    // The stage as `t % 2u` and the other as `1u - cur` (not `t & 1u`, `cur ^ 1u`): Dawn's integer
    // range analysis (gpu.ts) bounds these, so every workgroup-memory index of the kernel is proven
    // in range and left unclamped by the robustness transform (checked in Dawn's dump_shaders SPIR-V).
    L.push(`if (nT > ${t0}) {`, ...loadGlobal(first), ...storeShared('0'), '}', 'workgroupBarrier();',
      `for (var t = ${t0}; t < nT; t++) {`, `  let cur = ${from0 ? 't' : '(t - t0)'} % 2u;`, '  let more = t + 1u < nT;',
      '  if (more) {', ...loadGlobal(`(t + 1u) * ${u(BK)}`), '  }',
      ...compute('cur'),
      '  if (more) {', ...storeShared('(1u - cur)'), '  }',
      '  workgroupBarrier();', '}');
  } else {
    L.push(`if (nT > ${t0}) {`, ...loadGlobal(first), '}',
      `for (var t = ${t0}; t < nT; t++) {`, ...storeShared('0'), '  workgroupBarrier();',
      `  if (t + 1u < nT) {`, ...loadGlobal(`(t + 1u) * ${u(BK)}`), '  }',
      ...compute('0'), '  workgroupBarrier();', '}');
  }
  // Epilogue: alpha, bias, accumulate; vec4 or scalar stores.
  for (let i = 0; i < TM; i++) {
    const row = (i >> 2) * 4 * WY + (i & 3);
    for (let gj = 0; gj < TN / 4; gj++) {
      const col = gj * 4 * WX;
      L.push(`{ let gm = m0 + ty * 4u + ${u(row)}; let gn = n0 + tx * 4u + ${u(col)}; var v = alpha * ${accQuad(i, gj)};`);
      if (vec.c) {
        L.push(`  if (${full ? 'true' : 'gm < p.M && gn < p.N'}) {`,
          '    if (p.hasBias != 0u) { let bb = p.biasBase + gn; v += vec4<f32>(bias[bb], bias[bb + 1u], bias[bb + 2u], bias[bb + 3u]); }',
          // (ce, C's element index, only where an activation's pre is indexed by it: other kernels keep their WGSL.)
          act ? '    let ce = cOff + gm * p.ldc + gn; let ci = ce >> 2u;' : '    let ci = (cOff + gm * p.ldc + gn) >> 2u;',
          '    if (p.accumulate != 0u) { v += c[ci]; }',
          act ? `    ${storeCWgsl(act, true, 'v', 'ce')}` : '    c[ci] = v;', '  }');
      } else {
        L.push(`  if (${full ? 'true' : 'gm < p.M'}) { let ci = cOff + gm * p.ldc + gn;`);
        for (let j = 0; j < 4; j++) {
          L.push(`    if (${full ? 'true' : `gn + ${j}u < p.N`}) { var s = v[${j}]; if (p.hasBias != 0u) { s += bias[p.biasBase + gn + ${j}u]; }` +
            ` if (p.accumulate != 0u) { s += c[ci + ${j}u]; } ${storeCWgsl(act, false, 's', `ci + ${j}u`)} }`);
        }
        L.push('  }');
      }
      L.push('}');
    }
  }
  const name = `matmul_reg_${transA ? 't' : 'n'}${transB ? 't' : 'n'}_${BM}x${BN}x${BK}_${TM}x${TN}_s${stages}` +
    `${t.unrollK === false ? '_rolled' : ''}${t.lanes ? `_l${t.lanes}` : ''}${t.scalarAcc ? '_sacc' : ''}` +
    `_${vec.a ? 'v' : 's'}${vec.b ? 'v' : 's'}${vec.c ? 'v' : 's'}${full ? '_full' : ''}${f16Suffix(f16)}${causalSuffix(causal)}${actSuffix(act)}${groupSuffix(groupB)}`;
  const mb = matmulBindings(vec, f16, THREADS, 0, act);
  return {
    name,
    bindings: mb.kinds,
    uniform: true,
    code: /* wgsl */ `${halfEnable(f16)}
${mb.wgsl}${f16Header(f16)}
var<workgroup> As: array<vec4<f32>, ${stages * aStage}>; // [stage][BK][BM / 4]
var<workgroup> Bs: array<vec4<f32>, ${stages * bStage}>; // [stage][BK][BN / 4]

@compute @workgroup_size(${WX}, ${WY}, 1)
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(local_invocation_id) lid: vec3u,
        @builtin(local_invocation_index) li: u32) {
  ${t.lanes ? `// 8 x 4 lanes a warp (MatmulTile.lanes): warp w covers grid columns 8 (w % ${WX / 8}) .. +7, rows 4 (w / ${WX / 8}) .. +3.
  let w = li / 32u; let lane = li % 32u;
  let tx = (w % ${WX / 8}u) * 8u + lane % 8u; let ty = (w / ${WX / 8}u) * 4u + lane / 8u;`
    : 'let tx = lid.x; let ty = lid.y;'}
  let n0 = wg.x * ${BN}u;
  let m0 = wg.y * ${BM}u;${cl.skip ? `\n  ${cl.skip}` : ''}
  ${batchOffsetsWgsl(groupB)}
  ${L.join('\n  ')}
}`,
  };
}

// Generated kernel definitions are memoized by their arguments: the WGSL is built once per
// variant, and the kernel cache finds the pipeline by the definition's identity.
export const simpleDef = memoDef(matmulDefGen);
export const regDef = memoDef(regDefGen);
