// Many tensors in few buffers ("arenas"), and the runs of them that one dispatch can walk.
//
// A model's parameters, their gradients and the optimizer's state are hundreds of tensors (292 at
// Pythia-410m), and the elementwise work over all of them (the gradient norm, the optimizer update,
// zeroing the gradients) was one dispatch per tensor: about a fifth of a training step's dispatches,
// each costing the host tens of microseconds to record (bench/RESULTS.md, run 7). Laid out back to back
// in arenas, with the gradients and the state mirroring the parameters' layout, the same work is one
// dispatch per arena (coalesce()), on exactly the same elements: adjacent tensors only, no gaps.
import type { Gpu } from './gpu.js';
import { Tensor } from './tensor.js';

/** One arena per this many bytes at most (a buffer and one binding window must hold it). */
function arenaBytes(gpu: Gpu): number {
  return Math.min(gpu.limits.maxBufferSize, gpu.maxBinding - gpu.bindingAlign);
}

/**
 * Zeroed f32 tensors of `shapes`, back to back in as few pooled buffers as the adapter's limits allow
 * (a tensor over the limit gets a buffer of its own). `arenas` are what to release.
 */
export function allocateArenas(gpu: Gpu, shapes: readonly (readonly number[])[], label: string): { views: Tensor[]; arenas: Tensor[] } {
  const limit = arenaBytes(gpu);
  const numel = shapes.map((s) => s.reduce((a, b) => a * b, 1));
  const groups: number[][] = [];
  let bytes = Infinity;
  numel.forEach((n, i) => {
    if (bytes + 4 * n > limit) { groups.push([]); bytes = 0; }
    groups[groups.length - 1].push(i);
    bytes += 4 * n;
  });
  const views: Tensor[] = new Array(shapes.length);
  const arenas = groups.map((g) => {
    const total = g.reduce((s, i) => s + numel[i], 0);
    const arena = gpu.pool.acquire([Math.max(1, total)], 'f32', `${label} arena`, true);
    gpu.recorder.clear({ buffer: arena.buffer, offset: arena.offset, size: Math.max(4, total * 4) });
    let at = 0;
    for (const i of g) { views[i] = arena.view(shapes[i], at); at += numel[i]; }
    return arena;
  });
  return { views, arenas };
}

/**
 * Zeroed f32 tensors shaped and laid out like `like`: tensors of `like` that share a buffer get views
 * at the same byte offsets of one new buffer, so runs that coalesce() finds in `like` are runs here too.
 */
export function acquireLike(gpu: Gpu, like: readonly Tensor[], label: string): { views: Tensor[]; arenas: Tensor[] } {
  const ends = new Map<GPUBuffer, number>(); // bytes each buffer of `like` needs
  for (const t of like) ends.set(t.buffer, Math.max(ends.get(t.buffer) ?? 0, t.offset + t.bytes));
  const arenaOf = new Map([...ends].map(([buffer, end]) => {
    const arena = gpu.pool.acquire([Math.ceil(end / 4)], 'f32', label, true);
    gpu.recorder.clear({ buffer: arena.buffer, offset: 0, size: Math.ceil(end / 4) * 4 });
    return [buffer, arena];
  }));
  const views = like.map((t) => new Tensor(arenaOf.get(t.buffer)!.buffer, t.offset, t.shape, 'f32'));
  return { views, arenas: [...arenaOf.values()] };
}

/** A run of tensors [first, last] of every list, back to back in their buffers, as one tensor per list. */
export interface Run { first: number; last: number; tensors: Tensor[] }

/**
 * Splits parallel lists of f32 tensors (lists[j][k]: tensor k of list j, the same shape in every
 * list) into maximal runs of consecutive k whose tensors lie back to back in one buffer in every list
 * (tensor k + 1 starts where tensor k ends): elementwise work over a run is the same as over its
 * tensors one by one. Tensors allocated apart are runs of one.
 */
export function coalesce(lists: readonly (readonly Tensor[])[]): Run[] {
  const n = lists[0]?.length ?? 0;
  for (const l of lists) if (l.length !== n) throw new RangeError(`coalesce: lists of ${n} and ${l.length} tensors`);
  const runs: Run[] = [];
  const adjacent = (k: number) => lists.every((l) => {
    const a = l[k - 1]; const b = l[k];
    return a.dtype === 'f32' && b.dtype === 'f32' && b.buffer === a.buffer && b.offset === a.offset + a.bytes;
  });
  let first = 0;
  for (let k = 1; k <= n; k++) {
    if (k < n && adjacent(k)) continue;
    const elems = (k === first + 1) ? undefined : lists[0].slice(first, k).reduce((s, t) => s + t.numel, 0);
    runs.push({
      first, last: k - 1,
      tensors: lists.map((l) => (elems === undefined ? l[first] : new Tensor(l[first].buffer, l[first].offset, [elems], 'f32'))),
    });
    first = k;
  }
  return runs;
}
