/**
 * What callers of the engine see: the request parameters, the events a
 * request streams (one token of one choice at a time, then each choice's
 * finish), and the final result with usage counts.
 */
import { SAMPLING_PARAM_NAMES, type SamplingParams } from "../sampling/params.ts";
import { optionNames } from "../errors.ts";
import type { TokenLogprob } from "../sampling/sampler.ts";
import { type EngineEvent, EventQueue, type FinishReason } from "./events.ts";

export interface RequestParams extends SamplingParams {
  /** Text (tokenized with the model's tokenizer) or token ids. */
  prompt: string | ArrayLike<number>;
  /** Tokens to generate at most per choice (default 256); also bounded by the context. */
  maxTokens?: number;
  /** Stop strings, matched across token boundaries; the stop string itself is not returned. */
  stop?: string[];
  /** Independent samples of the same prompt (default 1); they share the prompt's KV pages. */
  n?: number;
  /** Beam search of this width instead of sampling (default: off). Returns the `n` (default: `beams`) best hypotheses. */
  beams?: number;
  /** Beam score = sum of logprobs / length ** lengthPenalty (default 1). */
  lengthPenalty?: number;
  /** Beam search ends as soon as `beams` hypotheses have finished (default false: when no live beam can beat them). */
  earlyStopping?: boolean;
  /** Prepend BOS to a text prompt (default: the tokenizer's own rule). */
  addBos?: boolean;
  /** Stops the request at the next step; its pages are freed. */
  signal?: AbortSignal;
  /**
   * Whether each token event carries its pick's logprob (default true). False: every token event's `logprob` is NaN,
   * and a greedy pick skips the pass over the vocabulary that computes it (~140 us a token per sequence at 32000
   * logits; the OpenAI server asks only for requests that want logprobs). With `logprobs` set, or beam search, the
   * events carry them regardless.
   */
  tokenLogprobs?: boolean;
}

/** RequestParams' names: Engine.submit refuses any other key (a misspelt one ran with the default unseen). */
export const REQUEST_PARAM_NAMES = optionNames<RequestParams>()([
  ...SAMPLING_PARAM_NAMES,
  "prompt",
  "maxTokens",
  "stop",
  "n",
  "beams",
  "lengthPenalty",
  "earlyStopping",
  "addBos",
  "signal",
  "tokenLogprobs",
]);

export type { EngineEvent, FinishEvent, FinishReason, TokenEvent } from "./events.ts";

export interface ChoiceResult {
  index: number;
  tokens: number[];
  text: string;
  finishReason: FinishReason;
  /** Per token, when `logprobs` was asked (sampling) or always (beam search: the token's logprob). */
  logprobs?: Array<{ id: number; logprob: number; top: TokenLogprob[] }>;
  /** Beam search: the hypothesis' length-penalised score. */
  score?: number;
  /** Which stop string ended it, if any. */
  stop?: string;
}

export interface Usage {
  promptTokens: number;
  completionTokens: number;
  /** Prompt tokens whose KV pages came from the prefix cache (not recomputed). */
  cachedTokens: number;
}

export interface RequestResult {
  id: number;
  promptTokens: number[];
  choices: ChoiceResult[];
  usage: Usage;
}

/**
 * A submitted request: an async iterable of its events (every choice's,
 * interleaved in generation order) and a `done` promise with the result.
 * Events are buffered, so a caller may iterate, await `done`, or both.
 * `done` (and the iteration) rejects with a typed KvasmError when the request
 * cannot go on: OutOfMemoryError when the KV pages run out for it (at
 * admission or mid-generation), a ParamError when its own bias or penalties
 * leave no token to sample (both fail it alone: other requests go on
 * unaffected), or a failure of the forward pass (every request's). A choice
 * cut short by cancellation or close() resolves with finishReason "abort".
 */
export class EngineRequest implements AsyncIterable<EngineEvent> {
  readonly done: Promise<RequestResult>;
  private readonly events = new EventQueue<EngineEvent>();
  private resolveDone!: (r: RequestResult) => void;
  private rejectDone!: (e: unknown) => void;
  private readonly localAbort = new AbortController();

  constructor(readonly id: number, readonly promptTokens: number[]) {
    this.done = new Promise((res, rej) => {
      this.resolveDone = res;
      this.rejectDone = rej;
    });
    // a caller that only iterates must not see an unhandled rejection
    this.done.catch(() => {});
  }

  /** Cancels the request (same as aborting its signal). */
  cancel(): void {
    this.localAbort.abort();
  }

  /** @internal */
  get cancelled(): boolean {
    return this.localAbort.signal.aborted;
  }

  /** @internal */
  emit(e: EngineEvent): void {
    this.events.push(e);
  }

  /** @internal */
  finish(r: RequestResult): void {
    this.resolveDone(r);
    this.events.end();
  }

  /** @internal */
  fail(e: unknown): void {
    this.rejectDone(e);
    this.events.fail(e);
  }

  [Symbol.asyncIterator](): AsyncIterator<EngineEvent> {
    return this.events[Symbol.asyncIterator]();
  }
}
