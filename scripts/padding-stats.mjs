// Padding in packed micro-batches for a preference data set, with and without length ordering
// (src/train/length-order.ts): steps of --batch pairs (seeded shuffle, as training), micro-batches
// of --micro pairs, every row padded to the longest of its micro-batch. A statistic of the data,
// no GPU. Usage (after npm run build):
//   node scripts/padding-stats.mjs DATA.jsonl[.gz] TOKENIZER.json [--batch 64] [--micro 8] [--max-length 512] [--max-prompt-length 256]
import { loadTokenizedPairs } from '../dist/src/data/tokenize-pairs.js';
import { loadTokenizer, textTokenizer } from '../dist/src/model/tokenizer.js';
import { lengthOrder } from '../dist/src/train/length-order.js';

const args = process.argv.slice(2);
const flag = (name, d) => { const i = args.indexOf(`--${name}`); return i >= 0 ? Number(args[i + 1]) : d; };
const [data, tokFile] = args.filter((a, i) => !a.startsWith('--') && !(i > 0 && args[i - 1].startsWith('--')));
if (!data || !tokFile) { console.error('usage: node scripts/padding-stats.mjs DATA TOKENIZER [--batch 64] [--micro 8] [--max-length 512] [--max-prompt-length 256]'); process.exit(1); }
const B = flag('batch', 64); const mb = flag('micro', 8);
// As srk train reads the pairs: an EOS after each completion where the tokenizer has one; bad rows
// (an empty response) skipped, as --skip-bad-rows does.
const tok = textTokenizer(await loadTokenizer(tokFile));
const { pairs } = await loadTokenizedPairs(data, tok, { maxLength: flag('max-length', 512), maxPromptLength: flag('max-prompt-length', 256), noEos: tok.eosTokenId === null, skipBadRows: true });
let s = 1; const rnd = () => (s = (s * 1103515245 + 12345) % 2147483648) / 2147483648;
const idx = pairs.map((_, i) => i);
for (let i = idx.length - 1; i > 0; i--) { const j = Math.floor(rnd() * (i + 1)); [idx[i], idx[j]] = [idx[j], idx[i]]; }
const rowLen = (p) => p.promptIds.length + 1 + p.chosenIds.length + p.rejectedIds.length; // packed row
const padOf = (ps) => {
  let pad = 0;
  for (let m = 0; m < ps.length; m += mb) {
    const g = ps.slice(m, m + mb); const T = Math.max(...g.map(rowLen));
    pad += g.reduce((a, p) => a + T - rowLen(p), 0);
  }
  return pad;
};
let real = 0; let padRandom = 0; let padSorted = 0;
for (let b = 0; b + B <= idx.length; b += B) {
  const step = idx.slice(b, b + B).map((i) => pairs[i]);
  real += step.reduce((a, p) => a + rowLen(p), 0);
  padRandom += padOf(step);
  padSorted += padOf(lengthOrder(step).map((i) => step[i]));
}
const share = (pad) => (pad / (real + pad)).toFixed(3);
console.log(JSON.stringify({ data, pairs: pairs.length, batch: B, microBatch: mb, paddingShareInOrder: Number(share(padRandom)),
  paddingShareLengthOrdered: Number(share(padSorted)), tokensRatio: Number(((real + padRandom) / (real + padSorted)).toFixed(2)) }));
