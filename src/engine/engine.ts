/**
 * The engine: many requests over one model, continuously batched. Each
 * scheduler step gathers one decode row from every running sequence plus a
 * chunk of at most one or more waiting prompts (so running sequences keep
 * producing tokens while a long prompt is prefilled), runs them through
 * Model.step as one batch (each weight row read once for all rows), then
 * samples, streams, and retires finished sequences; new requests are admitted
 * between steps. n > 1 samples and beam search fork the prompt's sequence
 * (copy-on-write of its partial last page); full prompt pages go to a prefix
 * cache so a later prompt sharing them skips recomputing them.
 */
import type { Model, StepInput } from "../model/model.ts";
import type { Sequence } from "../kv/paged-cache.ts";
import type { KVManager } from "../kv/kv-manager.ts";
import type { PrefixCache } from "../kv/prefix-cache.ts";
import { Sampler } from "../sampling/sampler.ts";
import { samplingParamsOf } from "../sampling/params.ts";
import { StopMatcher } from "../sampling/stop.ts";
import { TextStream } from "../tokenizer/tokenizer.ts";
import {
  checkOptionNames,
  ClosedError,
  KvasmError,
  nonNegativeInteger,
  optionalBoolean,
  optionNames,
  OutOfMemoryError,
  ParamError,
  positiveInteger,
} from "../errors.ts";
import { BeamSearch } from "./beam.ts";
import { ChoiceDecoder, maxTokensOf, promptIds } from "./decoder.ts";
import type { FinishReason } from "./events.ts";
import { type ChoiceResult, EngineRequest, REQUEST_PARAM_NAMES, type RequestParams, type RequestResult } from "./request.ts";

export interface EngineOptions {
  /** Requests waiting for admission at most; submit() beyond it throws QueueFullError (default 256). */
  maxQueue?: number;
  /** Token rows per scheduler step, decode rows and prompt chunks together (default: the model's maxBatchRows). */
  maxStepRows?: number;
  /** Full prompt pages kept for prefix reuse (least recently used go first); 0 = off. Default: half the KV pages. */
  prefixCachePages?: number;
}

/** EngineOptions' names: the constructor refuses any other key. */
export const ENGINE_OPTION_NAMES = optionNames<EngineOptions>()(["maxQueue", "maxStepRows", "prefixCachePages"]);

/** submit() was refused because `maxQueue` requests are already waiting. */
export class QueueFullError extends KvasmError {
  constructor(limit: number) {
    super("memory", `the engine's queue is full (${limit} requests waiting)`);
  }
}

/** One sampled continuation (a "choice"): its decoder, the sequence it runs on, and the token it feeds next. */
interface Choice {
  decoder: ChoiceDecoder;
  /** null once the choice finished (its pages went back). */
  seq: Sequence | null;
  /** The token to feed at the next step, -1 if none. */
  pending: number;
}

/**
 * Where a request is: waiting for admission, its prompt being prefilled (on `promptSeq`), its choices or
 * beams decoding, or retired (resolved, nothing held).
 */
type Phase = "queued" | "prefill" | "decode" | "done";

interface Active {
  handle: EngineRequest;
  params: RequestParams;
  phase: Phase;
  prompt: number[];
  maxTokens: number;
  n: number;
  /** Sequences the request will hold at once (n, or the beam width). */
  width: number;
  signal?: AbortSignal;
  /** The prompt's sequence, in phase "prefill" only. */
  promptSeq: Sequence | null;
  cachedTokens: number;
  /** Sampled choices (phase "decode"; none under beam search). */
  choices: Choice[];
  beam: BeamSearch | null;
  /** Beam search's best hypotheses, once it ended. */
  beamResults: ChoiceResult[];
  wantLogprobs: boolean;
  base: Sampler;
  /** Beam search: the live beams' logits of the current step, by beam (reused every step). */
  beamLogits: Float32Array[];
  /** Beam search: whether beamLogits holds this step's logits. */
  beamStepped: boolean;
}

/**
 * One row of a scheduler step: what Model.runRows reads (the sequence, its tokens, whether its logits are wanted)
 * and who it belongs to (a prompt chunk, a sampled choice's token, or a beam's token). The engine keeps these
 * records and reuses them step after step, with a one-token array each for decode rows, so a decode step
 * allocates no rows, arrays or maps of its own.
 */
interface StepRow extends StepInput {
  kind: "prompt" | "choice" | "beam";
  /** The request (null between steps, so a record waiting for reuse holds no finished request). */
  a: Active | null;
  /** The choice (kind "choice"). */
  c: Choice | null;
  /** The beam's index among the live ones (kind "beam"). */
  beam: number;
  /** tokens of a decode row: one entry, rewritten each step. */
  readonly one: number[];
  /** Why the row's request could not reserve its positions this step (undefined: it could). */
  failure: unknown;
}

// setImmediate (Node, Bun, Deno) runs after pending I/O, so HTTP clients are served between steps; setTimeout elsewhere
const host = globalThis as typeof globalThis & { setImmediate?: (f: () => void) => void };
const yieldToEventLoop: () => Promise<void> = typeof host.setImmediate === "function"
  ? () => new Promise((r) => host.setImmediate!(r))
  : () => new Promise((r) => setTimeout(r, 0));

export class Engine {
  readonly prefixCache: PrefixCache | null;
  /** The model's KV manager: the scheduler's one way to sequences and pages. */
  private readonly kv: KVManager;
  private readonly queue: Active[] = [];
  private readonly running: Active[] = [];
  private readonly maxQueue: number;
  private readonly maxStepRows: number;
  /** Sequence slots promised to admitted requests that have not forked yet. */
  private promisedSlots = 0;
  private nextId = 1;
  private loopRunning: Promise<void> | null = null;
  private closed = false;
  /** The step's rows: the first `stepRowCount` are this step's, the rest wait for reuse. */
  private readonly stepRows: StepRow[] = [];
  private stepRowCount = 0;
  /** The step's logits, one view per row that wanted them (Model.runRows fills it). */
  private readonly stepLogits: Float32Array[] = [];
  /** Beam requests whose rows ran this step. */
  private readonly beamRequests: Active[] = [];
  /** Scheduler steps run, and token rows they carried (decode + prefill). */
  steps = 0;
  rows = 0;

  constructor(readonly model: Model, opts: EngineOptions = {}) {
    checkOptionNames("Engine", opts, ENGINE_OPTION_NAMES);
    this.maxQueue = positiveInteger("maxQueue", opts.maxQueue ?? 256);
    this.maxStepRows = positiveInteger("maxStepRows", opts.maxStepRows ?? model.maxBatchRows);
    this.kv = model.sequences;
    const prefixPages = nonNegativeInteger("prefixCachePages", opts.prefixCachePages ?? Math.floor(this.kv.totalPages / 2));
    this.prefixCache = this.kv.prefixCache(prefixPages);
  }

  // ---------------------------------------------------------------- counters

  /** Sequences holding KV pages for running requests. */
  get activeSequences(): number {
    return this.kv.activeSequences;
  }
  get freePages(): number {
    return this.kv.freePages;
  }
  /** KV pages in all. */
  get totalPages(): number {
    return this.kv.totalPages;
  }
  get positionsComputed(): number {
    return this.model.positionsComputed;
  }
  get queueLength(): number {
    return this.queue.length;
  }
  /** Requests submit() still accepts before QueueFullError. */
  get queueRoom(): number {
    return Math.max(0, this.maxQueue - this.queue.length);
  }
  get runningRequests(): number {
    return this.running.length;
  }

  // ---------------------------------------------------------------- requests

  /**
   * Queues a request. Invalid parameters (ParamError), a prompt longer than
   * the context (ContextLengthError), a full queue (QueueFullError) and a
   * closed engine (ClosedError) throw here; running out of KV pages later
   * rejects only this request's `done`.
   */
  submit(params: RequestParams): EngineRequest {
    if (this.closed) throw new ClosedError("engine");
    checkOptionNames("submit", params, REQUEST_PARAM_NAMES);
    const m = this.model, tok = m.tokenizer;
    const maxTokens = maxTokensOf(params.maxTokens);
    const beams = nonNegativeInteger("beams", params.beams ?? 0);
    const n = params.n ?? (beams > 0 ? beams : 1);
    positiveInteger("n", n);
    if (beams > 0 && n > beams) throw new ParamError("n", `must be at most beams (${beams}), got ${n}`);
    const width = beams > 0 ? beams : n;
    if (width > this.kv.maxSequences) {
      throw new ParamError(
        beams > 0 ? "beams" : "n",
        `${width} sequences exceed the engine's ${this.kv.maxSequences} (LoadOptions.maxSequences)`,
      );
    }
    const lengthPenalty = params.lengthPenalty ?? 1;
    if (!Number.isFinite(lengthPenalty)) throw new ParamError("lengthPenalty", `must be a finite number, got ${lengthPenalty}`);
    optionalBoolean("tokenLogprobs", params.tokenLogprobs);
    const earlyStopping = optionalBoolean("earlyStopping", params.earlyStopping) ?? false;
    const prompt = promptIds(m, params.prompt, optionalBoolean("addBos", params.addBos));
    const base = new Sampler(m.vocabSize, samplingParamsOf(params)); // validates the sampling fields
    new StopMatcher(params.stop ?? []); // validates the stop strings
    if (this.queue.length >= this.maxQueue) throw new QueueFullError(this.maxQueue);

    const handle = new EngineRequest(this.nextId++, prompt);
    const a: Active = {
      handle,
      params,
      phase: "queued",
      prompt,
      maxTokens,
      n,
      width,
      signal: params.signal,
      promptSeq: null,
      cachedTokens: 0,
      choices: [],
      beam: beams > 0
        ? new BeamSearch({
          width: beams,
          lengthPenalty,
          earlyStopping,
          maxTokens,
          isEnd: (id) => tok.isEndOfGeneration(id),
          // the bias and penalties apply to beams as to draws (beam.ts)
          penalties: base.adjustsLogits ? { scorer: base, prompt } : undefined,
        })
        : null,
      beamResults: [],
      wantLogprobs: params.logprobs !== undefined,
      base,
      beamLogits: [],
      beamStepped: false,
    };
    this.queue.push(a);
    this.kick();
    return handle;
  }

  /** Ends every request ("abort") and waits for the scheduler to stop. The model stays open (its owner closes it). */
  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    for (const a of [...this.queue, ...this.running]) a.handle.cancel();
    this.kick();
    await this.loopRunning;
    this.kv.dropPrefixCache(this.prefixCache);
  }

  // ---------------------------------------------------------------- the scheduler

  private kick(): void {
    if (this.loopRunning) return;
    this.loopRunning = this.loop().finally(() => {
      this.loopRunning = null;
      if (this.queue.length > 0 || this.running.length > 0) this.kick();
    });
  }

  private async loop(): Promise<void> {
    while (this.queue.length > 0 || this.running.length > 0) {
      this.reapCancelled();
      this.admit();
      if (this.running.length === 0) {
        if (this.queue.length === 0) break;
        await yieldToEventLoop();
        continue;
      }
      try {
        await this.step();
      } catch (e) {
        // a failure of the forward pass itself (step() keeps each request's own failures to that request): nothing
        // more can run
        for (const a of [...this.running]) this.fail(a, e);
        for (const a of this.queue.splice(0)) {
          a.phase = "done";
          a.handle.fail(e);
        }
        return;
      }
      await yieldToEventLoop();
    }
  }

  private isCancelled(a: Active): boolean {
    return this.closed || a.handle.cancelled || (a.signal?.aborted ?? false);
  }

  private reapCancelled(): void {
    for (let i = this.queue.length - 1; i >= 0; i--) {
      const a = this.queue[i];
      if (!this.isCancelled(a)) continue;
      this.queue.splice(i, 1);
      a.phase = "done";
      a.handle.finish(this.result(a, Array.from({ length: a.n }, (_, k) => emptyChoice(k, "abort"))));
    }
    for (let i = 0; i < this.running.length;) {
      const a = this.running[i];
      if (!this.isCancelled(a)) {
        i++;
        continue;
      }
      if (a.beam) a.beam.abort(this.kv);
      for (const c of a.choices) if (!c.decoder.finished) this.finishChoice(c, "abort");
      this.retire(a); // takes it out of `running`
    }
  }

  /** Moves waiting requests into the running set while sequence slots and pages allow, in arrival order. */
  private admit(): void {
    const kv = this.kv;
    while (this.queue.length > 0) {
      const a = this.queue[0];
      if (kv.freeSequences - this.promisedSlots < a.width) return;
      const admission = kv.admission(a.prompt, this.prefixCache);
      const needed = admission.neededPages;
      if (needed > kv.totalPages) {
        this.queue.shift();
        a.phase = "done";
        a.handle.fail(
          new OutOfMemoryError(
            `KV cache full: the prompt needs ${needed} pages of ${kv.pageSize} positions, the cache has ${kv.totalPages}`,
          ),
        );
        continue;
      }
      // wait for pages to be freed, unless nothing runs that could free them
      if (needed > kv.freePages + (this.prefixCache?.size ?? 0) && this.running.length > 0) return;
      this.queue.shift();
      const seq = kv.open(admission);
      a.phase = "prefill";
      a.promptSeq = seq;
      a.cachedTokens = seq.length;
      this.promisedSlots += a.width - 1;
      this.running.push(a);
    }
  }

  /** The next row record of this step, reused from earlier steps where one exists. */
  private nextRow(kind: StepRow["kind"], a: Active, seq: Sequence): StepRow {
    let row = this.stepRows[this.stepRowCount];
    if (row === undefined) {
      row = { seq, tokens: [], logits: true, kind, a, c: null, beam: 0, one: [0], failure: undefined };
      this.stepRows.push(row);
    }
    this.stepRowCount++;
    row.seq = seq;
    row.kind = kind;
    row.a = a;
    row.c = null;
    row.beam = 0;
    row.logits = true;
    row.failure = undefined;
    return row;
  }

  /** A decode row feeding `token` to `seq`. */
  private decodeRow(kind: "choice" | "beam", a: Active, seq: Sequence, token: number): StepRow {
    const row = this.nextRow(kind, a, seq);
    row.one[0] = token;
    row.tokens = row.one;
    return row;
  }

  /** Rows of one request in this step. */
  private gather(a: Active, budget: number): number {
    if (a.phase === "prefill") {
      // the next chunk of the prompt (a copy per chunk, not per token)
      const seq = a.promptSeq!;
      const from = seq.length;
      const take = Math.min(a.prompt.length - from, budget);
      if (take <= 0) return 0;
      const row = this.nextRow("prompt", a, seq);
      row.tokens = a.prompt.slice(from, from + take);
      row.logits = from + take === a.prompt.length;
      return take;
    }
    let rows = 0;
    if (a.beam) {
      const live = a.beam.live;
      for (let i = 0; i < live.length; i++) {
        this.decodeRow("beam", a, live[i].seq, live[i].pending).beam = i;
        rows++;
      }
      return rows;
    }
    for (let k = 0; k < a.choices.length; k++) {
      const c = a.choices[k];
      if (c.decoder.finished || c.pending < 0) continue;
      this.decodeRow("choice", a, c.seq!, c.pending).c = c;
      rows++;
    }
    return rows;
  }

  /**
   * Reserves every row's positions, request by request: running out fails only the request that asked, and its
   * rows leave the step. Returns the rows left.
   */
  private reserveRows(): number {
    const rows = this.stepRows, kv = this.kv;
    let failures = 0;
    for (let i = 0; i < this.stepRowCount; i++) {
      const row = rows[i], before = i > 0 ? rows[i - 1] : undefined;
      // a request that failed on an earlier row fails as a whole (gather puts a request's rows side by side)
      if (before?.a === row.a && before.failure !== undefined) {
        row.failure = before.failure;
        continue;
      }
      try {
        kv.reserve(row.seq, row.seq.length + row.tokens.length);
      } catch (e) {
        row.failure = e ?? new Error("KV reserve failed");
        failures++;
      }
    }
    if (failures === 0) return this.stepRowCount;
    // fail each failed request once, then close up its rows (the records move to the end for reuse)
    for (let i = 0; i < this.stepRowCount; i++) {
      const row = rows[i];
      if (row.failure !== undefined && row.a!.phase !== "done") this.fail(row.a!, row.failure);
    }
    let kept = 0;
    for (let i = 0; i < this.stepRowCount; i++) {
      const row = rows[i];
      if (row.a!.phase === "done") {
        this.clearRow(row);
        continue;
      }
      rows[i] = rows[kept];
      rows[kept++] = row;
    }
    this.stepRowCount = kept;
    return kept;
  }

  private async step(): Promise<void> {
    const m = this.model;
    this.stepRowCount = 0;
    // decode rows first (they are what keeps running sequences streaming), then prompt chunks
    let rows = 0;
    // (indexed loops: a for-of here allocated an iterator a step in V8's baseline tiers)
    const running = this.running;
    for (let i = 0; i < running.length; i++) if (running[i].phase === "decode") rows += this.gather(running[i], 0);
    for (let i = 0; i < running.length; i++) {
      const a = running[i];
      if (a.phase !== "prefill") continue;
      const budget = Math.max(this.maxStepRows - rows, rows === 0 ? 1 : 0);
      if (budget <= 0) break;
      rows += this.gather(a, budget);
    }
    if (this.reserveRows() === 0) return;

    const stepRows = this.stepRows, count = this.stepRowCount;
    const logits = await m.runRows(stepRows, count, this.stepLogits);
    this.steps++;
    for (let i = 0; i < count; i++) this.rows += stepRows[i].tokens.length;

    // hand each logits view to its owner; beam requests collect theirs first. What a request does with its logits
    // (sampling, stop strings, forking its choices, a beam step) can fail on its own parameters: that fails the
    // request alone, its pages go back, and every other row of the step still takes its token
    const beams = this.beamRequests;
    let li = 0;
    for (let i = 0; i < count; i++) {
      const row = stepRows[i];
      if (row.logits === false) continue;
      const l = logits[li++];
      const a = row.a!;
      if (a.phase === "done") continue;
      if (row.kind === "beam") {
        if (!a.beamStepped) {
          a.beamStepped = true;
          a.beamLogits.length = a.beam!.live.length;
          beams.push(a);
        }
        a.beamLogits[row.beam] = l;
        continue;
      }
      try {
        if (row.kind === "choice") this.take(row.c!, row.c!.decoder.sample(l));
        else this.promptDone(a, l);
      } catch (e) {
        this.fail(a, e);
      }
    }
    for (let k = 0; k < beams.length; k++) {
      const a = beams[k], live = a.beam!.live;
      a.beamStepped = false;
      try {
        a.beam!.step(a.beamLogits, this.kv, live[0].seq.length >= m.contextLength);
        if (a.beam!.isDone) this.finishBeams(a);
      } catch (e) {
        this.fail(a, e);
      }
    }
    beams.length = 0;
    // the rows keep no sequence, request or prompt chunk past the step
    for (let i = 0; i < count; i++) this.clearRow(stepRows[i]);

    // sliding window: pages no later query can attend go back to the pool
    const W = m.config.slidingWindow ?? 0;
    if (W > 0) { for (let i = 0; i < running.length; i++) this.slideRequest(running[i], W); }
    // in running order (retire takes the request out of `running`)
    for (let i = 0; i < this.running.length;) {
      const a = this.running[i];
      if (this.allFinished(a)) this.retire(a);
      else i++;
    }
  }

  private clearRow(row: StepRow): void {
    row.tokens = row.one;
    row.a = null;
    row.c = null;
    row.failure = undefined;
  }

  /** Gives back the pages of every sequence of `a` that a window of W positions no longer reaches. */
  private slideRequest(a: Active, W: number): void {
    const kv = this.kv;
    if (a.phase === "prefill") kv.slide(a.promptSeq!, W);
    else if (a.beam) { for (let i = 0; i < a.beam.live.length; i++) kv.slide(a.beam.live[i].seq, W); }
    else for (let k = 0; k < a.choices.length; k++) if (a.choices[k].seq) kv.slide(a.choices[k].seq!, W);
  }

  /**
   * The prompt is in the cache and its last logits are here: fork the choices (or start the beams). The prompt's
   * sequence stays `a.promptSeq` (and its slots promised) until the choices or beams hold it, so that fail() after a
   * failure at any point here (a sampler's ParamError, most likely) gives back exactly what the request holds.
   */
  private promptDone(a: Active, logits: Float32Array): void {
    const m = this.model, kv = this.kv, seq = a.promptSeq!;
    kv.remember(a.prompt, seq, this.prefixCache);
    if (!a.beam) this.makeChoices(a);
    // the hand-over: the prompt's sequence and the promised slots become the choices' or beams' sequences
    a.promptSeq = null;
    a.phase = "decode";
    this.promisedSlots -= a.width - 1;
    if (a.beam) {
      a.beam.start(seq);
      a.beam.step([logits], this.kv, seq.length >= m.contextLength);
      if (a.beam.isDone) this.finishBeams(a);
      return;
    }
    for (let k = 0; k < a.n; k++) a.choices[k].seq = k === 0 ? seq : kv.fork(seq);
    for (const c of a.choices) {
      // maxTokens 0: the decoder finished as it was made
      if (c.decoder.finished) {
        this.releaseChoice(c);
        continue;
      }
      // each choice samples from its own copy: the sampler edits logits in place
      const l = a.n > 1 ? logits.slice() : logits;
      this.take(c, c.decoder.sample(l));
    }
  }

  /** The request's n choices, each with its decoder and sampler, no sequence yet. */
  private makeChoices(a: Active): void {
    const m = this.model;
    const seeds = choiceSeeds(a.base.params.seed, a.n);
    const emit = a.handle.emit.bind(a.handle);
    for (let k = 0; k < a.n; k++) {
      a.choices.push({
        decoder: new ChoiceDecoder(m, {
          index: k,
          prompt: a.prompt,
          sampler: k === 0 ? a.base : new Sampler(m.vocabSize, { ...samplingParamsOf(a.params), seed: seeds[k] }),
          stop: a.params.stop ?? [],
          maxTokens: a.maxTokens,
          logprobs: a.wantLogprobs,
          tokenLogprobs: a.params.tokenLogprobs,
          emit,
        }),
        seq: null,
        pending: -1,
      });
    }
  }

  /** After the decoder took a token: feed it at the next step, or free the finished choice's sequence. */
  private take(c: Choice, goOn: boolean): void {
    if (goOn) c.pending = c.decoder.tokens[c.decoder.tokens.length - 1];
    else this.releaseChoice(c);
  }

  private finishChoice(c: Choice, reason: FinishReason): void {
    c.decoder.finish(reason);
    this.releaseChoice(c);
  }

  private releaseChoice(c: Choice): void {
    c.pending = -1;
    if (c.seq) {
      this.kv.release(c.seq);
      c.seq = null;
    }
  }

  /** Beam search ended: the best hypotheses become the choices, streamed whole. */
  private finishBeams(a: Active): void {
    const tok = this.model.tokenizer;
    a.beam!.best(a.n).forEach((h, k) => {
      const stream = new TextStream(tok);
      for (const id of a.prompt) stream.push(id);
      let text = "";
      h.tokens.forEach((id, i) => {
        const piece = stream.push(id);
        text += piece;
        a.handle.emit({ type: "token", choice: k, id, text: piece, logprob: h.logprobs[i], top: [] });
      });
      const rest = stream.flush();
      text += rest;
      a.handle.emit({ type: "finish", choice: k, reason: h.reason, text: rest });
      a.beamResults.push({
        index: k,
        tokens: h.tokens,
        text,
        finishReason: h.reason,
        logprobs: h.tokens.map((id, i) => ({ id, logprob: h.logprobs[i], top: [] })),
        score: h.score,
      });
    });
  }

  private allFinished(a: Active): boolean {
    if (a.phase !== "decode") return false;
    if (a.beam) return a.beam.isDone;
    for (let k = 0; k < a.choices.length; k++) if (!a.choices[k].decoder.finished) return false;
    return true;
  }

  /** Takes a request out of the running set, frees what it holds, and resolves it. */
  private retire(a: Active): void {
    this.release(a);
    const choices: ChoiceResult[] = a.beam ? a.beamResults : a.choices.map(({ decoder: d }) => ({
      index: d.index,
      tokens: d.tokens,
      text: d.text,
      finishReason: d.finishReason ?? "abort",
      ...(d.logprobs ? { logprobs: d.logprobs } : {}),
      ...(d.stop !== undefined ? { stop: d.stop } : {}),
    }));
    for (let k = choices.length; k < a.n; k++) choices.push(emptyChoice(k, "abort"));
    a.handle.finish(this.result(a, choices));
  }

  private fail(a: Active, e: unknown): void {
    this.release(a);
    a.handle.fail(e);
  }

  private release(a: Active): void {
    if (a.phase === "done") return;
    a.phase = "done";
    const i = this.running.indexOf(a);
    if (i >= 0) this.running.splice(i, 1);
    if (a.promptSeq) {
      this.kv.release(a.promptSeq);
      a.promptSeq = null;
      this.promisedSlots -= a.width - 1;
    }
    if (a.beam && !a.beam.isDone) a.beam.abort(this.kv);
    for (const c of a.choices) this.releaseChoice(c);
  }

  private result(a: Active, choices: ChoiceResult[]): RequestResult {
    return {
      id: a.handle.id,
      promptTokens: a.prompt,
      choices,
      usage: {
        promptTokens: a.prompt.length,
        completionTokens: choices.reduce((s, c) => s + c.tokens.length, 0),
        cachedTokens: a.cachedTokens,
      },
    };
  }
}

function emptyChoice(index: number, reason: FinishReason): ChoiceResult {
  return { index, tokens: [], text: "", finishReason: reason };
}

/** Seeds of the n choices: choice 0 gets the request's seed (so n = 1 matches a single generation), the others a fixed mix of it. */
function choiceSeeds(seed: number, n: number): number[] {
  const out = [seed >>> 0];
  for (let k = 1; k < n; k++) {
    let h = (seed ^ Math.imul(k, 0x9e3779b9)) >>> 0;
    h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
    h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
    out.push((h ^ (h >>> 16)) >>> 0);
  }
  return out;
}
