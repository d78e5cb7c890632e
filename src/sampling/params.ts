// src/sampling/ owns choosing the next token: sampling options and their validation (this file), the sampler and
// stop strings.
/**
 * Sampling options as callers pass them, and their validation into a fully
 * resolved form the Sampler can trust. Every problem is a ParamError that names
 * the offending field, so the server can answer 400 with it verbatim.
 */
import { checkOptionNames, describeValue, optionNames, ParamError } from "../errors.ts";

export interface SamplingParams {
  temperature?: number; // default 1.0; 0 means greedy (argmax)
  topK?: number; // 0 = off
  topP?: number; // 1 = off
  minP?: number; // 0 = off (keep tokens with p >= minP * p_max)
  /** 1 = off; llama.cpp semantics: logit > 0 ? logit / p : logit * p, once per distinct token in the last repeatLastN. */
  repeatPenalty?: number;
  repeatLastN?: number; // default 64; -1 = whole history; 0 = repeat penalty off
  presencePenalty?: number; // 0 = off: logit -= presence * (count > 0), counts over the whole history
  frequencyPenalty?: number; // 0 = off: logit -= frequency * count, counts over the whole history
  /** Added to logits before anything else; -Infinity bans a token. */
  logitBias?: Record<number, number> | Map<number, number>;
  seed?: number; // u32; default: derived from the clock and a per-process counter
  logprobs?: number; // top-N alternatives to report (0 = only the chosen token's logprob)
}

/** SamplingParams' names: validateSamplingParams refuses any other key (a misspelt one ran with the default unseen). */
export const SAMPLING_PARAM_NAMES = optionNames<SamplingParams>()([
  "temperature",
  "topK",
  "topP",
  "minP",
  "repeatPenalty",
  "repeatLastN",
  "presencePenalty",
  "frequencyPenalty",
  "logitBias",
  "seed",
  "logprobs",
]);

/**
 * The sampling fields of a caller's wider options (generate's, a request's), each present in `p` copied, so that the
 * Sampler's own check of names sees those only; the wider object's names are checked where it is taken.
 */
export function samplingParamsOf(p: SamplingParams): SamplingParams {
  const out: Record<string, unknown> = {};
  for (const k of SAMPLING_PARAM_NAMES) if (k in p) out[k] = p[k];
  return out as SamplingParams;
}

/** What validateSamplingParams returns: every field present, logitBias normalised to a Map. */
export interface ResolvedSamplingParams {
  temperature: number;
  topK: number;
  topP: number;
  minP: number;
  repeatPenalty: number;
  repeatLastN: number;
  presencePenalty: number;
  frequencyPenalty: number;
  logitBias: Map<number, number>;
  seed: number;
  logprobs: number;
}

const DEFAULT_REPEAT_LAST_N = 64;

/**
 * Checks every field against `vocabSize` and fills in defaults. Throws
 * ParamError(field, problem) for a key SamplingParams does not name, NaN or non-number values, negative
 * temperature, topP outside (0,1], minP outside [0,1], non-integer or negative
 * topK, bias ids outside the vocabulary, and so on.
 */
export function validateSamplingParams(p: SamplingParams, vocabSize: number): ResolvedSamplingParams {
  if (!Number.isSafeInteger(vocabSize) || vocabSize < 1) throw new ParamError("vocabSize", `must be a positive integer, got ${vocabSize}`);
  if (p === null || typeof p !== "object") throw new ParamError("sampling", "options must be an object");
  checkOptionNames("sampling", p, SAMPLING_PARAM_NAMES);

  const temperature = finite(p, "temperature", 1);
  if (temperature < 0) throw new ParamError("temperature", `must be >= 0, got ${temperature}`);

  const topK = integer(p, "topK", 0);
  if (topK < 0) throw new ParamError("topK", `must be >= 0 (0 = off), got ${topK}`);

  const topP = finite(p, "topP", 1);
  if (!(topP > 0 && topP <= 1)) throw new ParamError("topP", `must be in (0, 1], got ${topP}`);

  const minP = finite(p, "minP", 0);
  if (!(minP >= 0 && minP <= 1)) throw new ParamError("minP", `must be in [0, 1], got ${minP}`);

  const repeatPenalty = finite(p, "repeatPenalty", 1);
  if (!(repeatPenalty > 0)) throw new ParamError("repeatPenalty", `must be > 0 (1 = off), got ${repeatPenalty}`);

  const repeatLastN = integer(p, "repeatLastN", DEFAULT_REPEAT_LAST_N);
  if (repeatLastN < -1) throw new ParamError("repeatLastN", `must be >= -1 (-1 = whole history), got ${repeatLastN}`);

  // Negative presence/frequency penalties are legal (they encourage repetition), as in OpenAI's API. No bound beyond
  // finite, here or on repeatPenalty (llama.cpp sets none; the server holds its clients to OpenAI's [-2, 2]): a huge one
  // is a ban on repeats, and where it leaves no token at all the Sampler says so, a ParamError naming it.
  const presencePenalty = finite(p, "presencePenalty", 0);
  const frequencyPenalty = finite(p, "frequencyPenalty", 0);

  const logprobs = integer(p, "logprobs", 0);
  if (logprobs < 0 || logprobs > vocabSize) throw new ParamError("logprobs", `must be in [0, ${vocabSize}], got ${logprobs}`);

  let seed: number;
  if (p.seed === undefined) seed = clockSeed();
  else {
    seed = integer(p, "seed", 0);
    if (seed < 0 || seed > 0xffffffff) throw new ParamError("seed", `must be a u32 (0 ..= 4294967295), got ${seed}`);
  }

  return {
    temperature,
    topK,
    topP,
    minP,
    repeatPenalty,
    repeatLastN,
    presencePenalty,
    frequencyPenalty,
    logitBias: resolveBias(p.logitBias, vocabSize),
    seed,
    logprobs,
  };
}

type NumericField = Exclude<keyof SamplingParams, "logitBias">;

function finite(p: SamplingParams, field: NumericField, fallback: number): number {
  const v = p[field];
  if (v === undefined) return fallback;
  if (typeof v !== "number" || !Number.isFinite(v)) throw new ParamError(field, `must be a finite number, got ${describeValue(v)}`);
  return v;
}

function integer(p: SamplingParams, field: NumericField, fallback: number): number {
  const v = finite(p, field, fallback);
  if (!Number.isSafeInteger(v)) throw new ParamError(field, `must be an integer, got ${describeValue(v)}`);
  return v;
}

/** Bias ids must be integer token ids; values finite or -Infinity (a ban). +Infinity and NaN are refused. */
function resolveBias(bias: SamplingParams["logitBias"], vocabSize: number): Map<number, number> {
  const out = new Map<number, number>();
  if (bias === undefined) return out;
  if (bias === null || typeof bias !== "object") throw new ParamError("logitBias", "must be an object or a Map of token id -> bias");
  const entries: Iterable<[unknown, unknown]> = bias instanceof Map ? bias.entries() : Object.entries(bias);
  for (const [key, value] of entries) {
    // Record keys arrive as strings; accept only canonical decimal integers ("7", not "07" or "7.0").
    const id = typeof key === "string" && /^(0|[1-9][0-9]*)$/.test(key) ? Number(key) : key;
    if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 0 || id >= vocabSize) {
      throw new ParamError("logitBias", `token id ${String(key)} is not in [0, ${vocabSize})`);
    }
    if (typeof value !== "number" || Number.isNaN(value) || value === Infinity) {
      throw new ParamError("logitBias", `bias for token ${id} must be a finite number or -Infinity, got ${String(value)}`);
    }
    out.set(id, value);
  }
  return out;
}

// Unseeded samplers still never touch Math.random: the clock is mixed with a
// counter so two samplers made in the same millisecond differ.
let seedCounter = 0;

function clockSeed(): number {
  const now = Date.now();
  const sub = typeof performance !== "undefined" ? Math.floor(performance.now() * 1000) : 0;
  let h = (now >>> 0) ^ Math.imul(Math.floor(now / 0x100000000) | 0, 0x85ebca6b) ^ Math.imul(sub | 0, 0xc2b2ae35);
  h = Math.imul(h ^ Math.imul(++seedCounter, 0x9e3779b9), 0x27d4eb2f);
  h ^= h >>> 15;
  return h >>> 0;
}
