import type { Model } from "./model/model.ts";
import { GREEDY_ROWS } from "./architectures/architecture.ts";
import { Sampler } from "./sampling/sampler.ts";
import { SAMPLING_PARAM_NAMES, type SamplingParams, samplingParamsOf } from "./sampling/params.ts";
import { ChoiceDecoder, maxTokensOf, promptIds } from "./engine/decoder.ts";
import { checkOptionNames, optionalBoolean, optionalFunction, optionNames } from "./errors.ts";
import type { EngineEvent, FinishReason, TokenEvent } from "./engine/events.ts";

export type { FinishReason } from "./engine/events.ts";

export interface GenerateOptions extends SamplingParams {
  /** Tokens to generate at most (default 256); generation also ends at end-of-generation or a full context. */
  maxTokens?: number;
  /** Stop strings, matched across token boundaries; the stop string itself is not returned. */
  stop?: string[];
  /** Prepend BOS to a text prompt (default: the tokenizer's own rule). */
  addBos?: boolean;
  /** Stops generation at the next step when aborted. */
  signal?: AbortSignal;
  /**
   * Called with each generated token, after stop matching, as the engine reports it (TokenEvent): `text` is the
   * text the token releases ("" while UTF-8 or a possible stop string is pending), and the token that completes
   * a stop string is reported with the text before it. `top` holds the alternatives when `logprobs` is set.
   */
  onToken?: (token: GeneratedToken) => void;
}

/** GenerateOptions' names: generate() refuses any other key ("temprature" ran at the default temperature unseen). */
export const GENERATE_OPTION_NAMES = optionNames<GenerateOptions>()([
  ...SAMPLING_PARAM_NAMES,
  "maxTokens",
  "stop",
  "addBos",
  "signal",
  "onToken",
]);

/** One generated token, as onToken sees it: the engine's TokenEvent (choice is always 0). */
export type GeneratedToken = TokenEvent;

export interface GenerationResult {
  promptTokens: number[];
  tokens: number[];
  text: string;
  finishReason: FinishReason;
  prefillMs: number;
  decodeMs: number;
}

/**
 * Generates a continuation of `prompt`, yielding text pieces as they become
 * whole UTF-8 and clear of any stop string; the generator's return value
 * carries the ids, timings and finish reason. It is one sequence driven
 * directly (no scheduler between the steps), through the engine's per-choice
 * decoder (engine/decoder.ts), so the two report the same tokens, text and
 * finish reasons.
 * Prefill runs the whole prompt as one batch; decode feeds one token per step.
 * Greedy decoding on a backend that picks on the device (WebGPU) runs ahead
 * instead: Model.decodeGreedy computes a call of tokens (4, then doubling up to
 * GREEDY_ROWS, and on to RUN_AHEAD_MAX while calls come back within
 * RUN_AHEAD_MS: a call of more than GREEDY_ROWS reads each run back while the
 * next runs; nextRunAhead), and the tokens are then taken one at a time as
 * per-token decoding takes them, so EOS, stop strings and maxTokens end generation at the same token;
 * what was computed past it is dropped with the sequence. It applies when
 * nothing needs the logits on the host: temperature 0 (or topK 1), no bias or
 * penalties, no logprobs, no onToken. Sampled decoding on WebGPU runs ahead
 * the same way through Model.decodeSampled, which draws on the device (bias
 * and penalties included) and hands the RNG stream back to the sampler.
 */
export async function* generate(
  model: Model,
  prompt: string | ArrayLike<number>,
  opts: GenerateOptions = {},
): AsyncGenerator<string, GenerationResult> {
  checkOptionNames("generate", opts, GENERATE_OPTION_NAMES);
  const onToken = optionalFunction("onToken", opts.onToken);
  const maxTokens = maxTokensOf(opts.maxTokens);
  const ids = promptIds(model, prompt, optionalBoolean("addBos", opts.addBos));
  const sampler = new Sampler(model.vocabSize, samplingParamsOf(opts));
  // what the decoder releases, handed to the caller by the loop below
  let released = "";
  const emit = (ev: EngineEvent) => {
    released += ev.text;
    if (ev.type === "token") onToken?.(ev);
  };
  const choice = new ChoiceDecoder(model, {
    index: 0,
    prompt: ids,
    sampler,
    stop: opts.stop ?? [],
    maxTokens,
    logprobs: false,
    // the events' logprobs go only to onToken: without it a greedy pick skips the exp pass over the vocabulary
    tokenLogprobs: onToken !== undefined,
    emit,
  });
  const path = runAhead(model, sampler, opts);
  const ahead = path ? { ids: new Int32Array(0) as Int32Array, at: 0, chunk: 4, sampled: path === "sampled" } : null;

  const seq = model.newSequence();
  try {
    const t0 = performance.now();
    let logits = await model.prefill(seq, ids);
    const t1 = performance.now();
    let decodeMs = 0;
    while (!choice.finished) {
      if (opts.signal?.aborted) {
        choice.finish("abort");
        break;
      }
      const go = ahead && ahead.at < ahead.ids.length
        ? choice.take({ id: ahead.ids[ahead.at++], logprob: NaN, top: [] })
        : choice.sample(logits);
      if (released) {
        const piece = released;
        released = "";
        yield piece;
      }
      if (!go) break;
      if (ahead && ahead.at < ahead.ids.length) continue; // computed already
      const pick = choice.history[choice.history.length - 1];
      const t2 = performance.now();
      if (ahead) {
        const n = Math.min(ahead.chunk, maxTokens - choice.tokens.length, model.contextLength - seq.length);
        ahead.ids = ahead.sampled
          ? await model.decodeSampled(seq, pick, n, sampler, choice.history)
          : await model.decodeGreedy(seq, pick, n);
        ahead.at = 0;
        ahead.chunk = nextRunAhead(ahead.chunk, performance.now() - t2);
      } else {
        logits = await model.decodeOne(seq, pick);
      }
      decodeMs += performance.now() - t2;
    }
    if (released) yield released;
    return {
      promptTokens: ids,
      tokens: choice.tokens,
      text: choice.text,
      finishReason: choice.finishReason!,
      prefillMs: t1 - t0,
      decodeMs,
    };
  } finally {
    model.releaseSequence(seq);
  }
}

/** Tokens one run-ahead call computes at most: four device runs, each read back while the next runs. */
export const RUN_AHEAD_MAX = 4 * GREEDY_ROWS;
/** Past GREEDY_ROWS, a call that took less than this doubles the next: text still streams at least every ~2 x this. */
export const RUN_AHEAD_MS = 150;

/**
 * The next run-ahead call's length after a call of `chunk` tokens took `ms`: doubling up to GREEDY_ROWS (one
 * device run per readback), then on up to RUN_AHEAD_MAX while calls come back within RUN_AHEAD_MS. Calls of
 * more than GREEDY_ROWS overlap their readbacks (Model.decodeGreedy/decodeSampled; 1.2-1.8x the rate of calls
 * of 64 on the H200), but generate() only yields between calls and drops what was computed past a stop, so
 * the device's speed, not a fixed count, bounds how long text waits for those.
 */
export function nextRunAhead(chunk: number, ms: number): number {
  return chunk < GREEDY_ROWS || ms < RUN_AHEAD_MS ? Math.min(chunk * 2, RUN_AHEAD_MAX) : chunk;
}

/**
 * Whether picks can stay on the device, and how: greedy (the backend has argmax; no bias or penalties) or
 * sampled (the model draws on the device: WebGPU; bias and penalties are applied there too). Never when
 * something needs the logits on the host: logprobs or onToken.
 */
function runAhead(model: Model, sampler: Sampler, opts: GenerateOptions): "greedy" | "sampled" | null {
  const p = sampler.params;
  if (p.logprobs !== 0 || opts.onToken) return null;
  const greedy = p.temperature === 0 || p.topK === 1;
  const untouched = p.logitBias.size === 0 && (p.repeatPenalty === 1 || p.repeatLastN === 0) && p.presencePenalty === 0 &&
    p.frequencyPenalty === 0;
  if (greedy) return model.backend.argmax && untouched ? "greedy" : null;
  return model.sampledOnDevice(sampler) ? "sampled" : null;
}
