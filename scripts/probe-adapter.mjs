// Exits 0 when Dawn finds a WebGPU adapter whose device runs a compute shader and reads its result
// back, 1 when it finds none (or the adapter cannot do that), 2 when Dawn itself does not load
// (node_modules missing). Used by setup-vulkan.sh before the TypeScript is built, so it is plain
// JavaScript. An adapter alone proves little: a driver can list one and fail to make a device or
// compile a shader, and srk would then fail on its first command instead of here.
let create, globals;
try {
  ({ create, globals } = await import('webgpu'));
} catch (e) {
  console.error(`probe: the webgpu package did not load: ${e?.message ?? e}`);
  process.exit(2);
}
Object.assign(globalThis, globals);
const timer = setTimeout(() => { console.error('probe: timed out'); process.exit(1); }, 30000);
const gpu = create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) { console.error('probe: no adapter'); process.exit(1); }
const name = `${adapter.info?.vendor ?? ''} ${adapter.info?.device ?? ''} ${adapter.info?.description ?? ''}`.trim();
try {
  const device = await adapter.requestDevice();
  const n = 64;
  const out = device.createBuffer({ size: 4 * n, usage: GPUBufferUsage.STORAGE | GPUBufferUsage.COPY_SRC });
  const read = device.createBuffer({ size: 4 * n, usage: GPUBufferUsage.MAP_READ | GPUBufferUsage.COPY_DST });
  const module = device.createShaderModule({ code: `
    @group(0) @binding(0) var<storage, read_write> o: array<u32>;
    @compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3u) { o[g.x] = g.x * 3u + 1u; }` });
  const pipeline = device.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' } });
  const bind = device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: [{ binding: 0, resource: { buffer: out } }] });
  const enc = device.createCommandEncoder();
  const pass = enc.beginComputePass();
  pass.setPipeline(pipeline); pass.setBindGroup(0, bind); pass.dispatchWorkgroups(1); pass.end();
  enc.copyBufferToBuffer(out, 0, read, 0, 4 * n);
  device.queue.submit([enc.finish()]);
  await read.mapAsync(GPUMapMode.READ);
  const got = new Uint32Array(read.getMappedRange().slice(0));
  const bad = got.findIndex((v, i) => v !== i * 3 + 1);
  if (bad >= 0) throw new Error(`a compute shader wrote ${got[bad]} at ${bad}, expected ${bad * 3 + 1}`);
  device.destroy();
} catch (e) {
  console.error(`probe: adapter ${name} cannot run compute work: ${e?.message ?? e}`);
  process.exit(1);
}
clearTimeout(timer);
console.log(`probe: ${name} (a compute shader ran and read back)`);
process.exit(0);
