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
import { CHATML_STOPS, ChatTemplate, TEMPLATE_LIMIT_NAMES, type TemplateLimits } from "./chat-template.ts";
import { DEFAULT_MAX_BODY_BYTES, readJsonBody } from "./body.ts";
import type { Generator } from "./generation.ts";
import { Engine, ENGINE_OPTION_NAMES, type EngineOptions } from "../engine/engine.ts";
import { EngineGenerator } from "./engine-generator.ts";
import { HttpError, jsonResponse, toHttpError } from "./http-error.ts";
import { checkOptionNames, nonNegativeInteger, optionNames, ParamError, positiveInteger } from "../errors.ts";
import { parseChatRequest, parseCompletionRequest, type ParsedRequest } from "./openai-request.ts";
import { runRequest } from "./run-request.ts";
import { sseResponse } from "./sse.ts";
import { applyCors, type CorsOrigins, isPreflight, preflightResponse } from "./cors.ts";
import { formatLogLine, type RequestLogEntry, type RequestLogger } from "./request-log.ts";
import { checkRequestShape, choicesOf, DEFAULT_LIMITS, overLimit, REQUEST_LIMIT_NAMES, type RequestLimits } from "./limits.ts";
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
  /**
   * Per-request bounds and the total of queued work (limits.ts); unset fields keep their defaults. These numbers and
   * the ones above are checked when the handler is made: a ParamError names one out of its range.
   */
  limits?: Partial<RequestLimits>;
  /** Whole seconds a 429 (busy) or 503 (out of memory) asks the client to wait, in its Retry-After header (default 1). */
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

/**
 * HandlerOptions' names: createHandler refuses any other key (a misspelt `apikey` served the API unprotected). A
 * request's unknown fields are another matter: the server ignores them, as OpenAI's API does (openai-request.ts
 * reads the fields it knows by name).
 */
export const HANDLER_OPTION_NAMES = optionNames<HandlerOptions>()([
  "generator",
  "engine",
  "modelId",
  "apiKey",
  "maxBodyBytes",
  "maxPending",
  "limits",
  "retryAfterSeconds",
  "chatTemplate",
  "chatTemplateLimits",
  "cors",
  "log",
]);

export interface KvasmHandler {
  fetch(req: Request): Promise<Response>;
  readonly generator: Generator;
  readonly modelId: string;
  /** Choices of requests admitted and not yet answered in full (streams included). */
  readonly pending: number;
  /** Tokens of work (prompts + n x max_tokens) admitted and not yet answered. */
  readonly queuedTokens: number;
  readonly metrics: ServerMetrics;
  /**
   * Why chat is unavailable: the model's own chat template does not parse (the server still starts and serves
   * completions; chat requests get a 500 saying so). Undefined when chat works. `kvasm serve` prints it as a warning.
   */
  readonly chatTemplateError?: string;
  /** Ends running requests and stops the engine the handler created (the model stays open). */
  close(): Promise<void>;
}

export function createHandler(model: Model, opts: HandlerOptions = {}): KvasmHandler {
  checkOptionNames("createHandler", opts, HANDLER_OPTION_NAMES);
  checkOptionNames("engine", opts.engine, ENGINE_OPTION_NAMES);
  checkOptionNames("chatTemplateLimits", opts.chatTemplateLimits, TEMPLATE_LIMIT_NAMES);
  const modelId = opts.modelId ?? defaultModelId(model);
  const bounds = boundsOf(model, opts); // checked before the engine is made
  const ownEngine = opts.generator ? null : new Engine(model, opts.engine);
  const server = serverState(model, modelId, opts.generator ?? new EngineGenerator(ownEngine!), opts, bounds);
  return {
    generator: server.generator,
    modelId,
    async close() {
      await ownEngine?.close();
    },
    get pending() {
      return server.admitted.choices;
    },
    get queuedTokens() {
      return server.admitted.tokens;
    },
    metrics: server.metrics,
    ...(server.templateError !== null ? { chatTemplateError: server.templateError } : {}),
    fetch: (req) => answer(server, req),
  };
}

/** What every request's answer reads: the model and what runs it, the options as resolved, and the work admitted so far. */
interface ServerState {
  readonly model: Model;
  readonly generator: Generator;
  readonly modelId: string;
  /** /v1/models' entry for the one model served. */
  readonly modelObject: { id: string; object: "model"; created: number; owned_by: "kvasm" };
  /** The chat template; null where the model's own does not parse (templateError says why). */
  readonly template: ChatTemplate | null;
  readonly templateError: string | null;
  /** apiKey, cors and log are read from here on each request. */
  readonly opts: HandlerOptions;
  readonly maxBody: number;
  readonly maxPending: number;
  /** The Retry-After header's value (seconds) on every 429 and 503. */
  readonly retryAfter: string;
  readonly limits: RequestLimits;
  /** Admitted and not yet answered in full: choices (against maxPending) and tokens of work (against limits.maxQueuedTokens). */
  readonly admitted: { choices: number; tokens: number };
  readonly metrics: ServerMetrics;
}

/** The handler's numeric options, defaulted and checked. */
type Bounds = Pick<ServerState, "maxBody" | "maxPending" | "retryAfter" | "limits">;

/**
 * The handler's numeric options with their defaults (an unset or undefined field keeps its default), each an integer
 * in its range (bodyTimeoutMs a number >= 0, Infinity for none); else a ParamError naming it. NaN, where a caller's
 * Number() of a missing setting gives it, would otherwise turn a bound off: every comparison with it is false.
 */
function boundsOf(model: Model, opts: HandlerOptions): Bounds {
  const given: Partial<RequestLimits> = opts.limits ?? {};
  checkOptionNames("limits", given, REQUEST_LIMIT_NAMES);
  const bodyTimeoutMs = given.bodyTimeoutMs ?? DEFAULT_LIMITS.bodyTimeoutMs;
  if (!(bodyTimeoutMs >= 0)) throw new ParamError("limits.bodyTimeoutMs", `must be a number of milliseconds >= 0, got ${bodyTimeoutMs}`);
  const limits: RequestLimits = {
    maxChoices: positiveInteger("limits.maxChoices", given.maxChoices ?? DEFAULT_LIMITS.maxChoices),
    maxStopStrings: nonNegativeInteger("limits.maxStopStrings", given.maxStopStrings ?? DEFAULT_LIMITS.maxStopStrings),
    maxStopLength: positiveInteger("limits.maxStopLength", given.maxStopLength ?? DEFAULT_LIMITS.maxStopLength),
    maxLogitBias: nonNegativeInteger("limits.maxLogitBias", given.maxLogitBias ?? DEFAULT_LIMITS.maxLogitBias),
    maxQueuedTokens: positiveInteger(
      "limits.maxQueuedTokens",
      given.maxQueuedTokens ?? 4 * model.sequences.totalPages * model.sequences.pageSize,
    ),
    bodyTimeoutMs,
  };
  return {
    maxBody: positiveInteger("maxBodyBytes", opts.maxBodyBytes ?? DEFAULT_MAX_BODY_BYTES),
    maxPending: positiveInteger("maxPending", opts.maxPending ?? 64),
    retryAfter: String(nonNegativeInteger("retryAfterSeconds", opts.retryAfterSeconds ?? 1)),
    limits,
  };
}

function serverState(model: Model, modelId: string, generator: Generator, opts: HandlerOptions, bounds: Bounds): ServerState {
  const created = Math.floor(Date.now() / 1000);
  const { template, templateError } = templateOf(model, opts);
  const admitted = { choices: 0, tokens: 0 };
  const metrics = new ServerMetrics({
    queueDepth: () => generator.waiting ?? 0,
    pendingChoices: () => admitted.choices,
    queuedTokens: () => admitted.tokens,
    activeSequences: () => generator.activeSequences,
    freeKvPages: () => generator.freeKvPages,
    cachedKvPages: () => generator.cachedKvPages,
    totalKvPages: () => generator.totalKvPages,
  });
  return {
    model,
    generator,
    modelId,
    modelObject: { id: modelId, object: "model", created, owned_by: "kvasm" },
    template,
    templateError,
    opts,
    ...bounds,
    admitted,
    metrics,
  };
}

/**
 * The chat template: the caller's (one that does not parse is the caller's ParamError), else the model's own, else
 * ChatML. A model whose own template does not parse still serves completions: its chat requests get a 500 (chatRefused),
 * and templateError says why (a template past its limits at render time is that request's 500 too).
 */
function templateOf(model: Model, opts: HandlerOptions): { template: ChatTemplate | null; templateError: string | null } {
  if (opts.chatTemplate !== undefined) {
    const ctx = { bosToken: piece(model, model.tokenizer.bos), eosToken: piece(model, model.tokenizer.eos) };
    return { template: new ChatTemplate(opts.chatTemplate, ctx, false, opts.chatTemplateLimits), templateError: null };
  }
  // the limits (the caller's) are checked before the source is parsed: their ParamError is not the file's
  try {
    return { template: ChatTemplate.forModel(model, opts.chatTemplateLimits), templateError: null };
  } catch (e) {
    if (!(e instanceof ParamError && e.param === "chat_template")) throw e;
    return { template: null, templateError: `the chat template of ${model.file.source.name} (tokenizer.chat_template) ${e.problem}` };
  }
}

/** The 500 a chat request gets where the model's chat template does not parse: the model's fault, and what to do instead. */
function chatRefused(s: ServerState): HttpError {
  return new HttpError(
    500,
    `${s.templateError}; this server cannot render chats for this model: use /v1/completions with a prompt in the model's ` +
      "own format, or serve it with a chat template that parses (createHandler's chatTemplate option)",
    "server_error",
    null,
    "model_error",
  );
}

/** What the log line of the request being answered needs from the route: its token counts, and when a stream has ended. */
interface RouteNote {
  usage?: { prompt_tokens: number; completion_tokens: number };
  streamEnded?: Promise<unknown>;
  /** Whether the stream was cancelled before its end (read when it has ended). */
  cancelled?: () => boolean;
}

/** One request's response (a CORS preflight's, the route's, or its error's), counted in the metrics and logged. */
async function answer(s: ServerState, req: Request): Promise<Response> {
  const t0 = performance.now();
  const method = req.method.toUpperCase();
  const note: RouteNote = {};
  const { res, path } = await respond(s, req, method, note);
  s.metrics.countResponse(res.status);
  const log = s.opts.log;
  if (log) {
    // a stream is logged when it ends: its time the whole answer's, its tokens the final count
    const write = () =>
      writeLogLine(log, {
        method,
        path,
        status: res.status,
        promptTokens: note.usage?.prompt_tokens,
        completionTokens: note.usage?.completion_tokens,
        ms: performance.now() - t0,
        ...(note.cancelled?.() ? { cancelled: true } : {}),
      });
    if (note.streamEnded) note.streamEnded.then(write);
    else write();
  }
  return res;
}

/** The response with its CORS headers, and the path it was routed by ("?" for a preflight or a target that is no URL). */
async function respond(s: ServerState, req: Request, method: string, note: RouteNote): Promise<{ res: Response; path: string }> {
  if (s.opts.cors !== undefined && isPreflight(req)) return { res: preflightResponse(req, s.opts.cors), path: "?" };
  let path = "?";
  let res: Response;
  try {
    path = pathOf(req);
    res = await route(s, req, path, method, note);
  } catch (e) {
    res = errorResponse(s, e);
  }
  if (s.opts.cors !== undefined) applyCors(res.headers, req, s.opts.cors);
  return { res, path };
}

/** An error as the client sees it: its HTTP status and OpenAI-style body. */
function errorResponse(s: ServerState, e: unknown): Response {
  const res = toHttpError(e).response();
  // every "try again later" (the admission 429s, the engine's own full queue, out of memory) asks for one wait
  if (res.headers.has("Retry-After")) res.headers.set("Retry-After", s.retryAfter);
  return res;
}

function writeLogLine(log: RequestLogger, entry: RequestLogEntry): void {
  try {
    log(formatLogLine(entry), entry);
  } catch { /* a failing logger must not fail the request it logs */ }
}

/** Routing: the answer of the route that the path and method name; 401, 404 or 405 where the caller may take none. */
async function route(s: ServerState, req: Request, path: string, method: string, note: RouteNote): Promise<Response> {
  if (path === "/health") {
    allow(method, path, "GET", "HEAD");
    return jsonResponse({ status: "ok", model: s.modelId, pending: s.admitted.choices, sequences: s.generator.activeSequences });
  }
  if (path === "/metrics") {
    allow(method, path, "GET", "HEAD");
    return new Response(s.metrics.render(), { headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" } });
  }
  if (path.startsWith("/v1/")) authorize(s.opts.apiKey, req);
  switch (path) {
    case "/v1/models":
      allow(method, path, "GET");
      return jsonResponse({ object: "list", data: [s.modelObject] });
    case `/v1/models/${encodeURIComponent(s.modelId)}`:
      allow(method, path, "GET");
      return jsonResponse(s.modelObject);
    case "/v1/completions":
      allow(method, path, "POST");
      return await generateRoute(s, req, parseCompletionRequest, note);
    case "/v1/chat/completions":
      allow(method, path, "POST");
      if (s.template === null) throw chatRefused(s);
      return await generateRoute(s, req, parseChatRequest, note);
  }
  if (path.startsWith("/v1/models/")) throw modelNotFound(safeDecode(path.slice(11)), s.modelId);
  throw new HttpError(404, `no route for ${method} ${path}`, "not_found_error", null, "not_found");
}

/** 405 unless the method is one of `methods`. */
function allow(method: string, path: string, ...methods: string[]): void {
  if (!methods.includes(method)) throw notAllowed(method, path, methods);
}

/** 401 unless the request carries the API key, when there is one. */
function authorize(apiKey: string | undefined, req: Request): void {
  if (apiKey === undefined) return;
  const auth = req.headers.get("authorization") ?? "";
  const m = /^Bearer\s+(.+)$/i.exec(auth);
  if (!m || !sameSecret(m[1].trim(), apiKey)) {
    throw new HttpError(
      401,
      "missing or wrong API key (send Authorization: Bearer <key>)",
      "authentication_error",
      null,
      "invalid_api_key",
    );
  }
}

/**
 * A completion route: the request read and checked, its place taken, its generations started, and the answer
 * whole (JSON) or streamed (server-sent events). The place is given back when the answer is complete, when it
 * fails, or, for a stream, when the stream ends or is cancelled.
 */
async function generateRoute(
  s: ServerState,
  req: Request,
  parse: (body: unknown) => ParsedRequest,
  note: RouteNote,
): Promise<Response> {
  const { parsed: asked, promptIds } = await readGenerateRequest(s, req, parse);
  // a chat rendered in the ChatML fallback ends where the model writes a ChatML marker, as in `kvasm chat` (the
  // client's own stop strings were checked against the limits; these two are the server's)
  const parsed = asked.kind === "chat" && s.template?.isFallback ? { ...asked, stop: [...asked.stop, ...CHATML_STOPS] } : asked;
  const place = takePlace(s, req, admit(s, parsed, promptIds));
  let handedOff = false;
  try {
    const observe = observer(s.metrics, performance.now());
    const run = runRequest({
      model: s.model,
      generator: s.generator,
      modelId: s.modelId,
      parsed,
      promptIds,
      signal: place.signal,
      observe,
    });
    s.metrics.promptTokens += promptIds.reduce((sum, ids) => sum + ids.length, 0);
    const counted = run.usage().then((u) => note.usage = u, () => {});
    if (!parsed.stream) return jsonResponse(await run.json());
    handedOff = true;
    return streamedAnswer(run, place, note, counted);
  } finally {
    if (!handedOff) place.release();
  }
}

/**
 * The request's body read, parsed and checked against the model and the per-request limits, and its prompts
 * as token ids: nothing is held while the body arrives, is checked and is tokenized.
 */
async function readGenerateRequest(
  s: ServerState,
  req: Request,
  parse: (body: unknown) => ParsedRequest,
): Promise<{ parsed: ParsedRequest; promptIds: number[][] }> {
  const parsed = parse(await readJsonBody(req, s.maxBody, s.limits.bodyTimeoutMs));
  if (parsed.model !== undefined && parsed.model !== s.modelId) throw modelNotFound(parsed.model, s.modelId);
  checkRequestShape(parsed, s.limits);
  if (req.signal?.aborted) throw new HttpError(499, "the client went away", "invalid_request_error", null, "cancelled");
  return { parsed, promptIds: await promptIdsOf(s.model, s.template, parsed) };
}

/** What a request costs while admitted: its choices (prompts x n) and tokens of work (prompts + n x max_tokens). */
interface Cost {
  choices: number;
  work: number;
}

/** The request's cost, refused (400) when it could never fit and deferred (429) when it does not fit now. */
function admit(s: ServerState, parsed: ParsedRequest, promptIds: number[][]): Cost {
  const cost = costOf(s, parsed, promptIds);
  const { admitted, maxPending, limits } = s;
  if (admitted.choices + cost.choices > maxPending) throw busy(s, `${admitted.choices} of ${maxPending} choices in progress`);
  if (admitted.tokens + cost.work > limits.maxQueuedTokens) {
    throw busy(s, `${admitted.tokens} of ${limits.maxQueuedTokens} tokens of work queued`);
  }
  const room = s.generator.capacity;
  if (room !== undefined && room < promptIds.length) {
    throw busy(s, `the engine's queue has room for ${room} of this request's ${promptIds.length} prompts`);
  }
  return cost;
}

/** The request's choices and tokens of work; a 400 where a prompt's max_tokens pass the context or the whole passes a limit. */
function costOf(s: ServerState, parsed: ParsedRequest, promptIds: number[][]): Cost {
  const { model, maxPending, limits } = s;
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
  return { choices, work };
}

function busy(s: ServerState, what: string): HttpError {
  return new HttpError(429, `server is busy: ${what}; retry after ${s.retryAfter} s`, "rate_limit_error", null, "queue_full", {
    "Retry-After": s.retryAfter,
  });
}

/** An admitted request's place: its cost counted until release(), and the abort its generations run under. */
interface Place {
  /** Aborts when the client goes away (req.signal) or abort() is called (a cancelled stream). */
  readonly signal: AbortSignal;
  abort(): void;
  /** Gives the cost back and stops watching the client; once (later calls do nothing). */
  readonly release: () => void;
  /** Settles at release. */
  readonly released: Promise<void>;
}

function takePlace(s: ServerState, req: Request, cost: Cost): Place {
  const abort = new AbortController();
  const onClientGone = () => abort.abort();
  let done = false;
  let settle = () => {};
  const released = new Promise<void>((resolve) => settle = resolve);
  req.signal?.addEventListener("abort", onClientGone, { once: true });
  if (req.signal?.aborted) abort.abort();
  s.admitted.choices += cost.choices;
  s.admitted.tokens += cost.work;
  return {
    signal: abort.signal,
    abort: () => abort.abort(),
    release: () => {
      if (done) return;
      done = true;
      req.signal?.removeEventListener("abort", onClientGone);
      s.admitted.choices -= cost.choices;
      s.admitted.tokens -= cost.work;
      settle();
    },
    released,
  };
}

/**
 * The answer as server-sent events. The place is given back when the chunks run out or fail, or when the
 * client cancels the stream (which aborts the generations); the log line waits for that and for the counts.
 */
function streamedAnswer(run: ReturnType<typeof runRequest>, place: Place, note: RouteNote, counted: Promise<unknown>): Response {
  // a cancelled stream ends before its generations do: its counts follow once they have
  note.streamEnded = place.released.then(() => counted);
  // the log line says so: "200 2+4 tokens" alone read as a finished answer of 4 tokens
  note.cancelled = () => place.signal.aborted;
  // a stream cancelled before its first pull never runs the generator's finally: release on cancel too
  return sseResponse(withFinally(run.chunks(), place.release), () => {
    place.abort();
    place.release();
  });
}

/** Metrics of one request's events: tokens, time to its first token, and the gap between tokens of each choice. */
function observer(metrics: ServerMetrics, admittedAt: number): (ev: EngineEvent) => void {
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

/** 405 with the Allow header a 405 must carry (RFC 9110 15.5.6): the methods the route takes. */
function notAllowed(method: string, path: string, methods: string[]): HttpError {
  return new HttpError(405, `method ${method} is not allowed on ${path}`, "invalid_request_error", null, "method_not_allowed", {
    allow: methods.join(", "),
  });
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
