// Runs a command body with a GPU and always tears the device down, so the process exits promptly
// (Dawn's event pump otherwise keeps Node alive and a core busy).
import { Gpu, GpuError, type GpuOptions } from '../engine/gpu.js';

export async function withGpu<T>(opts: GpuOptions, body: (gpu: Gpu) => Promise<T>): Promise<T> {
  const gpu = await Gpu.create(opts);
  try {
    return await body(gpu);
  } finally {
    await gpu.destroy();
  }
}

/** Prints an error the user can act on (no stack trace for expected failures) and exits non-zero. */
export function fail(e: unknown): never {
  const err = e as Error;
  const expected = err instanceof GpuError || err instanceof RangeError || (err as { userFacing?: boolean }).userFacing;
  process.stderr.write(`srk: ${expected || !err.stack ? err.message : err.stack}\n`);
  process.exit(1);
}
