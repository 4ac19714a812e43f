// The prompt of each row `srk generate` reads, as the text the model is given, from the shapes srk
// trains and evaluates on, so that a training or held-out file can be sampled as it is:
//   - a preference row (chosen, rejected): its prompt as training takes it (HH dialogues up to the
//     last "Assistant:", text prompts as written, chat rows through the chat template);
//   - {prompt: "text"}: the text as written (as text rows in training: no chat template);
//   - {prompt: [messages]} or {messages: [...]}: a conversation rendered by the tokenizer's chat template
//     with the generation prompt (without a template: "role: content" lines, then "assistant:"); a
//     conversation that ends with an assistant message (an SFT row) is the prompt before it;
//   - {prompt, completion} / {prompt, chosen} (SFT rows): the prompt, the response left out;
//   - {instruction: "text"} (AlpacaEval's rows): one user message, rendered as a conversation.
import { PreferenceNormalizer } from '../data/preference-rows.js';
import { RowShapeError, describeJsonValue, type JsonObject } from '../data/read-jsonl.js';
import type { ChatTemplateSource } from '../data/preference-rows.js';
import type { PairTokenizer } from '../data/tokenize-pairs.js';
import type { SrkTokenizer } from '../model/tokenizer.js';

/**
 * A row's prompt; with a refinement prompt p (the Sr losses' p ⊕ x), `augmented`: a conversation's rendering
 * with p at the head of its first user message, as training renders the augmented chat rows. (Text prompts
 * have none: p's tokens go before the prompt's, as in training: tokenize-pairs.ts.)
 */
export interface RowPrompt {
  prompt: string; augmented?: string;
  /** A chat template's rendering: tokenized without the tokenizer's special tokens (the template writes its BOS). */
  templated?: boolean;
}

export class PromptReader {
  private readonly pairs: PreferenceNormalizer;
  private readonly sft: PreferenceNormalizer;

  constructor(tok: ChatTemplateSource, refinePrompt: string | null = null) {
    this.pairs = new PreferenceNormalizer({ chatTemplate: tok.chatTemplate, bosToken: tok.bosToken, eosToken: tok.eosToken, refinePrompt });
    this.sft = new PreferenceNormalizer({ chatTemplate: tok.chatTemplate, bosToken: tok.bosToken, eosToken: tok.eosToken, sft: true, refinePrompt });
  }

  /** The prompt text of a row; RowShapeError for a row of no known shape. */
  prompt(obj: JsonObject): string { return this.read(obj).prompt; }

  /** The prompt text of a row, and its augmented rendering where it is a conversation and there is a refinement prompt. */
  read(obj: JsonObject): RowPrompt {
    const row = this.rowOf(obj);
    return { prompt: row.prompt, ...(row.augPrompt !== undefined ? { augmented: row.augPrompt } : {}), ...(row.templated ? { templated: true } : {}) };
  }

  private rowOf(obj: JsonObject): { prompt: string; augPrompt?: string; templated?: true } {
    const has = (k: string) => obj[k] !== undefined && obj[k] !== null;
    if (has('chosen') && has('rejected')) return this.pairs.normalize(obj);
    if (has('instruction')) {
      if (typeof obj.instruction !== 'string') throw new RowShapeError(`field "instruction" must be a string, got ${describeJsonValue(obj.instruction)}`);
      if (has('prompt') || has('messages')) throw new RowShapeError('give one of "instruction", "prompt" and "messages"');
      // Alpaca-style rows give the task's text in "input": it follows the instruction after a blank line
      // (as Alpaca's own prompt sets it below the instruction), never dropped.
      if (has('input') && typeof obj.input !== 'string') throw new RowShapeError(`field "input" must be a string, got ${describeJsonValue(obj.input)}`);
      const input = has('input') ? (obj.input as string) : '';
      return this.conversation([{ role: 'user', content: input.trim() === '' ? obj.instruction : `${obj.instruction}\n\n${input}` }], 'instruction');
    }
    if (has('completion') || has('chosen')) return this.sft.normalize(obj);
    if (has('messages')) {
      if (has('prompt')) throw new RowShapeError('"messages" holds the whole conversation; give no "prompt" beside it');
      return this.conversation(obj.messages, 'messages');
    }
    if (!has('prompt')) {
      throw new RowShapeError('no prompt: a row gives "prompt" (text or messages), "messages", "instruction", or a preference pair (chosen, rejected)');
    }
    if (typeof obj.prompt === 'string') return { prompt: obj.prompt };
    return this.conversation(obj.prompt, 'prompt');
  }

  /**
   * A conversation's prompt: all of it with the generation prompt, or, where it ends with an assistant
   * message, what comes before that. (Read as a preference row whose responses are an empty assistant
   * turn, so the chat rendering, and its plain fallback, are training's.)
   */
  private conversation(v: unknown, key: string): { prompt: string; augPrompt?: string; templated?: true } {
    if (!Array.isArray(v)) throw new RowShapeError(`field "${key}" must be a message list, got ${describeJsonValue(v)}`);
    const last = v[v.length - 1] as { role?: unknown } | undefined;
    if (last && typeof last === 'object' && last.role === 'assistant') return this.sft.normalize({ messages: v });
    const empty = [{ role: 'assistant', content: '' }];
    return this.pairs.normalize({ prompt: v, chosen: empty, rejected: empty });
  }
}

/** A prompt as generation feeds it: its text (the kept text when cut), token ids, and whether it was cut. */
export interface PromptInput { prompt: string; ids: number[]; truncated: boolean }

/**
 * The ids a row's prompt gives the model (at most maxPrompt) and their text (the output's prompt). A long
 * prompt keeps its end (where the question usually is, and what the answer follows), a tokenizer's BOS
 * first. With `augmented`, the Sr losses' p ⊕ x as training builds it (tokenize-pairs.ts): a conversation's
 * own rendering with p in its first user message, else (text prompts, and a conversation cut to fit) p's
 * tokens before the prompt's, after a BOS, the prompt cut to leave them room.
 */
export function promptInput(rp: RowPrompt, encoder: PairTokenizer, tok: SrkTokenizer, maxPrompt: number, augmented: boolean): PromptInput {
  if (augmented && rp.augmented !== undefined) {
    const a = encoder.encodePrompt(rp.augmented, false, rp.templated === true);
    if (a.ids.length <= maxPrompt) return { prompt: rp.augmented, ids: a.ids, truncated: false };
  }
  const refine = augmented ? encoder.refineIds ?? [] : [];
  const plain = encoder.encodePrompt(rp.prompt, true, rp.templated === true);
  const room = maxPrompt - refine.length;
  let ids = plain.ids;
  const pin = Math.min(plain.pinned, room - 1);
  const truncated = ids.length > room;
  if (truncated) ids = [...ids.slice(0, pin), ...ids.slice(ids.length - (room - pin))];
  if (!augmented) return { prompt: truncated ? tok.decode(ids.slice(pin)) : rp.prompt, ids, truncated };
  const full = pin ? [ids[0], ...refine, ...ids.slice(1)] : [...refine, ...ids];
  return { prompt: tok.decode(full.slice(pin)), ids: full, truncated };
}
