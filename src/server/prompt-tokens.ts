/**
 * A request's prompts as token ids, refusing the ones that cannot fit the
 * context as cheaply as possible: a prompt whose UTF-8 length alone proves it
 * needs more tokens than the context holds (no token spells more than the
 * vocabulary's longest piece) is refused without running the tokenizer, so a
 * megabyte of text costs a byte count, not seconds of tokenizing on the event
 * loop. A prompt that may fit is tokenized in steps of a few kilobytes
 * (Tokenizer.encodeSteps: cut only where the vocabulary cannot merge across,
 * so the ids are exactly those of the whole text) with a yield to the event
 * loop between them, so running streams keep stepping, and tokenizing stops
 * as soon as the context is exceeded.
 */
import type { Model } from "../model/model.ts";
import type { EncodeOptions, Tokenizer } from "../tokenizer/tokenizer.ts";
import { NumericalError, ParamError } from "../errors.ts";
import type { ChatTemplate } from "./chat-template.ts";
import { chatPieces, renderChat } from "./chat-prompt.ts";
import { HttpError } from "./http-error.ts";
import type { ParsedRequest } from "./openai-request.ts";

const longestToken = new WeakMap<Tokenizer, number>();

/**
 * The most UTF-8 bytes of text one token can stand for: its bytes, or for a
 * control token matched by name (chat templates), the name itself.
 */
function maxTokenBytes(tok: Tokenizer, vocabSize: number): number {
  let max = longestToken.get(tok);
  if (max !== undefined) return max;
  max = 1;
  for (let id = 0; id < vocabSize; id++) {
    const bytes = tok.tokenBytes(id).length;
    max = Math.max(max, bytes > 0 ? bytes : utf8Length(tok.piece(id)));
  }
  longestToken.set(tok, max);
  return max;
}

function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && i + 1 < s.length && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/** Refuses `text` when its length alone proves it needs more positions than the context has (plus one to generate). */
function checkTextFits(model: Model, text: string, param: string): void {
  const limit = model.contextLength;
  const bytes = utf8Length(text);
  const atLeast = Math.ceil(bytes / maxTokenBytes(model.tokenizer, model.vocabSize));
  if (atLeast >= limit) {
    throw new HttpError(
      400,
      `${param}: ${bytes} bytes of text need at least ${atLeast} tokens, and the context holds ${limit} (prompt and completion together); shorten the prompt`,
      "invalid_request_error",
      param,
      "context_length_exceeded",
    );
  }
}

function checkIdsFit(model: Model, ids: number[], param: string): void {
  if (ids.length >= model.contextLength) {
    throw new HttpError(
      400,
      `${param}: ${ids.length} tokens leave no room to generate in a context of ${model.contextLength}; shorten the prompt`,
      "invalid_request_error",
      param,
      "context_length_exceeded",
    );
  }
}

const yieldToEventLoop: () => Promise<void> = typeof (globalThis as { setImmediate?: unknown }).setImmediate === "function"
  ? () => new Promise((r) => (globalThis as unknown as { setImmediate(f: () => void): void }).setImmediate(r))
  : () => new Promise((r) => setTimeout(r, 0));

const STEP_CHARS = 4096;

/**
 * `text` as ids, a step at a time with a yield to the event loop between
 * steps, stopping once more than `limit` ids are known (the ids so far are
 * returned: the caller refuses them).
 */
export async function encodeInSteps(tok: Tokenizer, text: string, limit: number, opts?: EncodeOptions): Promise<number[]> {
  if (!tok.encodeSteps || text.length <= STEP_CHARS) return tok.encode(text, opts);
  const steps = tok.encodeSteps(text, opts, STEP_CHARS);
  for (;;) {
    const r = steps.next();
    if (r.done) return r.value;
    if (r.value.length > limit) return [...r.value];
    await yieldToEventLoop();
  }
}

/**
 * Token ids of every prompt of the request (chat: the rendered conversation), each checked against the context.
 * `template` is null where the model's own does not parse: the handler refuses chats before they get here.
 */
export async function promptIdsOf(model: Model, template: ChatTemplate | null, parsed: ParsedRequest): Promise<number[][]> {
  if (parsed.kind === "chat") {
    if (template === null) throw new NumericalError("the chat template does not parse", "tokenizer.chat_template");
    return [await chatPromptIds(model, template, parsed)];
  }
  const out: number[][] = [];
  for (let i = 0; i < parsed.prompts.length; i++) {
    const param = parsed.prompts.length > 1 ? `prompt[${i}]` : "prompt";
    const p = parsed.prompts[i];
    if (typeof p === "string") checkTextFits(model, p, param);
    if (i > 0) await yieldToEventLoop();
    const ids = await completionPromptIds(model, p, param);
    checkIdsFit(model, ids, param);
    out.push(ids);
  }
  return out;
}

async function completionPromptIds(model: Model, prompt: string | number[], param: string): Promise<number[]> {
  if (typeof prompt === "string") {
    if (prompt === "") throw new ParamError(param, "is empty; send at least one character");
    const ids = await encodeInSteps(model.tokenizer, prompt, model.contextLength);
    if (ids.length === 0) throw new ParamError(param, "is empty");
    return ids;
  }
  for (const t of prompt) {
    if (t >= model.vocabSize) throw new ParamError(param, `token id ${t} is outside the vocabulary (0..${model.vocabSize - 1})`);
  }
  return prompt;
}

/**
 * The rendered conversation (chat-prompt.ts renderChat: the template's control tokens recognised, since it writes
 * `<|im_start|>` etc. on purpose, content's kept as text; BOS only where the template did not write it), its size
 * checked before and after it is tokenized in steps.
 */
async function chatPromptIds(model: Model, template: ChatTemplate, parsed: ParsedRequest): Promise<number[]> {
  const rendered = renderChat(model, template, parsed.messages);
  checkTextFits(model, rendered.text, "messages");
  const ids: number[] = [];
  for (const [text, encode] of chatPieces(rendered)) {
    const piece = await encodeInSteps(model.tokenizer, text, model.contextLength - ids.length, encode);
    for (const id of piece) ids.push(id);
    if (ids.length > model.contextLength) break;
  }
  if (ids.length === 0) throw new ParamError("messages", "render to an empty prompt");
  checkIdsFit(model, ids, "messages");
  return ids;
}
