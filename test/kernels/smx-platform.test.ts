// What the tensor-core attention kernels (attention-smx*.ts) take from the adapter, each checked
// alone so that a failure there names its cause: f16 workgroup stores by neighbouring invocations,
// subgroup shuffles at every xor distance, and a 16x16 product S = Q K^T (K read column-major from
// f16 workgroup memory) stored to f32 workgroup memory and read back by the lanes, with Q held
// across barriers, S declared afresh in a loop, and S started by a product (subgroupMatrixMultiply,
// as the kernels start each tile's sums) in a loop; then four subgroups in one workgroup, each with
// its own rows, and O = P V with V a row-major right operand and P from an f16 array of its own. Natively where
// the adapter has an f16 subgroup-matrix config (the third case emulated elsewhere: smx-wgsl.ts).
// Inputs are small integers, so every expected value is exact in f16 and f32.
import { describe, expect, it, type TestContext } from 'vitest';
import { getGpu } from '../helpers/gpu.js';
import { makeRng } from '../helpers/random.js';
import { windowOf, type KernelDef } from '../../src/engine/kernel.js';
import type { Gpu } from '../../src/engine/gpu.js';
import { smxDialect, type SmxDialect } from '../../src/kernels/smx-wgsl.js';

process.env.GALLIVM_PERF ??= 'nopt';
// Lavapipe's 8-lane subgroups here (256-bit vectors, its default); the rest of the suite runs 4 lanes
// (vitest.config.ts), so the subgroup code is checked at both sizes. Read when the device is made.
process.env.LP_NATIVE_VECTOR_WIDTH = '256';
const rng = makeRng();

/** Runs a one-workgroup kernel whose only binding is out (n f32) and returns out. */
async function runOut(gpu: Gpu, def: KernelDef, n: number): Promise<Float32Array> {
  const out = gpu.tensor([n]);
  gpu.recorder.dispatch(gpu.kernels.get(def), [windowOf(gpu, out).range], undefined, [1, 1, 1]);
  return gpu.readF32(out);
}

/** Runs `body` with the tensor-core kernels' dialect, native where the adapter has an f16 subgroup-matrix
 *  config, else emulated (nothing where neither runs). */
async function withSmx(ctx: TestContext, body: (gpu: Gpu, sg: number, sm: SmxDialect) => Promise<void>): Promise<void> {
  const gpu = await getGpu();
  gpu.emulateSmx = !gpu.smxF16;
  try {
    if (!gpu.smxMode) { ctx.skip('no f16 subgroup matrices, native or emulated, on this adapter'); return; }
    await body(gpu, gpu.fixedSubgroupSize, smxDialect(gpu.smxMode === 'emulated'));
  } finally {
    gpu.emulateSmx = false;
  }
}

describe('the adapter, as the tensor-core attention uses it', () => {
  it('f16 workgroup stores by neighbouring invocations (single halves, as lanes interleave) all land', async (ctx) => {
    const gpu = await getGpu();
    if (!gpu.features.shaderF16) { ctx.skip('no shader-f16 on this adapter'); return; }
    const N = 1024; const WG = 64;
    // Element e is written by invocation e % WG (neighbours write the two halves of one 32-bit word
    // in the same instruction), then read back by another invocation after the barrier.
    const def: KernelDef = {
      name: 'probe_f16_interleaved_stores', bindings: ['rw'],
      code: `enable f16;
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
var<workgroup> W: array<f16, ${N}>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) li: u32) {
  for (var e = li; e < ${N}u; e += ${WG}u) { W[e] = f16(f32(e % 2048u) - 1000.0); }
  workgroupBarrier();
  for (var e = li; e < ${N}u; e += ${WG}u) { let s = ${N - 1}u - e; out[s] = f32(W[s]); }
}`,
    };
    const got = await runOut(gpu, def, N);
    const bad = [...got].map((v, e) => [e, v, (e % 2048) - 1000]).filter(([, v, w]) => v !== w);
    expect(bad.slice(0, 8), `${bad.length} of ${N} halves lost or wrong`).toEqual([]);
  });

  it('subgroup shuffles at every xor distance below the subgroup size', async (ctx) => {
    const gpu = await getGpu();
    const sg = gpu.fixedSubgroupSize;
    if (!gpu.features.subgroups || !sg) { ctx.skip('no subgroups of a fixed size on this adapter'); return; }
    const WG = Math.max(64, sg * 2);
    const dists: number[] = [];
    for (let d = 1; d < sg; d *= 2) dists.push(d);
    const def: KernelDef = {
      name: `probe_shuffle_xor_sg${sg}`, bindings: ['rw'],
      code: `enable subgroups;
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) li: u32) {
  let x = f32(li) * 2.0 + 1.0;
  ${dists.map((d, i) => `out[${i * WG}u + li] = subgroupShuffleXor(x, ${d}u);`).join('\n  ')}
}`,
    };
    const got = await runOut(gpu, def, dists.length * WG);
    dists.forEach((d, i) => {
      const bad: number[] = [];
      for (let l = 0; l < WG; l++) if (got[i * WG + l] !== (l ^ d) * 2 + 1) bad.push(l);
      expect(bad.slice(0, 8), `xor ${d} (subgroup size ${sg}): ${bad.length} lanes wrong`).toEqual([]);
    });
  });

  it('S = Q K^T as the attention kernels form it: Q row-major, K column-major from f16 staging, S through f32 scratch, Q held over the walk, S declared per tile', async (ctx) => {
    await withSmx(ctx, async (gpu, sg, sm) => {
      const RSH = 24; const SW = 32; // padded rows as the kernels use them
      const q = Array.from({ length: 256 }, () => rng.int(15) - 7);
      const k = Array.from({ length: 256 }, () => rng.int(15) - 7);
      // Q at KV rows 0..15, K at rows 16..31, both [row][d] with row stride RSH; written one half per
      // invocation from constants.
      const lit = (a: number[]) => `array<f32, 256>(${a.map((x) => x.toFixed(1)).join(', ')})`;
      const def: KernelDef = {
        name: `probe_smx_qkt_sg${sg}${sm.emulated ? '_emu' : ''}`, bindings: ['rw'],
        code: sm.module(`${sm.header}
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
var<workgroup> KV: array<f16, ${32 * RSH}>;
var<workgroup> Ss: array<f32, ${80 * SW}>;
const QV = ${lit(q)};
const KVAL = ${lit(k)};
@compute @workgroup_size(${sg})
fn main(@builtin(local_invocation_index) li: u32) {
  for (var e = li; e < 256u; e += ${sg}u) {
    KV[(e / 16u) * ${RSH}u + e % 16u] = f16(QV[e]);
    KV[(16u + e / 16u) * ${RSH}u + e % 16u] = f16(KVAL[e]);
  }
  workgroupBarrier();
  ${sm.load('left', 'qf', 'KV', '0u', 'row_major', `${RSH}u`)}
  ${sm.load('right', 'kf', 'KV', `${16 * RSH}u`, 'col_major', `${RSH}u`)}
  ${sm.declResult('s')}
  ${sm.mma('s', 'qf', 'kf')}
  // Q's fragment is held, as the kernels hold their owned fragments over the tile walk: its source
  // rows are overwritten (and read as the next tile's K) before it is used again.
  workgroupBarrier();
  for (var e = li; e < 256u; e += ${sg}u) { KV[(e / 16u) * ${RSH}u + e % 16u] = f16(KVAL[255u - e]); }
  workgroupBarrier();
  ${sm.load('right', 'kf2', 'KV', '0u', 'col_major', `${RSH}u`)}
  ${sm.declResult('s2')}
  ${sm.mma('s2', 'qf', 'kf2')}
  ${sm.store('Ss', `${16 * SW + 16}u`, 's2', 'row_major', `${SW}u`)}
  // A result matrix declared inside a loop (as the kernels declare their per-tile scores) starts
  // from zero in every iteration: both iterations store Q K2^T, not a running sum.
  for (var it = 0u; it < 2u; it++) {
    ${sm.declResult('sl')}
    ${sm.mma('sl', 'qf', 'kf2')}
    ${sm.store('Ss', `${32 * SW}u + it * ${16 * SW}u`, 'sl', 'row_major', `${SW}u`)}
  }
  // A per-tile sum started by a product (subgroupMatrixMultiply, as the attention kernels start theirs)
  // rather than by a zero matrix: the second iteration's.
  for (var it = 0u; it < 2u; it++) {
    ${sm.mul('sm', 'qf', 'kf2')}
    if (it == 1u) { ${sm.store('Ss', `${64 * SW}u`, 'sm', 'row_major', `${SW}u`)} }
  }
  ${sm.store('Ss', '16u', 's', 'row_major', `${SW}u`)}
  workgroupBarrier();
  for (var e = li; e < 256u; e += ${sg}u) {
    out[e] = Ss[16u + (e / 16u) * ${SW}u + e % 16u];
    out[256u + e] = Ss[${16 * SW + 16}u + (e / 16u) * ${SW}u + e % 16u];
    out[512u + e] = Ss[${32 * SW}u + (e / 16u) * ${SW}u + e % 16u];
    out[768u + e] = Ss[${48 * SW}u + (e / 16u) * ${SW}u + e % 16u];
    out[1024u + e] = Ss[${64 * SW}u + (e / 16u) * ${SW}u + e % 16u];
  }
}`),
      };
      const got = await runOut(gpu, def, 1280);
      const k2 = [...k].reverse();
      [k, k2, k2, k2, k2].forEach((kk, m) => {
        const bad: string[] = [];
        for (let i = 0; i < 16; i++) for (let j = 0; j < 16; j++) {
          let s = 0; for (let d = 0; d < 16; d++) s += q[i * 16 + d] * kk[j * 16 + d];
          if (got[m * 256 + i * 16 + j] !== s) bad.push(`(${i},${j}) ${got[m * 256 + i * 16 + j]} vs ${s}`);
        }
        const what = ['first product', 'with Q held over a barrier and its source overwritten',
          'declared in a loop, first iteration', 'declared in a loop, second iteration (must not accumulate)',
          'started by a product in a loop, second iteration'][m];
        expect(bad.slice(0, 6), `${what}: ${bad.length} of 256 scores wrong (seed ${rng.seed})`).toEqual([]);
      });
    });
  });

  // What the forward kernel has and the probe above lacks: several subgroups per workgroup, each at its
  // own offsets (rows sg * 16); head size 32 and key tiles of 32, so each score block is a product
  // started by subgroupMatrixMultiply and continued by an accumulate, stored side by side; V read as a
  // row-major right operand and P as a left operand from an f16 array of its own, O = P V summed over
  // two key blocks; each subgroup's results in its own part of one f32 scratch. The kernels' paddings.
  it('four subgroups per workgroup: S = Q K^T (Dh 32, 32 keys) on their own rows, then O = P V (P from its own f16 array, V a row-major right operand)', async (ctx) => {
    await withSmx(ctx, async (gpu, sg, sm) => {
      const SGQ = 4; const WG = SGQ * sg; const D = 32; const BC = 32; const DV = 16;
      const RSH = D + 8; const PS = BC + 8; const SW = Math.max(BC, D);
      const KROW = SGQ * 16; const VROW = KROW + BC; // KV rows: Q [64][RSH], K [32][RSH], V [32][RSH]
      const ints = (n: number, r: number) => Array.from({ length: n }, () => rng.int(2 * r + 1) - r);
      const q = ints(SGQ * 16 * D, 5); const k = ints(BC * D, 5); const v = ints(BC * DV, 7); const pm = ints(SGQ * 16 * BC, 3);
      const lit = (a: number[]) => `array<f32, ${a.length}>(${a.map((x) => x.toFixed(1)).join(', ')})`;
      const scores: string[] = [];
      for (let c = 0; c < BC / 16; c++) {
        scores.push('{');
        for (let d = 0; d < D / 16; d++) {
          scores.push(sm.load('right', `kf${d}`, 'KV', `${(KROW + c * 16) * RSH + d * 16}u`, 'col_major', `${RSH}u`),
            d === 0 ? sm.mul('sres', `qf${d}`, `kf${d}`) : sm.mma('sres', `qf${d}`, `kf${d}`));
        }
        scores.push(sm.store('Ss', `sg * ${16 * SW}u + ${c * 16}u`, 'sres', 'row_major', `${SW}u`), '}');
      }
      const pv: string[] = [];
      for (let c = 0; c < BC / 16; c++) {
        pv.push(sm.load('left', `pf${c}`, 'Ps', `sg * ${16 * PS}u + ${c * 16}u`, 'row_major', `${PS}u`),
          sm.load('right', `vf${c}`, 'KV', `${(VROW + c * 16) * RSH}u`, 'row_major', `${RSH}u`),
          c === 0 ? sm.mul('o', `pf${c}`, `vf${c}`) : sm.mma('o', `pf${c}`, `vf${c}`));
      }
      const def: KernelDef = {
        name: `probe_smx_subgroups_pv_sg${sg}${sm.emulated ? '_emu' : ''}`, bindings: ['rw'],
        code: sm.module(`${sm.header}
@group(0) @binding(0) var<storage, read_write> out: array<f32>;
var<workgroup> KV: array<f16, ${(VROW + BC) * RSH}>;
var<workgroup> Ps: array<f16, ${SGQ * 16 * PS}>;   // per subgroup [16][PS]
var<workgroup> Ss: array<f32, ${2 * SGQ * 16 * SW}>; // per subgroup [16][SW]: S; after them O
const QV = ${lit(q)};
const KVAL = ${lit(k)};
const VV = ${lit(v)};
const PV = ${lit(pm)};
@compute @workgroup_size(${WG})
fn main(@builtin(local_invocation_index) li: u32) {
  for (var e = li; e < ${SGQ * 16 * D}u; e += ${WG}u) { KV[(e / ${D}u) * ${RSH}u + e % ${D}u] = f16(QV[e]); }
  for (var e = li; e < ${BC * D}u; e += ${WG}u) { KV[(${KROW}u + e / ${D}u) * ${RSH}u + e % ${D}u] = f16(KVAL[e]); }
  for (var e = li; e < ${BC * DV}u; e += ${WG}u) { KV[(${VROW}u + e / ${DV}u) * ${RSH}u + e % ${DV}u] = f16(VV[e]); }
  for (var e = li; e < ${SGQ * 16 * BC}u; e += ${WG}u) { Ps[(e / ${BC}u) * ${PS}u + e % ${BC}u] = f16(PV[e]); }
  workgroupBarrier();
  let sg = li / ${sg}u;
  ${Array.from({ length: D / 16 }, (_, d) => sm.load('left', `qf${d}`, 'KV', `sg * ${16 * RSH}u + ${d * 16}u`, 'row_major', `${RSH}u`)).join('\n  ')}
  ${scores.join('\n  ')}
  ${pv.join('\n  ')}
  ${sm.store('Ss', `${SGQ * 16 * SW}u + sg * ${16 * SW}u`, 'o', 'row_major', `${SW}u`)}
  workgroupBarrier();
  for (var e = li; e < ${SGQ * 16 * BC}u; e += ${WG}u) { out[e] = Ss[(e / ${BC}u) * ${SW}u + e % ${BC}u]; }
  for (var e = li; e < ${SGQ * 16 * DV}u; e += ${WG}u) { out[${SGQ * 16 * BC}u + e] = Ss[${SGQ * 16 * SW}u + (e / ${DV}u) * ${SW}u + e % ${DV}u]; }
}`),
      };
      const nS = SGQ * 16 * BC;
      const got = await runOut(gpu, def, nS + SGQ * 16 * DV);
      const bad: string[] = [];
      for (let r = 0; r < SGQ * 16; r++) {
        for (let j = 0; j < BC; j++) {
          let s = 0; for (let d = 0; d < D; d++) s += q[r * D + d] * k[j * D + d];
          if (got[r * BC + j] !== s) bad.push(`S row ${r} (subgroup ${r >> 4}) key ${j}: ${got[r * BC + j]} vs ${s}`);
        }
        for (let n = 0; n < DV; n++) {
          let o = 0; for (let j = 0; j < BC; j++) o += pm[r * BC + j] * v[j * DV + n];
          if (got[nS + r * DV + n] !== o) bad.push(`O row ${r} (subgroup ${r >> 4}) col ${n}: ${got[nS + r * DV + n]} vs ${o}`);
        }
      }
      expect(bad.slice(0, 8), `${bad.length} of ${nS + SGQ * 16 * DV} values wrong (subgroup size ${sg}, seed ${rng.seed})`).toEqual([]);
    });
  });
});
