/**
 * One parsed OpenAI request run on a Generator: one generation per prompt
 * (already token ids, prompt-tokens.ts) with `n` choices each, and
 * the answer in OpenAI's shapes: a whole JSON body, or stream chunks.
 * Choice indices are prompt * n + choice, as in OpenAI's completions API.
 */
import type { Model } from "../model/model.ts";
import { type EngineEvent, EventQueue, type FinishReason, type TokenEvent } from "../engine/events.ts";
import type { GenerationHandle, GenerationUsage, Generator } from "./generation.ts";
import type { ParsedRequest } from "./openai-request.ts";
import type { Tokenizer } from "../tokenizer/tokenizer.ts";

export interface RunContext {
  model: Model;
  generator: Generator;
  modelId: string;
  parsed: ParsedRequest;
  /** The prompts as token ids (prompt-tokens.ts), already checked against the context. */
  promptIds: number[][];
  signal: AbortSignal;
  /** Called with every event as it is merged (metrics). */
  observe?: (ev: EngineEvent) => void;
}

interface ChoiceState {
  text: string;
  tokens: TokenEvent[];
  finishReason: FinishReason | null;
}

/** OpenAI's usage object: the request's prompt and completion tokens, over every generation. */
interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

/** A request whose generations have started: what its answer, whole or streamed, is made from. */
interface StartedRequest {
  chat: boolean;
  /** The answer's id ("chatcmpl-..." or "cmpl-..."), creation time (s) and model, the same in every chunk. */
  id: string;
  created: number;
  modelId: string;
  /** Choices in all: prompts x n. */
  choices: number;
  /** Every generation's events in one stream, choice indices global. */
  events: () => AsyncIterable<EngineEvent>;
  usage: () => Promise<Usage>;
  /** How tokens are spelled in logprobs; null when the request asked for none (so also: whether it did). */
  spelling: TokenSpelling | null;
  /** stream_options.include_usage: every chunk carries usage (null until the last). */
  includeUsage: boolean;
}

let nextId = 0;

/**
 * Starts every generation of the request at once, or none: when one cannot
 * start, those already started are cancelled before the error is thrown.
 */
export function runRequest(ctx: RunContext) {
  const { parsed, promptIds } = ctx;
  const chat = parsed.kind === "chat";
  const id = `${chat ? "chatcmpl" : "cmpl"}-${Date.now().toString(36)}${(nextId++).toString(36)}`;
  const created = Math.floor(Date.now() / 1000);
  const handles = startGenerations(ctx);
  const req: StartedRequest = {
    chat,
    id,
    created,
    modelId: ctx.modelId,
    choices: promptIds.length * parsed.n,
    events: mergedEvents(handles, parsed.n, ctx.observe),
    usage: () => usageOf(handles),
    spelling: parsed.logprobs !== null ? tokenSpelling(ctx.model.tokenizer) : null,
    includeUsage: parsed.includeUsage,
  };
  return {
    /** Prompt and completion token counts, once every generation has finished. */
    usage: req.usage,
    /** The whole answer as one JSON object. */
    json: () => wholeAnswer(req),
    /** The answer as stream chunks (without the final [DONE], which the SSE writer adds). */
    chunks: () => answerChunks(req),
  };
}

/** One generation per prompt, all sharing one signal; those started are aborted when a later one cannot start. */
function startGenerations(ctx: RunContext): GenerationHandle[] {
  const { model, parsed } = ctx;
  const started = new AbortController();
  const signal = anySignal(ctx.signal, started.signal);
  const handles: GenerationHandle[] = [];
  try {
    for (const ids of ctx.promptIds) {
      handles.push(ctx.generator.start({
        promptIds: ids,
        maxTokens: parsed.maxTokens === undefined ? model.contextLength - ids.length : parsed.maxTokens,
        sampling: parsed.logprobs === null ? parsed.sampling : { ...parsed.sampling, logprobs: parsed.logprobs },
        stop: parsed.stop,
        n: parsed.n,
        signal,
      }));
    }
  } catch (e) {
    started.abort();
    throw e;
  }
  return handles;
}

/**
 * All generations' events in one queue, with choice indices made global (prompt * n + choice), each passed to
 * `observe` as it is merged: each generation pumps its own events in, so an event costs the same whatever the
 * number of prompts. The queue is made on the first call, and every later call gets the same one.
 */
function mergedEvents(handles: GenerationHandle[], n: number, observe?: (ev: EngineEvent) => void): () => AsyncIterable<EngineEvent> {
  let merging: EventQueue<EngineEvent> | null = null;
  return () => {
    if (merging) return merging;
    const q = merging = new EventQueue<EngineEvent>();
    let live = handles.length;
    handles.forEach(async (h, p) => {
      try {
        for await (const ev of h) {
          const global = p === 0 ? ev : { ...ev, choice: p * n + ev.choice };
          observe?.(global);
          q.push(global);
        }
        if (--live === 0) q.end();
      } catch (e) {
        q.fail(e);
      }
    });
    return q;
  };
}

async function usageOf(handles: GenerationHandle[]): Promise<Usage> {
  const all: GenerationUsage[] = await Promise.all(handles.map((h) => h.done));
  const prompt = all.reduce((s, u) => s + u.promptTokens, 0);
  const completion = all.reduce((s, u) => s + u.completionTokens, 0);
  return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
}

/** The non-streaming answer: every choice's text (and tokens, for logprobs) gathered, then one JSON object. */
async function wholeAnswer(req: StartedRequest) {
  const { chat, spelling } = req;
  const choices: ChoiceState[] = Array.from({ length: req.choices }, () => ({ text: "", tokens: [], finishReason: null }));
  for await (const ev of req.events()) {
    const c = choices[ev.choice];
    c.text += ev.text;
    if (ev.type === "token") {
      if (spelling) c.tokens.push(ev);
    } else c.finishReason = ev.reason;
  }
  const u = await req.usage();
  return {
    id: req.id,
    object: chat ? "chat.completion" : "text_completion",
    created: req.created,
    model: req.modelId,
    system_fingerprint: null,
    choices: choices.map((c, index) =>
      chat
        ? {
          index,
          message: { role: "assistant", content: c.text, refusal: null },
          logprobs: spelling ? chatLogprobs(spelling, c.tokens) : null,
          finish_reason: openAIFinish(c.finishReason),
        }
        : {
          index,
          text: c.text,
          logprobs: spelling ? completionLogprobs(spelling, c.tokens, 0) : null,
          finish_reason: openAIFinish(c.finishReason),
        }
    ),
    usage: u,
  };
}

/**
 * The streaming answer's chunks: a chat choice's role-only opening, a chunk for each token's text (or a finish's
 * released text), one for each finish, and the usage last when asked for.
 */
async function* answerChunks(req: StartedRequest) {
  const { chat, spelling, includeUsage } = req;
  const chunkObject = chat ? "chat.completion.chunk" : "text_completion";
  const base = () => ({ id: req.id, object: chunkObject, created: req.created, model: req.modelId, system_fingerprint: null });
  const textSoFar = new Array<number>(req.choices).fill(0);
  if (chat) {
    // OpenAI opens every chat choice with a role-only delta
    for (let index = 0; index < req.choices; index++) {
      yield {
        ...base(),
        choices: [{ index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }],
        ...(includeUsage ? { usage: null } : {}),
      };
    }
  }
  for await (const ev of req.events()) {
    const index = ev.choice;
    // a token's text (with the token, for logprobs), or the text a finish releases (no token)
    const tokens = ev.type === "token" ? [ev] : [];
    if (ev.text !== "" || (spelling && tokens.length > 0)) {
      const lp = spelling ? (chat ? chatLogprobs(spelling, tokens) : completionLogprobs(spelling, tokens, textSoFar[index])) : null;
      textSoFar[index] += ev.text.length;
      const choice = chat
        ? { index, delta: { content: ev.text }, logprobs: lp, finish_reason: null }
        : { index, text: ev.text, logprobs: lp, finish_reason: null };
      yield { ...base(), choices: [choice], ...(includeUsage ? { usage: null } : {}) };
    }
    if (ev.type === "finish") {
      const choice = chat
        ? { index, delta: {}, logprobs: null, finish_reason: openAIFinish(ev.reason) }
        : { index, text: "", logprobs: null, finish_reason: openAIFinish(ev.reason) };
      yield { ...base(), choices: [choice], ...(includeUsage ? { usage: null } : {}) };
    }
  }
  const u = await req.usage();
  if (includeUsage) yield { ...base(), choices: [], usage: u };
}

/** A token as logprobs spell it: its bytes decoded as UTF-8 (text), and the bytes themselves. */
interface TokenSpelling {
  text(id: number): string;
  bytes(id: number): number[];
}

function tokenSpelling(tok: Tokenizer): TokenSpelling {
  const dec = new TextDecoder("utf-8");
  return { text: (id) => dec.decode(tok.tokenBytes(id)), bytes: (id) => Array.from(tok.tokenBytes(id)) };
}

/** Chat logprobs: each token's text, logprob and bytes, and its alternatives the same. */
function chatLogprobs(spell: TokenSpelling, tokens: TokenEvent[]) {
  return {
    content: tokens.map((t) => ({
      token: spell.text(t.id),
      logprob: t.logprob,
      bytes: spell.bytes(t.id),
      top_logprobs: t.top.map((a) => ({ token: spell.text(a.id), logprob: a.logprob, bytes: spell.bytes(a.id) })),
    })),
  };
}

/** Completions logprobs: parallel arrays, each token's offset counted from the choice's text before it (textOffset). */
function completionLogprobs(spell: TokenSpelling, tokens: TokenEvent[], textOffset: number) {
  const offsets: number[] = [];
  let at = textOffset;
  for (const t of tokens) {
    offsets.push(at);
    at += spell.text(t.id).length;
  }
  return {
    tokens: tokens.map((t) => spell.text(t.id)),
    token_logprobs: tokens.map((t) => t.logprob),
    top_logprobs: tokens.map((t) => Object.fromEntries(t.top.map((a) => [spell.text(a.id), a.logprob]))),
    text_offset: offsets,
  };
}

/** Aborted choices never reach a client that is still there, except at shutdown; call them "stop". */
function openAIFinish(r: FinishReason | null): "stop" | "length" {
  return r === "length" ? "length" : "stop";
}

/** Aborts when either signal does (AbortSignal.any where the runtime has it). */
function anySignal(a: AbortSignal, b: AbortSignal): AbortSignal {
  const any = (AbortSignal as { any?: (s: AbortSignal[]) => AbortSignal }).any;
  if (any) return any([a, b]);
  const c = new AbortController();
  for (const s of [a, b]) {
    if (s.aborted) c.abort();
    else s.addEventListener("abort", () => c.abort(), { once: true });
  }
  return c.signal;
}
