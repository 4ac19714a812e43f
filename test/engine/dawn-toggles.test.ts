// Dawn's instance arguments (src/engine/gpu.ts dawnFeatureArgs): the toggles srk sets, --fast's, and
// SRK_DAWN_TOGGLES (names to enable, '-name' to disable, anything else refused).
import { afterEach, describe, expect, it } from 'vitest';
import { dawnFeatureArgs } from '../../src/engine/gpu.js';

const saved = process.env.SRK_DAWN_TOGGLES;
afterEach(() => { if (saved === undefined) delete process.env.SRK_DAWN_TOGGLES; else process.env.SRK_DAWN_TOGGLES = saved; });

/** The enabled and disabled toggle lists of one call. */
function toggles(opts: Parameters<typeof dawnFeatureArgs>[0], env?: string, cpu = false): { on: string[]; off: string[] } {
  if (env === undefined) delete process.env.SRK_DAWN_TOGGLES; else process.env.SRK_DAWN_TOGGLES = env;
  const args = dawnFeatureArgs(opts, cpu);
  const list = (prefix: string) => args.find((a) => a.startsWith(prefix))?.slice(prefix.length).split(',').filter(Boolean) ?? [];
  return { on: list('enable-dawn-features='), off: list('disable-dawn-features=') };
}

describe('Dawn toggles', () => {
  it('by default: f16 on NVIDIA, the robustness transform (with integer range analysis on GPUs), full timestamp resolution', () => {
    const t = toggles({});
    expect(t.on).toEqual(expect.arrayContaining(['allow_unsafe_apis', 'vulkan_enable_f16_on_nvidia', 'enable_integer_range_analysis_in_robustness']));
    expect(t.on).not.toContain('disable_robustness');
    expect(t.off).toEqual(['timestamp_quantization']);
    // On a CPU adapter (lavapipe) the range analysis (Dawn's default) is turned off, unless asked for.
    const cpu = toggles({}, undefined, true);
    expect(cpu.on).not.toContain('enable_integer_range_analysis_in_robustness');
    expect(cpu.off).toEqual(['timestamp_quantization', 'enable_integer_range_analysis_in_robustness']);
    const asked = toggles({}, 'enable_integer_range_analysis_in_robustness', true);
    expect(asked.on).toContain('enable_integer_range_analysis_in_robustness');
    expect(asked.off).toEqual(['timestamp_quantization']);
    expect(toggles({ fast: true }).on).toEqual(expect.arrayContaining(['disable_robustness', 'disable_workgroup_init', 'skip_validation']));
  });

  it('SRK_DAWN_TOGGLES adds toggles, and a leading - turns one off (srk\'s own included)', () => {
    expect(toggles({}, 'use_vulkan_memory_model').on).toContain('use_vulkan_memory_model');
    const t = toggles({}, 'use_vulkan_memory_model, -enable_integer_range_analysis_in_robustness');
    expect(t.on).toContain('use_vulkan_memory_model');
    expect(t.on).not.toContain('enable_integer_range_analysis_in_robustness');
    expect(t.off).toEqual(['timestamp_quantization', 'enable_integer_range_analysis_in_robustness']);
    expect(() => toggles({}, 'use vulkan;memory')).toThrow(/SRK_DAWN_TOGGLES=use vulkan;memory: use vulkan;memory is not a Dawn toggle name/);
    expect(() => toggles({}, '--x')).toThrow(/--x is not a Dawn toggle name/);
  });
});
