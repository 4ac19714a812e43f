// Exits 0 when Dawn finds a WebGPU adapter, 1 when it finds none, 2 when Dawn itself does not load
// (node_modules missing). Used by setup-vulkan.sh before the TypeScript is built, so it is plain JavaScript.
let create;
try {
  ({ create } = await import('webgpu'));
} catch (e) {
  console.error(`probe: the webgpu package did not load: ${e?.message ?? e}`);
  process.exit(2);
}
const timer = setTimeout(() => { console.error('probe: timed out'); process.exit(1); }, 20000);
const gpu = create([]);
const adapter = await gpu.requestAdapter();
clearTimeout(timer);
if (!adapter) { console.error('probe: no adapter'); process.exit(1); }
console.log(`probe: ${adapter.info?.vendor ?? ''} ${adapter.info?.device ?? ''} ${adapter.info?.description ?? ''}`);
process.exit(0);
