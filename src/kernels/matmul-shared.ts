// Pieces shared by the matmul kernel families (matmul-simt.ts: f32 simple and register-tiled;
// matmul-smx.ts: tensor cores) and their dispatcher (matmul.ts): the tiling type, the Params struct,
// the f16 staging flags and scale bindings, and the WGSL that loads operand tiles from global memory in quads.
import { f16ScaleWgsl } from './absmax.js';
import { geluEpilogueWgsl, type GeluOp } from './activations.js';

/** A tiling of the matmul (matmul.ts chooses one per product). */
export interface MatmulTile {
  BM: number; BN: number; BK: number; TM: number; TN: number;
  /**
   * 'simple' (default): the loop-based kernel (matmul-simt.ts; TM x TN outputs strided by the workgroup shape).
   * 'reg': the generated register-tiled kernel (matmul-simt.ts regDef): fully unrolled inner loops, accumulators as
   * individual vec4 variables, A transposed in workgroup memory, vec4 global loads/stores where the
   * operands allow it, double-buffered workgroup tiles. TM, TN and BK must be multiples of 4.
   */
  kind?: 'simple' | 'reg' | 'smx';
  /** reg only: false forces scalar global loads and stores even where vec4 would be legal. */
  vec4?: boolean;
  /** Workgroup-memory stages, 2 = one barrier per K step. reg: default 2 where it fits; smx: default 1. */
  stages?: 1 | 2;
  /** reg only: false keeps the K step as a loop (body still unrolled over the thread's outputs). */
  unrollK?: boolean;
  /**
   * Split K into this many chunks whose products are summed by a second kernel (matmul-splitk.ts):
   * more workgroups for products with few output tiles and a long K. Unbatched products only.
   */
  splitK?: number;
  /**
   * reg only: each 32 consecutive invocations (an NVIDIA warp) own an x-by-y block of the thread grid
   * (default: whole rows of the grid, li = tx + WX ty). With 8 x 4, a warp's workgroup-memory reads
   * of A and B are each 4 or 8 neighbouring vec4s (one 128-byte wavefront) instead of 2 and 16.
   */
  lanes?: '8x4';
  /**
   * reg only: scalar accumulators, each multiply-add taking A's value as a scalar operand, instead of
   * vec4 accumulators fed a vec4 splat of it (how the driver's compiler lowers the splat is unknown;
   * a sweep candidate since run 7).
   */
  scalarAcc?: boolean;
  // 'smx' (matmul-smx.ts, f16 operands only): tensor-core tiles through subgroup matrices; each
  // subgroup computes TM x TN of the BM x BN tile as (TM/16) x (TN/16) 16x16 f32 accumulators.
}

/** Short label of a tiling, used in kernel names and bench case names. */
export function tileName(t: MatmulTile): string {
  if (t.splitK && t.splitK > 1) return `${tileName({ ...t, splitK: undefined })} split-K ${t.splitK}`;
  const base = `${t.BM}x${t.BN}x${t.BK}/${t.TM}x${t.TN}`;
  if ((t.kind ?? 'simple') === 'simple') return base;
  if (t.kind === 'smx') return `smx ${base}${t.stages === 2 ? ' 2-stage' : ''}`; // one stage by default
  return `reg ${base}${t.stages === 1 ? ' 1-stage' : ''}${t.vec4 === false ? ' scalar' : ''}${t.unrollK === false ? ' rolled-K' : ''}${t.lanes ? ` lanes ${t.lanes}` : ''}${t.scalarAcc ? ' scalar-acc' : ''}`;
}

// The uniform parameters of both kernel families, in the order run() packs them.
export const PARAMS_WGSL = /* wgsl */ `struct Params {
  M: u32, N: u32, K: u32, lda: u32, ldb: u32, ldc: u32,
  aBase: u32, bBase: u32, cBase: u32, biasBase: u32,
  strideA: u32, strideB: u32, strideC: u32,
  accumulate: u32, hasBias: u32, alpha: f32, partsBase: u32,
  batch: u32, oStrideA: u32, oStrideB: u32, oStrideC: u32, partsBBase: u32,
};`;

/**
 * WGSL: the element offsets of this workgroup's product (wg.z over outer x batch products: product
 * (o, i) at o * outer stride + i * stride), as aOff, bOff, cOff. `groupB` > 1 (MatmulArgs.groupB): B's
 * matrix is shared by each run of groupB consecutive products, product i reading B's (i / groupB)-th.
 */
export function batchOffsetsWgsl(groupB = 1): string {
  return /* wgsl */ `let zo = wg.z / p.batch; let zi = wg.z - zo * p.batch;
  let aOff = p.aBase + zo * p.oStrideA + zi * p.strideA;
  let bOff = p.bBase + zo * p.oStrideB + ${groupB > 1 ? `(zi / ${groupB}u)` : 'zi'} * p.strideB;
  let cOff = p.cBase + zo * p.oStrideC + zi * p.strideC;`;
}

/** Kernel-name suffix of a B shared by groups of products. */
export function groupSuffix(groupB = 1): string {
  return groupB > 1 ? `_gb${groupB}` : '';
}

/**
 * Operand rounding of the f16 precision in the f32 kernels (adapters without tensor-core f16, and
 * tests): values are rounded to f16 as they are staged, A (and B with `scaleB`) after its dynamic
 * scale; the sums stay f32.
 * `halfA`/`halfB`: the operand is stored as f16 (an f16 copy, half.ts): its values are f16 already,
 * and a scaled A (B) was multiplied by its scale when copied, so it is only divided out at the end.
 */
export interface F16Staging { scaleA: boolean; scaleB?: boolean; halfA?: boolean; halfB?: boolean }

/** Kernel-name suffix of an f16 staging. */
export function f16Suffix(f16: F16Staging | undefined): string {
  if (!f16) return '';
  return (f16.scaleA ? '_h16s' : '_h16') + (f16.scaleB ? '_sb' : '') + (f16.halfA ? '_ha' : '') + (f16.halfB ? '_hb' : '');
}

/** WGSL element type of an operand binding: f32 or f16 (`half`), scalar or vec4. */
export function operandType(vec: boolean, half: boolean | undefined): string {
  const e = half ? 'f16' : 'f32';
  return vec ? `vec4<${e}>` : e;
}

/**
 * An activation applied as the SIMT kernels store C (matmul.ts MatmulArgs.act): `op` forward, C =
 * act(result) and, with pre 'write', the result before it into `pre` (C's layout); `op` backward
 * (..._bwd), C = result * act'(pre) with pre 'read'.
 */
export interface ActEpilogue { op: GeluOp; pre: 'none' | 'write' | 'read' }

/** Kernel-name suffix of an activation epilogue. */
export function actSuffix(act: ActEpilogue | undefined): string {
  return act ? `_${act.op}${act.pre === 'write' ? '_pre' : ''}` : '';
}

/**
 * WGSL storing C's element or quad `v` at element index `i` of C's binding (its offset from cOff
 * included), with an activation epilogue applied first (pre's index: i - cBase + preBase). `vec`: v
 * and the bindings are vec4 (index i >> 2).
 */
export function storeCWgsl(act: ActEpilogue | undefined, vec: boolean, v: string, i: string): string {
  const at = (x: string) => (vec ? `(${x}) >> 2u` : x);
  if (!act) return `c[${at(i)}] = ${v};`;
  const pi = `${i} - p.cBase + p.preBase`;
  const each = (f: (e: string) => string) => (vec ? `vec4<f32>(${['x', 'y', 'z', 'w'].map((e) => f(`.${e}`)).join(', ')})` : f(''));
  if (act.pre === 'read') return `{ let xq = pre[${at(pi)}]; c[${at(i)}] = ${each((e) => `actBwd(${v}${e}, xq${e})`)}; }`;
  return `{ let yq = ${v};${act.pre === 'write' ? ` pre[${at(pi)}] = yq;` : ''} c[${at(i)}] = ${each((e) => `actFwd(yq${e})`)}; }`;
}

/** Which operands a kernel accesses as vec4 (matmul.ts vecFlags). */
export interface VecFlags { a: boolean; b: boolean; c: boolean }

/**
 * One operand as stored, for the kernels that stage it through registers: `rows` x `cols` of it
 * (cols contiguous in memory) per tile from (row0, col0), bounded by rowLim/colLim; read in quads of
 * 4 along the columns, as vec4 loads where `vec` allows it (binding declared array<vec4<f32>>).
 * Fields are WGSL expressions.
 */
export interface StagedOperand {
  name: 'a' | 'b'; vec: boolean; off: string; ld: string; rows: number; cols: number;
  row0: string; col0: string; rowLim: string; colLim: string;
  /** Stored as f16 (binding array<f16> or array<vec4<f16>>); loaded into the same f32 quads. */
  half?: boolean;
  /**
   * Lower triangular as stored (MatmulArgs.causal 'lowerA'): only elements on or below the storage
   * diagonal (column <= row, matrix indices) are read as they are; the others load as 0 whatever the
   * memory holds there (NaN included), so the caller need not write them.
   */
  lower?: boolean;
}

/** The quads one thread moves per tile: slot s is quad li + s * threads (guarded where partial). */
export function quadSlots(o: StagedOperand, threads: number): { reg: string; guard: string; r: string; c: string }[] {
  const u = (n: number) => `${n}u`;
  const cq = o.cols / 4; const nq = o.rows * cq;
  const out: { reg: string; guard: string; r: string; c: string }[] = [];
  for (let s = 0; s * threads < nq; s++) {
    const guard = (s + 1) * threads > nq ? `li < ${u(nq - s * threads)}` : '';
    const q = `(li + ${u(s * threads)})`;
    out.push({ reg: `p${o.name}${s}`, guard, r: `${q} / ${u(cq)}`, c: `(${q} % ${u(cq)}) * 4u` });
  }
  return out;
}

/** WGSL loading the quad at (gr, gc) into `reg`, zero outside the matrix unless `full` (and above a
 *  `lower` operand's diagonal). */
function quadLoad(o: StagedOperand, reg: string, gr: string, gc: string, full: boolean): string {
  const load = quadLoadPlain(o, reg, gr, gc, full);
  // select, not a multiply: what lies above the diagonal may be anything, NaN included.
  return o.lower ? `${load} ${reg} = select(vec4<f32>(0.0), ${reg}, vec4<u32>(${gc}) + vec4<u32>(0u, 1u, 2u, 3u) <= vec4<u32>(${gr}));` : load;
}

function quadLoadPlain(o: StagedOperand, reg: string, gr: string, gc: string, full: boolean): string {
  const idx = `${o.off} + ${gr} * ${o.ld} + ${gc}`;
  const el = (i: string) => (o.half ? `f32(${o.name}[${i}])` : `${o.name}[${i}]`);
  if (o.vec) {
    const ld = `${reg} = ${o.half ? `vec4<f32>(${o.name}[(${idx}) >> 2u])` : `${o.name}[(${idx}) >> 2u]`};`;
    return full ? ld : `if (${gr} < ${o.rowLim} && ${gc} < ${o.colLim}) { ${ld} } else { ${reg} = vec4<f32>(0.0); }`;
  }
  if (full) return `{ let i = ${idx}; ${reg} = vec4<f32>(${el('i')}, ${el('i + 1u')}, ${el('i + 2u')}, ${el('i + 3u')}); }`;
  return `${reg} = vec4<f32>(0.0); if (${gr} < ${o.rowLim}) { let i = ${idx}; ` +
    [0, 1, 2, 3].map((j) => `if (${gc} + ${j}u < ${o.colLim}) { ${reg}[${j}] = ${el(`i + ${j}u`)}; }`).join(' ') + ' }';
}

/** Register declarations for the operands' quads. */
export function quadRegDecls(ops: StagedOperand[], threads: number): string[] {
  return ops.flatMap((o) => quadSlots(o, threads).map((s) => `var ${s.reg}: vec4<f32>;`));
}

/** WGSL loading every operand's tile at K offset `k` (an expression) into the quad registers. */
export function loadTileWgsl(ops: StagedOperand[], threads: number, k: string, full: boolean): string[] {
  return [`{ let k0 = ${k};`, ...ops.flatMap((o) => quadSlots(o, threads).map((s) => {
    const body = `{ let gr = ${o.row0} + ${s.r}; let gc = ${o.col0} + ${s.c}; ${quadLoad(o, s.reg, 'gr', 'gc', full)} }`;
    return s.guard ? `if (${s.guard}) ${body}` : body;
  })), '}'];
}

/**
 * The bindings every matmul kernel declares, as kinds for its KernelDef and as WGSL (after any
 * `enable` lines): the Params struct; a, b (f32 or f16 copies, vec4 where `vec` says), c, bias; the
 * scale parts of an f16 staging from binding 4 on (A's, then B's) with their reductions (absmax.ts
 * f16ScaleWgsl: f16Scale for A, f16ScaleB for B; by subgroups where `subgroupSize` is given: kernels that
 * enable subgroups); the uniform after them.
 */
export function matmulBindings(vec: VecFlags, f16: F16Staging | undefined, threads: number, subgroupSize = 0,
  act?: ActEpilogue): { kinds: ('read' | 'rw')[]; wgsl: string } {
  const parts: [string, string][] = [];
  if (f16?.scaleA) parts.push(['parts', 'f16Scale']);
  if (f16?.scaleB) parts.push(['partsB', 'f16ScaleB']);
  // An activation epilogue's pre binding comes after the scales, and its base is one more field of
  // Params (only in these kernels: every other kernel keeps its WGSL).
  const pre = act && act.pre !== 'none' ? act.pre : undefined;
  const n = 4 + parts.length + (pre ? 1 : 0);
  const wgsl = [act ? PARAMS_WGSL.replace('partsBBase: u32,', 'partsBBase: u32, preBase: u32,') : PARAMS_WGSL,
    `@group(0) @binding(0) var<storage, read> a: array<${operandType(vec.a, f16?.halfA)}>;`,
    `@group(0) @binding(1) var<storage, read> b: array<${operandType(vec.b, f16?.halfB)}>;`,
    `@group(0) @binding(2) var<storage, read_write> c: array<${operandType(vec.c, false)}>;`,
    '@group(0) @binding(3) var<storage, read> bias: array<f32>;',
    `@group(0) @binding(${n}) var<uniform> p: Params;`,
    ...parts.map(([name, fn], i) => `@group(0) @binding(${4 + i}) var<storage, read> ${name}: array<f32>;\n${f16ScaleWgsl(threads, fn, name, subgroupSize)}`),
    ...(pre ? [`@group(0) @binding(${4 + parts.length}) var<storage, ${pre === 'write' ? 'read_write' : 'read'}> pre: array<${operandType(vec.c, false)}>;`] : []),
    ...(act ? [geluEpilogueWgsl(act.op)] : []),
  ].join('\n');
  return { kinds: ['read', 'read', 'rw', 'read', ...parts.map(() => 'read' as const), ...(pre ? [pre === 'write' ? 'rw' as const : 'read' as const] : [])], wgsl };
}

/**
 * Causal products (MatmulArgs.causal), for attention's scores in a square per head (query rows,
 * key columns; attention-unfused.ts):
 *   'lowerC': only C's lower triangle (n <= m) is wanted; workgroups whose tile lies wholly above it
 *             return at once, leaving that part of C as it was (the diagonal tiles compute all theirs).
 *   'lowerA': A is lower triangular as stored (A[m][k] = 0 for k > m; transposed, A[k][m] = 0 for
 *             m > k): only the K steps that meet the tile's nonzero part run (non-transposed A: K up to
 *             the tile's last row; transposed: from its first), and entries above A's diagonal load as 0
 *             (StagedOperand.lower) whatever the memory holds.
 */
export type Causal = 'lowerC' | 'lowerA';

/**
 * WGSL pieces of a causal product's K loop over slices of BK (m0: the tile's first row):
 * `skip`, a statement that ends a workgroup with nothing to compute; `t0`, the first K slice; `nT`, the
 * end of the slices. Without `causal`, the plain loop (0 to all of K) and no skip.
 */
export function causalLoop(causal: Causal | undefined, transA: boolean, BM: number, BK: number): { skip: string; t0: string; nT: string } {
  const all = `(p.K + ${BK - 1}u) / ${BK}u`;
  if (causal === 'lowerC') return { skip: `if (n0 >= m0 + ${BM}u) { return; }`, t0: '0u', nT: all };
  if (causal === 'lowerA' && transA) return { skip: '', t0: `m0 / ${BK}u`, nT: all };
  if (causal === 'lowerA') return { skip: '', t0: '0u', nT: `(min(p.K, m0 + ${BM}u) + ${BK - 1}u) / ${BK}u` };
  return { skip: '', t0: '0u', nT: all };
}

/** Kernel-name suffix of a causal product. */
export function causalSuffix(causal: Causal | undefined): string {
  return causal === 'lowerC' ? '_lc' : causal === 'lowerA' ? '_la' : '';
}

/** WGSL: sa and sb, the operands' scales (1 unless scaled), and alpha with both divided out. */
export function scalesWgsl(f16: F16Staging | undefined): string {
  return `let sa = ${f16?.scaleA ? 'f16Scale(li, p.partsBase)' : '1.0'};
  let sb = ${f16?.scaleB ? 'f16ScaleB(li, p.partsBBase)' : '1.0'};
  let alpha = p.alpha / (sa * sb);`;
}
