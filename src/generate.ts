import { GREEDY_ROWS, type Model } from "./model/model.ts";
import { Sampler, type TokenLogprob } from "./sampling/sampler.ts";
import type { SamplingParams } from "./sampling/params.ts";
import { StopMatcher } from "./sampling/stop.ts";
import { TextStream } from "./tokenizer/tokenizer.ts";
import { ContextLengthError, ParamError } from "./errors.ts";

export interface GenerateOptions extends SamplingParams {
  /** Tokens to generate at most (default 256); generation also ends at end-of-generation or a full context. */
  maxTokens?: number;
  /** Stop strings, matched across token boundaries; the stop string itself is not returned. */
  stop?: string[];
  /** Prepend BOS to a text prompt (default: the tokenizer's own rule). */
  addBos?: boolean;
  /** Stops generation at the next step when aborted. */
  signal?: AbortSignal;
  /** Called with each generated token, its logprob and the top alternatives (when `logprobs` is set). */
  onToken?: (token: GeneratedToken) => void;
}

export interface GeneratedToken {
  id: number;
  text: string;
  logprob: number;
  top: TokenLogprob[];
}

export type FinishReason = "stop" | "length" | "abort";

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
 * carries the ids, timings and finish reason.
 * Prefill runs the whole prompt as one batch; decode feeds one token per step.
 * Greedy decoding on a backend that picks on the device (WebGPU) runs ahead
 * instead: Model.decodeGreedy computes a run of tokens per readback (4, then
 * doubling up to GREEDY_ROWS), and the tokens are then taken one at a time as
 * before, so EOS, stop strings and maxTokens end generation at the same token;
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
  const maxTokens = opts.maxTokens ?? 256;
  if (!Number.isInteger(maxTokens) || maxTokens < 0) throw new ParamError("maxTokens", `must be a non-negative integer, got ${maxTokens}`);
  const tok = model.tokenizer;
  const promptIds = typeof prompt === "string" ? tok.encode(prompt, { addBos: opts.addBos }) : Array.from(prompt);
  if (promptIds.length === 0) throw new ParamError("prompt", "is empty");
  if (promptIds.length > model.contextLength) throw new ContextLengthError(promptIds.length, model.contextLength, "prompt");
  const sampler = new Sampler(model.vocabSize, opts);
  const stops = new StopMatcher(opts.stop ?? []);
  const stream = new TextStream(tok);
  const history = new Int32Array(model.contextLength);
  history.set(promptIds);
  let nHistory = promptIds.length;
  const generated: number[] = [];
  let text = "";
  let finishReason: FinishReason = "length";
  const path = runAhead(model, sampler, opts);
  const ahead = path ? { ids: new Int32Array(0) as Int32Array, at: 0, chunk: 4, sampled: path === "sampled" } : null;

  const seq = model.newSequence();
  try {
    // prime the stream with the prompt so the first piece's leading space is handled as in the reference
    for (const id of promptIds) stream.push(id);
    const t0 = performance.now();
    let logits = await model.prefill(seq, promptIds);
    const t1 = performance.now();
    let decodeMs = 0;
    for (let i = 0; i < maxTokens; i++) {
      if (opts.signal?.aborted) {
        finishReason = "abort";
        break;
      }
      const pick = ahead && ahead.at < ahead.ids.length
        ? { id: ahead.ids[ahead.at++], logprob: NaN, top: [] }
        : sampler.sample(logits, history.subarray(0, nHistory));
      if (tok.isEndOfGeneration(pick.id)) {
        finishReason = "stop";
        break;
      }
      generated.push(pick.id);
      history[nHistory++] = pick.id;
      const piece = stream.push(pick.id);
      opts.onToken?.({ id: pick.id, text: piece, logprob: pick.logprob, top: pick.top });
      const { emit, stopped } = stops.push(piece);
      if (emit) {
        text += emit;
        yield emit;
      }
      if (stopped) {
        finishReason = "stop";
        break;
      }
      if (ahead && ahead.at < ahead.ids.length) continue; // computed already
      if (i === maxTokens - 1 || seq.length >= model.contextLength) break;
      const t2 = performance.now();
      if (ahead) {
        const n = Math.min(ahead.chunk, maxTokens - 1 - i, model.contextLength - seq.length);
        ahead.ids = ahead.sampled
          ? await model.decodeSampled(seq, pick.id, n, sampler, history.subarray(0, nHistory))
          : await model.decodeGreedy(seq, pick.id, n);
        ahead.at = 0;
        ahead.chunk = Math.min(ahead.chunk * 2, GREEDY_ROWS);
      } else {
        logits = await model.decodeOne(seq, pick.id);
      }
      decodeMs += performance.now() - t2;
    }
    if (finishReason !== "stop") {
      const rest = stops.push(stream.flush()).emit + stops.flush();
      if (rest) {
        text += rest;
        yield rest;
      }
    }
    return { promptTokens: promptIds, tokens: generated, text, finishReason, prefillMs: t1 - t0, decodeMs };
  } finally {
    model.releaseSequence(seq);
  }
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
