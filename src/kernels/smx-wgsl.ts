// WGSL for 16x16 subgroup matrices (tensor cores through Dawn's chromium-experimental-subgroup-matrix),
// in two dialects with the same meaning:
//   native:   subgroup_matrix_left/right<f16, 16, 16> and subgroup_matrix_result<f32, 16, 16>,
//             loaded, multiplied and stored by the whole subgroup (needs gpu.smxF16);
//   emulated: plain WGSL on any adapter with f16 and subgroups (lavapipe), so CI checks the
//             tensor-core kernels' tiling, offsets, strides, masks and epilogues: everything except
//             the hardware's matrix ops, which test/engine/matmul-f16.test.ts checks natively where
//             an adapter has them. Its loads and stores also do what Dawn's robustness transform
//             makes of native ones (bounds predicate, stride at least 16), so the emulated checks
//             meet that too. Every invocation holds whole matrices (array<f32, 256>, row-major)
//             and does the whole product itself: the subgroup's invocations compute identical values
//             and their stores write identical values. Redundant, and lavapipe's LLVM takes 10-25 s
//             to compile one such kernel (without its shader cache), but a form that spread the
//             matrices over the lanes as the hardware does compiled slower still.
// Kernels emit statements through a dialect (load, multiply-accumulate, store, scale) instead of
// writing subgroup-matrix calls themselves, so one generator serves both.
//
// Layouts follow the WGSL extension: a matrix of R rows and C columns loaded 'row_major' from
// `offset` with `stride` has element (i, j) at offset + i * stride + j; 'col_major' at
// offset + j * stride + i. Left matrices are M x K (16 x 16), right K x N, results M x N.

export type SmxKind = 'left' | 'right' | 'result';
export type SmxLayout = 'row_major' | 'col_major';

export interface SmxDialect {
  emulated: boolean;
  /** `enable` lines (and diagnostics) the kernel starts with. */
  header: string;
  /** Declares a zero result matrix. */
  declResult(name: string): string;
  /**
   * Declares result matrix `name` = l * r: a product that starts a sum, so no zero matrix is
   * declared and accumulated onto (inside a loop that would ask the compiler to re-zero a variable
   * every iteration; the kernels' per-tile sums start this way).
   */
  mul(name: string, l: string, r: string): string;
  /**
   * Loads a matrix from array `src` (workgroup or storage; f16 for left/right, f32 for results).
   * Declares `name` unless `assign` (then `name` is an existing result variable).
   */
  load(kind: SmxKind, name: string, src: string, offset: string, layout: SmxLayout, stride: string, assign?: boolean): string;
  /** acc += l * r. */
  mma(acc: string, l: string, r: string): string;
  /** Stores result matrix m into f32 array `dst`. */
  store(dst: string, offset: string, m: string, layout: SmxLayout, stride: string): string;
  /** m *= factor (an f32 expression), in place. */
  scale(m: string, factor: string): string;
  /** The whole module's WGSL as the kernel passes it (the emulation adds what its loads need). */
  module(code: string): string;
}

const F = 16;
const TYPE: Record<SmxKind, string> = {
  left: `subgroup_matrix_left<f16, ${F}, ${F}>`,
  right: `subgroup_matrix_right<f16, ${F}, ${F}>`,
  result: `subgroup_matrix_result<f32, ${F}, ${F}>`,
};

export const NATIVE_SMX: SmxDialect = {
  emulated: false,
  header: 'enable f16;\nenable subgroups;\nenable chromium_experimental_subgroup_matrix;\n' +
    // Offsets depend on the subgroup index (local index / subgroup size): uniform within a subgroup,
    // which is all the hardware needs, but not workgroup-uniform as the analysis asks.
    'diagnostic(off, chromium.subgroup_matrix_uniformity);',
  declResult: (name) => `var ${name} = ${TYPE.result}();`,
  mul: (name, l, r) => `var ${name} = subgroupMatrixMultiply<f32>(${l}, ${r});`,
  load: (kind, name, src, offset, layout, stride, assign) =>
    `${assign ? '' : 'let '}${name} = subgroupMatrixLoad<${TYPE[kind]}, ${layout}>(&${src}, ${offset}, ${stride});`,
  mma: (acc, l, r) => `${acc} = subgroupMatrixMultiplyAccumulate(${l}, ${r}, ${acc});`,
  store: (dst, offset, m, layout, stride) => `subgroupMatrixStore<${layout}>(&${dst}, ${offset}, ${m}, ${stride});`,
  scale: (m, factor) => `${m} = subgroupMatrixScalarMultiply(${m}, ${factor});`,
  module: (code) => code,
};

/** Index of element e_ (= 16 i + j) of a matrix stored with `layout`. */
const elemE = (offset: string, layout: SmxLayout, stride: string) => layout === 'row_major'
  ? `(${offset}) + (e_ / ${F}u) * (${stride}) + e_ % ${F}u`
  : `(${offset}) + (e_ % ${F}u) * (${stride}) + e_ / ${F}u`;
/**
 * What Dawn's robustness transform (Tint) does to every native subgroup-matrix load and store, so the
 * emulation meets it too: the stride raised to at least the matrix's width (16), and the access done
 * only when its last element lies inside the array (offset + 15 stride + 16 <= length; a load out of
 * range gives a zero matrix, a store nothing). `body` indexes with o_ (offset) and s_ (stride).
 */
const predicated = (arr: string, offset: string, stride: string, body: string) =>
  `{ let o_ = ${offset}; let s_ = max(${stride}, ${F}u); if (o_ + s_ * ${F - 1}u + ${F}u <= ${arr}_len_()) { ${body} } }`;

/** fn NAME_len_() for every array the module declares: its length in elements, as the transform sees it. */
function arrayLengths(code: string): string {
  const out: string[] = [];
  for (const m of code.matchAll(/var<workgroup>\s+(\w+)\s*:\s*array<[^,<>]+,\s*(\d+)\s*>/g)) {
    out.push(`fn ${m[1]}_len_() -> u32 { return ${m[2]}u; }`);
  }
  for (const m of code.matchAll(/var<storage[^>]*>\s+(\w+)\s*:\s*array<[^,<>]+>\s*;/g)) {
    out.push(`fn ${m[1]}_len_() -> u32 { return arrayLength(&${m[1]}); }`);
  }
  return `\n${out.join('\n')}\n`;
}

export const EMULATED_SMX: SmxDialect = {
  emulated: true,
  header: 'enable f16;\nenable subgroups;',
  declResult: (name) => `var ${name} = array<f32, ${F * F}>();`,
  mul: (name, l, r) => `${EMULATED_SMX.declResult(name)} ${EMULATED_SMX.mma(name, l, r)}`,
  load: (_kind, name, src, offset, layout, stride, assign) =>
    `${assign ? `${name} = array<f32, ${F * F}>();` : `var ${name} = array<f32, ${F * F}>();`} ` +
    `${predicated(src, offset, stride, `for (var e_ = 0u; e_ < ${F * F}u; e_++) { ${name}[e_] = f32(${src}[${elemE('o_', layout, 's_')}]); }`)}`,
  // Each 16-term dot product is summed apart and added to the accumulator once, as the hardware
  // does: folding every term into a large accumulator (C / alpha when accumulating) would round
  // 16 times as often.
  mma: (acc, l, r) => `for (var i_ = 0u; i_ < ${F}u; i_++) { for (var j_ = 0u; j_ < ${F}u; j_++) {` +
    ' var s_ = 0.0;' +
    ` for (var k_ = 0u; k_ < ${F}u; k_++) { s_ = fma(${l}[i_ * ${F}u + k_], ${r}[k_ * ${F}u + j_], s_); }` +
    ` ${acc}[i_ * ${F}u + j_] += s_; } }`,
  store: (dst, offset, m, layout, stride) =>
    predicated(dst, offset, stride, `for (var e_ = 0u; e_ < ${F * F}u; e_++) { ${dst}[${elemE('o_', layout, 's_')}] = ${m}[e_]; }`),
  scale: (m, factor) => `{ let f_ = ${factor}; for (var e_ = 0u; e_ < ${F * F}u; e_++) { ${m}[e_] *= f_; } }`,
  module: (code) => code + arrayLengths(code),
};

export const smxDialect = (emulated: boolean): SmxDialect => (emulated ? EMULATED_SMX : NATIVE_SMX);
