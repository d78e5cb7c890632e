/**
 * How much work one request may ask for, and how much the server takes on at
 * once. Every limit is checked before any engine work starts, so a refused
 * request leaves nothing behind; a request over a per-request limit gets a
 * 400 naming the limit (it could never be served), one that only has to wait
 * for others to finish gets a 429.
 */
import { HttpError } from "./http-error.ts";
import { optionNames } from "../errors.ts";
import type { ParsedRequest } from "./openai-request.ts";

export interface RequestLimits {
  /** Choices in one request: prompts x n (default 64). */
  maxChoices: number;
  /** Stop strings in one request (default 16; OpenAI allows 4). */
  maxStopStrings: number;
  /** Longest stop string, in UTF-16 code units (default 256). */
  maxStopLength: number;
  /** Entries of logit_bias (default 1024). */
  maxLogitBias: number;
  /**
   * Tokens of work admitted at once, over all requests: each prompt's tokens
   * plus n x max_tokens (default: 4 x the KV cache's positions).
   */
  maxQueuedTokens: number;
  /** Milliseconds a client has to deliver the whole body once its headers are in (default 30 000); later: 408. */
  bodyTimeoutMs: number;
}

/** RequestLimits' names: HandlerOptions.limits refuses any other key. */
export const REQUEST_LIMIT_NAMES = optionNames<RequestLimits>()([
  "maxChoices",
  "maxStopStrings",
  "maxStopLength",
  "maxLogitBias",
  "maxQueuedTokens",
  "bodyTimeoutMs",
]);

export const DEFAULT_LIMITS: Omit<RequestLimits, "maxQueuedTokens"> = {
  maxChoices: 64,
  maxStopStrings: 16,
  maxStopLength: 256,
  maxLogitBias: 1024,
  bodyTimeoutMs: 30_000,
};

/** A per-request limit: 400 naming the field, the limit and the option that sets it. */
export function overLimit(param: string, what: string, limit: number, option: string): HttpError {
  return new HttpError(
    400,
    `${param}: ${what} exceeds the server's limit of ${limit} (${option})`,
    "invalid_request_error",
    param,
    "limit_exceeded",
  );
}

/** Choices the request makes: one per prompt (chat: one) times n. */
export function choicesOf(parsed: ParsedRequest): number {
  return (parsed.kind === "chat" ? 1 : parsed.prompts.length) * parsed.n;
}

/** The limits that need nothing but the parsed body (checked before tokenizing). */
export function checkRequestShape(parsed: ParsedRequest, limits: RequestLimits): void {
  const prompts = parsed.kind === "chat" ? 1 : parsed.prompts.length;
  const choices = prompts * parsed.n;
  if (choices > limits.maxChoices) {
    const what = prompts > 1 ? `${prompts} prompts x n ${parsed.n} = ${choices} choices` : `${choices} choices`;
    throw overLimit(prompts > 1 ? "prompt" : "n", what, limits.maxChoices, "maxChoices, --max-choices");
  }
  if (parsed.stop.length > limits.maxStopStrings) {
    throw overLimit("stop", `${parsed.stop.length} stop strings`, limits.maxStopStrings, "maxStopStrings, --max-stop");
  }
  for (const s of parsed.stop) {
    if (s.length > limits.maxStopLength) {
      throw overLimit("stop", `a stop string of ${s.length} characters`, limits.maxStopLength, "maxStopLength, --max-stop-length");
    }
  }
  const bias = parsed.sampling.logitBias ? Object.keys(parsed.sampling.logitBias).length : 0;
  if (bias > limits.maxLogitBias) throw overLimit("logit_bias", `${bias} entries`, limits.maxLogitBias, "maxLogitBias, --max-logit-bias");
}
