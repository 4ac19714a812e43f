// Loaded with `node --import` by test/train/step-error.test.ts: the readback of training step
// TEST_FAIL_STEP throws a GpuError, as a device error found at a step's readback does (Gpu.check).
import { Gpu, GpuError } from '../../dist/src/engine/gpu.js';

const failAt = Number(process.env.TEST_FAIL_STEP);
let steps = 0;
const read = Gpu.prototype.readManyF32;
Gpu.prototype.readManyF32 = async function (ts) {
  if (new Error().stack.includes('trainStep') && ++steps === failAt) {
    throw new GpuError('WebGPU error during read of 2 tensors (last kernel rmsprop): injected by the test');
  }
  return read.call(this, ts);
};
