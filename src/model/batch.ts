// Token layout of a batch: which token sits where, at which position, in which segment, with
// which target, and which sequence log-prob each scored token adds to.
//
// Unpacked: one row per (prompt, completion): [prompt..., completion...], all segment 0.
// Packed: one row per prompt with all its completions (chosen and rejected):
//   [p0 .. p(P-2)] [p(P-1) c0 c1 ...] [p(P-1) r0 r1 ...]
//    segment 0      segment 1          segment 2
// The shared prefix is computed once. Each branch starts with its own copy of the last prompt
// token (at the same position P-1), because that token's output predicts the branch's first
// token; a single shared copy would need two targets. The attention mask (key j visible to query
// i iff j <= i and segment[j] is 0 or equals segment[i]) keeps branches apart, and positions in
// every branch continue from the prompt, so each branch computes exactly what its own unpacked
// row would.

export interface PromptCompletions {
  prompt: number[];        // token ids (with the tokenizer's special tokens, e.g. BOS)
  completions: number[][]; // token ids of each completion (EOS appended by the caller if wanted)
}

export interface BatchLayout {
  B: number; T: number;               // rows, padded row length
  ids: Uint32Array;                   // [B*T] token ids (0 in padding)
  positions: Int32Array;              // [B*T] rotary positions
  segments: Int32Array;               // [B*T] 0 = shared prefix, k >= 1 = branch k
  lengths: Int32Array;                // [B] tokens used in each row
  targets: Int32Array;                // [B*T] next token predicted at this token, -1 = not scored
  seqOfToken: Int32Array;             // [B*T] index of the sequence this token's log-prob adds to, -1 = none
  numSeqs: number;                    // S: one per (input, completion)
  seqIndex: number[][];               // [input][completion] -> sequence index in 0..S-1
  tokenCounts: Int32Array;            // [S] scored tokens per sequence (= completion length)
  /** Token ranges [start, end) per sequence in the flat [B*T] layout, one or more per sequence. */
  seqRanges: [number, number][][];
}

export interface BatchOptions {
  packed: boolean;
  /** Pad rows to this length (>= the longest row); default the longest row. */
  padTo?: number;
}

interface Row { ids: number[]; pos: number[]; seg: number[]; tgt: number[]; seq: number[] }

export function buildBatch(items: PromptCompletions[], opts: BatchOptions): BatchLayout {
  const rows: Row[] = [];
  const seqIndex: number[][] = [];
  const tokenCounts: number[] = [];
  items.forEach((item, n) => {
    const P = item.prompt.length;
    if (P === 0) throw new Error(`batch item ${n}: empty prompt (the first completion token needs a token before it)`);
    seqIndex.push([]);
    const newSeq = (len: number) => { tokenCounts.push(len); const s = tokenCounts.length - 1; seqIndex[n].push(s); return s; };
    if (opts.packed) {
      const row: Row = { ids: [], pos: [], seg: [], tgt: [], seq: [] };
      for (let i = 0; i < P - 1; i++) push(row, item.prompt[i], i, 0, -1, -1);
      item.completions.forEach((c, k) => {
        const s = newSeq(c.length);
        const branch = [item.prompt[P - 1], ...c];
        branch.forEach((id, j) => push(row, id, P - 1 + j, k + 1, j < c.length ? c[j] : -1, j < c.length ? s : -1));
      });
      rows.push(row);
    } else {
      for (const c of item.completions) {
        const s = newSeq(c.length);
        const row: Row = { ids: [], pos: [], seg: [], tgt: [], seq: [] };
        const all = [...item.prompt, ...c];
        all.forEach((id, i) => {
          const scored = i >= P - 1 && i < all.length - 1;
          push(row, id, i, 0, scored ? all[i + 1] : -1, scored ? s : -1);
        });
        rows.push(row);
      }
    }
  });
  const longest = Math.max(1, ...rows.map((r) => r.ids.length));
  const T = opts.padTo ?? longest;
  if (T < longest) throw new RangeError(`padTo ${T} is shorter than the longest row (${longest} tokens)`);
  const B = rows.length; const N = B * T;
  const out: BatchLayout = {
    B, T, ids: new Uint32Array(N), positions: new Int32Array(N), segments: new Int32Array(N),
    lengths: new Int32Array(B), targets: new Int32Array(N).fill(-1), seqOfToken: new Int32Array(N).fill(-1),
    numSeqs: tokenCounts.length, seqIndex, tokenCounts: Int32Array.from(tokenCounts),
    seqRanges: tokenCounts.map(() => []),
  };
  rows.forEach((r, b) => {
    out.lengths[b] = r.ids.length;
    for (let i = 0; i < r.ids.length; i++) {
      const t = b * T + i;
      out.ids[t] = r.ids[i]; out.positions[t] = r.pos[i]; out.segments[t] = r.seg[i];
      out.targets[t] = r.tgt[i]; out.seqOfToken[t] = r.seq[i];
    }
  });
  // Contiguous runs of each sequence's scored tokens.
  for (let t = 0; t < N; t++) {
    const s = out.seqOfToken[t];
    if (s < 0) continue;
    const runs = out.seqRanges[s];
    const last = runs[runs.length - 1];
    if (last && last[1] === t) last[1] = t + 1; else runs.push([t, t + 1]);
  }
  return out;
}

function push(r: Row, id: number, pos: number, seg: number, tgt: number, seq: number): void {
  r.ids.push(id); r.pos.push(pos); r.seg.push(seg); r.tgt.push(tgt); r.seq.push(seq);
}
