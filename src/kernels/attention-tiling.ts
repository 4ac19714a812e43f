// Tile choice for the attention kernels (attention.ts): the register-tiled shapes of
// attention-blocked.ts wherever they fit the adapter's workgroup memory, else the tiles of the
// fallback kernels in attention-legacy.ts; setAttentionTiling lets tests force either.
import type { Gpu } from '../engine/gpu.js';
import { envSwitch } from '../engine/env.js';
import { chooseSmxAttentionTiles, type SmxAttentionTiles } from './attention-smx.js';
import { chooseSmxBackwardTiles } from './attention-smx-backward.js';

export interface Tiles {
  /** Threads per row and head-dim columns per thread; DP = G * DPT is Dh padded. */
  G: number; DPT: number; DP: number;
  /** Rows owned by a workgroup (one per G threads) and rows of the streamed tile. */
  R: number; C: number;
}

export type Pass = 'fwd' | 'dq' | 'dkdv';

/** Workgroup-memory floats a pass needs for R owned rows and C streamed rows. */
function sharedFloats(pass: Pass, DP: number, R: number, C: number): number {
  switch (pass) {
    case 'fwd': return R * DP + 2 * C * DP + R * C + 2 * C + 4;          // Q, K, V, S, key pos/seg
    case 'dq': return 2 * R * DP + 2 * C * DP + R * C + 2 * C + 4;       // Q, dO, K, V, dS, key pos/seg
    case 'dkdv': return 2 * R * DP + 2 * C * DP + 2 * R * C + 4 * C + 4; // K, V, Q, dO, P, dS, query pos/seg/lse/D
  }
}

// 16 accumulators per thread and G = ceil(Dh / 16) threads per row keep registers bounded from
// Dh = 16 to 256, and one pipeline serves every Dh with the same G (Dh is a runtime parameter;
// columns past it are zero in workgroup memory). Tiles start at 32 x 32 and halve until the
// workgroup memory fits the adapter.
export function chooseTiles(gpu: Gpu, pass: Pass, Dh: number): Tiles {
  const G = Math.ceil(Dh / 16);
  const DPT = 16;
  const DP = G * DPT;
  const maxThreads = Math.min(256, gpu.limits.maxComputeInvocationsPerWorkgroup);
  const limit = gpu.limits.maxComputeWorkgroupStorageSize / 4;
  let R = Math.max(1, Math.min(32, Math.floor(maxThreads / G)));
  let C = 32;
  while (sharedFloats(pass, DP, R, C) > limit) {
    if (C >= R && C > 4) C /= 2;
    else if (R > 1) R = Math.max(1, Math.floor(R / 2));
    else throw new RangeError(`attention: Dh=${Dh} does not fit ${limit * 4} bytes of workgroup memory`);
  }
  return { G, DPT, DP, R, C };
}

// Register-tiled shapes; the thread layout that BR, BC, NCG, TD4 and DP describe is explained at
// the top of attention-blocked.ts.
export interface RegTiles { BR: number; BC: number; NCG: number; NT: number; DP: number; TD4: number }

/**
 * Tests: force the register-tiled shapes ([BR, BC] per pass) or the fallback kernels; tensorCores
 * turns the tensor-core kernels (attention-smx.ts) on or off for f16 precision, overriding
 * SRK_ATTENTION; unfused runs the matmul-based path (attention-unfused.ts).
 */
export interface AttentionTiling { legacy?: boolean; fwd?: [number, number]; dq?: [number, number]; dkdv?: [number, number]; tensorCores?: boolean; unfused?: boolean }
let tilingOverride: AttentionTiling | undefined;
export function setAttentionTiling(t: AttentionTiling | undefined): void { tilingOverride = t; }

function regFloats(pass: Pass, t: RegTiles): number {
  const rs = t.DP + 4; const ss = t.BC + 1;
  switch (pass) {
    case 'fwd': return (t.BR + t.BC) * rs + t.BR * ss + 3 * t.BR + 2 * t.BC + 4;
    case 'dq': return (2 * t.BR + 2 * t.BC) * rs + t.BR * ss + 4 * t.BR + 2 * t.BC + 4;
    case 'dkdv': return (2 * t.BR + 2 * t.BC) * rs + 2 * t.BR * ss + 2 * t.BR + 4 * t.BC + 4;
  }
}

function regTiles(BR: number, BC: number, Dh: number): RegTiles {
  const NCG = BC / 4;
  const DP = Math.ceil(Dh / (4 * NCG)) * 4 * NCG;
  return { BR, BC, NCG, NT: (BR / 4) * NCG, DP, TD4: DP / (4 * NCG) };
}

// Preference order: big query tiles first (each staged key tile serves more rows), BC = 32 before
// 16. Accumulators per thread are capped at 64 floats (32 + 32 for dK/dV) so that nothing spills.
const REG_CANDIDATES: [number, number][] = [[64, 32], [32, 32], [32, 16], [16, 32], [16, 16]];

function regFits(gpu: Gpu, pass: Pass, t: RegTiles, forced: boolean): boolean {
  const accs = (pass === 'dkdv' ? 2 : 1) * 4 * 4 * t.TD4;
  if (t.NT > gpu.limits.maxComputeInvocationsPerWorkgroup || regFloats(pass, t) > gpu.limits.maxComputeWorkgroupStorageSize / 4) return false;
  return forced || accs <= 64;
}

export function chooseRegTiles(gpu: Gpu, pass: Pass, Dh: number): RegTiles | undefined {
  if (tilingOverride?.legacy) return undefined;
  const forced = tilingOverride?.[pass];
  for (const [BR, BC] of forced ? [forced] : REG_CANDIDATES) {
    const t = regTiles(BR, BC, Dh);
    if (regFits(gpu, pass, t, !!forced)) return t;
  }
  if (forced) throw new RangeError(`attention: forced ${pass} tiles ${forced} do not fit Dh=${Dh}`);
  return undefined;
}

// The tuner's alternatives to the rule's tiles: query tiles of 32 rows or more (smaller ones leave
// each staged key tile serving too few rows to win on a GPU big enough to tune for).
const TUNED_CANDIDATES: [number, number][] = [[64, 32], [32, 32], [32, 16]];

/**
 * The tuner's candidates for a pass (engine/tuner.ts): the rule's tiles (chooseRegTiles), then the
 * other TUNED_CANDIDATES that fit; just the rule where tests force tiles.
 */
export function regTileCandidates(gpu: Gpu, pass: Pass, Dh: number): RegTiles[] {
  const rule = chooseRegTiles(gpu, pass, Dh);
  if (!rule) return [];
  if (tilingOverride?.[pass]) return [rule];
  const rest = TUNED_CANDIDATES.map(([BR, BC]) => regTiles(BR, BC, Dh))
    .filter((t) => regFits(gpu, pass, t, false) && !(t.BR === rule.BR && t.BC === rule.BC));
  return [rule, ...rest];
}

// SRK_ATTENTION=tc forces attention onto tensor cores (attention-smx.ts) in f16 precision, without
// their self-check (for checking them: scripts/gpu-check.sh); simt keeps the flash kernels; unfused
// the matmul path (attention-unfused.ts). Unset: the tuner chooses among them (attention.ts).
const attentionMode = () => envSwitch('SRK_ATTENTION') ?? '';
// SRK_SMX_SOFTMAX=row: the tensor-core forward's softmax with one lane per row and no subgroup
// shuffles (attention-smx.ts); SRK_SMX_RELOAD=1: the tensor-core kernels load their owned fragments
// again for every tile (SmxAttentionTiles.reload). Diagnostic forms (scripts/gpu-check.sh).
const smxReload = () => envSwitch('SRK_SMX_RELOAD') === '1';

/** SRK_ATTENTION=unfused: attention through the matmul kernels (attention-unfused.ts), unless a test
 *  override forces a kernel family. */
export function unfusedWanted(): boolean {
  return (tilingOverride?.unfused ?? attentionMode() === 'unfused') && !tilingOverride?.legacy;
}

/**
 * The two ways of attention (flash kernels, the matmul path) as a tuner's labels, the rule first:
 * on a GPU the matmul path, which run 6 on an H100 (bench/RESULTS.md) found faster at every Pythia
 * shape, both directions and both precisions (410m Sr-DPO steps: f32 836 -> 667 ms, mixed 463 ->
 * 302 ms); on a CPU adapter the flash kernels (lavapipe has no fast matmul to gain, and the
 * scratch's T^2 floats cost it memory). The rule runs untuned (SRK_TUNE=0) and before the timing.
 */
export function attentionModeLabels(isCpuAdapter: boolean): ['flash', 'unfused'] | ['unfused', 'flash'] {
  return isCpuAdapter ? ['flash', 'unfused'] : ['unfused', 'flash'];
}

/** Whether, untuned (no timings), attention for this precision runs through the matmul path (the rule). */
export function unfusedByRule(gpu: Gpu, precision: 'f32' | 'f16'): boolean {
  return attentionModeLabels(gpu.isCpuAdapter)[0] === 'unfused' && unfusedCandidateAllowed(gpu, precision);
}

/**
 * Whether the unfused path may be a tuner candidate against the flash kernels (attention.ts):
 * SRK_ATTENTION unset, no test override, and not over emulated tensor cores (checking only, never
 * fast, and each of their pipelines costs lavapipe seconds to compile).
 */
export function unfusedCandidateAllowed(gpu: Gpu, precision: 'f32' | 'f16'): boolean {
  return attentionMode() === '' && !tilingOverride && !(precision === 'f16' && gpu.smxMode === 'emulated');
}

/** Refuses malformed attention switches (SRK_ATTENTION, SRK_SMX_SOFTMAX, SRK_SMX_RELOAD) on every call,
 *  whichever kernels it runs. */
export function checkAttentionEnv(): void { attentionMode(); smxRowLanes(); smxReload(); }

/** Whether the tensor-core forward runs its softmax one lane per row (SRK_SMX_SOFTMAX=row). */
export const smxRowLanes = (): boolean => envSwitch('SRK_SMX_SOFTMAX') === 'row';

/** The tensor-core forward's tiles for this call, or undefined for the f32 kernels. */
export function chooseSmxForward(gpu: Gpu, precision: 'f32' | 'f16', Dh: number): SmxAttentionTiles | undefined {
  const wanted = tilingOverride?.tensorCores ?? attentionMode() === 'tc';
  if (!wanted || precision !== 'f16' || !gpu.smxMode || tilingOverride?.legacy) return undefined;
  const sg = gpu.fixedSubgroupSize;
  return chooseSmxAttentionTiles(Dh, sg, gpu.limits.maxComputeWorkgroupStorageSize, gpu.limits.maxComputeInvocationsPerWorkgroup, smxReload());
}

/**
 * Whether the tensor-core kernels may be a tuner candidate for a pass in this call (once checked,
 * attention-selfcheck.ts): f16 precision, tensor cores (native or emulated), SRK_ATTENTION unset
 * (tc forces them, simt keeps them out), no test override, and for the backward 9 storage bindings.
 */
export function tcCandidateAllowed(gpu: Gpu, pass: Pass, precision: 'f32' | 'f16'): boolean {
  if (precision !== 'f16' || !gpu.smxMode || tilingOverride || attentionMode() !== '') return false;
  return pass === 'fwd' || gpu.limits.maxStorageBuffersPerShaderStage >= 9;
}

/** The tensor-core tiles of one pass for a kernel form (undefined: none fits the adapter). */
export function tcTilesFor(gpu: Gpu, pass: Pass, Dh: number, reload: boolean): SmxAttentionTiles | undefined {
  const sg = gpu.fixedSubgroupSize;
  const bytes = gpu.limits.maxComputeWorkgroupStorageSize; const threads = gpu.limits.maxComputeInvocationsPerWorkgroup;
  return pass === 'fwd' ? chooseSmxAttentionTiles(Dh, sg, bytes, threads, reload) : chooseSmxBackwardTiles(pass, Dh, sg, bytes, threads, reload);
}

/**
 * The tensor-core backward's tiles for this call (both passes), or undefined for the f32 kernels:
 * as chooseSmxForward, and only where a kernel may bind 9 storage buffers (dO's scale parts).
 */
export function chooseSmxBackward(gpu: Gpu, precision: 'f32' | 'f16', Dh: number): { dq: SmxAttentionTiles; dkdv: SmxAttentionTiles } | undefined {
  if (!chooseSmxForward(gpu, precision, Dh) || gpu.limits.maxStorageBuffersPerShaderStage < 9) return undefined;
  const sg = gpu.fixedSubgroupSize;
  const fit = (pass: 'dq' | 'dkdv') => chooseSmxBackwardTiles(pass, Dh, sg, gpu.limits.maxComputeWorkgroupStorageSize, gpu.limits.maxComputeInvocationsPerWorkgroup, smxReload());
  const dq = fit('dq'); const dkdv = fit('dkdv');
  return dq && dkdv ? { dq, dkdv } : undefined;
}
