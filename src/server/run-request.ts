/**
 * One parsed OpenAI request run on a Generator: prompts to token ids (chat
 * through the template), one generation per prompt with `n` choices each, and
 * the answer in OpenAI's shapes: a whole JSON body, or stream chunks.
 * Choice indices are prompt * n + choice, as in OpenAI's completions API.
 */
import type { Model } from "../model/model.ts";
import { ContextLengthError, ParamError } from "../errors.ts";
import type { ChatTemplate } from "./chat-template.ts";
import { chatPromptIds as renderChatIds } from "./chat-prompt.ts";
import type { FinishReason, GeneratedTokenInfo, GenerationEvent, GenerationHandle, GenerationUsage, Generator } from "./generation.ts";
import type { ParsedRequest } from "./openai-request.ts";

export interface RunContext {
  model: Model;
  generator: Generator;
  template: ChatTemplate;
  modelId: string;
  parsed: ParsedRequest;
  signal: AbortSignal;
}

interface ChoiceState {
  text: string;
  tokens: GeneratedTokenInfo[];
  finishReason: FinishReason | null;
}

let nextId = 0;

export function runRequest(ctx: RunContext) {
  const { model, parsed } = ctx;
  const chat = parsed.kind === "chat";
  const id = `${chat ? "chatcmpl" : "cmpl"}-${Date.now().toString(36)}${(nextId++).toString(36)}`;
  const created = Math.floor(Date.now() / 1000);
  const object = chat ? "chat.completion" : "text_completion";
  const promptIds = (chat ? [chatPromptIds(ctx)] : parsed.prompts.map((p) => completionPromptIds(model, p)));
  for (const ids of promptIds) {
    if (ids.length >= model.contextLength) throw new ContextLengthError(ids.length + 1, model.contextLength, "prompt");
  }
  const maxTokens = parsed.maxTokens;
  const handles: GenerationHandle[] = promptIds.map((ids) =>
    ctx.generator.start({
      promptIds: ids,
      maxTokens: maxTokens === undefined ? model.contextLength - ids.length : maxTokens,
      sampling: parsed.logprobs === null ? parsed.sampling : { ...parsed.sampling, logprobs: parsed.logprobs },
      stop: parsed.stop,
      n: parsed.n,
      signal: ctx.signal,
    })
  );
  const n = parsed.n;

  /** All generations' events, merged, with choice indices made global. */
  async function* merged(): AsyncGenerator<GenerationEvent> {
    if (handles.length === 1) {
      yield* handles[0];
      return;
    }
    const its = handles.map((h) => h[Symbol.asyncIterator]());
    const next = its.map((it, p) => it.next().then((r) => ({ r, p })));
    let live = its.length;
    while (live > 0) {
      const { r, p } = await Promise.race(next.filter(Boolean));
      if (r.done) {
        live--;
        delete next[p];
        continue;
      }
      next[p] = its[p].next().then((r) => ({ r, p }));
      yield { ...r.value, index: p * n + r.value.index };
    }
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

  function chatLogprobs(tokens: GeneratedTokenInfo[]) {
    return {
      content: tokens.map((t) => ({
        token: tokenText(t.id),
        logprob: t.logprob,
        bytes: bytesOf(t.id),
        top_logprobs: t.top.map((a) => ({ token: tokenText(a.id), logprob: a.logprob, bytes: bytesOf(a.id) })),
      })),
    };
  }

  function completionLogprobs(tokens: GeneratedTokenInfo[], textOffset: number) {
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
        const c = choices[ev.index];
        if (ev.type === "delta") {
          c.text += ev.text;
          if (wantLogprobs) c.tokens.push(...ev.tokens);
        } else c.finishReason = ev.finishReason;
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
          yield { ...base(), choices: [{ index, delta: { role: "assistant", content: "" }, logprobs: null, finish_reason: null }], ...(includeUsage ? { usage: null } : {}) };
        }
      }
      for await (const ev of merged()) {
        if (ev.type === "delta") {
          if (ev.text === "" && (!wantLogprobs || ev.tokens.length === 0)) continue;
          const lp = wantLogprobs ? (chat ? chatLogprobs(ev.tokens) : completionLogprobs(ev.tokens, textSoFar[ev.index])) : null;
          textSoFar[ev.index] += ev.text.length;
          const choice = chat
            ? { index: ev.index, delta: { content: ev.text }, logprobs: lp, finish_reason: null }
            : { index: ev.index, text: ev.text, logprobs: lp, finish_reason: null };
          yield { ...base(), choices: [choice], ...(includeUsage ? { usage: null } : {}) };
        } else {
          const choice = chat
            ? { index: ev.index, delta: {}, logprobs: null, finish_reason: openAIFinish(ev.finishReason) }
            : { index: ev.index, text: "", logprobs: null, finish_reason: openAIFinish(ev.finishReason) };
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

function completionPromptIds(model: Model, prompt: string | number[]): number[] {
  if (typeof prompt === "string") {
    const ids = model.tokenizer.encode(prompt);
    if (ids.length === 0) throw new ParamError("prompt", "is empty");
    return ids;
  }
  for (const t of prompt) {
    if (t >= model.vocabSize) throw new ParamError("prompt", `token id ${t} is outside the vocabulary (0..${model.vocabSize - 1})`);
  }
  return prompt;
}

/**
 * The rendered conversation, tokenized with control tokens recognised (the
 * template writes `<|im_start|>` etc. on purpose). BOS is added only when the
 * tokenizer wants one and the template did not already write it.
 */
function chatPromptIds(ctx: RunContext): number[] {
  return renderChatIds(ctx.model, ctx.template, ctx.parsed.messages);
}
