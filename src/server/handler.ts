/**
 * kvasm's OpenAI-compatible HTTP API as one Web `fetch` handler
 * (Request -> Response), so the same code runs on Deno.serve, Bun.serve,
 * node:http (serve-*.ts) and edge hosts (src/edge.ts).
 *
 *   GET  /health                 liveness and load
 *   GET  /metrics                Prometheus text (metrics.ts)
 *   GET  /v1/models              the one model served
 *   POST /v1/completions         text or token-id prompts
 *   POST /v1/chat/completions    messages through the model's chat template
 *
 * Both POST routes answer JSON, or server-sent events with `stream: true`.
 * Every request gets its own sequence(s) in the generator; a client that goes
 * away aborts its request, which frees them.
 *
 * Admission: a request takes its place (its choices against `maxPending`, its
 * tokens of work against `maxQueuedTokens`) only once its whole body has
 * arrived, parsed, passed the per-request limits (limits.ts) and been
 * tokenized, so slow or oversized clients hold nothing; then all of its
 * generations start, or none do.
 */
import type { Model } from "../model/model.ts";
import { ChatTemplate, type TemplateLimits } from "./chat-template.ts";
import { DEFAULT_MAX_BODY_BYTES, readJsonBody } from "./body.ts";
import type { Generator } from "./generation.ts";
import { Engine, type EngineOptions } from "../engine/engine.ts";
import { EngineGenerator } from "./engine-generator.ts";
import { HttpError, jsonResponse, toHttpError } from "./http-error.ts";
import { parseChatRequest, parseCompletionRequest, type ParsedRequest } from "./openai-request.ts";
import { runRequest } from "./run-request.ts";
import { sseResponse } from "./sse.ts";
import { applyCors, type CorsOrigins, isPreflight, preflightResponse } from "./cors.ts";
import { formatLogLine, type RequestLogEntry, type RequestLogger } from "./request-log.ts";
import { checkRequestShape, choicesOf, DEFAULT_LIMITS, overLimit, type RequestLimits } from "./limits.ts";
import { promptIdsOf } from "./prompt-tokens.ts";
import { ServerMetrics } from "./metrics.ts";
import type { EngineEvent } from "../engine/events.ts";

export interface HandlerOptions {
  /** Runs the requests (default: a new Engine over the model, closed by handler.close()). */
  generator?: Generator;
  /** Options for the Engine created when no generator is given. */
  engine?: EngineOptions;
  /** The model id clients pass as `model` (an alias; default: the model file's name without its extension). */
  modelId?: string;
  /** When set, /v1 routes require `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
  /** Largest request body accepted (default 1 MiB); larger ones get 413. */
  maxBodyBytes?: number;
  /** Choices (prompts x n) admitted at once, running or waiting for the engine (default 64); more get 429. */
  maxPending?: number;
  /** Per-request bounds and the total of queued work (limits.ts); unset fields keep their defaults. */
  limits?: Partial<RequestLimits>;
  /** Seconds a 429 (busy) or 503 (out of memory) asks the client to wait, in its Retry-After header (default 1). */
  retryAfterSeconds?: number;
  /** A Jinja chat template that overrides the model's own. */
  chatTemplate?: string;
  /** Steps, output size and time one chat template render may take (see TemplateLimits); past them the request gets a 500. */
  chatTemplateLimits?: Partial<TemplateLimits>;
  /** Origins browsers may call the API from: "*", one origin, or a comma-separated list (default: none). */
  cors?: CorsOrigins;
  /** Receives one line per request (method, path, status, tokens, ms); default: none (`kvasm serve` logs to stderr). */
  log?: RequestLogger | null;
}

export interface KvasmHandler {
  fetch(req: Request): Promise<Response>;
  readonly generator: Generator;
  readonly modelId: string;
  /** Choices of requests admitted and not yet answered in full (streams included). */
  readonly pending: number;
  /** Tokens of work (prompts + n x max_tokens) admitted and not yet answered. */
  readonly queuedTokens: number;
  readonly metrics: ServerMetrics;
  /** Ends running requests and stops the engine the handler created (the model stays open). */
  close(): Promise<void>;
}

export function createHandler(model: Model, opts: HandlerOptions): KvasmHandler {
  const modelId = opts.modelId ?? defaultModelId(model);
  const ownEngine = opts.generator ? null : new Engine(model, opts.engine);
  const generator = opts.generator ?? new EngineGenerator(ownEngine!);
  const created = Math.floor(Date.now() / 1000);
  const template = opts.chatTemplate !== undefined
    ? new ChatTemplate(
      opts.chatTemplate,
      { bosToken: piece(model, model.tokenizer.bos), eosToken: piece(model, model.tokenizer.eos) },
      false,
      opts.chatTemplateLimits,
    )
    : ChatTemplate.forModel(model, opts.chatTemplateLimits);
  const maxBody = opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES;
  const maxPending = opts.maxPending ?? 64;
  const retryAfter = String(opts.retryAfterSeconds ?? 1);
  let pending = 0;
  const limits: RequestLimits = {
    ...DEFAULT_LIMITS,
    maxQueuedTokens: 4 * model.sequences.totalPages * model.sequences.pageSize,
    ...opts.limits,
  };
  let queuedTokens = 0;
  const metrics = new ServerMetrics({
    queueDepth: () => generator.waiting ?? 0,
    pendingChoices: () => pending,
    queuedTokens: () => queuedTokens,
    activeSequences: () => generator.activeSequences,
    freeKvPages: () => generator.freeKvPages,
    cachedKvPages: () => generator.cachedKvPages,
    totalKvPages: () => generator.totalKvPages,
  });

  const modelObject = { id: modelId, object: "model", created, owned_by: "kvasm" };

  function authorize(req: Request): void {
    if (opts.apiKey === undefined) return;
    const auth = req.headers.get("authorization") ?? "";
    const m = /^Bearer\s+(.+)$/i.exec(auth);
    if (!m || !sameSecret(m[1].trim(), opts.apiKey)) {
      throw new HttpError(
        401,
        "missing or wrong API key (send Authorization: Bearer <key>)",
        "authentication_error",
        null,
        "invalid_api_key",
      );
    }
  }

  /** What the log line of the request being answered needs from the route: its token counts, and when a stream has ended. */
  interface RouteNote {
    usage?: { prompt_tokens: number; completion_tokens: number };
    streamEnded?: Promise<unknown>;
  }

  function busy(what: string): HttpError {
    return new HttpError(429, `server is busy: ${what}; retry after ${retryAfter} s`, "rate_limit_error", null, "queue_full", {
      "Retry-After": retryAfter,
    });
  }

  /** The request's choices and tokens of work, refused (400) when they could never fit and deferred (429) when they do not fit now. */
  function admit(parsed: ParsedRequest, promptIds: number[][]): { choices: number; work: number } {
    const choices = choicesOf(parsed);
    let work = 0;
    promptIds.forEach((ids, i) => {
      const room = model.contextLength - ids.length;
      if (parsed.maxTokens !== undefined && parsed.maxTokens > room) {
        throw new HttpError(
          400,
          `max_tokens: ${parsed.maxTokens} tokens after a prompt of ${ids.length}${
            promptIds.length > 1 ? ` (prompt[${i}])` : ""
          } exceed the context of ${model.contextLength}; ask for at most ${room}`,
          "invalid_request_error",
          "max_tokens",
          "context_length_exceeded",
        );
      }
      work += ids.length + parsed.n * (parsed.maxTokens ?? room);
    });
    if (choices > maxPending) {
      throw overLimit(parsed.kind === "chat" ? "n" : "prompt", `${choices} choices`, maxPending, "maxPending, --max-pending");
    }
    if (work > limits.maxQueuedTokens) {
      throw overLimit(
        "max_tokens",
        `${work} tokens of work (prompts + n x max_tokens)`,
        limits.maxQueuedTokens,
        "maxQueuedTokens, --max-queued-tokens",
      );
    }
    if (pending + choices > maxPending) throw busy(`${pending} of ${maxPending} choices in progress`);
    if (queuedTokens + work > limits.maxQueuedTokens) throw busy(`${queuedTokens} of ${limits.maxQueuedTokens} tokens of work queued`);
    const room = generator.capacity;
    if (room !== undefined && room < promptIds.length) {
      throw busy(`the engine's queue has room for ${room} of this request's ${promptIds.length} prompts`);
    }
    return { choices, work };
  }

  /** Metrics of one request's events: tokens, time to its first token, and the gap between tokens of each choice. */
  function observer(admittedAt: number): (ev: EngineEvent) => void {
    let first = true;
    const last = new Map<number, number>();
    return (ev) => {
      if (ev.type !== "token") return;
      const now = performance.now();
      metrics.completionTokens++;
      if (first) {
        first = false;
        metrics.timeToFirstToken.observe((now - admittedAt) / 1000);
      }
      const before = last.get(ev.choice);
      if (before !== undefined) metrics.timePerToken.observe((now - before) / 1000);
      last.set(ev.choice, now);
    };
  }

  async function generateRoute(req: Request, parse: (body: unknown) => ParsedRequest, note: RouteNote): Promise<Response> {
    // nothing is held while the body arrives, is checked and is tokenized
    const parsed = parse(await readJsonBody(req, maxBody, limits.bodyTimeoutMs));
    if (parsed.model !== undefined && parsed.model !== modelId) throw modelNotFound(parsed.model, modelId);
    checkRequestShape(parsed, limits);
    if (req.signal?.aborted) throw new HttpError(499, "the client went away", "invalid_request_error", null, "cancelled");
    const promptIds = await promptIdsOf(model, template, parsed);
    const { choices, work } = admit(parsed, promptIds);
    pending += choices;
    queuedTokens += work;
    const abort = new AbortController();
    const onClientGone = () => abort.abort();
    let released = false;
    let streamEnded = () => {};
    const release = () => {
      if (released) return;
      released = true;
      req.signal?.removeEventListener("abort", onClientGone);
      pending -= choices;
      queuedTokens -= work;
      streamEnded();
    };
    let handedOff = false;
    try {
      req.signal?.addEventListener("abort", onClientGone, { once: true });
      if (req.signal?.aborted) abort.abort();
      const run = runRequest({ model, generator, modelId, parsed, promptIds, signal: abort.signal, observe: observer(performance.now()) });
      metrics.promptTokens += promptIds.reduce((s, ids) => s + ids.length, 0);
      const counted = run.usage().then((u) => note.usage = u, () => {});
      if (parsed.stream) {
        handedOff = true;
        // a cancelled stream ends before its generations do: its counts follow once they have
        note.streamEnded = new Promise<void>((resolve) => streamEnded = resolve).then(() => counted);
        // a stream cancelled before its first pull never runs the generator's finally: release on cancel too
        return sseResponse(withFinally(run.chunks(), release), () => {
          abort.abort();
          release();
        });
      }
      return jsonResponse(await run.json());
    } finally {
      if (!handedOff) release();
    }
  }

  async function route(req: Request, path: string, method: string, note: RouteNote): Promise<Response> {
    if (path === "/health") {
      if (method !== "GET" && method !== "HEAD") throw notAllowed(method, path);
      return jsonResponse({ status: "ok", model: modelId, pending, sequences: generator.activeSequences });
    }
    if (path === "/metrics") {
      if (method !== "GET" && method !== "HEAD") throw notAllowed(method, path);
      return new Response(metrics.render(), { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } });
    }
    if (path.startsWith("/v1/")) authorize(req);
    switch (path) {
      case "/v1/models":
        if (method !== "GET") throw notAllowed(method, path);
        return jsonResponse({ object: "list", data: [modelObject] });
      case `/v1/models/${encodeURIComponent(modelId)}`:
        if (method !== "GET") throw notAllowed(method, path);
        return jsonResponse(modelObject);
      case "/v1/completions":
        if (method !== "POST") throw notAllowed(method, path);
        return await generateRoute(req, parseCompletionRequest, note);
      case "/v1/chat/completions":
        if (method !== "POST") throw notAllowed(method, path);
        return await generateRoute(req, parseChatRequest, note);
    }
    if (path.startsWith("/v1/models/")) throw modelNotFound(safeDecode(path.slice(11)), modelId);
    throw new HttpError(404, `no route for ${method} ${path}`, "not_found_error", null, "not_found");
  }

  return {
    generator,
    modelId,
    async close() {
      await ownEngine?.close();
    },
    get pending() {
      return pending;
    },
    get queuedTokens() {
      return queuedTokens;
    },
    metrics,
    async fetch(req: Request): Promise<Response> {
      const t0 = performance.now();
      const method = req.method.toUpperCase();
      const note: RouteNote = {};
      let path = "?";
      let res: Response;
      if (opts.cors !== undefined && isPreflight(req)) res = preflightResponse(req, opts.cors);
      else {
        try {
          path = pathOf(req);
          res = await route(req, path, method, note);
        } catch (e) {
          res = toHttpError(e).response();
          // every "try again later" (the admission 429s above, the engine's own full queue, out of memory) asks for one wait
          if (res.headers.has("Retry-After")) res.headers.set("Retry-After", retryAfter);
        }
        if (opts.cors !== undefined) applyCors(res.headers, req, opts.cors);
      }
      metrics.countResponse(res.status);
      const log = opts.log;
      if (log) {
        const write = () => {
          const entry: RequestLogEntry = {
            method,
            path,
            status: res.status,
            promptTokens: note.usage?.prompt_tokens,
            completionTokens: note.usage?.completion_tokens,
            ms: performance.now() - t0,
          };
          try {
            log(formatLogLine(entry), entry);
          } catch { /* a failing logger must not fail the request it logs */ }
        };
        if (note.streamEnded) note.streamEnded.then(write);
        else write();
      }
      return res;
    },
  };
}

/** The request's path; a target that is no URL (Bun builds req.url from a missing Host header) is the client's error. */
function pathOf(req: Request): string {
  let url: URL;
  try {
    url = new URL(req.url);
  } catch {
    throw new HttpError(
      400,
      `the request target ${JSON.stringify(String(req.url).slice(0, 200))} is not a valid URL (HTTP/1.1 requests need a Host header)`,
      "invalid_request_error",
      null,
      "invalid_url",
    );
  }
  return url.pathname.replace(/\/+$/, "") || "/";
}

function notAllowed(method: string, path: string): HttpError {
  return new HttpError(405, `method ${method} is not allowed on ${path}`, "invalid_request_error", null, "method_not_allowed");
}

/** OpenAI's answer to a model it does not serve: 404, code model_not_found. */
function modelNotFound(asked: string, served: string): HttpError {
  return new HttpError(
    404,
    `The model ${JSON.stringify(asked)} does not exist; this server serves ${JSON.stringify(served)}`,
    "invalid_request_error",
    null,
    "model_not_found",
  );
}

function safeDecode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/**
 * The id a model is served under when no alias is given: its file's name without the extension
 * (stories260K-q8_0.gguf -> "stories260K-q8_0"), what a user who started the server knows it by; a model
 * from bytes has no name, so its general.name stands in, else "kvasm".
 */
function defaultModelId(model: Model): string {
  const stem = fileStem(model.file.source.name);
  if (stem !== "") return stem;
  const name = model.file.metadata.get("general.name");
  return typeof name === "string" && name.trim() !== "" ? name.trim() : "kvasm";
}

/** "/models/a/stories260K.gguf" or "https://host/x/stories260K.gguf?dl=1" -> "stories260K"; "" for "<bytes>". */
export function fileStem(name: string): string {
  if (name.startsWith("<")) return "";
  const base = name.replace(/[?#].*$/, "").replace(/[\\/]+$/, "").split(/[\\/]/).pop() ?? "";
  const dot = base.lastIndexOf(".");
  return dot > 0 ? base.slice(0, dot) : base;
}

function piece(model: Model, id: number): string {
  return id >= 0 ? model.tokenizer.piece(id) : "";
}

/** Compares secrets without an early exit on the first differing character. */
function sameSecret(a: string, b: string): boolean {
  let diff = a.length ^ b.length;
  for (let i = 0; i < Math.max(a.length, b.length); i++) diff |= (a.charCodeAt(i) | 0) ^ (b.charCodeAt(i) | 0);
  return diff === 0;
}

async function* withFinally<T>(it: AsyncIterable<T>, after: () => void): AsyncGenerator<T> {
  try {
    yield* it;
  } finally {
    after();
  }
}
