// Normalizes preference-data rows of several shapes to {prompt, chosen, rejected, scores?}.
//
// Shapes (detected per row; the counts are reported in NormalizeStats.byShape):
//  text  {prompt, chosen, rejected} strings. Scores are kept when the row has them, either at the
//        top level (score_chosen / score_rejected; Argilla's chosen_rating / rejected_rating, or
//        chosen_score / rejected_score) or under `metadata` (the flattened
//        UltraFeedback samples in shared/data: {prompt, chosen, rejected, source_index,
//        metadata: {score_chosen, score_rejected}}).
//  hh    {chosen, rejected} strings holding whole Anthropic HH-RLHF dialogues, no prompt field. As
//        in the original DPO code (extract_anthropic_prompt), the prompt is `chosen` up to and
//        including its last "\n\nAssistant:" and each response is what follows the prompt. The
//        original code does not check that `rejected` starts with that prompt; in the few rows
//        where it does not (2 of 2354 helpful-base and 4 of 2312 harmless-base test rows), we split
//        `rejected` at ITS OWN last "\n\nAssistant:" for its response, and the prompt is still the
//        one taken from `chosen`. Such rows are counted in `hhPerSideSplit`. Rows whose rejected
//        does start with the prompt keep all the rest as the response, as in the original code,
//        even when it holds further "\n\nAssistant:" turns; `hhOwnPromptDiffers` counts those
//        plus the per-side rows (9 and 5 on those files: the numbers SOURCES.md gives).
//  chat  chosen / rejected are message lists [{role, content}], as in trl-lib/ultrafeedback_binarized
//        (whole conversations, no prompt field, plus score_chosen / score_rejected), or with a
//        prompt given as a message list (TRL's explicit-prompt conversational form) or as a string
//        (HuggingFaceH4/ultrafeedback_binarized: the user text, also repeated as the first message
//        of chosen / rejected). Each side must end with an assistant message: that message is the
//        response, and the messages before it (taken from `chosen`; `rejected` is re-based on them
//        when its own prefix differs, counted in `chatPrefixMismatch`) form the prompt.
//        With a chat template (Jinja, rendered by @huggingface/jinja):
//          prompt     = render(prefix, add_generation_prompt = true)
//          completion = render(prefix + [response], add_generation_prompt = false) minus the prompt
//                       text at its start.
//        If the template does not make the prompt text a prefix of the full rendering (a reasoning
//        template whose generation prompt opens a <think> block the rendered history has not), no
//        completion can be cut from it: the row is refused, naming where the two part (a completion rendered
//        alone would score a sequence the model never sees: the prompt's opening and a second assistant
//        header; TRL's maybe_apply_chat_template cuts the prompt back to the text the two share, which moves
//        the rest of the generation prompt into the scored response).
//        Without a chat template (a base model) and chatFallback 'lines' (the default), the
//        conversation is written as plain "role: content" lines:
//          prompt     = "user: hi\nassistant: hello\nuser: more\nassistant:"
//          completion = " " + response content
//        (counted in `chatPlainFallback`); with chatFallback 'error' such rows are errors.
//
// Rendered chat text may contain the template's special-token strings (e.g. a BOS "<s>" at the start
// of the prompt, an end-of-turn token in the completion, which templates such as Zephyr's and ChatML
// follow with a newline); tokenize-pairs.ts removes a doubled BOS and does not append a second EOS.

import { Template } from '@huggingface/jinja';
import { usePythonStrip } from './jinja-strings.js';
import {
  JsonlRowError, RowShapeError, describeJsonValue, newJsonlStats, optionalNumber, readJsonl, type JsonObject, type JsonlOptions, type JsonlStats,
} from './read-jsonl.js';
import { dataFileList, type DataFiles } from './data-files.js';

export interface PreferenceRow {
  prompt: string;
  chosen: string;
  rejected: string;
  scoreChosen?: number;
  scoreRejected?: number;
  /**
   * Chat rows with a refinement prompt p (NormalizeOptions.refinePrompt): the prompt rendered with p at
   * the head of the first user message, so that p ⊕ x sits inside the user's turn as the query itself
   * does. Text and HH rows have none: p goes before their prompt text (tokenize-pairs.ts).
   */
  augPrompt?: string;
  /**
   * Chat rows rendered by the tokenizer's chat template: the completions are the template's text for the
   * assistant turn, its end-of-turn included (and whatever the template writes after it, such as a newline).
   * tokenize-pairs.ts appends no EOS to a completion that ends with the EOS (and whitespace).
   */
  templated?: true;
}

export type RowShape = 'text' | 'hh' | 'chat';

export interface ChatMessage {
  role: string;
  content: string;
}

/** What the normalizer needs from a tokenizer (structurally a subset of the model tokenizer). */
export interface ChatTemplateSource {
  chatTemplate?: string | null;
  bosToken?: string | null;
  eosToken?: string | null;
}

export interface NormalizeOptions extends ChatTemplateSource {
  /** For chat rows without a chat template: plain "role: content" lines (default) or an error. */
  chatFallback?: 'lines' | 'error';
  /** Extra variables for the chat template (e.g. a system prompt flag). */
  templateVars?: Record<string, unknown>;
  /** The Sr refinement prompt p: chat rows get PreferenceRow.augPrompt. */
  refinePrompt?: string | null;
  /**
   * Rows for SFT (`--loss sft`), which trains on prompt + chosen alone: a row may also come without a
   * rejected response, in the SFT data sets' own shapes (asSftRow): the row's rejected is then "".
   */
  sft?: boolean;
}

export interface NormalizeStats {
  total: number;
  byShape: Record<RowShape, number>;
  /** Rows that carried score_chosen / score_rejected. */
  withScores: number;
  /** HH rows whose rejected did not start with the prompt from chosen (split per side). */
  hhPerSideSplit: number;
  /**
   * HH rows where the prompt cut from rejected at its own last "\n\nAssistant:" differs from
   * chosen's: the per-side rows plus rows whose rejected response itself contains the tag (those
   * keep the whole rest of rejected as the response, as the original code does). This is the
   * count SOURCES.md gives (9 helpful-base, 5 harmless-base).
   */
  hhOwnPromptDiffers: number;
  /** Rows (any shape) with an empty or whitespace-only chosen or rejected response. */
  emptyResponse: number;
  /** Rows whose chosen and rejected responses are identical. */
  identicalResponses: number;
  /** Chat rows whose rejected conversation prefix differed from chosen's. */
  chatPrefixMismatch: number;
  /** Chat rows rendered with "role: content" lines (no chat template). */
  chatPlainFallback: number;
  /** SFT rows without a rejected response (NormalizeOptions.sft). */
  sftOnly: number;
  warnings: string[];
}

export function newNormalizeStats(): NormalizeStats {
  return {
    total: 0, byShape: { text: 0, hh: 0, chat: 0 }, withScores: 0, hhPerSideSplit: 0, hhOwnPromptDiffers: 0, emptyResponse: 0,
    identicalResponses: 0, chatPrefixMismatch: 0, chatPlainFallback: 0, sftOnly: 0, warnings: [],
  };
}

export const HH_ASSISTANT_TAG = '\n\nAssistant:';

export interface HHSplit {
  prompt: string;
  chosen: string;
  rejected: string;
  /** True when rejected did not start with chosen's prompt and was split at its own last tag. */
  perSide: boolean;
  /** True when rejected's own last-tag prefix differs from the prompt (perSide, or a tag in its response). */
  ownPromptDiffers: boolean;
}

/** Splits an HH-RLHF dialogue pair (see the header comment for the rule). */
export function splitHH(chosen: string, rejected: string): HHSplit {
  const tag = HH_ASSISTANT_TAG;
  const i = chosen.lastIndexOf(tag);
  if (i < 0) {
    // A row of two strings without "prompt" is read as an HH-RLHF dialogue pair; one that is none is most
    // likely a prompt under another name ("question", "instruction") or TRL's implicit-prompt rows.
    throw new RowShapeError('no field "prompt", and "chosen" is no HH-RLHF dialogue (it has no "\\n\\nAssistant:"): give the prompt in "prompt" ' +
      '(srk reads prompt, chosen and rejected; HH-RLHF rows carry the prompt inside chosen and rejected)');
  }
  const prompt = chosen.slice(0, i + tag.length);
  const chosenResp = chosen.slice(prompt.length);
  const j = rejected.lastIndexOf(tag);
  if (rejected.startsWith(prompt)) {
    return { prompt, chosen: chosenResp, rejected: rejected.slice(prompt.length), perSide: false, ownPromptDiffers: j + tag.length !== prompt.length };
  }
  if (j < 0) throw new RowShapeError('HH row: "rejected" does not start with the prompt of "chosen" and has no "\\n\\nAssistant:"');
  return { prompt, chosen: chosenResp, rejected: rejected.slice(j + tag.length), perSide: true, ownPromptDiffers: true };
}

/** Names judge scores go by: UltraFeedback's (trl-lib, HuggingFaceH4), Argilla / distilabel's ratings, and
 *  a third spelling some sets use; the first pair a row has (at the top level, else under `metadata`). */
const SCORE_FIELDS: readonly [string, string][] = [['score_chosen', 'score_rejected'], ['chosen_rating', 'rejected_rating'], ['chosen_score', 'rejected_score']];

function readScores(obj: JsonObject): { scoreChosen?: number; scoreRejected?: number } {
  const has = (o: JsonObject, [c, r]: [string, string]) => (o[c] !== undefined && o[c] !== null) || (o[r] !== undefined && o[r] !== null);
  const m = obj.metadata;
  const meta = m !== null && typeof m === 'object' && !Array.isArray(m) ? m as JsonObject : undefined;
  for (const src of [obj, meta]) {
    if (!src) continue;
    const pair = SCORE_FIELDS.find((f) => has(src, f));
    if (!pair) continue;
    const scoreChosen = optionalNumber(src, pair[0]);
    const scoreRejected = optionalNumber(src, pair[1]);
    if ((scoreChosen === undefined) !== (scoreRejected === undefined)) {
      throw new RowShapeError(`only one of ${pair[0]} / ${pair[1]} is present`);
    }
    return { scoreChosen, scoreRejected };
  }
  return {};
}

function asMessages(v: unknown, key: string): ChatMessage[] {
  if (!Array.isArray(v)) throw new RowShapeError(`field "${key}" must be a message list, got ${describeJsonValue(v)}`);
  return v.map((m, k) => {
    if (m === null || typeof m !== 'object' || Array.isArray(m)) {
      throw new RowShapeError(`${key}[${k}] must be an object {role, content}, got ${describeJsonValue(m)}`);
    }
    const o = m as JsonObject;
    if (typeof o.role !== 'string') throw new RowShapeError(`${key}[${k}].role must be a string, got ${describeJsonValue(o.role)}`);
    if (typeof o.content !== 'string') {
      const parts = Array.isArray(o.content) ? ' (content as a list of parts, e.g. [{"type": "text", "text": ...}], is not supported: give the text as a string)' : '';
      throw new RowShapeError(`${key}[${k}].content must be a string, got ${describeJsonValue(o.content)}${parts}`);
    }
    return { role: o.role, content: o.content };
  });
}

function sameMessages(a: ChatMessage[], b: ChatMessage[]): boolean {
  return a.length === b.length && a.every((m, i) => m.role === b[i].role && m.content === b[i].content);
}

/**
 * An SFT row without a rejected response, as the row it would be with rejected = chosen (so that each
 * shape's prompt rule applies unchanged), or undefined for a row that has a rejected response. The
 * shapes, beside a preference row without "rejected":
 *  - {prompt, completion}: TRL's prompt-completion rows, strings or message lists;
 *  - {messages}: a conversation (TRL's conversational rows); as with chat preference rows, its last
 *    message must be the assistant's, which is the completion, and the messages before it the prompt.
 * A {text} row has no prompt to condition on, and is refused with a note saying so.
 */
export function asSftRow(obj: JsonObject): JsonObject | undefined {
  if (obj.rejected !== undefined && obj.rejected !== null) return undefined;
  // A rejected response under another name ("rejected_response", "Rejected", "rejeted") is a pair with a
  // misspelt field, not an SFT row: a file of them would be scored as SFT rows, the margins never computed.
  // Only a response's value (text or messages) under such a name: metadata (is_rejected, rejected_model) is none.
  const misspelt = Object.keys(obj).find((k) => k !== 'rejected' && (typeof obj[k] === 'string' || Array.isArray(obj[k])) &&
    (editDistance(k.toLowerCase(), 'rejected') <= 2 || /^rejected[_-]?(response|text|completion|answer|output|messages?)$/i.test(k)));
  if (misspelt !== undefined) {
    throw new RowShapeError(`missing field "rejected" (the row has ${JSON.stringify(misspelt)}, which srk does not read: it reads a rejected response from "rejected")`);
  }
  // TRL's KTO rows: a completion labelled desirable or not, unpaired. Read as SFT, the undesirable
  // ones would be trained on (or averaged into a held-out NLL) as if they were good answers.
  if (typeof obj.label === 'boolean') {
    throw new RowShapeError('a KTO row (prompt, completion, boolean "label"): unpaired completions labelled good or bad are neither ' +
      'preference pairs nor SFT rows; pair them (chosen, rejected) or keep the desirable ones as SFT rows');
  }
  const present = ['chosen', 'completion', 'messages'].filter((k) => obj[k] !== undefined && obj[k] !== null);
  if (present.length > 1) throw new RowShapeError(`SFT row: give one of "chosen", "completion" and "messages", not ${present.map((k) => `"${k}"`).join(' and ')}`);
  if (present.length === 0) {
    throw new RowShapeError(obj.text !== undefined
      ? 'SFT row with "text" only: srk trains on a completion after a prompt; give {prompt, completion}, {prompt, chosen} or {messages}'
      : 'missing field "chosen" (an SFT row may give "completion" or "messages" instead)');
  }
  const response = obj[present[0]];
  // (Checked here: copied into "rejected", a bad value would be reported as two.)
  if (typeof response !== 'string' && !Array.isArray(response)) {
    throw new RowShapeError(`field "${present[0]}" must be ${present[0] === 'messages' ? 'a message list' : 'a string or a message list'}, got ${describeJsonValue(response)}`);
  }
  if (present[0] === 'messages' && obj.prompt !== undefined && obj.prompt !== null) {
    throw new RowShapeError('SFT row: "messages" holds the whole conversation; give no "prompt" beside it');
  }
  const { completion: _c, messages: _m, ...rest } = obj;
  return { ...rest, chosen: response, rejected: response };
}

/** Levenshtein distance (short strings: field names). */
function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length];
}

/** Row shape of a parsed line, or a RowShapeError saying why none fits. */
export function detectShape(obj: JsonObject): RowShape {
  const { prompt, chosen, rejected } = obj;
  if (chosen === undefined) {
    // An SFT row's response under its own name, met where pairs are read (a file of pairs, --loss dpo).
    const sft = ['completion', 'messages'].find((k) => obj[k] !== undefined);
    throw new RowShapeError(sft === undefined ? 'missing field "chosen"'
      : `missing fields "chosen" and "rejected": a row with "${sft}" is an SFT row (--loss sft trains on such rows, and srk eval or an SFT run's --eval-data score a file of only such rows)`);
  }
  if (rejected === undefined) throw new RowShapeError('missing field "rejected" (rows without one are SFT rows: --loss sft trains on them, and srk eval or an SFT run\'s --eval-data score a file of only such rows)');
  if (typeof chosen === 'string' && typeof rejected === 'string') {
    if (prompt === undefined) return 'hh';
    if (typeof prompt === 'string') return 'text';
    throw new RowShapeError(`field "prompt" must be a string when chosen/rejected are strings, got ${describeJsonValue(prompt)}`);
  }
  if (Array.isArray(chosen) && Array.isArray(rejected)) return 'chat';
  throw new RowShapeError(
    `fields "chosen" and "rejected" must both be strings or both message lists, got ${describeJsonValue(chosen)} and ${describeJsonValue(rejected)}`);
}

/** Normalizes rows one at a time, keeping counts. */
export class PreferenceNormalizer {
  readonly stats: NormalizeStats = newNormalizeStats();
  private readonly template: Template | null;

  constructor(private readonly opts: NormalizeOptions = {}) {
    if (opts.chatTemplate) usePythonStrip();
    this.template = opts.chatTemplate ? new Template(opts.chatTemplate) : null;
  }

  /** Throws RowShapeError for a row of no known shape or with mistyped fields. */
  normalize(obj: JsonObject): PreferenceRow {
    const sftRow = this.opts.sft ? asSftRow(obj) : undefined;
    if (!sftRow) return this.normalizeRow(obj, false);
    // Errors name the field the row gave its response in (asSftRow moved it to "chosen").
    const field = ['completion', 'messages'].find((k) => obj[k] !== undefined && obj[k] !== null);
    try {
      return this.normalizeRow(sftRow, true);
    } catch (e) {
      if (!field || !(e instanceof RowShapeError)) throw e;
      throw new RowShapeError(e.message.replace(/\bchosen\b/g, field));
    }
  }

  private normalizeRow(obj: JsonObject, sftOnly: boolean): PreferenceRow {
    const shape = detectShape(obj);
    const scores = readScores(obj);
    let row: PreferenceRow;
    let perSide = false;
    let ownDiffers = false;
    let mismatch = false;
    let plain = false;
    // The responses as written, for the empty-response count (a chat row's rendering wraps even an empty one).
    let responses: [string, string] | undefined;
    if (shape === 'text') {
      row = { prompt: obj.prompt as string, chosen: obj.chosen as string, rejected: obj.rejected as string };
    } else if (shape === 'hh') {
      const s = splitHH(obj.chosen as string, obj.rejected as string);
      perSide = s.perSide;
      ownDiffers = s.ownPromptDiffers;
      row = { prompt: s.prompt, chosen: s.chosen, rejected: s.rejected };
    } else {
      const r = this.chat(obj);
      row = r.row; mismatch = r.mismatch; plain = r.plain; responses = r.responses;
    }
    // Count only once the row is accepted.
    const st = this.stats;
    st.total++;
    st.byShape[shape]++;
    if (perSide) st.hhPerSideSplit++;
    if (ownDiffers) st.hhOwnPromptDiffers++;
    if (mismatch) st.chatPrefixMismatch++;
    if (plain) st.chatPlainFallback++;
    if (plain && st.chatPlainFallback === 1) {
      st.warnings.push('no chat template: chat rows are written as "role: content" lines');
    }
    if (scores.scoreChosen !== undefined) st.withScores++;
    if (sftOnly) {
      // Normalized with rejected = chosen (asSftRow): it has none.
      st.sftOnly++;
      if ((responses?.[0] ?? row.chosen).trim() === '') st.emptyResponse++;
      return { ...row, rejected: '', ...scores };
    }
    const [chosenText, rejectedText] = responses ?? [row.chosen, row.rejected];
    if (chosenText.trim() === '' || rejectedText.trim() === '') st.emptyResponse++;
    if (row.chosen === row.rejected) st.identicalResponses++;
    return { ...row, ...scores };
  }

  private chat(obj: JsonObject): { row: PreferenceRow; mismatch: boolean; plain: boolean; responses: [string, string] } {
    let chosen = asMessages(obj.chosen, 'chosen');
    let rejected = asMessages(obj.rejected, 'rejected');
    const p = obj.prompt;
    if (Array.isArray(p)) {
      // TRL's explicit prompt: chosen / rejected are the turns after it, unless (as some exports
      // write them) they already start with the prompt's messages.
      const pm = asMessages(p, 'prompt');
      const addPrompt = (msgs: ChatMessage[]): ChatMessage[] =>
        msgs.length > pm.length && sameMessages(msgs.slice(0, pm.length), pm) ? msgs : [...pm, ...msgs];
      chosen = addPrompt(chosen);
      rejected = addPrompt(rejected);
    } else if (typeof p === 'string') {
      // H4 style repeats the prompt as the first user message (after any system messages), give or
      // take surrounding whitespace; otherwise chosen/rejected are assistant turns only and the
      // prompt string is the user message.
      const addUser = (msgs: ChatMessage[]): ChatMessage[] => {
        const u = msgs.findIndex((m) => m.role === 'user');
        const repeated = u >= 0 && u < msgs.length - 1 && msgs.slice(0, u).every((m) => m.role === 'system') && msgs[u].content.trim() === p.trim();
        return repeated ? msgs : [{ role: 'user', content: p }, ...msgs];
      };
      chosen = addUser(chosen);
      rejected = addUser(rejected);
    } else if (p !== undefined && p !== null) {
      throw new RowShapeError(`field "prompt" must be a string or a message list, got ${describeJsonValue(p)}`);
    }
    const last = (msgs: ChatMessage[], key: string): ChatMessage => {
      const m = msgs[msgs.length - 1];
      if (!m || m.role !== 'assistant') throw new RowShapeError(`"${key}" must end with an assistant message`);
      return m;
    };
    const chosenResp = last(chosen, 'chosen');
    const rejectedResp = last(rejected, 'rejected');
    const prefix = chosen.slice(0, -1);
    if (prefix.length === 0) throw new RowShapeError('chat row has no messages before the assistant response (no prompt)');
    const mismatch = !sameMessages(prefix, rejected.slice(0, -1));
    const augPrefix = this.withRefinePrompt(prefix);
    if (!this.template) {
      if (this.opts.chatFallback === 'error') {
        throw new RowShapeError('chat row, but the tokenizer has no chat template (chatFallback is "error")');
      }
      const lines = (msgs: ChatMessage[]) => [...msgs.map((m) => `${m.role}: ${m.content}`), 'assistant:'].join('\n');
      const row: PreferenceRow = { prompt: lines(prefix), chosen: ' ' + chosenResp.content, rejected: ' ' + rejectedResp.content };
      if (augPrefix) row.augPrompt = lines(augPrefix);
      return { row, mismatch, plain: true, responses: [chosenResp.content, rejectedResp.content] };
    }
    const promptText = this.render(prefix, true);
    const a = this.completion(promptText, prefix, chosenResp);
    const b = this.completion(promptText, prefix, rejectedResp);
    const row: PreferenceRow = { prompt: promptText, chosen: a, rejected: b, templated: true };
    if (augPrefix) row.augPrompt = this.render(augPrefix, true);
    return { row, mismatch, plain: false, responses: [chosenResp.content, rejectedResp.content] };
  }

  /** The messages with the refinement prompt at the head of the first user message ("p query", as the
   *  paper's p ⊕ x), or undefined without a refinement prompt or a user message. */
  private withRefinePrompt(messages: ChatMessage[]): ChatMessage[] | undefined {
    const p = this.opts.refinePrompt;
    const u = messages.findIndex((m) => m.role === 'user');
    if (typeof p !== 'string' || u < 0) return undefined;
    const sep = /\s$/.test(p) ? '' : ' ';
    return messages.map((m, i) => (i === u ? { ...m, content: `${p}${sep}${m.content}` } : m));
  }

  private render(messages: ChatMessage[], addGenerationPrompt: boolean): string {
    const t = this.template as Template;
    try {
      return t.render({
        ...this.opts.templateVars,
        messages,
        add_generation_prompt: addGenerationPrompt,
        bos_token: this.opts.bosToken ?? '',
        eos_token: this.opts.eosToken ?? '',
      });
    } catch (e) {
      throw new RowShapeError(`chat template failed: ${e instanceof Error ? e.message : String(e)}`);
    }
  }

  private completion(promptText: string, prefix: ChatMessage[], resp: ChatMessage): string {
    const full = this.render([...prefix, resp], false);
    if (full.startsWith(promptText)) return full.slice(promptText.length);
    let at = 0;
    while (at < promptText.length && promptText[at] === full[at]) at++;
    const part = (t: string) => JSON.stringify(t.slice(at, at + 40));
    throw new RowShapeError(`chat template: the conversation with its ${resp.role} response does not render as the prompt (with the generation prompt) ` +
      `and then more: they part at character ${at}, ${part(promptText)} in the prompt against ${part(full)}; no completion can be cut from it ` +
      '(TRL cuts the prompt back to the text the two share instead, and scores the rest of the generation prompt as response)');
  }
}

/** Validator for readJsonl: a JSON object -> PreferenceRow (counts go to the normalizer's stats). */
export function preferenceValidator(n: PreferenceNormalizer): (obj: JsonObject) => PreferenceRow {
  return (obj) => n.normalize(obj);
}

export interface PreferenceRowsResult {
  rows: PreferenceRow[];
  /** Line (or Parquet / JSON-array row) number of each row in its file. */
  lineNumbers: number[];
  /** Each row's file, as an index into `files`. */
  fileIndex: number[];
  files: string[];
  /** How each file numbers its rows (JsonlStats.unit). */
  units: JsonlStats['unit'][];
  stats: NormalizeStats;
  /** Reader counts over all files: lines, rows, bad (skipped) rows and the first skip reasons. */
  read: JsonlStats;
  /** Stopped at JsonlOptions.maxRows: rows may follow, not read. */
  stopped: boolean;
}

/** Where row `i` of a result came from, as an error names it. */
export function rowError(r: Pick<PreferenceRowsResult, 'lineNumbers' | 'fileIndex' | 'files' | 'units'>, i: number, reason: string): JsonlRowError {
  const f = r.fileIndex[i];
  return new JsonlRowError(r.files[f], r.lineNumbers[i], reason, r.units[f]);
}

/**
 * Reads and normalizes preference data (rows of any supported shape): one file, or several read as one in
 * the order given (data-files.ts), with one normalizer's counts.
 */
export async function loadPreferenceRows(
  data: DataFiles,
  opts: NormalizeOptions & JsonlOptions = {},
): Promise<PreferenceRowsResult> {
  const n = new PreferenceNormalizer(opts);
  const out: PreferenceRowsResult = { rows: [], lineNumbers: [], fileIndex: [], files: dataFileList(data), units: [], stats: n.stats, read: newJsonlStats(), stopped: false };
  const read = out.read;
  for (const [fi, file] of out.files.entries()) {
    if (opts.maxRows !== undefined && out.rows.length >= opts.maxRows) { out.stopped = true; break; }
    const r = await readJsonl(file, preferenceValidator(n), { ...opts, ...(opts.maxRows !== undefined ? { maxRows: opts.maxRows - out.rows.length } : {}) });
    out.stopped = r.stopped;
    for (let i = 0; i < r.values.length; i++) { out.rows.push(r.values[i]); out.lineNumbers.push(r.lineNumbers[i]); out.fileIndex.push(fi); }
    out.units.push(r.unit);
    read.lines += r.lines; read.rows += r.rows; read.badRows += r.badRows;
    for (const m of r.badReasons) if (read.badReasons.length < (opts.maxReasons ?? 5)) read.badReasons.push(m);
    read.unit = r.unit; // one file's (the last): rows carry their own (units)
  }
  return out;
}

/** One-paragraph summary of the counts, for logs. */
export function formatNormalizeStats(s: NormalizeStats, read?: JsonlStats): string {
  const parts = [
    `${s.total} rows (text ${s.byShape.text}, hh ${s.byShape.hh}, chat ${s.byShape.chat})`,
    `${s.withScores} with scores`,
  ];
  if (s.byShape.hh) parts.push(`${s.hhPerSideSplit} HH rows split per side (${s.hhOwnPromptDiffers} whose rejected has another last-Assistant prefix)`);
  if (s.emptyResponse) parts.push(`${s.emptyResponse} with an empty or blank response`);
  if (s.identicalResponses) parts.push(`${s.identicalResponses} with identical responses`);
  if (s.chatPrefixMismatch) parts.push(`${s.chatPrefixMismatch} chat rows with differing prefixes`);
  if (s.chatPlainFallback) parts.push(`${s.chatPlainFallback} chat rows as plain lines (no template)`);
  if (s.sftOnly) parts.push(`${s.sftOnly} SFT rows without a rejected response`);
  let out = parts.join('; ');
  if (read && read.badRows) out += `; ${read.badRows} bad lines skipped (${read.badReasons.join(' | ')})`;
  for (const w of s.warnings) out += `\nwarning: ${w}`;
  return out;
}
