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

let nextId = 0;

/**
 * Starts every generation of the request at once, or none: when one cannot
 * start, those already started are cancelled before the error is thrown.
 */
export function runRequest(ctx: RunContext) {
  const { model, parsed, promptIds } = ctx;
  const chat = parsed.kind === "chat";
  const id = `${chat ? "chatcmpl" : "cmpl"}-${Date.now().toString(36)}${(nextId++).toString(36)}`;
  const created = Math.floor(Date.now() / 1000);
  const object = chat ? "chat.completion" : "text_completion";
  const maxTokens = parsed.maxTokens;
  const n = parsed.n;
  const started = new AbortController();
  const signal = anySignal(ctx.signal, started.signal);
  const handles: GenerationHandle[] = [];
  try {
    for (const ids of promptIds) {
      handles.push(ctx.generator.start({
        promptIds: ids,
        maxTokens: maxTokens === undefined ? model.contextLength - ids.length : maxTokens,
        sampling: parsed.logprobs === null ? parsed.sampling : { ...parsed.sampling, logprobs: parsed.logprobs },
        stop: parsed.stop,
        n,
        signal,
      }));
    }
  } catch (e) {
    started.abort();
    throw e;
  }

  /**
   * All generations' events in one queue, with choice indices made global:
   * each generation pumps its own events in, so an event costs the same
   * whatever the number of prompts.
   */
  let merging: EventQueue<EngineEvent> | null = null;
  function merged(): AsyncIterable<EngineEvent> {
    if (merging) return merging;
    const q = merging = new EventQueue<EngineEvent>();
    let live = handles.length;
    handles.forEach(async (h, p) => {
      try {
        for await (const ev of h) {
          const global = p === 0 ? ev : { ...ev, choice: p * n + ev.choice };
          ctx.observe?.(global);
          q.push(global);
        }
        if (--live === 0) q.end();
      } catch (e) {
        q.fail(e);
      }
    });
    return q;
  }

  async function usage(): Promise<{ prompt_tokens: number; completion_tokens: number; total_tokens: number }> {
    const all: GenerationUsage[] = await Promise.all(handles.map((h) => h.done));
    const prompt = all.reduce((s, u) => s + u.promptTokens, 0);
    const completion = all.reduce((s, u) => s + u.completionTokens, 0);
    return { prompt_tokens: prompt, completion_tokens: completion, total_tokens: prompt + completion };
  }

  const wantLogprobs = parsed.logprobs !== null;
  const tok = model.tokenizer;
  const dec = new TextDecoder("utf-8");
  const tokenText = (id: number) => dec.decode(tok.tokenBytes(id));
  const bytesOf = (id: number) => Array.from(tok.tokenBytes(id));

  function chatLogprobs(tokens: TokenEvent[]) {
    return {
      content: tokens.map((t) => ({
        token: tokenText(t.id),
        logprob: t.logprob,
        bytes: bytesOf(t.id),
        top_logprobs: t.top.map((a) => ({ token: tokenText(a.id), logprob: a.logprob, bytes: bytesOf(a.id) })),
      })),
    };
  }

  function completionLogprobs(tokens: TokenEvent[], textOffset: number) {
    const offsets: number[] = [];
    let at = textOffset;
    for (const t of tokens) {
      offsets.push(at);
      at += tokenText(t.id).length;
    }
    return {
      tokens: tokens.map((t) => tokenText(t.id)),
      token_logprobs: tokens.map((t) => t.logprob),
      top_logprobs: tokens.map((t) => Object.fromEntries(t.top.map((a) => [tokenText(a.id), a.logprob]))),
      text_offset: offsets,
    };
  }

  return {
    /** Prompt and completion token counts, once every generation has finished. */
    usage,

    /** The whole answer as one JSON object. */
    async json() {
      const choices: ChoiceState[] = Array.from({ length: handles.length * n }, () => ({ text: "", tokens: [], finishReason: null }));
      for await (const ev of merged()) {
        const c = choices[ev.choice];
        c.text += ev.text;
        if (ev.type === "token") {
          if (wantLogprobs) c.tokens.push(ev);
        } else c.finishReason = ev.reason;
      }
      const u = await usage();
      return {
        id,
        object,
        created,
        model: ctx.modelId,
        system_fingerprint: null,
        choices: choices.map((c, index) =>
          chat
            ? {
              index,
              message: { role: "assistant", content: c.text, refusal: null },
              logprobs: wantLogprobs ? chatLogprobs(c.tokens) : null,
              finish_reason: openAIFinish(c.finishReason),
            }
            : {
              index,
              text: c.text,
              logprobs: wantLogprobs ? completionLogprobs(c.tokens, 0) : null,
              finish_reason: openAIFinish(c.finishReason),
            }
        ),
        usage: u,
      };
    },

    /** The answer as stream chunks (without the final [DONE], which the SSE writer adds). */
    async *chunks() {
      const chunkObject = chat ? "chat.completion.chunk" : "text_completion";
      const base = () => ({ id, object: chunkObject, created, model: ctx.modelId, system_fingerprint: null });
      const includeUsage = parsed.includeUsage;
      const textSoFar = new Array<number>(handles.length * n).fill(0);
      if (chat) {
        // OpenAI opens every chat choice with a role-only delta
        for (let index = 0; index < handles.length * n; index++) {
          yield {
            ...base(),
            choices: [{ index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }],
            ...(includeUsage ? { usage: null } : {}),
          };
        }
      }
      for await (const ev of merged()) {
        const index = ev.choice;
        // a token's text (with the token, for logprobs), or the text a finish releases (no token)
        const tokens = ev.type === "token" ? [ev] : [];
        if (ev.text !== "" || (wantLogprobs && tokens.length > 0)) {
          const lp = wantLogprobs ? (chat ? chatLogprobs(tokens) : completionLogprobs(tokens, textSoFar[index])) : null;
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
      const u = await usage();
      if (includeUsage) yield { ...base(), choices: [], usage: u };
    },
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
