// `srk info`: what the WebGPU adapter is and what it can do.
import { Gpu, type AdapterInfo } from '../engine/gpu.js';

export interface InfoReport {
  adapter: AdapterInfo;
  features: string[];
  subgroupMatrixConfigs: { componentType: string; resultComponentType: string; M: number; N: number; K: number }[];
  limits: Record<string, number>;
  srk: { shaderF16: boolean; subgroups: boolean; subgroupMatrix: boolean; timestampQuery: boolean; mixedPrecision: boolean; tuning: boolean };
  /** The `webgpu` build and the Dawn toggles asked for (SRK_DAWN_TOGGLES included; Dawn ignores a name it does not know). */
  dawn: string;
  /** The SRK_* switches set (non-empty), which change what runs (README's list). */
  env: Record<string, string>;
}

export function infoReport(gpu: Gpu): InfoReport {
  return {
    adapter: gpu.adapterInfo,
    features: [...gpu.adapter.features].sort(),
    subgroupMatrixConfigs: gpu.features.subgroupMatrixConfigs,
    limits: gpu.limits,
    srk: {
      shaderF16: gpu.features.shaderF16, subgroups: gpu.features.subgroups,
      subgroupMatrix: gpu.features.subgroupMatrix, timestampQuery: gpu.features.timestampQuery,
      mixedPrecision: gpu.smxF16 !== undefined,
      tuning: gpu.tuner !== undefined,
    },
    dawn: gpu.dawnSettings,
    env: Object.fromEntries(Object.entries(process.env).filter(([k, v]) => k.startsWith('SRK_') && v).sort() as [string, string][]),
  };
}

export function formatInfo(r: InfoReport): string {
  const lines: string[] = [];
  const a = r.adapter;
  lines.push(`adapter:   ${a.vendor ?? '?'} ${a.device || a.description || ''}`.trimEnd());
  lines.push(`backend:   ${a.backend}${a.isFallbackAdapter ? ' (software fallback adapter)' : ''}`);
  if (a.description) lines.push(`driver:    ${a.description}`);
  if (a.architecture) lines.push(`arch:      ${a.architecture}`);
  if (a.subgroupMinSize) lines.push(`subgroups: ${a.subgroupMinSize}..${a.subgroupMaxSize}`);
  lines.push(`srk uses:  shader-f16 ${yn(r.srk.shaderF16)}, subgroups ${yn(r.srk.subgroups)}, ` +
    `subgroup-matrix ${yn(r.srk.subgroupMatrix)}, timestamp-query ${yn(r.srk.timestampQuery)}`);
  lines.push(`--precision mixed: ${r.srk.mixedPrecision ? 'f16 tensor cores (subgroup-matrix f16 16x16x16 -> f32)'
    : 'not available here (no f16 subgroup-matrix config with one subgroup size): runs f32'}`);
  // SRK_MATMUL takes every product out of the tuner (kernels/matmul.ts); attention's choices are still timed.
  const forced = r.env.SRK_MATMUL;
  lines.push(`tuning:    ${r.srk.tuning ? `on: the first training steps time the ${forced ? `attention kernels (not the matmul tilings: SRK_MATMUL=${forced} takes the products out of the tuner)` : 'matmul tilings'} and keep the fastest`
    : 'off: built-in tilings (SRK_TUNE=1 turns the tuner on; it needs timestamp-query)'}`);
  lines.push(`dawn:      ${r.dawn}`);
  const env = Object.entries(r.env);
  lines.push(`switches:  ${env.length ? env.map(([k, v]) => `${k}=${v}`).join(' ') : 'none (no SRK_* variable set)'}`);
  if (r.subgroupMatrixConfigs.length) {
    lines.push('subgroup-matrix configs:');
    for (const c of r.subgroupMatrixConfigs) {
      lines.push(`  ${c.componentType} -> ${c.resultComponentType}  ${c.M}x${c.N}x${c.K}`);
    }
  }
  lines.push(`features:  ${r.features.join(', ')}`);
  lines.push('limits:');
  for (const [k, v] of Object.entries(r.limits)) lines.push(`  ${k.padEnd(44)} ${v}`);
  return lines.join('\n');
}

const yn = (b: boolean) => (b ? 'yes' : 'no');
