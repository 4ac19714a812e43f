// Token embedding, f32: gather rows of a table by id, and the deterministic scatter-add backward.
//
// Shapes: table, dTable [V, D]; ids [N] (u32 or i32, on the GPU); out, dy [N, D].
//   forward:  out[n] = scale * table[ids[n]]
//   backward: dTable[v] += scale * sum over n with ids[n] == v of dy[n]   (accumulated: callers zero dTable)
// scale is 1 but for Gemma, whose embeddings are multiplied by sqrt(hidden) (times 1 is exact).
//
// The table may exceed one binding (Pythia's 50304 x 768 f32 is 154 MB, lavapipe binds 128 MiB):
// the forward runs once per table row range, and each pass writes only the tokens whose id falls
// in its range (one workgroup per token; the others return at once). Ids outside [0, V) are left
// unwritten (gpu-batch.ts rejects them on upload).
//
// Backward without float atomics: token ids are known on the host when a batch is built, so the
// host groups token indices by id (groupIds: unique ids ascending, offsets, token indices in
// token order) and one workgroup per unique id sums its dy rows in that fixed order and adds the
// sum into dTable. The sum is therefore bit-reproducible. Table row ranges over the binding limit
// map to contiguous ranges of unique ids (they are sorted); dy over the binding limit is split into
// token chunks, each with its own grouping, added in chunk order. paddingIdx (torch
// nn.Embedding(padding_idx)) leaves that row's gradient untouched. Reference: embedding.ref.ts.
import type { Gpu } from '../engine/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { ParamWriter, chunkRanges, grid, maxWindowElems, windowOf, type KernelDef } from '../engine/kernel.js';

const WG = 256;

const GATHER: KernelDef = {
  name: 'embedding_gather',
  bindings: ['read', 'read', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { rows: u32, D: u32, v0: u32, v1: u32, idBase: u32, tBase: u32, oBase: u32, scale: f32 };
@group(0) @binding(0) var<storage, read> ids: array<u32>;
@group(0) @binding(1) var<storage, read> table: array<f32>;
@group(0) @binding(2) var<storage, read_write> o: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let n = wg.x + wg.y * nwg.x;
  if (n >= p.rows) { return; }
  let id = ids[p.idBase + n];
  if (id < p.v0 || id >= p.v1) { return; }   // another table chunk's token
  let src = p.tBase + (id - p.v0) * p.D;
  let dst = p.oBase + n * p.D;
  for (var d = li; d < p.D; d += ${WG}u) { o[dst + d] = table[src + d] * p.scale; }
}`,
};

// packed = [unique (U) | offsets (U + 1) | order (M)], order = token indices relative to the chunk.
const SCATTER: KernelDef = {
  name: 'embedding_scatter_add',
  bindings: ['read', 'read', 'rw'],
  uniform: true,
  code: /* wgsl */ `
struct Params { u0: u32, u1: u32, U: u32, D: u32, v0: u32, pkBase: u32, dyBase: u32, tBase: u32, scale: f32 };
@group(0) @binding(0) var<storage, read> packed: array<u32>;
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read_write> dTable: array<f32>;
@group(0) @binding(3) var<uniform> p: Params;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wg: vec3u, @builtin(num_workgroups) nwg: vec3u, @builtin(local_invocation_index) li: u32) {
  let u = p.u0 + wg.x + wg.y * nwg.x;
  if (u >= p.u1) { return; }
  let id = packed[p.pkBase + u];
  let k0 = packed[p.pkBase + p.U + u];
  let k1 = packed[p.pkBase + p.U + u + 1u];
  let ord = p.pkBase + 2u * p.U + 1u;
  let dst = p.tBase + (id - p.v0) * p.D;
  for (var d = li; d < p.D; d += ${WG}u) {
    var s = 0.0;
    for (var k = k0; k < k1; k++) { s += dy[p.dyBase + packed[ord + k] * p.D + d]; }
    dTable[dst + d] += s * p.scale;
  }
}`,
};

function check(what: string, t: Tensor, n: number, dtypes: string[]): void {
  if (!dtypes.includes(t.dtype)) throw new TypeError(`${what}: ${t} must be ${dtypes.join(' or ')}`);
  if (t.numel < n) throw new RangeError(`${what}: ${t} has ${t.numel} elements, needs ${n}`);
}

/** Rows of D floats that one binding window holds. */
function rowsPerWindow(gpu: Gpu, D: number): number {
  const r = Math.floor(maxWindowElems(gpu) / Math.max(1, D));
  if (r < 1) throw new RangeError(`embedding: one row of ${D} floats exceeds the binding limit`);
  return r;
}

export interface EmbeddingForwardArgs {
  /** [V, D] f32. */
  table: Tensor;
  /** [N] u32 or i32 token ids in [0, V). */
  ids: Tensor;
  /** [N, D] f32, written. */
  out: Tensor;
  N: number; V: number; D: number;
  /** Multiplies the gathered rows (Gemma's sqrt(hidden)); default 1. */
  scale?: number;
}

/** out[n] = scale * table[ids[n]] for n < N. */
export function embeddingForward(gpu: Gpu, a: EmbeddingForwardArgs): void {
  const { table, ids, out, N, V, D } = a;
  check('embedding table', table, V * D, ['f32']);
  check('embedding ids', ids, N, ['u32', 'i32']);
  check('embedding out', out, N * D, ['f32']);
  if (N === 0 || D === 0) return;
  const k = gpu.kernels.get(GATHER);
  const rows = rowsPerWindow(gpu, D);
  for (const [n0, n1] of chunkRanges(N, rows)) {
    const wi = windowOf(gpu, ids, n0, n1);
    const wo = windowOf(gpu, out, n0 * D, n1 * D);
    for (const [v0, v1] of chunkRanges(V, rows)) {
      const wt = windowOf(gpu, table, v0 * D, v1 * D);
      const params = new ParamWriter().u32(n1 - n0, D, v0, v1, wi.base, wt.base, wo.base).f32(a.scale ?? 1).bytes();
      gpu.recorder.dispatch(k, [wi.range, wt.range, wo.range], params, grid(n1 - n0));
    }
  }
}

/** Token indices grouped by id: the tokens of unique[u] are order[offsets[u] .. offsets[u + 1]). */
export interface IdGroups {
  /** Distinct ids, ascending. */
  unique: Uint32Array;
  /** [unique.length + 1] start of each id's run in order. */
  offsets: Uint32Array;
  /** Token indices (relative to `first`), grouped by id, in token order within a group. */
  order: Uint32Array;
}

/**
 * Groups the token indices [first, end) of `ids` by id (host side; ids are known when the batch
 * is built). Tokens with id === paddingIdx are left out (their row gets no gradient).
 */
export function groupIds(ids: ArrayLike<number>, opts: { first?: number; end?: number; paddingIdx?: number } = {}): IdGroups {
  const first = opts.first ?? 0; const end = opts.end ?? ids.length;
  let count = 0; let maxId = 0;
  for (let n = first; n < end; n++) {
    const id = ids[n];
    if (!Number.isInteger(id) || id < 0 || id > 0xffffffff) throw new RangeError(`embedding: ids[${n}] = ${id} is not a valid id`);
    if (id !== opts.paddingIdx) { count++; maxId = Math.max(maxId, id); }
  }
  // Token indices (from first) by id, then by index. Typically as one numeric key per token,
  // id * 2^22 + index, sorted natively (exact below 2^53; this runs on the host for every batch,
  // while the GPU may wait: a comparator sort took ~3x as long at 6k tokens).
  const order = new Uint32Array(count);
  if (end - first <= 2 ** 22 && maxId < 2 ** 31) {
    const keys = new Float64Array(count);
    for (let n = first, k = 0; n < end; n++) if (ids[n] !== opts.paddingIdx) keys[k++] = ids[n] * 4194304 + (n - first);
    keys.sort();
    for (let k = 0; k < count; k++) order[k] = keys[k] % 4194304;
  } else {
    const idx: number[] = [];
    for (let n = first; n < end; n++) if (ids[n] !== opts.paddingIdx) idx.push(n - first);
    idx.sort((a, b) => (ids[first + a] - ids[first + b]) || (a - b));
    order.set(idx);
  }
  const unique = new Uint32Array(count); const offsets = new Uint32Array(count + 1);
  let U = 0;
  for (let k = 0; k < count; k++) {
    const id = ids[first + order[k]];
    if (U === 0 || id !== unique[U - 1]) { unique[U] = id; offsets[U++] = k; }
  }
  offsets[U] = count;
  return { unique: unique.slice(0, U), offsets: offsets.slice(0, U + 1), order };
}

/** The backward's GPU-side plan for one batch: token chunks (dy windows), each grouped and uploaded. */
export interface EmbeddingGradPlan {
  N: number; D: number;
  chunks: { t0: number; t1: number; groups: IdGroups; packed: Tensor }[];
}

/**
 * Builds and uploads the id grouping for a batch's host ids [N] (do it when the batch is built:
 * the upload flushes recorded work). Release with releaseEmbeddingGradPlan.
 */
export function prepareEmbeddingGrad(gpu: Gpu, ids: ArrayLike<number>, D: number, paddingIdx?: number): EmbeddingGradPlan {
  const N = ids.length;
  const chunks: EmbeddingGradPlan['chunks'] = [];
  for (const [t0, t1] of chunkRanges(N, rowsPerWindow(gpu, D))) {
    const g = groupIds(ids, { first: t0, end: t1, paddingIdx });
    const U = g.unique.length;
    const packed = new Uint32Array(2 * U + 1 + g.order.length);
    packed.set(g.unique, 0); packed.set(g.offsets, U); packed.set(g.order, 2 * U + 1);
    chunks.push({ t0, t1, groups: g, packed: gpu.tensor([packed.length], packed, 'u32', 'embedding groups') });
  }
  return { N, D, chunks };
}

export function releaseEmbeddingGradPlan(gpu: Gpu, plan: EmbeddingGradPlan): void {
  for (const c of plan.chunks) gpu.pool.release(c.packed);
  plan.chunks = [];
}

export interface EmbeddingBackwardArgs {
  /** [N, D] gradient of the gathered rows. */
  dy: Tensor;
  /** [V, D] accumulated (+=). */
  dTable: Tensor;
  N: number; V: number; D: number;
  /** Host ids [N]: grouped and uploaded here (flushes recorded work), freed after. */
  ids?: ArrayLike<number>;
  /** Or a plan made beforehand with prepareEmbeddingGrad (ids and paddingIdx are then ignored). */
  plan?: EmbeddingGradPlan;
  /** Id whose row receives no gradient (torch padding_idx). */
  paddingIdx?: number;
  /** The forward's scale (the sums are multiplied by it); default 1. */
  scale?: number;
}

/** dTable[v] += scale * sum of dy[n] over tokens n with ids[n] == v, in a fixed order (deterministic). */
export function embeddingBackward(gpu: Gpu, a: EmbeddingBackwardArgs): void {
  const { dy, dTable, N, V, D } = a;
  check('embeddingBackward dy', dy, N * D, ['f32']);
  check('embeddingBackward dTable', dTable, V * D, ['f32']);
  if (!a.plan && !a.ids) throw new Error('embeddingBackward: give ids or a plan');
  if (a.ids && a.ids.length !== N) throw new RangeError(`embeddingBackward: ${a.ids.length} ids for N=${N}`);
  if (a.plan && (a.plan.N !== N || a.plan.D !== D)) throw new RangeError('embeddingBackward: plan is for another N or D');
  if (N === 0 || D === 0) return;
  const plan = a.plan ?? prepareEmbeddingGrad(gpu, a.ids!, D, a.paddingIdx);
  const k = gpu.kernels.get(SCATTER);
  const rows = rowsPerWindow(gpu, D);
  for (const c of plan.chunks) {
    const { unique } = c.groups;
    const U = unique.length;
    if (U === 0) continue;
    if (unique[U - 1] >= V) throw new RangeError(`embeddingBackward: id ${unique[U - 1]} outside [0, ${V})`);
    const wpk = windowOf(gpu, c.packed);
    const wdy = windowOf(gpu, dy, c.t0 * D, c.t1 * D);
    for (const [v0, v1] of chunkRanges(V, rows)) {
      const u0 = lowerBound(unique, v0); const u1 = lowerBound(unique, v1);
      if (u0 === u1) continue;
      // Bind only the table rows this chunk's ids touch.
      const wt = windowOf(gpu, dTable, unique[u0] * D, (unique[u1 - 1] + 1) * D);
      const params = new ParamWriter().u32(u0, u1, U, D, unique[u0], wpk.base, wdy.base, wt.base).f32(a.scale ?? 1).bytes();
      gpu.recorder.dispatch(k, [wpk.range, wdy.range, wt.range], params, grid(u1 - u0));
    }
  }
  if (!a.plan) releaseEmbeddingGradPlan(gpu, plan);
}

function lowerBound(a: Uint32Array, v: number): number {
  let lo = 0; let hi = a.length;
  while (lo < hi) { const m = (lo + hi) >> 1; if (a[m] < v) lo = m + 1; else hi = m; }
  return lo;
}
