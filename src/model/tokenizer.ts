// Tokenizers: a thin wrapper over @huggingface/tokenizers (pure-JS port of the Rust `tokenizers`)
// that reads a checkpoint directory and fixes the places where the package's defaults differ
// from what transformers + Rust tokenizers do:
//  - decode() of an empty list throws in the package; Rust returns "".
//  - The package decodes unknown ids as its unk token (or undefined); Rust skips ids that have no
//    token (e.g. Pythia's padded embedding rows 50277..50303 that a model can still sample).
//  - The package decodes a run of <0xNN> byte tokens that is no valid UTF-8 with one U+FFFD per invalid
//    subsequence; Rust with one per token of the run (ByteFallbackRuns).
//  - The package cleans up tokenization spaces ("a , b" -> "a, b") unless told otherwise; here it
//    is what tokenizer_config.json says, default off (transformers' current default).
//  - Special-token ids come from tokenizer_config.json / special_tokens_map.json, else config.json.
//  - Llama / GPT-NeoX tokenizer classes honour add_bos_token / add_eos_token (see withAddBosEos).
import { createHash } from 'node:crypto';
import { promises as fsp, readFileSync } from 'node:fs';
import path from 'node:path';
import { Tokenizer } from '@huggingface/tokenizers';
import { applyAddedTokens, checkAddedTokensJson, parseSentencePieceModel, sentencePieceTokenizerJson } from './sentencepiece.js';
import { addedTokenFlags, readAddedTokensDecoder, type AddedTokenEntry } from './added-tokens.js';
import type { TextTokenizer } from '../data/tokenize-pairs.js';

export interface EncodeOptions {
  /** Add what the tokenizer's post-processor adds (e.g. Llama's BOS); none for GPT-NeoX. */
  addSpecialTokens: boolean;
}
export interface DecodeOptions {
  /** Drop special tokens (default false, as transformers' decode). */
  skipSpecialTokens?: boolean;
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);

/** A special token in tokenizer_config.json is a string or an AddedToken object {content, ...}. */
function tokenContent(v: unknown): string | undefined {
  if (typeof v === 'string') return v;
  if (isObject(v) && typeof v.content === 'string') return v.content;
  return undefined;
}

/** Id of `token` in a tokenizer.json (added tokens, else the model vocabulary). */
function idInJson(tokJson: Json, token: string): number | undefined {
  const added = Array.isArray(tokJson.added_tokens) ? tokJson.added_tokens : [];
  const a = added.find((t) => isObject(t) && t.content === token);
  if (isObject(a) && Number.isSafeInteger(a.id)) return a.id as number;
  const vocab = isObject(tokJson.model) ? tokJson.model.vocab : undefined;
  const v = isObject(vocab) ? vocab[token] : undefined; // BPE / WordPiece: token -> id
  return Number.isSafeInteger(v) ? (v as number) : undefined;
}

/**
 * The tokens tokenizer_config.json adds that tokenizer.json lacks, added as transformers'
 * PreTrainedTokenizerFast does when it loads (its `added_tokens_decoder`, then `additional_special_tokens`):
 * each becomes an added token (matched whole in text, never split), with its vocabulary id where the model
 * has the piece, else the next free id. An `added_tokens_decoder` entry whose id that rule does not give,
 * or whose id tokenizer.json's added tokens give another token, is refused naming the files: the model's
 * embedding rows are meant by id.
 */
export function withConfigAddedTokens(tokJson: Json, cfg: Json, where: { json: string; config: string }): Json {
  const decoder = cfg.added_tokens_decoder;
  const extra = cfg.additional_special_tokens;
  if (decoder === undefined && extra === undefined) return tokJson;
  const added = (Array.isArray(tokJson.added_tokens) ? tokJson.added_tokens : []).filter(isObject).map((t) => ({ ...t }));
  const vocab = isObject(tokJson.model) ? tokJson.model.vocab : undefined;
  // BPE / WordPiece / WordLevel: token -> id; Unigram: [[piece, score], ...], the id the index.
  const vocabId = (content: string): number | undefined => {
    if (Array.isArray(vocab)) { const i = vocab.findIndex((e) => Array.isArray(e) && e[0] === content); return i >= 0 ? i : undefined; }
    const v = isObject(vocab) ? vocab[content] : undefined;
    return Number.isSafeInteger(v) ? (v as number) : undefined;
  };
  // (A loop, not Math.max(...ids): a spread of a 128k-150k vocabulary overflows the call stack.)
  let next = Array.isArray(vocab) ? vocab.length : 0;
  if (isObject(vocab)) for (const id of Object.values(vocab)) if (Number.isSafeInteger(id) && (id as number) >= next) next = (id as number) + 1;
  for (const t of added) if (Number.isSafeInteger(t.id) && (t.id as number) >= next) next = (t.id as number) + 1;
  const add = (flags: Omit<AddedTokenEntry, 'id' | 'content'>, content: string, at: string, wantId?: number) => {
    if (added.some((t) => t.content === content)) return; // tokenizer.json has it (its own flags stand)
    const id = vocabId(content) ?? next++;
    if (wantId !== undefined && id !== wantId) {
      throw new Error(`${at}: "${content}" as id ${wantId}, but ${where.json} would give it id ${id} ` +
        `(${vocabId(content) === undefined ? 'the next free one' : 'its vocabulary entry'}): the tokenizer files disagree`);
    }
    added.push({ id, content, ...flags });
  };
  if (decoder !== undefined) {
    for (const { id, content, ...flags } of readAddedTokensDecoder(decoder, where.config)) {
      const at = `${where.config}: added_tokens_decoder["${id}"]`;
      const holder = added.find((t) => t.id === id);
      if (holder && holder.content !== content) {
        throw new Error(`${at}: "${content}", but ${where.json}'s added token ${id} is ${JSON.stringify(holder.content)}: the tokenizer files disagree`);
      }
      add(flags, content, at, id);
    }
  }
  if (extra !== undefined) {
    if (!Array.isArray(extra)) throw new Error(`${where.config}: additional_special_tokens must be a list`);
    extra.forEach((v, i) => {
      const content = tokenContent(v);
      if (content === undefined || content === '') throw new Error(`${where.config}: additional_special_tokens[${i}] must be a token (a string or {content})`);
      const at = `${where.config}: additional_special_tokens[${i}]`;
      add(addedTokenFlags(isObject(v) ? v : {}, at, true), content, at); // (special unless it says otherwise)
    });
  }
  added.sort((a, b) => (a.id as number) - (b.id as number));
  return { ...tokJson, added_tokens: added };
}

/**
 * transformers' Llama and GPT-NeoX fast tokenizers do not use tokenizer.json's post-processor as
 * is: they rebuild it from tokenizer_config.json's add_bos_token / add_eos_token
 * (update_post_processor), e.g. a checkpoint whose config says add_eos_token: true gets EOS
 * appended although tokenizer.json only adds BOS. Do the same when the config sets either flag.
 */
function withAddBosEos(tokJson: Json, cfg: Json): Json {
  const cls = String(cfg.tokenizer_class ?? '').replace(/Fast$/, '');
  const llama = cls === 'LlamaTokenizer' || cls === 'CodeLlamaTokenizer';
  if (!llama && cls !== 'GPTNeoXTokenizer') return tokJson;
  if (typeof cfg.add_bos_token !== 'boolean' && typeof cfg.add_eos_token !== 'boolean') return tokJson;
  const addBos = typeof cfg.add_bos_token === 'boolean' ? cfg.add_bos_token : llama; // class defaults
  const addEos = cfg.add_eos_token === true;
  const specials: Record<string, { id: string; ids: number[]; tokens: string[] }> = {};
  const piece = (key: 'bos' | 'eos', typeId: number) => {
    const content = tokenContent(cfg[`${key}_token`]);
    const id = content === undefined ? undefined : idInJson(tokJson, content);
    if (content === undefined || id === undefined) {
      throw new Error(`tokenizer_config.json's add_${key}_token is set, but its ${key}_token ${content === undefined ? 'is missing' : `${JSON.stringify(content)} is not in the vocabulary`}`);
    }
    specials[content] = { id: content, ids: [id], tokens: [content] };
    return { SpecialToken: { id: content, type_id: typeId } };
  };
  const seq = (typeId: number) => [
    ...(addBos ? [piece('bos', typeId)] : []), { Sequence: { id: typeId ? 'B' : 'A', type_id: typeId } }, ...(addEos ? [piece('eos', typeId)] : []),
  ];
  const single = seq(0);
  return { ...tokJson, post_processor: { type: 'TemplateProcessing', single, pair: [...single, ...seq(1)], special_tokens: specials } };
}

/**
 * A note where tokenizer_config.json's add_bos_token / add_eos_token (withAddBosEos, as transformers 4's Llama
 * and GPT-NeoX tokenizers read them) make the special tokens differ from tokenizer.json's own post-processor,
 * which transformers 5 keeps (it drops the flags where there is a tokenizer.json): the two versions then
 * tokenize the checkpoint's text differently, and the files should be made to agree.
 */
function addBosEosNote(tokJson: Json, tok: SrkTokenizer): string | undefined {
  const cfg = tok.spec.config;
  if (withAddBosEos(tokJson, cfg) === tokJson) return undefined;
  const probe = 'a';
  const flags = tok.encode(probe, { addSpecialTokens: true });
  let own: number[];
  try { own = new Tokenizer(tokJson, {}).encode(probe, { add_special_tokens: true }).ids; } catch { return undefined; }
  if (flags.length === own.length && flags.every((id, i) => id === own[i])) return undefined;
  const show = (ids: number[]) => ids.map((id) => tok.idToToken(id) ?? String(id)).join(' ');
  const set = ['add_bos_token', 'add_eos_token'].filter((k) => typeof cfg[k] === 'boolean').map((k) => `${k} ${String(cfg[k])}`).join(', ');
  return `note: tokenizer_config.json's ${set} disagrees with tokenizer.json's post-processor ("${probe}" encodes as ${JSON.stringify(show(flags))} ` +
    `by the flags, as transformers 4 reads them and srk does; as ${JSON.stringify(show(own))} by tokenizer.json, as transformers 5 does): ` +
    'make the files agree to get the same ids from both';
}

/**
 * The special tokens transformers' tokenizer classes take where tokenizer_config.json names none (their
 * __init__ defaults; a plain PreTrainedTokenizerFast has none): what {{ bos_token }} renders and the EOS
 * TRL appends. Taken where tokenizer.json has the token; else, as before, config.json's id.
 */
const LLAMA_SPECIAL_TOKENS = { bos_token: '<s>', eos_token: '</s>' };
const CLASS_SPECIAL_TOKENS: Record<string, Record<string, string>> = {
  LlamaTokenizer: LLAMA_SPECIAL_TOKENS,
  CodeLlamaTokenizer: LLAMA_SPECIAL_TOKENS,
  GPTNeoXTokenizer: { bos_token: '<|endoftext|>', eos_token: '<|endoftext|>' },
  Qwen2Tokenizer: { eos_token: '<|endoftext|>', pad_token: '<|endoftext|>' },
};

function withClassSpecialTokens(tokJson: Json, cfg: Json): Json {
  const defaults = CLASS_SPECIAL_TOKENS[String(cfg.tokenizer_class ?? '').replace(/Fast$/, '')];
  if (!defaults) return cfg;
  const out = { ...cfg };
  for (const [k, v] of Object.entries(defaults)) if (!Object.hasOwn(cfg, k) && idInJson(tokJson, v) !== undefined) out[k] = v;
  return out;
}

/**
 * transformers' LlamaTokenizer(Fast) defaults, which a checkpoint's tokenizer_config.json overrides:
 * what a tokenizer converted from tokenizer.model runs with (it is loaded as that class).
 */
const LLAMA_TOKENIZER_DEFAULTS: Json = { ...LLAMA_SPECIAL_TOKENS, unk_token: '<unk>', add_bos_token: true, add_eos_token: false };

/**
 * A tokenizer from a SentencePiece tokenizer.model (sentencepiece.ts), as transformers' Llama fast
 * tokenizer builds it: `legacy` and `add_prefix_space` shape the conversion, and BOS / EOS follow
 * add_bos_token / add_eos_token like any Llama tokenizer's (withAddBosEos).
 */
export function sentencePieceTokenizer(bytes: Uint8Array, file: string, tokenizerConfig: Json = {}, modelConfig: Json = {},
  chatTemplateFile?: string, addedTokensJson?: unknown): SrkTokenizer {
  const flag = (k: string) => (typeof tokenizerConfig[k] === 'boolean' ? tokenizerConfig[k] as boolean : undefined);
  const dir = path.dirname(file);
  const config = path.join(dir, 'tokenizer_config.json');
  let json = applyAddedTokens(
    sentencePieceTokenizerJson(parseSentencePieceModel(bytes, file), file, { legacy: flag('legacy'), addPrefixSpace: flag('add_prefix_space') }),
    tokenizerConfig.added_tokens_decoder, config);
  // Then additional_special_tokens, as for a tokenizer.json (transformers adds them after the decoder's).
  if (tokenizerConfig.additional_special_tokens !== undefined) {
    json = withConfigAddedTokens(json, { additional_special_tokens: tokenizerConfig.additional_special_tokens }, { json: file, config });
  }
  if (addedTokensJson !== undefined) checkAddedTokensJson(json, addedTokensJson, path.join(dir, 'added_tokens.json'), config);
  const tok = wrap(file, json, { ...LLAMA_TOKENIZER_DEFAULTS, ...tokenizerConfig, tokenizer_class: 'LlamaTokenizerFast' }, modelConfig, chatTemplateFile);
  tok.sentencePieceFile = file;
  return tok;
}

/** The tokenizer in the shape the data code expects (its spec too, for tokenizing on worker threads). */
export function textTokenizer(tok: SrkTokenizer): TextTokenizer {
  return {
    encode: (text, o) => tok.encode(text, o),
    eosTokenId: tok.eosTokenId ?? null,
    bosTokenId: tok.bosTokenId ?? null,
    chatTemplate: tok.chatTemplate ?? null,
    // A chat template's bos_token / eos_token: the tokenizer's (transformers renders none where only config.json has an id).
    bosToken: tok.bosTokenId !== undefined && tok.bosFrom === 'the tokenizer files' ? tok.idToToken(tok.bosTokenId) ?? null : null,
    eosToken: tok.eosTokenId !== undefined && tok.eosFrom === 'the tokenizer files' ? tok.idToToken(tok.eosTokenId) ?? null : null,
    eosPiece: tok.eosTokenId !== undefined ? tok.idToToken(tok.eosTokenId) ?? null : null,
    spec: tok.spec,
  };
}

/**
 * What rebuilds a tokenizer in another thread (data/tokenize-parallel.ts): its constructor's arguments,
 * plain JSON that a worker receives by structured clone.
 */
export interface TokenizerSpec { json: Json; config: Json; model: Json; template?: string }

export class SrkTokenizer {
  readonly bosTokenId: number | undefined;
  readonly eosTokenId: number | undefined;
  readonly padTokenId: number | undefined;
  /** Where eosTokenId and bosTokenId came from: the tokenizer's files (tokenizer_config.json,
   *  special_tokens_map.json), or where they name none config.json's eos_token_id / bos_token_id. */
  readonly eosFrom: 'the tokenizer files' | 'config.json' | undefined;
  readonly bosFrom: 'the tokenizer files' | 'config.json' | undefined;
  /** The ids of the tokenizer's special added tokens (tokenizer.json's added_tokens marked special). */
  private readonly specialIds: Set<number>;
  /** Set where the decoder has a ByteFallback step (SentencePiece vocabularies' <0xNN> tokens). */
  private readonly byteFallback: ByteFallbackRuns | undefined;
  /** What a user should know of how the files were read (set by loadTokenizer; srk train, eval and logprobs print them). */
  notes: string[] = [];
  /** The model's unk_token id, for words its vocabulary lacks (encode). */
  private readonly unkId: number | undefined;
  /** Highest token id + 1: the embedding rows the tokenizer can address. */
  readonly vocabSize: number;
  readonly chatTemplate: string | undefined;
  readonly cleanUpTokenizationSpaces: boolean;
  /** Set where loadTokenizer converted a SentencePiece tokenizer.model (the checkpoint has no tokenizer.json). */
  sentencePieceFile?: string;
  private readonly tok: Tokenizer;
  readonly spec: TokenizerSpec;

  /** The same tokenizer, built again from its spec (in a worker thread). */
  static fromSpec(s: TokenizerSpec): SrkTokenizer { return new SrkTokenizer(s.json, s.config, s.model, s.template); }

  /**
   * @param tokenizerJson parsed tokenizer.json
   * @param tokenizerConfig parsed tokenizer_config.json with special_tokens_map.json as transformers reads them
   *   (withSpecialTokensMap) and the tokenizer class's default special tokens ({} if none)
   * @param modelConfig parsed config.json, for bos/eos/pad ids the tokenizer files do not name
   * @param chatTemplateFile contents of chat_template.jinja, which newer saves use instead of the config field
   */
  constructor(tokenizerJson: Json, tokenizerConfig: Json = {}, modelConfig: Json = {}, chatTemplateFile?: string) {
    this.spec = { json: tokenizerJson, config: tokenizerConfig, model: modelConfig, template: chatTemplateFile };
    this.cleanUpTokenizationSpaces = tokenizerConfig.clean_up_tokenization_spaces === true;
    this.tok = new Tokenizer(withAddBosEos(tokenizerJson, tokenizerConfig), { ...tokenizerConfig, clean_up_tokenization_spaces: this.cleanUpTokenizationSpaces });
    let maxId = -1;
    for (const id of this.tok.get_vocab(true).values()) maxId = Math.max(maxId, id);
    this.vocabSize = maxId + 1;
    const special = (key: 'bos' | 'eos' | 'pad'): number | undefined => {
      if (Object.hasOwn(tokenizerConfig, `${key}_token`)) { // an explicit null means "none"
        const content = tokenContent(tokenizerConfig[`${key}_token`]);
        if (content === undefined) return undefined;
        const id = this.tok.token_to_id(content);
        if (id === undefined) {
          throw new Error(`${key}_token ${JSON.stringify(content)} (tokenizer_config.json, or special_tokens_map.json) is not in the vocabulary: ` +
            'name a token it has, or add this one (tokenizer_config.json\'s added_tokens_decoder, an id below config.json\'s vocab_size)');
        }
        return id;
      }
      const fromModel = modelConfig[`${key}_token_id`];
      const id = Array.isArray(fromModel) ? fromModel[0] : fromModel; // eos may be a list
      return Number.isSafeInteger(id) ? (id as number) : undefined;
    };
    const unk = isObject(tokenizerJson.model) ? tokenizerJson.model.unk_token : undefined;
    this.unkId = typeof unk === 'string' ? this.tok.token_to_id(unk) : undefined;
    this.bosTokenId = special('bos');
    this.eosTokenId = special('eos');
    const from = (key: string, id: number | undefined) => (id === undefined ? undefined : Object.hasOwn(tokenizerConfig, key) ? 'the tokenizer files' as const : 'config.json' as const);
    this.eosFrom = from('eos_token', this.eosTokenId);
    this.bosFrom = from('bos_token', this.bosTokenId);
    const added = Array.isArray(tokenizerJson.added_tokens) ? tokenizerJson.added_tokens : [];
    this.specialIds = new Set(added.filter((t) => isObject(t) && t.special === true && Number.isSafeInteger(t.id)).map((t) => (t as Json).id as number));
    this.padTokenId = special('pad');
    this.byteFallback = hasByteFallback(tokenizerJson.decoder) ? ByteFallbackRuns.of(this.tok) : undefined;
    this.chatTemplate = chatTemplateFile ?? SrkTokenizer.templateOf(tokenizerConfig.chat_template);
  }

  /** chat_template is a string, or a list of {name, template} of which "default" is used. */
  private static templateOf(v: unknown): string | undefined {
    if (typeof v === 'string') return v;
    if (Array.isArray(v)) {
      const d = v.find((t) => isObject(t) && t.name === 'default');
      return isObject(d) && typeof d.template === 'string' ? d.template : undefined;
    }
    return undefined;
  }

  encode(text: string, opts: EncodeOptions): number[] {
    const ids = this.tok.encode(text, { add_special_tokens: opts.addSpecialTokens }).ids;
    // The tokenizers package's WordLevel model gives no id (undefined) for a word outside its vocabulary,
    // where the Rust library gives its unk_token's: as Rust, else an error (an undefined id became token 0
    // in a batch, or an internal error naming no row).
    for (let i = 0; i < ids.length; i++) {
      if (Number.isSafeInteger(ids[i])) continue;
      if (this.unkId === undefined) {
        throw new Error(`the tokenizer gives no id for a word of ${JSON.stringify(text.length > 80 ? `${text.slice(0, 80)}...` : text)} ` +
          '(outside its vocabulary, and its model names no unk_token)');
      }
      ids[i] = this.unkId;
    }
    return ids;
  }

  decode(ids: readonly number[], opts: DecodeOptions = {}): string {
    for (const id of ids) {
      if (!Number.isSafeInteger(id) || id < 0) throw new Error(`tokenizer: cannot decode id ${id}`);
    }
    let known = ids.filter((id) => this.tok.id_to_token(id) !== undefined);
    if (opts.skipSpecialTokens) known = known.filter((id) => !this.specialIds.has(id)); // (before the byte runs are found, as Rust)
    if (known.length === 0) return '';
    if (this.byteFallback) known = this.byteFallback.asRust(known);
    return this.tok.decode(known, {
      skip_special_tokens: opts.skipSpecialTokens ?? false,
      clean_up_tokenization_spaces: this.cleanUpTokenizationSpaces,
    });
  }

  /** Whether `id` is one of the tokenizer's special tokens (an end-of-text token is; "!" is not). */
  isSpecial(id: number): boolean { return this.specialIds.has(id); }

  tokenToId(token: string): number | undefined { return this.tok.token_to_id(token); }
  idToToken(id: number): string | undefined { return this.tok.id_to_token(id); }
}

const hasByteFallback = (d: unknown): boolean =>
  isObject(d) && (d.type === 'ByteFallback' || (d.type === 'Sequence' && Array.isArray(d.decoders) && d.decoders.some(hasByteFallback)));

/**
 * The Rust tokenizers' ByteFallback decoding of invalid UTF-8, for the JS package's: a run of <0xNN> tokens
 * whose bytes are no valid UTF-8 decodes in Rust (and so in transformers) to one U+FFFD per token, where the
 * package's TextDecoder gives one per invalid subsequence and keeps the valid characters in the run (a
 * generation cut inside an emoji: "��" in Rust, "�" in the package). Such a run is given to the package as the
 * UTF-8 bytes of that many U+FFFD (EF BF BD, byte tokens too), which it decodes to the same text.
 */
const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

class ByteFallbackRuns {
  private constructor(private readonly byteOf: Map<number, number>, private readonly replacement: number[]) {}

  static of(tok: Tokenizer): ByteFallbackRuns | undefined {
    const byteOf = new Map<number, number>();
    const idOf: (number | undefined)[] = [];
    for (let b = 0; b < 256; b++) {
      const id = tok.token_to_id(`<0x${b.toString(16).toUpperCase().padStart(2, '0')}>`);
      if (id !== undefined) { byteOf.set(id, b); idOf[b] = id; }
    }
    const replacement = [0xef, 0xbf, 0xbd].map((b) => idOf[b]);
    return replacement.every((id) => id !== undefined) ? new ByteFallbackRuns(byteOf, replacement as number[]) : undefined;
  }

  asRust(ids: number[]): number[] {
    const out: number[] = [];
    for (let i = 0; i < ids.length;) {
      if (!this.byteOf.has(ids[i])) { out.push(ids[i++]); continue; }
      let j = i;
      while (j < ids.length && this.byteOf.has(ids[j])) j++;
      const run = ids.slice(i, j);
      let valid = true;
      try { STRICT_UTF8.decode(Uint8Array.from(run, (id) => this.byteOf.get(id)!)); } catch { valid = false; }
      if (valid) out.push(...run);
      else for (let k = 0; k < run.length; k++) out.push(...this.replacement);
      i = j;
    }
    return out;
  }
}

async function readJson(file: string, required: boolean, what = 'tokenizer'): Promise<Json | undefined> {
  let text: string;
  try { text = await fsp.readFile(file, 'utf8'); }
  catch (e) {
    if (!required && (e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new Error(`${what}: cannot read ${file} (${(e as Error).message})`);
  }
  let json: unknown;
  try { json = JSON.parse(text); } catch (e) { throw new Error(`${what}: ${file} is not valid JSON (${(e as Error).message})`); }
  if (!isObject(json)) throw new Error(`${what}: ${file} is not a JSON object`);
  return json;
}

/**
 * Loads the tokenizer of a checkpoint directory: tokenizer.json, or where there is none a SentencePiece
 * tokenizer.model (converted as transformers does, sentencepiece.ts), and when present
 * tokenizer_config.json, special_tokens_map.json, chat_template.jinja and config.json.
 * A path to a .json file loads that tokenizer.json alone.
 */
export async function loadTokenizer(dirOrFile: string): Promise<SrkTokenizer> {
  // One run reads the same tokenizer for its data, its held-out data, its samples and the reference check
  // (a Llama 3 tokenizer.json is 9 MB of JSON to parse each time): kept while its files are as they were.
  const files = dirOrFile.endsWith('.json') ? [dirOrFile] : TOKENIZER_FILES.map((f) => path.join(dirOrFile, f));
  // By content (a hash is ~1/50 of the parse): a file rewritten within the clock's tick keeps its mtime.
  const stamp = files.map((f) => { try { return createHash('sha1').update(readFileSync(f)).digest('hex'); } catch { return '-'; } }).join('|');
  const key = path.resolve(dirOrFile);
  const kept = loaded.get(key);
  if (kept && kept.stamp === stamp) return kept.tokenizer;
  const tokenizer = readTokenizer(dirOrFile);
  loaded.set(key, { stamp, tokenizer });
  tokenizer.catch(() => { if (loaded.get(key)?.tokenizer === tokenizer) loaded.delete(key); });
  return tokenizer;
}

/**
 * tokenizer_config.json with special_tokens_map.json as transformers reads them (PreTrainedTokenizerBase.
 * _from_pretrained, 4.x and 5.x alike): a config with `added_tokens_decoder` (saved since transformers 4.34)
 * says everything and the map is not read; an older config is the legacy case, where each of the map's
 * keys overrides the config's, its additional special tokens joining the config's.
 */
export function withSpecialTokensMap(tokenizerConfig: Json, specialMap: Json): Json {
  const out = extraAsAdditional(tokenizerConfig);
  if (Object.hasOwn(tokenizerConfig, 'added_tokens_decoder')) return out;
  for (const [k, v] of Object.entries(extraAsAdditional(specialMap))) {
    out[k] = k === 'additional_special_tokens' && Array.isArray(v) ? joinTokens(out[k], v) : v;
  }
  return out;
}

/** The tokens of list `have` (if one), then those of `more` it lacks (by content). */
function joinTokens(have: unknown, more: readonly unknown[]): unknown[] {
  const out = Array.isArray(have) ? [...(have as unknown[])] : [];
  for (const t of more) if (!out.some((h) => tokenContent(h) === tokenContent(t))) out.push(t);
  return out;
}

/** transformers 5 names additional_special_tokens extra_special_tokens (a list; a dict names model-specific tokens, left as is). */
function extraAsAdditional(cfg: Json): Json {
  const { extra_special_tokens: extra, ...rest } = cfg;
  if (!Array.isArray(extra)) return { ...cfg };
  return { ...rest, additional_special_tokens: joinTokens(rest.additional_special_tokens, extra) };
}

/** The files loadTokenizer reads from a directory (any of them changed: read again). */
const TOKENIZER_FILES = ['tokenizer.json', 'tokenizer.model', 'tokenizer_config.json', 'special_tokens_map.json', 'config.json',
  'chat_template.jinja', 'added_tokens.json'];
const loaded = new Map<string, { stamp: string; tokenizer: Promise<SrkTokenizer> }>();

async function readTokenizer(dirOrFile: string): Promise<SrkTokenizer> {
  if (dirOrFile.endsWith('.json')) return wrap(dirOrFile, (await readJson(dirOrFile, true))!);
  const dir = dirOrFile;
  const specialMap = (await readJson(path.join(dir, 'special_tokens_map.json'), false)) ?? {};
  const tokConfig = withSpecialTokensMap((await readJson(path.join(dir, 'tokenizer_config.json'), false)) ?? {}, specialMap);
  const modelConfig = (await readJson(path.join(dir, 'config.json'), false, 'model config')) ?? {};
  const template = await fsp.readFile(path.join(dir, 'chat_template.jinja'), 'utf8').catch(() => undefined);
  const jsonFile = path.join(dir, 'tokenizer.json'); const spFile = path.join(dir, 'tokenizer.model');
  const tokJson = await readJson(jsonFile, false);
  if (tokJson) {
    const configFile = path.join(dir, 'tokenizer_config.json');
    let merged: Json;
    try { merged = withConfigAddedTokens(tokJson, tokConfig, { json: jsonFile, config: configFile }); }
    catch (e) { throw new Error(`tokenizer: ${(e as Error).message}`); }
    const tok = wrap(jsonFile, merged, withClassSpecialTokens(merged, tokConfig), modelConfig, template);
    const note = addBosEosNote(merged, tok);
    if (note) tok.notes.push(note);
    return tok;
  }
  // transformers converts Gemma's tokenizer.model with GemmaConverter (spaces as "▁", no prefix "▁" before the text),
  // which srk does not implement: Llama's conversion would give other ids. Gemma checkpoints ship a tokenizer.json.
  const mt = (modelConfig as { model_type?: unknown }).model_type;
  if (mt === 'gemma' || mt === 'gemma2' || mt === 'gemma3_text' || mt === 'gemma3') {
    throw new Error(`tokenizer: ${dir} has no tokenizer.json, and srk converts a tokenizer.model only as Llama's and Mistral's are ` +
      `converted; Gemma's conversion differs (no "▁" before the text): add the checkpoint's tokenizer.json (every Gemma repository has one)`);
  }
  const bytes = await fsp.readFile(spFile).catch((e: NodeJS.ErrnoException) => {
    if (e.code === 'ENOENT') throw new Error(`tokenizer: ${dir} has neither tokenizer.json nor tokenizer.model`);
    throw new Error(`tokenizer: cannot read ${spFile} (${e.message})`);
  });
  const addedTokens = (await readJson(path.join(dir, 'added_tokens.json'), false)) ?? undefined;
  return sentencePieceTokenizer(bytes, spFile, tokConfig, modelConfig, template, addedTokens);
}

function wrap(file: string, ...args: ConstructorParameters<typeof SrkTokenizer>): SrkTokenizer {
  try { return new SrkTokenizer(...args); }
  catch (e) { throw new Error(`tokenizer ${file}: ${(e as Error).message}`); }
}
