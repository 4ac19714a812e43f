// SentencePiece model files (tokenizer.model) for Llama / Mistral checkpoints that ship no
// tokenizer.json: the file is read (a protobuf ModelProto, sentencepiece_model.proto) and turned into
// the tokenizer.json that transformers' LlamaConverter (convert_slow_tokenizer.py) builds from it, which is
// what AutoTokenizer gives a user of such a checkpoint:
//   model       BPE over the pieces (ids as in the file), byte fallback, unknown pieces fused into <unk>;
//               merges: every split of a piece into two pieces of the vocabulary, ordered by the merged
//               piece's score (highest first), then the longer left part, then the longer right part;
//   normalizer  legacy (transformers' default): prepend "▁", replace " " by "▁";
//               `legacy: false` in tokenizer_config.json: none, and a Metaspace pre-tokenizer that
//               prepends "▁" to the first section only (not after special tokens);
//   decoder     "▁" -> " ", bytes <0xNN> back to text, fused, one leading space stripped;
//   specials    <unk>, control symbols (<s>, </s>) and user-defined pieces as added tokens;
//   post-proc.  none here: BOS / EOS as for any Llama tokenizer (tokenizer.ts: add_bos_token, default
//               true; add_eos_token).
// Only BPE models are read (Llama 1/2, Mistral v0.1-v0.2, TinyLlama...); a unigram model (T5-style) is
// refused by name.
import { readAddedTokensDecoder, type AddedTokenEntry } from './added-tokens.js';
type Json = Record<string, unknown>;

/** Piece types (sentencepiece_model.proto). */
export const SP_NORMAL = 1, SP_UNKNOWN = 2, SP_CONTROL = 3, SP_USER_DEFINED = 4, SP_UNUSED = 5, SP_BYTE = 6;

export interface SpPiece { piece: string; score: number; type: number }

export interface SpModel {
  pieces: SpPiece[];
  /** trainer_spec.model_type: 1 unigram, 2 BPE, 3 word, 4 char. */
  modelType: number;
  byteFallback: boolean;
  /** normalizer_spec.add_dummy_prefix. */
  addDummyPrefix: boolean;
  /** normalizer_spec.name and whether it carries a compiled character map (a real normalization). */
  normalizerName: string;
  hasCharsMap: boolean;
}

/** A protobuf reader over one message's bytes: fields as (number, wire type, value). */
class Proto {
  private i = 0;
  constructor(private readonly b: Uint8Array, private readonly where: string) {}
  get done(): boolean { return this.i >= this.b.length; }
  private fail(what: string): never { throw new Error(`${this.where}: ${what} at byte ${this.i}`); }
  varint(): bigint {
    let r = 0n; let s = 0n;
    for (let n = 0; n < 10; n++) {
      if (this.i >= this.b.length) this.fail('truncated varint');
      const c = this.b[this.i++];
      r |= BigInt(c & 0x7f) << s; s += 7n;
      if (c < 0x80) return r;
    }
    return this.fail('varint longer than 10 bytes');
  }
  field(): { num: number; wire: number; value: bigint | Uint8Array } {
    const key = Number(this.varint());
    const num = key >>> 3; const wire = key & 7;
    if (num === 0) this.fail('field number 0');
    const take = (n: number): Uint8Array => {
      if (this.i + n > this.b.length) this.fail(`field ${num} runs past the end`);
      const v = this.b.subarray(this.i, this.i + n); this.i += n; return v;
    };
    switch (wire) {
      case 0: return { num, wire, value: this.varint() };
      case 1: return { num, wire, value: take(8) };
      case 2: return { num, wire, value: take(Number(this.varint())) };
      case 5: return { num, wire, value: take(4) };
      default: return this.fail(`unsupported wire type ${wire}`);
    }
  }
}

// ignoreBOM: a piece may be U+FEFF itself (Mistral's 31759), which a decoder would otherwise drop.
const utf8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });
const f32 = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, 4).getFloat32(0, true);

/** Reads a tokenizer.model; `file` names it in errors. */
export function parseSentencePieceModel(bytes: Uint8Array, file: string): SpModel {
  const where = `tokenizer ${file}`;
  const pieces: SpPiece[] = [];
  let modelType = 1; let byteFallback = false; let addDummyPrefix = true; let normalizerName = ''; let hasCharsMap = false;
  let sawTrainer = false;
  const top = new Proto(bytes, where);
  while (!top.done) {
    const { num, wire, value } = top.field();
    if (wire !== 2) continue; // ModelProto's fields are all messages
    const sub = new Proto(value as Uint8Array, where);
    if (num === 1) { // SentencePiece {piece 1, score 2, type 3}
      const p: SpPiece = { piece: '', score: 0, type: SP_NORMAL };
      while (!sub.done) {
        const g = sub.field();
        if (g.num === 1 && g.wire === 2) {
          try { p.piece = utf8.decode(g.value as Uint8Array); } catch { throw new Error(`${where}: piece ${pieces.length} is not UTF-8`); }
        } else if (g.num === 2 && g.wire === 5) p.score = f32(g.value as Uint8Array);
        else if (g.num === 3 && g.wire === 0) p.type = Number(g.value);
      }
      if (p.piece === '') throw new Error(`${where}: piece ${pieces.length} is empty`);
      pieces.push(p);
    } else if (num === 2) { // TrainerSpec {model_type 3, byte_fallback 35}
      sawTrainer = true;
      while (!sub.done) {
        const g = sub.field();
        if (g.num === 3 && g.wire === 0) modelType = Number(g.value);
        else if (g.num === 35 && g.wire === 0) byteFallback = g.value !== 0n;
      }
    } else if (num === 3) { // NormalizerSpec {name 1, precompiled_charsmap 2, add_dummy_prefix 3}
      while (!sub.done) {
        const g = sub.field();
        if (g.num === 1 && g.wire === 2) normalizerName = utf8.decode(g.value as Uint8Array);
        else if (g.num === 2 && g.wire === 2) hasCharsMap = (g.value as Uint8Array).length > 0;
        else if (g.num === 3 && g.wire === 0) addDummyPrefix = g.value !== 0n;
      }
    }
  }
  if (pieces.length === 0 || !sawTrainer) throw new Error(`${where}: not a SentencePiece model (no pieces or no trainer spec)`);
  return { pieces, modelType, byteFallback, addDummyPrefix, normalizerName, hasCharsMap };
}

/** Code points of a piece (a split never cuts a character in two). */
const chars = (s: string): string[] => Array.from(s);

/**
 * The BPE merges transformers derives from the pieces (generate_merges with scores): every split of a
 * piece into two pieces of the vocabulary; highest merged score first, then the longer left part, the
 * longer right part, and otherwise the pieces' order (and for one piece, its parts' ids).
 */
export function sentencePieceMerges(pieces: readonly SpPiece[]): [string, string][] {
  const id = new Map<string, number>();
  pieces.forEach((p, i) => { if (!id.has(p.piece)) id.set(p.piece, i); });
  const len = (s: string): number => chars(s).length;
  const all: { l: string; r: string; score: number; ll: number; lr: number; order: number }[] = [];
  for (const p of pieces) {
    const c = chars(p.piece);
    const local: { l: string; r: string; il: number; ir: number }[] = [];
    for (let k = 1; k < c.length; k++) {
      const l = c.slice(0, k).join(''); const r = c.slice(k).join('');
      const il = id.get(l); const ir = id.get(r);
      if (il !== undefined && ir !== undefined) local.push({ l, r, il, ir });
    }
    local.sort((a, b) => a.il - b.il || a.ir - b.ir);
    for (const m of local) all.push({ l: m.l, r: m.r, score: p.score, ll: len(m.l), lr: len(m.r), order: all.length });
  }
  all.sort((a, b) => b.score - a.score || b.ll - a.ll || b.lr - a.lr || a.order - b.order);
  return all.map((m) => [m.l, m.r]);
}

export interface SpConvertOptions {
  /** tokenizer_config.json's `legacy` (default true, as transformers' Llama tokenizers). */
  legacy?: boolean;
  /** tokenizer_config.json's `add_prefix_space` (default true). */
  addPrefixSpace?: boolean;
}

/** tokenizer.json (as an object) for a SentencePiece BPE model, as transformers' LlamaConverter builds it. */
export function sentencePieceTokenizerJson(sp: SpModel, file: string, o: SpConvertOptions = {}): Json {
  const where = `tokenizer ${file}`;
  if (sp.modelType !== 2) {
    throw new Error(`${where}: a SentencePiece ${['', 'unigram', 'BPE', 'word', 'char'][sp.modelType] ?? `type ${sp.modelType}`} model is not supported ` +
      '(only BPE models, as Llama and Mistral use); give the checkpoint its tokenizer.json');
  }
  if (sp.hasCharsMap) {
    throw new Error(`${where}: normalizer "${sp.normalizerName}" carries a character map, which is not supported; give the checkpoint its tokenizer.json`);
  }
  const unk = sp.pieces.findIndex((p) => p.type === SP_UNKNOWN);
  if (unk < 0) throw new Error(`${where}: no unknown piece (<unk>)`);
  const vocab: Record<string, number> = {};
  sp.pieces.forEach((p, i) => { if (!Object.hasOwn(vocab, p.piece)) vocab[p.piece] = i; });
  const addedTokens = sp.pieces.flatMap((p, i) => (p.type === SP_UNKNOWN || p.type === SP_CONTROL || p.type === SP_USER_DEFINED)
    ? [{ id: i, content: p.piece, single_word: false, lstrip: false, rstrip: false, normalized: false, special: p.type !== SP_USER_DEFINED }] : []);
  const legacy = o.legacy ?? true; const prefix = o.addPrefixSpace ?? true;
  const space = { type: 'Replace', pattern: { String: ' ' }, content: '▁' };
  const normalizer = legacy ? { type: 'Sequence', normalizers: [...(prefix ? [{ type: 'Prepend', prepend: '▁' }] : []), space] } : null;
  const preTokenizer = legacy ? null : { type: 'Metaspace', replacement: '▁', prepend_scheme: prefix ? 'first' : 'never', split: false };
  const decoder = { type: 'Sequence', decoders: [
    { type: 'Replace', pattern: { String: '▁' }, content: ' ' }, { type: 'ByteFallback' }, { type: 'Fuse' },
    ...(prefix ? [{ type: 'Strip', content: ' ', start: 1, stop: 0 }] : []),
  ] };
  return {
    version: '1.0', truncation: null, padding: null, added_tokens: addedTokens,
    // BOS / EOS: transformers' Llama tokenizer adds them from add_bos_token / add_eos_token, as the
    // loader does for any Llama tokenizer (tokenizer.ts withAddBosEos, with the class's defaults).
    normalizer, pre_tokenizer: preTokenizer, post_processor: null,
    decoder,
    model: {
      type: 'BPE', dropout: null, unk_token: sp.pieces[unk].piece, continuing_subword_prefix: null, end_of_word_suffix: null,
      // Byte fallback always, as transformers' LlamaConverter sets it (without <0xNN> pieces it gives <unk>).
      fuse_unk: true, byte_fallback: true, ignore_merges: false, vocab, merges: sentencePieceMerges(sp.pieces),
    },
  };
}

/**
 * tokenizer_config.json's `added_tokens_decoder` (id -> {content, lstrip, rstrip, normalized, single_word,
 * special}) applied to a converted tokenizer.json, as transformers' fast tokenizer applies it after
 * converting: an id inside the SentencePiece vocabulary must name its own piece and sets that token's
 * flags; ids past it are new tokens (a fine-tune's chat markers, e.g. <|im_start|>), in order from the
 * vocabulary's end. Anything inconsistent is an error naming `config` (the file).
 */
export function applyAddedTokens(json: Json, decoder: unknown, config: string): Json {
  const model = json.model as { vocab: Record<string, number> };
  const pieceOf = piecesById(model.vocab);
  let size = 0; // (a loop: a spread of a large vocabulary's ids would overflow the call stack)
  for (const id of pieceOf.keys()) if (id >= size) size = id + 1;
  const added = (json.added_tokens as Json[]).map((t) => ({ ...t }));
  if (decoder !== undefined) {
    const fresh: AddedTokenEntry[] = [];
    for (const token of readAddedTokensDecoder(decoder, config)) {
      const { id } = token;
      const at = `${config}: added_tokens_decoder["${id}"]`;
      if (id < size) {
        if (pieceOf.get(id) !== token.content) {
          throw new Error(`${at}: "${token.content}" but tokenizer.model's piece ${id} is ${JSON.stringify(pieceOf.get(id))}`);
        }
        const i = added.findIndex((t) => t.id === id);
        if (i >= 0) added[i] = token; else added.push(token);
      } else {
        fresh.push(token);
      }
    }
    fresh.forEach((t, i) => {
      if (t.id !== size + i) {
        throw new Error(`${config}: added_tokens_decoder gives "${t.content}" id ${t.id}, but tokens past tokenizer.model's ` +
          `${size} pieces must take the ids ${size}, ${size + 1}, ... in turn`);
      }
    });
    added.push(...fresh);
  }
  added.sort((a, b) => (a.id as number) - (b.id as number));
  return { ...json, added_tokens: added };
}

/** The first piece of each id of a vocabulary (piece -> id). */
function piecesById(vocab: Record<string, number>): Map<number, string> {
  const pieceOf = new Map<number, string>();
  for (const [piece, id] of Object.entries(vocab)) if (!pieceOf.has(id)) pieceOf.set(id, piece);
  return pieceOf;
}

/**
 * A slow tokenizer's added_tokens.json (content -> id, at `file`) against the converted tokenizer with its
 * added tokens (`json`): it may only repeat what the rest says, a piece of tokenizer.model or an added
 * token with that id. Its flags are not recorded anywhere, so a token it alone adds is refused rather
 * than guessed.
 */
export function checkAddedTokensJson(json: Json, addedTokensJson: unknown, file: string, config: string): void {
  if (addedTokensJson === null || typeof addedTokensJson !== 'object' || Array.isArray(addedTokensJson)) throw new Error(`${file}: must be an object of token -> id`);
  const pieceOf = piecesById((json.model as { vocab: Record<string, number> }).vocab);
  const added = json.added_tokens as Json[];
  for (const [content, id] of Object.entries(addedTokensJson as Json)) {
    if (added.some((t) => t.id === id && t.content === content) || (typeof id === 'number' && pieceOf.get(id) === content)) continue;
    throw new Error(`${file}: "${content}" (id ${JSON.stringify(id)}) is not in tokenizer.model nor in ${config}'s ` +
      'added_tokens_decoder or additional_special_tokens, which would say how it splits text; give the checkpoint its tokenizer.json');
  }
}
