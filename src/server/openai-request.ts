/**
 * Parsing and validation of OpenAI request bodies (`/v1/completions`,
 * `/v1/chat/completions`) into one internal form. Every problem is a 400 that
 * names the field as the client spelled it (`max_tokens`, `messages[2].role`).
 * Sampling values are range-checked again by validateSamplingParams when the
 * request starts; here we check types and OpenAI's own rules.
 */
import type { SamplingParams } from "../sampling/params.ts";
import { optionalBoolean, ParamError } from "../errors.ts";
import { badParam, HttpError } from "./http-error.ts";

export interface ChatMessage {
  role: string;
  content: string;
  name?: string;
}

export interface ParsedRequest {
  kind: "completion" | "chat";
  model: string | undefined;
  /** Completions: one entry per prompt (text or token ids). Chat: unused (messages instead). */
  prompts: Array<string | number[]>;
  messages: ChatMessage[];
  /** undefined: until end of generation or a full context. */
  maxTokens: number | undefined;
  sampling: Omit<SamplingParams, "logprobs">;
  stop: string[];
  n: number;
  /** null: no logprobs in the answer; k >= 0: the chosen token's logprob plus k alternatives. */
  logprobs: number | null;
  stream: boolean;
  includeUsage: boolean;
}

/** OpenAI's own caps: 20 alternatives per token. n is capped to keep one request from filling the engine. */
const MAX_TOP_LOGPROBS = 20;
const MAX_N = 16;
/** The legacy completions endpoint's documented default. */
const COMPLETIONS_DEFAULT_MAX_TOKENS = 16;

type Body = Record<string, unknown>;

export function parseCompletionRequest(body: unknown): ParsedRequest {
  const b = object(body);
  const prompts = parsePrompt(b.prompt);
  if (b.echo === true) throw badParam("echo", "is not supported");
  if (b.suffix !== undefined && b.suffix !== null) throw badParam("suffix", "is not supported");
  if (b.best_of !== undefined && b.best_of !== null && b.best_of !== 1) throw badParam("best_of", "is not supported (only 1)");
  const logprobs = optInt(b, "logprobs", 0, MAX_TOP_LOGPROBS);
  return {
    kind: "completion",
    ...common(b),
    prompts,
    messages: [],
    maxTokens: optInt(b, "max_tokens", 0, Number.MAX_SAFE_INTEGER) ?? COMPLETIONS_DEFAULT_MAX_TOKENS,
    logprobs: logprobs ?? null,
  };
}

export function parseChatRequest(body: unknown): ParsedRequest {
  const b = object(body);
  const messages = parseMessages(b.messages);
  const wantLogprobs = optBool(b, "logprobs") ?? false;
  const top = optInt(b, "top_logprobs", 0, MAX_TOP_LOGPROBS);
  if (top !== undefined && !wantLogprobs) throw badParam("top_logprobs", "requires logprobs: true");
  const maxTokens = optInt(b, "max_completion_tokens", 0, Number.MAX_SAFE_INTEGER) ?? optInt(b, "max_tokens", 0, Number.MAX_SAFE_INTEGER);
  return {
    kind: "chat",
    ...common(b),
    prompts: [],
    messages,
    maxTokens,
    logprobs: wantLogprobs ? top ?? 0 : null,
  };
}

function common(b: Body) {
  const model = b.model;
  if (model !== undefined && model !== null && typeof model !== "string") throw badParam("model", "must be a string");
  const n = optInt(b, "n", 1, MAX_N) ?? 1;
  const stream = optBool(b, "stream") ?? false;
  let includeUsage = false;
  if (b.stream_options !== undefined && b.stream_options !== null) {
    const so = b.stream_options;
    if (typeof so !== "object" || Array.isArray(so)) throw badParam("stream_options", "must be an object");
    const iu = (so as Body).include_usage;
    includeUsage = bool("stream_options.include_usage", iu) ?? false;
  }
  const sampling: Omit<SamplingParams, "logprobs"> = {
    temperature: optNum(b, "temperature"),
    topP: optNum(b, "top_p"),
    topK: optInt(b, "top_k", 0, Number.MAX_SAFE_INTEGER),
    minP: optNum(b, "min_p"),
    presencePenalty: optRange(b, "presence_penalty", -2, 2),
    frequencyPenalty: optRange(b, "frequency_penalty", -2, 2),
    repeatPenalty: optNum(b, "repeat_penalty"),
    seed: optInt(b, "seed", 0, 0xffffffff),
    logitBias: parseLogitBias(b.logit_bias),
  };
  // leave unset fields out so the sampler's defaults apply
  for (const k of Object.keys(sampling) as Array<keyof typeof sampling>) if (sampling[k] === undefined) delete sampling[k];
  return { model: model ?? undefined, n, stream, includeUsage, sampling, stop: parseStop(b.stop) };
}

function object(body: unknown): Body {
  if (body === null || typeof body !== "object" || Array.isArray(body)) {
    throw new HttpError(400, "request body must be a JSON object", "invalid_request_error", null, "invalid_json");
  }
  return body as Body;
}

function parsePrompt(p: unknown): Array<string | number[]> {
  if (p === undefined || p === null) throw badParam("prompt", "is required");
  if (typeof p === "string") return [p];
  if (!Array.isArray(p) || p.length === 0) throw badParam("prompt", "must be a string, an array of strings, or token ids");
  if (p.every((x) => typeof x === "string")) return p as string[];
  if (p.every((x) => typeof x === "number")) return [tokenIds(p, "prompt")];
  if (p.every((x) => Array.isArray(x))) return p.map((x, i) => tokenIds(x as unknown[], `prompt[${i}]`));
  throw badParam("prompt", "must be a string, an array of strings, or token ids");
}

function tokenIds(a: unknown[], field: string): number[] {
  if (a.length === 0) throw badParam(field, "is empty");
  for (const x of a) {
    if (typeof x !== "number" || !Number.isInteger(x) || x < 0) {
      throw badParam(field, `token ids must be non-negative integers, got ${JSON.stringify(x)}`);
    }
  }
  return a as number[];
}

function parseMessages(m: unknown): ChatMessage[] {
  if (m === undefined || m === null) throw badParam("messages", "is required");
  if (!Array.isArray(m) || m.length === 0) throw badParam("messages", "must be a non-empty array");
  return m.map((msg, i) => {
    const at = `messages[${i}]`;
    if (msg === null || typeof msg !== "object" || Array.isArray(msg)) throw badParam(at, "must be an object");
    const { role, content, name } = msg as Body;
    if (typeof role !== "string" || !["system", "developer", "user", "assistant", "tool"].includes(role)) {
      throw badParam(`${at}.role`, `must be one of system, developer, user, assistant, tool; got ${JSON.stringify(role)}`);
    }
    const out: ChatMessage = { role, content: messageText(content, `${at}.content`) };
    if (typeof name === "string") out.name = name;
    return out;
  });
}

/** Content is a string or an array of parts; text parts are concatenated, other kinds (images, audio) are refused. */
function messageText(content: unknown, field: string): string {
  if (typeof content === "string") return content;
  if (content === null || content === undefined) return "";
  if (!Array.isArray(content)) throw badParam(field, "must be a string or an array of content parts");
  return content.map((part, j) => {
    const p = part as Body;
    if (p === null || typeof p !== "object" || p.type !== "text" || typeof p.text !== "string") {
      throw badParam(`${field}[${j}]`, 'only text parts ({ type: "text", text }) are supported');
    }
    return p.text;
  }).join("");
}

function parseStop(s: unknown): string[] {
  if (s === undefined || s === null) return [];
  if (typeof s === "string") return s === "" ? [] : [s];
  if (!Array.isArray(s) || !s.every((x) => typeof x === "string")) throw badParam("stop", "must be a string or an array of strings");
  return (s as string[]).filter((x) => x !== "");
}

function parseLogitBias(v: unknown): Record<number, number> | undefined {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "object" || Array.isArray(v)) throw badParam("logit_bias", "must be an object mapping token ids to biases");
  const out: Record<number, number> = {};
  for (const [k, bias] of Object.entries(v as Body)) {
    if (!/^(0|[1-9][0-9]*)$/.test(k)) throw badParam("logit_bias", `key ${JSON.stringify(k)} is not a token id`);
    if (typeof bias !== "number" || !Number.isFinite(bias) || bias < -100 || bias > 100) {
      throw badParam("logit_bias", `bias for token ${k} must be a number in [-100, 100], got ${JSON.stringify(bias)}`);
    }
    // OpenAI: -100 effectively bans the token
    out[Number(k)] = bias <= -100 ? -Infinity : bias;
  }
  return out;
}

function optNum(b: Body, field: string): number | undefined {
  const v = b[field];
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !Number.isFinite(v)) throw badParam(field, `must be a number, got ${JSON.stringify(v)}`);
  return v;
}

/** A number in [min, max], as OpenAI documents the field's range (presence_penalty and frequency_penalty: [-2, 2]). */
function optRange(b: Body, field: string, min: number, max: number): number | undefined {
  const v = optNum(b, field);
  if (v !== undefined && (v < min || v > max)) throw badParam(field, `must be in [${min}, ${max}], got ${v}`);
  return v;
}

function optInt(b: Body, field: string, min: number, max: number): number | undefined {
  const v = optNum(b, field);
  if (v === undefined) return undefined;
  if (!Number.isInteger(v)) throw badParam(field, `must be an integer, got ${v}`);
  if (v < min || v > max) throw badParam(field, `must be in [${min}, ${max}], got ${v}`);
  return v;
}

function optBool(b: Body, field: string): boolean | undefined {
  return bool(field, b[field]);
}

/**
 * errors.ts optionalBoolean (JSON's null: the field left out), answered as a 400 under the body's own name: the body's
 * names are OpenAI's already, where toHttpError renames the engine's (its "logprobs" is OpenAI's "top_logprobs").
 */
function bool(field: string, v: unknown): boolean | undefined {
  try {
    return optionalBoolean(field, v ?? undefined);
  } catch (e) {
    throw e instanceof ParamError ? badParam(e.param, e.problem) : e;
  }
}
