// A whole model's gradient against finite differences of its own f32 forward, for model settings no
// Hugging Face fixture covers. For L = sum_t w_t log p_t (fixed random w), the directional derivative
// along a random direction v of every parameter, sum(grad . v), against central differences of
// L(theta + s v) at s = h and h/2, Richardson-extrapolated.
//
// The weights start from a fixture's; a parameter the changed config shapes differently (or adds) is
// drawn as transformers would draw a weight (normal, std 0.02), biases included, so that every
// parameter takes part in the function.
import { loadModel } from '../../src/model/load.js';
import { buildBatch } from '../../src/model/batch.js';
import { releaseBatch, uploadBatch } from '../../src/model/gpu-batch.js';
import { CausalLM } from '../../src/model/causal-lm.js';
import { Params } from '../../src/model/params.js';
import { expectedParameters } from '../../src/model/tensor-names.js';
import type { ModelConfig } from '../../src/model/config.js';
import type { Gpu } from '../../src/engine/gpu.js';
import type { Rng } from './random.js';

export interface ModelFd {
  fd: number; analytic: number; drawn: string[];
  /**
   * The same along a direction in the drawn parameters only (when there are any): their share of the
   * whole-model derivative is small, so an error confined to them (a bias, an untied lm_head) would
   * hide inside the tolerance of the check over every parameter.
   */
  drawnOnly?: { fd: number; analytic: number };
}

/**
 * Pairs as [prompt length, chosen length, rejected length], packed (the prompt shared). `adjust` rewrites a fixture
 * tensor taken over (e.g. norm gains stored as gain - 1 under Gemma's convention); `drawnScale` is the size of the
 * drawn-only direction's entries (larger where the drawn parameters are few and weak: norm gains alone).
 */
export async function modelGradientFd(gpu: Gpu, fixtureDir: string, change: Partial<ModelConfig>, rng: Rng,
  pairs: [number, number, number][] = [[7, 6, 5], [4, 8, 3]], adjust?: (name: string, x: Float32Array) => Float32Array,
  drawnScale = 0.01): Promise<ModelFd> {
  const m = await loadModel(gpu, fixtureDir);
  const cfg = { ...m.cfg, ...change };
  const specs = expectedParameters(cfg);
  const params = new Params(gpu, specs).allocate();
  params.allocateGrads();
  const theta = new Map<string, Float32Array>();
  const drawn: string[] = [];
  const have = new Map(m.params.specs.map((s) => [s.name, s.shape.join('x')]));
  for (const s of specs) {
    if (have.get(s.name) === s.shape.join('x')) {
      const x = await gpu.readF32(m.params.get(s.name));
      theta.set(s.name, adjust ? adjust(s.name, x) : x);
    }
    else {
      theta.set(s.name, Float32Array.from({ length: s.shape.reduce((a, b) => a * b, 1) }, () => 0.02 * rng.normal()));
      drawn.push(s.name);
    }
  }
  m.params.free();
  const model = new CausalLM(gpu, cfg, params);
  const V = cfg.vocabSize;
  const ids = (n: number) => Array.from({ length: n }, () => rng.int(V));
  const layout = buildBatch(pairs.map(([p, c, r]) => ({ prompt: ids(p), completions: [ids(c), ids(r)] })), { packed: true });
  const batch = uploadBatch(gpu, layout, V);
  const w = Float32Array.from({ length: batch.N }, () => rng.normal());
  let dir = new Map<string, Float32Array>();
  const set0 = () => { for (const sp of specs) gpu.upload(params.get(sp.name), theta.get(sp.name)!); };
  const set = (s: number) => {
    for (const sp of specs) {
      const t0 = theta.get(sp.name)!; const v = dir.get(sp.name)!;
      gpu.upload(params.get(sp.name), Float32Array.from(t0, (x, i) => x + s * v[i]));
    }
  };
  const loss = async (s: number) => {
    set(s);
    const st = model.forward(batch, false);
    const logp = await gpu.readF32(st.logp);
    gpu.pool.release(st.logp);
    let L = 0;
    for (let i = 0; i < batch.N; i++) L += w[i] * logp[i];
    return L;
  };
  // The gradient under test, once, at theta.
  set0();
  params.zeroGrads();
  const st = model.forward(batch, true);
  const tw = gpu.tensor([batch.N], w);
  model.backward(st, tw);
  const grads = new Map<string, Float32Array>();
  for (const sp of specs) grads.set(sp.name, await gpu.readF32(params.grad(sp.name)));
  gpu.pool.release(st.logp, tw);

  // h = 1 left a truncation error of ~5e-3 even on a fixture, and h = 0.25 once 1.2e-3 after Richardson
  // (four query heads on one freshly drawn key/value head, a curved direction; seed 650842073). At 0.1 the
  // truncation is ~1e-5 there, and f32 rounding of L (~2e-6 at |L| ~ 30) adds ~4e-5.
  const h = 0.1;
  // The directional derivative along a random direction is ~N(0, 1) here, so about one direction in
  // a hundred is nearly orthogonal to the gradient and checks nothing (|fd| < 0.01 once failed CI with a
  // right gradient). Such a direction is redrawn, up to 4 times: the choice looks at the finite
  // differences only, never at the gradient under test.
  const directional = async (inDirection: (name: string) => boolean, scale: number) => {
    let fd = 0;
    for (let draw = 0; draw < 4 && Math.abs(fd) < 0.05; draw++) {
      dir = new Map(specs.map((s) => [s.name, Float32Array.from(theta.get(s.name)!, () => (inDirection(s.name) ? scale * rng.normal() : 0))]));
      const c1 = ((await loss(h)) - (await loss(-h))) / (2 * h);
      const c2 = ((await loss(h / 2)) - (await loss(-h / 2))) / h;
      fd = (4 * c2 - c1) / 3;
    }
    let analytic = 0;
    for (const sp of specs) {
      const g = grads.get(sp.name)!; const v = dir.get(sp.name)!;
      for (let i = 0; i < g.length; i++) analytic += g[i] * v[i];
    }
    return { fd, analytic };
  };
  const all = await directional(() => true, 0.01);
  // The same step size (a step of 0.1 along each drawn weight, half its std of 0.02, left the
  // curvature of a freshly drawn key/value head in the differences: 2% off a right gradient).
  const drawnOnly = drawn.length ? await directional((n) => drawn.includes(n), drawnScale) : undefined;
  releaseBatch(gpu, batch);
  params.free();
  return { ...all, drawn, ...(drawnOnly ? { drawnOnly } : {}) };
}
