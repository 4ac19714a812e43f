// A buffer the driver cannot allocate (the GPU's memory spent) is said as what it is: the first
// out-of-memory error, how much srk had allocated, and the flags that make a batch smaller; the
// validation errors of the work that then used the missing buffer are counted, not listed.
import { spawnSync } from 'node:child_process';
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';
import { getGpu } from '../helpers/gpu.js';

type ErrorSink = (ev: { error: GPUError; preventDefault(): void }) => void;

describe('Gpu.check after an out-of-memory error', () => {
  it('names it first, with the flags, and counts the errors that followed', async () => {
    const gpu = await getGpu();
    const sink = gpu.device.onuncapturederror as unknown as ErrorSink;
    const raise = (ev: { error: GPUError }) => sink({ ...ev, preventDefault: () => {} });
    raise({ error: new GPUValidationError('an earlier validation error') });
    raise({ error: new GPUOutOfMemoryError('vkAllocateMemory failed with VK_ERROR_OUT_OF_DEVICE_MEMORY\n - While calling [Device].CreateBuffer') });
    raise({ error: new GPUValidationError('[Buffer "activations"] is invalid') });
    raise({ error: new GPUOutOfMemoryError('a second allocation failed') });
    raise({ error: new GPUValidationError('[Invalid BindGroup] is invalid') });
    expect(() => gpu.check('step 3')).toThrow(new RegExp(
      '^the GPU ran out of memory during step 3 \\(vkAllocateMemory failed with VK_ERROR_OUT_OF_DEVICE_MEMORY\\) with \\d+\\.\\d\\d GiB ' +
      'of buffers asked for \\(the one refused included\\): fewer tokens at a time fit \\(--micro-batch-size, --max-length; .*\\), or a smaller model ' +
      '\\(3 errors after it not shown\\); before it: an earlier validation error$'));
    expect(() => gpu.check('next')).not.toThrow(); // reported once
    // Other errors as before.
    raise({ error: new GPUValidationError('a validation error') });
    expect(() => gpu.check('x')).toThrow(/^WebGPU error during x: a validation error$/);
  });

  it('a real allocation the adapter refuses, where it refuses one', async (ctx) => {
    const gpu = await getGpu();
    // lavapipe refuses a buffer of 2^32 - 1 bytes as out of memory; a GPU with the memory may not.
    const size = 2 ** 32 - 1;
    if (gpu.limits.maxBufferSize < size) ctx.skip();
    gpu.device.pushErrorScope('out-of-memory');
    gpu.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE }).destroy();
    if (!(await gpu.device.popErrorScope())) ctx.skip();
    const b = gpu.device.createBuffer({ size, usage: GPUBufferUsage.STORAGE });
    await expect(gpu.sync()).rejects.toThrow(/^the GPU ran out of memory during sync \(.+\) with .* GiB of buffers asked for \(the one refused included\): fewer tokens at a time fit/);
    b.destroy();
  });

  it('Dawn prints no copy of its own (it printed each uncaptured error to stdout, into srk logprobs\' JSON lines)', async (ctx) => {
    const gpu = await getGpu();
    if (gpu.limits.maxBufferSize < 2 ** 32 - 1) ctx.skip();
    const dist = pathToFileURL(resolve(import.meta.dirname, '../../dist/src/engine/gpu.js')).href;
    const script = `const { Gpu } = await import(${JSON.stringify(dist)});
      const gpu = await Gpu.create({});
      gpu.device.pushErrorScope('out-of-memory');
      gpu.device.createBuffer({ size: 2 ** 32 - 1, usage: GPUBufferUsage.STORAGE }).destroy();
      const refused = await gpu.device.popErrorScope();
      gpu.device.createBuffer({ size: 2 ** 32 - 1, usage: GPUBufferUsage.STORAGE });
      try { await gpu.sync(); } catch (e) { process.stderr.write('srk: ' + e.message + '\\n'); }
      await gpu.destroy();
      process.stderr.write(refused ? 'refused\\n' : 'allocated\\n');`;
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', timeout: 60_000 });
    expect(r.status, r.stderr).toBe(0);
    if (r.stderr.trim().endsWith('allocated')) ctx.skip(); // an adapter with the memory
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^srk: the GPU ran out of memory during sync \(/m);
    expect(r.stderr.match(/VK_ERROR_OUT_OF_DEVICE_MEMORY|out of memory:/g)?.length ?? 0).toBeLessThanOrEqual(1);
  });
});
