// `srk init`: a random-initialized checkpoint in Hugging Face format with the project's
// byte-level tokenizer (for demos, tests and benchmarks; nothing is downloaded).
import type { CommandModule } from 'yargs';
import { ARCHS, PRESETS, presetNames } from '../init/presets.js';
import { initModel } from '../init/init-model.js';
import type { Arch } from '../model/config.js';
import { userError } from '../errors.js';

/** The presets by architecture, those sharing one list said once: "mistral, llama, qwen2: tiny (...), small (...)". */
function presetHelp(): string {
  const groups = new Map<readonly unknown[], string[]>();
  for (const a of ARCHS) groups.set(PRESETS[a], [...(groups.get(PRESETS[a]) ?? []), a]);
  return [...groups].map(([, archs]) => `${archs.join(', ')}: ${PRESETS[archs[0] as Arch].map((p) => `${p.name} (${p.description})`).join(', ')}`).join('; ');
}

interface InitArgs { arch: string; preset: string; out: string; seed: number; tied: boolean; force: boolean }

export const initCommand: CommandModule<object, InitArgs> = {
  command: 'init',
  describe: 'write a random-initialized Hugging Face checkpoint (config, safetensors, byte-level tokenizer)',
  builder: (y) => y.options({
    arch: { choices: ARCHS as string[], demandOption: true, describe: 'architecture' },
    preset: {
      type: 'string', demandOption: true,
      describe: `size: ${presetHelp()}`,
    },
    out: { type: 'string', demandOption: true, describe: 'directory to create' },
    seed: { type: 'number', default: 0, describe: 'initialization seed' },
    tied: { type: 'boolean', default: false, describe: 'tie the output layer to the embedding' },
    force: { type: 'boolean', default: false, describe: 'replace a non-empty --out' },
  }) as never,
  handler: async (a) => {
    const arch = a.arch as Arch;
    if (!PRESETS[arch].some((p) => p.name === a.preset)) {
      throw userError(`--preset ${a.preset} is not a ${arch} preset (${presetNames(arch).join(', ')})`);
    }
    const t0 = performance.now();
    const r = await initModel({
      arch, preset: a.preset, outDir: a.out, seed: a.seed, tiedEmbeddings: a.tied, force: a.force,
      onTensor: (name, i, n) => { if (process.stderr.isTTY) process.stderr.write(`\rwriting ${i + 1}/${n} ${name.padEnd(60)}`); },
    });
    if (process.stderr.isTTY) process.stderr.write('\n');
    process.stdout.write(`${r.dir}: ${arch} ${a.preset}, ${r.numParams.toLocaleString()} parameters ` +
      `(${((performance.now() - t0) / 1000).toFixed(1)} s)\n`);
  },
};
