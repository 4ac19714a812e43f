// Dispatches of one training step by kernel, and the pool's peak memory, recorded on any adapter without
// running anything (bench step's host-only mode: queue.submit never reaches the GPU). `--binding MIB`
// raises the binding limit the kernels chunk their operands by to that of a larger GPU (an H100: 2048),
// so attention and the other chunked kernels dispatch as they would there; the bind groups then exceed
// this adapter's real limit, which is harmless since nothing is submitted (their validation errors are
// kept in an error scope and dropped). A count of the host's work, not a timing. Usage (after npm run build):
//   node scripts/dispatch-count.mjs --shape pythia-160m --loss sr-dpo [--precision f32|mixed] [--binding 2048] [--top 40]
// bench/RESULTS.md (fourteenth session) ran it with SRK_ATTENTION=unfused SRK_MIXED=emulate (attention and
// the f16 path as a tensor-core GPU dispatches them).
import { Gpu } from '../dist/src/engine/gpu.js';
import { benchStep } from '../dist/bench/step.js';

const args = process.argv.slice(2);
const opt = (name, d) => { const i = args.indexOf(`--${name}`); return i >= 0 ? args[i + 1] : d; };
const shape = opt('shape', 'small'); const loss = opt('loss', 'sr-dpo'); const precision = opt('precision', 'f32');
const binding = Number(opt('binding', '0')); const top = Number(opt('top', '40'));
if (!['f32', 'mixed'].includes(precision) || !(binding >= 0) || !(top >= 0)) {
  console.error('usage: node scripts/dispatch-count.mjs --shape S --loss L [--precision f32|mixed] [--binding MIB] [--top N]');
  process.exit(1);
}
process.env.SRK_TUNE = '0'; // host-only steps take no tuner
const gpu = await Gpu.create({});
if (binding > 0) {
  gpu.device.pushErrorScope('validation');
  gpu.limits.maxStorageBufferBindingSize = binding * 2 ** 20 - 4;
}
const counts = new Map(); let total = 0;
const dispatch = gpu.recorder.dispatch.bind(gpu.recorder);
gpu.recorder.dispatch = (k, ...rest) => { counts.set(k.def.name, (counts.get(k.def.name) ?? 0) + 1); total++; return dispatch(k, ...rest); };
const r = await benchStep(gpu, {
  shape, loss, precision, microBatch: 8, packed: true, profile: false, varied: false, lengthOrder: true,
  pairs: 8, seq: 512, prompt: 256, warmup: 1, repeats: 1, hostOnly: true,
}, () => {});
// Every recorded step dispatches the same kernels: the counts over all of them, per step.
const steps = total / r.dispatches;
console.log(`${shape} ${loss} ${precision}${binding ? `, ${binding} MiB bindings` : ''}: ${r.dispatches} dispatches a step, ` +
  `peak ${(r.peakInUseBytes / 2 ** 20).toFixed(0)} MiB`);
for (const [name, n] of [...counts].sort((a, b) => b[1] - a[1]).slice(0, top)) console.log(`${(n / steps).toFixed(1).padStart(8)}  ${name}`);
await gpu.destroy();
process.exit(0);
