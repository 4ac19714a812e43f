// Installs Dawn's WebGPU globals (GPUBufferUsage, GPUMapMode, ...) before any module uses them.
// Every engine module that touches a WebGPU constant imports this first.
import { create, globals } from 'webgpu';

Object.assign(globalThis, globals);

export { create };
